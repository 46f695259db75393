//! The durable outbox: no alert is lost.
//!
//! Every notification is written to `DIR/pending/<id>.json` (temp file, fsync, rename, fsync
//! of the folder) *before* any attempt to send it, and removed only after the sink accepted it.
//! Failed attempts are retried with exponential backoff (and jitter); a notification that keeps
//! failing past `max_age_secs`, or that a sink refuses for good (4xx other than 408/429), is
//! moved to `DIR/dead/` — kept, counted and logged, never deleted. After a crash (even
//! `kill -9`) the next start sends whatever is pending, so delivery is at least once; sinks
//! deduplicate by key (PagerDuty `dedup_key`, Alertmanager labels, webhook `Idempotency-Key`).
//! Per (sink, alert key) the order is kept: a resolve never overtakes its trigger.
//!
//! One process owns an outbox folder at a time (a lock on `DIR/outbox.lock`).
//!
//! Queued at most once: [`Outbox::enqueue_once`] names each notification by a key of what it
//! says (sink, alert key, firing or resolved, the alert's and the resolve's times) and keeps a
//! marker per key in `DIR/keys/` (seven days), so a restarted monitor that decides the same
//! rows again does not queue what an earlier run already queued or delivered. `DIR/state.bin`
//! holds the monitor's own state (see `Monitor`), written atomically.
//!
//! ```
//! use runtime::sinks::outbox::{Outbox, OutboxConfig};
//! use runtime::sinks::{test_notification, SinkKind, Status};
//! let dir = std::env::temp_dir().join(format!("outbox-doc-{}", std::process::id()));
//! let outbox = Outbox::open(OutboxConfig { dir: dir.clone(), ..Default::default() }).unwrap();
//! outbox.enqueue(SinkKind::Slack, &test_notification(runtime::decisions::Severity::High)).unwrap();
//! assert_eq!(outbox.pending().unwrap().len(), 1);
//! # drop(outbox); std::fs::remove_dir_all(dir).unwrap();
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{Notification, SinkKind, SinksConfig};

/// `[outbox]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Folder (created if missing).
    pub dir: PathBuf,
    /// First retry delay.
    pub backoff_initial_secs: f64,
    /// Longest retry delay.
    pub backoff_max_secs: f64,
    /// A notification still failing this long after it was queued goes to `dead/`.
    pub max_age_secs: i64,
    /// The monitor's state (`state.bin`, what a restart resumes from) is saved after a
    /// processed window at most this often, in seconds of wall time (0: after every window).
    /// Longer writes less on a large fleet (measured per server: `fleet` ≈ 13 KB for 3 metrics,
    /// `context_tail` / `tail_ensemble` ≈ 0.3–0.4 MB for their sorted histories); a restart then
    /// decides more rows again (queued once all the same).
    pub state_every_secs: f64,
    /// Keep a copy of what is pending in the registry's bucket (`<registry>/outbox/shard-K-of-N/`,
    /// see [`super::remote`]) so it outlives this machine's folder. Unset: on in AWS Lambda with
    /// an `s3://` registry, off elsewhere.
    pub remote: Option<bool>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("outbox"),
            backoff_initial_secs: 1.0,
            backoff_max_secs: 300.0,
            max_age_secs: 86_400,
            state_every_secs: 60.0,
            remote: None,
        }
    }
}

/// One queued delivery: a notification for one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `<created ms>-<pid>-<seq>-<sink>`: sorts by creation.
    pub id: String,
    /// The sink.
    pub sink: SinkKind,
    /// What to send.
    pub notification: Notification,
    /// When it was queued.
    pub created_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt_ms: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// [`Outbox::enqueue_once`]'s key (none for test messages and older entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How long `keys/` remembers a queued notification (a restart re-decides far less).
const KEY_RETENTION_SECS: u64 = 7 * 86_400;

/// The key of a notification for `sink`: what it says, not when it was queued (`None` for a
/// test message, which is sent every time it is asked for).
pub fn notification_key(sink: SinkKind, n: &Notification) -> Option<String> {
    use sha2::{Digest, Sha256};
    if n.test {
        return None;
    }
    let text = format!("{sink}\0{}\0{:?}\0{}\0{:?}", n.alert.dedup_key, n.status, n.alert.timestamp_ms, n.resolved_ms);
    Some(Sha256::digest(text.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// What one [`Outbox::flush`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlushReport {
    /// Accepted by their sink, per sink.
    pub delivered: BTreeMap<String, u64>,
    /// Failed this time (will be retried), per sink.
    pub failed: BTreeMap<String, u64>,
    /// Moved to `dead/`, per sink.
    pub dead: BTreeMap<String, u64>,
    /// Held back by a rate limit or an earlier delivery of the same key.
    pub deferred: u64,
    /// Still pending after the flush.
    pub pending: u64,
}

/// Outbox errors (file system).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A read or write failed.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the folder.
    #[error("outbox {path} is in use by another runtime process (lock held on outbox.lock)")]
    Locked {
        /// The folder.
        path: String,
    },
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

/// The outbox of one runtime process.
#[derive(Debug)]
pub struct Outbox {
    cfg: OutboxConfig,
    pending_dir: PathBuf,
    dead_dir: PathBuf,
    keys_dir: PathBuf,
    _lock: File,
    seq: AtomicU64,
    buckets: Mutex<BTreeMap<SinkKind, Bucket>>,
    flushing: tokio::sync::Mutex<()>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io { path: path.display().to_string(), source }
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), OutboxError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Replace `dir/name` with `bytes` (temp file + rename, no fsync): a killed process leaves the
/// old or the new content, never a mix.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), OutboxError> {
    let (tmp, dst) = (dir.join(format!(".{name}.tmp")), dir.join(name));
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &dst).map_err(io_err(&dst))
}

impl Outbox {
    /// Open (create) the folder and take its lock.
    pub fn open(cfg: OutboxConfig) -> Result<Self, OutboxError> {
        let pending_dir = cfg.dir.join("pending");
        let dead_dir = cfg.dir.join("dead");
        let keys_dir = cfg.dir.join("keys");
        for d in [&pending_dir, &dead_dir, &keys_dir] {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let lock_path = cfg.dir.join("outbox.lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OutboxError::Locked { path: cfg.dir.display().to_string() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let outbox = Self {
            cfg,
            pending_dir,
            dead_dir,
            keys_dir,
            _lock: lock,
            seq: AtomicU64::new(0),
            buckets: Mutex::new(BTreeMap::new()),
            flushing: tokio::sync::Mutex::new(()),
        };
        outbox.tidy_keys()?;
        Ok(outbox)
    }

    /// Forget keys older than the retention, and mark every pending entry's key (a process
    /// killed between queueing an entry and marking its key left it unmarked).
    fn tidy_keys(&self) -> Result<(), OutboxError> {
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(KEY_RETENTION_SECS);
        for e in std::fs::read_dir(&self.keys_dir).map_err(io_err(&self.keys_dir))?.filter_map(Result::ok) {
            if e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        for key in self.pending()?.into_iter().filter_map(|d| d.key) {
            if !self.keys_dir.join(&key).exists() {
                write_durably(&self.keys_dir, &key, b"")?;
            }
        }
        Ok(())
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Queue a notification for a sink; durable when this returns.
    pub fn enqueue(&self, sink: SinkKind, notification: &Notification) -> Result<Delivery, OutboxError> {
        self.queue(sink, notification, None)
    }

    /// Queue a notification for a sink unless the same one (its [`notification_key`]) was queued
    /// before, by this process or an earlier one; durable when this returns. `false`: it was.
    pub fn enqueue_once(&self, sink: SinkKind, notification: &Notification) -> Result<bool, OutboxError> {
        let key = notification_key(sink, notification);
        if key.as_ref().is_some_and(|k| self.keys_dir.join(k).exists()) {
            return Ok(false);
        }
        self.queue(sink, notification, key.clone())?;
        if let Some(k) = key {
            write_durably(&self.keys_dir, &k, b"")?;
        }
        Ok(true)
    }

    fn queue(&self, sink: SinkKind, notification: &Notification, key: Option<String>) -> Result<Delivery, OutboxError> {
        let now = crate::now_ms();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{now:013}-{}-{seq:06}-{sink}", std::process::id());
        let d = Delivery {
            id,
            sink,
            notification: notification.clone(),
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
            key,
        };
        self.store(&d)?;
        Ok(d)
    }

    fn store(&self, d: &Delivery) -> Result<(), OutboxError> {
        let bytes = serde_json::to_vec_pretty(d).expect("a delivery serializes");
        write_durably(&self.pending_dir, &format!("{}.json", d.id), &bytes)
    }

    /// Pending deliveries, oldest first. A file that cannot be read back is moved to `dead/`
    /// with a `.corrupt` suffix (kept, and logged).
    pub fn pending(&self) -> Result<Vec<Delivery>, OutboxError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.pending_dir).map_err(io_err(&self.pending_dir))?;
        for e in entries {
            let path = e.map_err(io_err(&self.pending_dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let parsed = std::fs::read(&path).map_err(io_err(&path)).map(|b| serde_json::from_slice::<Delivery>(&b));
            match parsed? {
                Ok(d) => out.push(d),
                Err(err) => {
                    let dst = self.dead_dir.join(format!("{name}.corrupt"));
                    tracing::error!(file = %path.display(), error = %err, moved_to = %dst.display(), "unreadable outbox entry");
                    std::fs::rename(&path, &dst).map_err(io_err(&path))?;
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The monitor's progress: the end of the last window it fully processed (alerts queued).
    pub fn read_checkpoint(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.cfg.dir.join("checkpoint.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?.get("processed_until_ms")?.as_i64()
    }

    /// Record progress (write + rename: a killed process leaves the old or the new one).
    pub fn write_checkpoint(&self, processed_until_ms: i64) -> Result<(), OutboxError> {
        let body = serde_json::json!({ "processed_until_ms": processed_until_ms, "at": crate::format_ts(processed_until_ms) });
        replace_file(&self.cfg.dir, "checkpoint.json", body.to_string().as_bytes())
    }

    /// Whether entry `id` is pending or dead here.
    pub fn holds(&self, id: &str) -> bool {
        let name = format!("{id}.json");
        self.pending_dir.join(&name).exists() || self.dead_dir.join(&name).exists()
    }

    /// Take an entry queued elsewhere (another execution environment's, through the remote
    /// outbox) as it is: same id, attempts and key (marked, so it is not queued again).
    pub fn adopt(&self, d: &Delivery) -> Result<(), OutboxError> {
        self.store(d)?;
        if let Some(key) = &d.key {
            write_durably(&self.keys_dir, key, b"")?;
        }
        Ok(())
    }

    /// The bytes of dead entry `id`, if it is one.
    pub fn dead_entry(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dead_dir.join(format!("{id}.json"))).ok()
    }

    /// The monitor's saved state (`DIR/state.bin`), if any.
    pub fn read_state(&self) -> Option<Vec<u8>> {
        std::fs::read(self.cfg.dir.join("state.bin")).ok()
    }

    /// Replace the monitor's saved state, written by `write` straight into a buffered temp file
    /// (a fleet's state is never held in memory whole), then renamed: a killed process leaves
    /// the old or the new one, never a mix. Not fsynced, unlike queued notifications: it is
    /// rewritten often, and a state lost to a power cut only means history is re-learned.
    pub fn write_state(&self, write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> Result<(), OutboxError> {
        let (tmp, dst) = (self.cfg.dir.join(".state.bin.tmp"), self.cfg.dir.join("state.bin"));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w).and_then(|()| w.flush()).map_err(io_err(&tmp))?;
        drop(w);
        std::fs::rename(&tmp, &dst).map_err(io_err(&dst))
    }

    /// Number of entries in `dead/`.
    pub fn dead_count(&self) -> usize {
        std::fs::read_dir(&self.dead_dir).map_or(0, |r| r.filter_map(Result::ok).count())
    }

    fn take_token(&self, sinks: &SinksConfig, sink: SinkKind, now_ms: i64) -> bool {
        let per_min = f64::from(sinks.rate_limit_per_minute(sink).max(1));
        let capacity = (per_min / 6.0).max(1.0);
        let mut buckets = self.buckets.lock().expect("bucket lock");
        let b = buckets.entry(sink).or_insert(Bucket { tokens: capacity, last_ms: now_ms });
        b.tokens = (b.tokens + (now_ms - b.last_ms).max(0) as f64 / 60_000.0 * per_min).min(capacity);
        b.last_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn backoff_ms(&self, attempts: u32, id: &str) -> i64 {
        let base = self.cfg.backoff_initial_secs * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let secs = base.min(self.cfg.backoff_max_secs);
        // Deterministic jitter in [0.8, 1.2) from the id, so retries of many alerts spread out.
        let h = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        (secs * 1000.0 * (0.8 + f64::from(h % 400) / 1000.0)) as i64
    }

    /// Send what is due, oldest first; returns what happened. Only one flush runs at a time.
    /// Each sink drains its own entries concurrently with the others (per sink and key, in
    /// order), so a slow or hung sink delays only itself (each request has its timeout).
    pub async fn flush(&self, sinks: &SinksConfig, http: &reqwest::Client) -> Result<FlushReport, OutboxError> {
        let _guard = self.flushing.lock().await;
        let pending = self.pending()?;
        let total = pending.len() as u64;
        let mut by_sink: BTreeMap<SinkKind, Vec<Delivery>> = BTreeMap::new();
        for d in pending {
            by_sink.entry(d.sink).or_default().push(d);
        }
        let drained = futures_util::future::join_all(by_sink.into_values().map(|entries| self.drain_sink(sinks, http, entries))).await;
        let mut report = FlushReport::default();
        let mut done = 0u64;
        for part in drained {
            let (part, part_done) = part?;
            for (mine, theirs) in
                [(&mut report.delivered, part.delivered), (&mut report.failed, part.failed), (&mut report.dead, part.dead)]
            {
                for (sink, n) in theirs {
                    *mine.entry(sink).or_default() += n;
                }
            }
            report.deferred += part.deferred;
            done += part_done;
        }
        report.pending = total - done;
        Ok(report)
    }

    /// One sink's due entries, oldest first; a key whose delivery failed or waits holds back its
    /// later entries. Returns the sink's part of the report and how many entries left the outbox.
    async fn drain_sink(
        &self,
        sinks: &SinksConfig,
        http: &reqwest::Client,
        entries: Vec<Delivery>,
    ) -> Result<(FlushReport, u64), OutboxError> {
        let mut report = FlushReport::default();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut done = 0u64;
        // After a retryable failure the sink is taken as down for the rest of this flush: its
        // other entries wait for the next one instead of each waiting out a timeout.
        let mut down = false;
        for mut d in entries {
            let now = crate::now_ms();
            let key = d.notification.alert.dedup_key.clone();
            if down || blocked.contains(&key) || d.next_attempt_ms > now || !self.take_token(sinks, d.sink, now) {
                blocked.insert(key);
                report.deferred += 1;
                continue;
            }
            let result = sinks.send(http, d.sink, &d.notification).await;
            let path = self.pending_dir.join(format!("{}.json", d.id));
            match result {
                Ok(()) => {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    *report.delivered.entry(d.sink.to_string()).or_default() += 1;
                    done += 1;
                    tracing::info!(sink = %d.sink, key = %d.notification.alert.dedup_key, status = ?d.notification.status, attempts = d.attempts + 1, "alert delivered");
                }
                Err(e) => {
                    d.attempts += 1;
                    d.last_error = Some(e.to_string());
                    let too_old = now - d.created_ms > self.cfg.max_age_secs * 1000;
                    if !e.retryable() || too_old {
                        let dst = self.dead_dir.join(format!("{}.json", d.id));
                        write_durably(&self.dead_dir, &format!("{}.json", d.id), &serde_json::to_vec_pretty(&d).expect("serializes"))?;
                        std::fs::remove_file(&path).map_err(io_err(&path))?;
                        *report.dead.entry(d.sink.to_string()).or_default() += 1;
                        done += 1;
                        tracing::error!(sink = %d.sink, key = %d.notification.alert.dedup_key, error = %e, kept_in = %dst.display(), "alert undeliverable");
                    } else {
                        // The server's Retry-After, when longer than our backoff, capped at the
                        // longest backoff.
                        let asked = e.retry_after().map_or(0, |w| (w.as_secs_f64().min(self.cfg.backoff_max_secs) * 1000.0) as i64);
                        d.next_attempt_ms = now + self.backoff_ms(d.attempts, &d.id).max(asked);
                        self.store(&d)?;
                        *report.failed.entry(d.sink.to_string()).or_default() += 1;
                        blocked.insert(key);
                        down = true;
                        tracing::warn!(sink = %d.sink, key = %d.notification.alert.dedup_key, attempts = d.attempts, error = %e, "alert delivery failed; will retry");
                    }
                }
            }
        }
        Ok((report, done))
    }

    /// Flush until nothing is pending or `deadline` passes (waiting for backoff in between).
    pub async fn drain(
        &self,
        sinks: &SinksConfig,
        http: &reqwest::Client,
        deadline: std::time::Instant,
    ) -> Result<FlushReport, OutboxError> {
        let mut total = FlushReport::default();
        loop {
            let r = self.flush(sinks, http).await?;
            for (k, v) in r.delivered {
                *total.delivered.entry(k).or_default() += v;
            }
            for (k, v) in r.failed {
                *total.failed.entry(k).or_default() += v;
            }
            for (k, v) in r.dead {
                *total.dead.entry(k).or_default() += v;
            }
            total.pending = r.pending;
            if r.pending == 0 || std::time::Instant::now() >= deadline {
                return Ok(total);
            }
            let next = self.pending()?.iter().map(|d| d.next_attempt_ms).min().unwrap_or(0);
            let wait_ms = (next - crate::now_ms()).clamp(50, 1000) as u64;
            if std::time::Instant::now() + std::time::Duration::from_millis(wait_ms) > deadline {
                return Ok(total);
            }
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::Severity;
    use crate::sinks::{Secret, Status, test_notification};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_same_notification_is_queued_once_across_restarts() {
        let dir = tmp("once");
        let cfg = OutboxConfig { dir: dir.clone(), ..Default::default() };
        let n = crate::sinks::Notification { test: false, ..test_notification(Severity::High) };
        let o = Outbox::open(cfg.clone()).unwrap();
        assert!(o.enqueue_once(SinkKind::Slack, &n).unwrap());
        assert!(!o.enqueue_once(SinkKind::Slack, &n).unwrap(), "the same again: not queued");
        assert!(o.enqueue_once(SinkKind::Pagerduty, &n).unwrap(), "another sink is another notification");
        let resolved = crate::sinks::Notification::resolved(n.alert.clone(), n.alert.timestamp_ms + 60_000, n.model.clone());
        assert!(o.enqueue_once(SinkKind::Slack, &resolved).unwrap(), "its resolve is another");
        assert_eq!(o.pending().unwrap().len(), 3);
        // Delivered (gone from pending) and the process restarted: still not queued again.
        let first = o.pending().unwrap().remove(0);
        std::fs::remove_file(dir.join("pending").join(format!("{}.json", first.id))).unwrap();
        drop(o);
        let o = Outbox::open(cfg.clone()).unwrap();
        assert!(!o.enqueue_once(SinkKind::Slack, &n).unwrap());
        // Killed between queueing and marking: reopening marks what is pending.
        let key = notification_key(SinkKind::Pagerduty, &n).unwrap();
        std::fs::remove_file(dir.join("keys").join(&key)).unwrap();
        drop(o);
        let o = Outbox::open(cfg).unwrap();
        assert!(!o.enqueue_once(SinkKind::Pagerduty, &n).unwrap());
        // Test messages are sent every time they are asked for.
        let t = test_notification(Severity::Low);
        assert!(notification_key(SinkKind::Slack, &t).is_none());
        assert!(o.enqueue_once(SinkKind::Slack, &t).unwrap() && o.enqueue_once(SinkKind::Slack, &t).unwrap());
        drop(o);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn entries_survive_reopening_and_one_process_owns_the_folder() {
        let dir = tmp("reopen");
        let cfg = OutboxConfig { dir: dir.clone(), ..Default::default() };
        let a = Outbox::open(cfg.clone()).unwrap();
        a.enqueue(SinkKind::Slack, &test_notification(Severity::High)).unwrap();
        let mut resolved = test_notification(Severity::High);
        resolved.status = Status::Resolved;
        a.enqueue(SinkKind::Slack, &resolved).unwrap();
        assert!(matches!(Outbox::open(cfg.clone()), Err(OutboxError::Locked { .. })));
        drop(a);
        let b = Outbox::open(cfg).unwrap();
        let p = b.pending().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].notification.status, p[1].notification.status), (Status::Firing, Status::Resolved), "oldest first");
        std::fs::write(dir.join("pending/0000000000000-1-000000-x.json"), "{not json").unwrap();
        assert_eq!(b.pending().unwrap().len(), 2);
        assert_eq!(b.dead_count(), 1, "a corrupt entry is kept in dead/");
        drop(b);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A one-route HTTP server on 127.0.0.1 answering every request with `response`.
    async fn answering(response: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(response.as_bytes()).await;
            }
        });
        format!("http://{addr}/hooks/T/B/X")
    }

    #[tokio::test]
    async fn retry_after_of_a_429_is_honoured_and_capped() {
        for (header, at_least_ms, at_most_ms) in [
            ("Retry-After: 120", 119_000, 121_000),
            ("Retry-After: 86400", 299_000, 301_000), // capped at backoff_max_secs (300)
        ] {
            let dir = tmp("retry-after");
            let outbox = Outbox::open(OutboxConfig { dir: dir.clone(), backoff_initial_secs: 0.05, ..Default::default() }).unwrap();
            let response: &'static str = Box::leak(
                format!("HTTP/1.1 429 Too Many Requests\r\n{header}\r\ncontent-length: 7\r\nconnection: close\r\n\r\nlimited")
                    .into_boxed_str(),
            );
            let mut sinks = SinksConfig::default();
            sinks.slack.webhook_url = Secret::new(&answering(response).await);
            outbox.enqueue(SinkKind::Slack, &test_notification(Severity::High)).unwrap();
            let before = crate::now_ms();
            let r = outbox.flush(&sinks, &reqwest::Client::new()).await.unwrap();
            assert_eq!(r.failed.get("slack"), Some(&1), "{r:?}");
            let wait = outbox.pending().unwrap()[0].next_attempt_ms - before;
            assert!((at_least_ms..=at_most_ms + 1_000).contains(&wait), "{header}: next attempt in {wait} ms");
            drop(outbox);
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_sink_delays_only_itself() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tmp("hung");
        let outbox = Outbox::open(OutboxConfig { dir: dir.clone(), ..Default::default() }).unwrap();
        // Slack never answers; the webhook answers at once and notes when it was asked.
        let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hung_addr = hung.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = hung.accept().await {
                held.push(sock);
            }
        });
        let quick = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let quick_addr = quick.local_addr().unwrap();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&asked);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = quick.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                seen.lock().unwrap().push(std::time::Instant::now());
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            }
        });
        let mut sinks = SinksConfig::default();
        sinks.slack.webhook_url = Secret::new(format!("http://{hung_addr}/hooks/T/B/X"));
        sinks.slack.timeout_secs = 1.0; // per sink: the others keep theirs
        sinks.webhook.url = Secret::new(format!("http://{quick_addr}/alerts"));
        sinks.validate().unwrap();
        let bad =
            SinksConfig { slack: crate::sinks::slack::SlackConfig { timeout_secs: f64::NAN, ..sinks.slack.clone() }, ..sinks.clone() };
        assert!(bad.validate().unwrap_err().to_string().contains("sinks.slack.timeout_secs"));
        for i in 0..3 {
            let mut n = test_notification(Severity::High);
            n.alert.dedup_key = format!("web-0{i}/cpu_usage");
            outbox.enqueue(SinkKind::Slack, &n).unwrap();
            outbox.enqueue(SinkKind::Webhook, &n).unwrap();
        }
        let start = std::time::Instant::now();
        let r = outbox.flush(&sinks, &reqwest::Client::new()).await.unwrap();
        assert_eq!(r.delivered.get("webhook"), Some(&3), "{r:?}");
        let asked = asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 3);
        let last = asked.iter().map(|t| t.duration_since(start)).max().unwrap();
        assert!(last < std::time::Duration::from_secs(3), "the webhook waited {last:?} behind the hung Slack");
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "Slack's own 1 s timeout: {:?}", start.elapsed());
        assert_eq!((r.failed.get("slack"), r.deferred), (Some(&1), 2), "one Slack timeout, the rest wait for the next flush: {r:?}");
        drop(outbox);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        use crate::sinks::parse_retry_after;
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_420); // Wed, 21 Oct 2015 07:27:00 GMT
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now), Some(Duration::ZERO), "a past date: no wait");
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }

    #[tokio::test]
    async fn unreachable_sink_keeps_entries_with_backoff_and_order() {
        let dir = tmp("retry");
        let outbox = Outbox::open(OutboxConfig { dir: dir.clone(), ..Default::default() }).unwrap();
        let mut sinks = SinksConfig::default();
        sinks.slack.webhook_url = Secret::new("http://127.0.0.1:9/hooks/SECRETPATH"); // discard port: refused
        let n = test_notification(Severity::Medium);
        outbox.enqueue(SinkKind::Slack, &n).unwrap();
        outbox.enqueue(SinkKind::Slack, &Notification { status: Status::Resolved, resolved_ms: Some(1), ..n.clone() }).unwrap();
        let http = reqwest::Client::new();
        let r = outbox.flush(&sinks, &http).await.unwrap();
        assert_eq!((r.failed.get("slack"), r.deferred, r.pending), (Some(&1), 1, 2), "{r:?}");
        let p = outbox.pending().unwrap();
        assert_eq!(p[0].attempts, 1);
        assert!(p[0].next_attempt_ms > crate::now_ms(), "backoff");
        assert!(!p[0].last_error.as_ref().unwrap().contains("SECRETPATH"), "{:?}", p[0].last_error);
        assert_eq!(p[1].attempts, 0, "the resolve waits for its trigger");
        let r = outbox.flush(&sinks, &http).await.unwrap();
        assert_eq!((r.deferred, r.pending), (2, 2), "not due yet");
        drop(outbox);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rate_limit_and_backoff_grow() {
        let dir = tmp("rate");
        let outbox = Outbox::open(OutboxConfig { dir: dir.clone(), ..Default::default() }).unwrap();
        let sinks = SinksConfig::default(); // slack: 60/min → burst 10
        let now = 1_000_000;
        let granted = (0..30).filter(|_| outbox.take_token(&sinks, SinkKind::Slack, now)).count();
        assert_eq!(granted, 10);
        assert!(outbox.take_token(&sinks, SinkKind::Slack, now + 1000), "one per second refills");
        assert!(outbox.backoff_ms(3, "x") > outbox.backoff_ms(1, "x"));
        assert!(outbox.backoff_ms(30, "x") <= 360_000);
        drop(outbox);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
