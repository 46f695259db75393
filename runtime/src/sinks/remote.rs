//! The outbox's copy in the registry's bucket, for execution environments that do not last (AWS
//! Lambda: `/tmp` goes with the environment). After each drain, every notification still
//! pending is put to `<registry>/outbox/<shard>/pending/<id>.json` (create-only: a copy is never
//! overwritten) and every one that left the local outbox since is deleted there (a dead one is
//! copied to `dead/` first); before each drain, what is there and not here is taken into the
//! local outbox. So an environment recycled with alerts undelivered leaves them in the bucket,
//! and the next invocation, in any environment, delivers them. Delivery stays at least once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::outbox::{Delivery, Outbox, OutboxError};

/// A remote outbox failed (the local one is untouched).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The bucket answered with an error.
    #[error("remote outbox {path}: {op}: {source}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The object or prefix.
        path: String,
        /// The cause.
        source: Box<object_store::Error>,
    },
    /// The local outbox failed.
    #[error(transparent)]
    Local(#[from] OutboxError),
}

/// What one [`RemoteOutbox::push`] or [`RemoteOutbox::pull`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteReport {
    /// Entries taken from the bucket into the local outbox.
    pub pulled: usize,
    /// Pending entries put to the bucket.
    pub pushed: usize,
    /// Entries removed from the bucket (delivered or dead here).
    pub removed: usize,
}

/// The bucket side of one outbox.
#[derive(Debug)]
pub struct RemoteOutbox {
    store: Arc<dyn ObjectStore>,
    root: StorePath,
    /// Ids known to be in the bucket.
    known: Mutex<BTreeSet<String>>,
}

fn store_err(op: &'static str, path: &StorePath) -> impl FnOnce(object_store::Error) -> RemoteError + use<> {
    let path = path.to_string();
    move |source| RemoteError::Store { op, path, source: Box::new(source) }
}

impl RemoteOutbox {
    /// The remote outbox under `root` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, root: StorePath) -> Self {
        Self { store, root, known: Mutex::new(BTreeSet::new()) }
    }

    fn object(&self, folder: &str, id: &str) -> StorePath {
        self.root.clone().join(folder).join(format!("{id}.json"))
    }

    /// Take into `outbox` every entry of the bucket it does not hold.
    pub async fn pull(&self, outbox: &Outbox) -> Result<RemoteReport, RemoteError> {
        let prefix = self.root.clone().join("pending");
        let list = self.store.list_with_delimiter(Some(&prefix)).await.map_err(store_err("list", &prefix))?;
        let mut report = RemoteReport::default();
        for meta in list.objects {
            let Some(id) = meta.location.filename().and_then(|f| f.strip_suffix(".json")).map(str::to_string) else { continue };
            if !outbox.holds(&id) {
                let bytes = self.store.get(&meta.location).await.map_err(store_err("get", &meta.location))?;
                let bytes = bytes.bytes().await.map_err(store_err("read", &meta.location))?;
                match serde_json::from_slice::<Delivery>(&bytes) {
                    Ok(d) if d.id == id => {
                        outbox.adopt(&d)?;
                        report.pulled += 1;
                    }
                    _ => {
                        tracing::error!(object = %meta.location, "unreadable remote outbox entry left in place");
                        continue;
                    }
                }
            }
            self.known.lock().expect("known ids").insert(id);
        }
        if report.pulled > 0 {
            tracing::warn!(pulled = report.pulled, "undelivered alerts of another execution environment taken from the remote outbox");
        }
        Ok(report)
    }

    /// Make the bucket hold what `outbox` has pending: put the new entries, remove those that
    /// left it (copying a dead one to `dead/`).
    pub async fn push(&self, outbox: &Outbox) -> Result<RemoteReport, RemoteError> {
        let pending = outbox.pending()?;
        let here: BTreeSet<&str> = pending.iter().map(|d| d.id.as_str()).collect();
        let mut report = RemoteReport::default();
        for d in &pending {
            if self.known.lock().expect("known ids").contains(&d.id) {
                continue;
            }
            let path = self.object("pending", &d.id);
            let body = PutPayload::from(serde_json::to_vec(d).expect("a delivery serializes"));
            match self.store.put_opts(&path, body, PutOptions { mode: PutMode::Create, ..Default::default() }).await {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(store_err("put", &path)(e)),
            }
            self.known.lock().expect("known ids").insert(d.id.clone());
            report.pushed += 1;
        }
        let gone: Vec<String> = self.known.lock().expect("known ids").iter().filter(|id| !here.contains(id.as_str())).cloned().collect();
        for id in gone {
            if let Some(dead) = outbox.dead_entry(&id) {
                let path = self.object("dead", &id);
                self.store.put(&path, PutPayload::from(dead)).await.map_err(store_err("put", &path))?;
            }
            let path = self.object("pending", &id);
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err("delete", &path)(e)),
            }
            self.known.lock().expect("known ids").remove(&id);
            report.removed += 1;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::Severity;
    use crate::sinks::outbox::OutboxConfig;
    use crate::sinks::test_notification;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn what_one_environment_left_pending_the_next_one_takes_and_clears() {
        let dir = std::env::temp_dir().join(format!("remote-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let registry = crate::registry::Registry::open(&format!("file://{}/registry", dir.display())).unwrap();
        let remote = || {
            let (store, root) = registry.store_at(&["outbox", "shard-0-of-1"]);
            RemoteOutbox::new(store, root)
        };
        let objects = |folder: &str| std::fs::read_dir(dir.join("registry/outbox/shard-0-of-1").join(folder)).map_or(0, |d| d.count());
        let n = |sev| crate::sinks::Notification { test: false, ..test_notification(sev) };
        // Environment A: two alerts it could not deliver.
        let a = Outbox::open(OutboxConfig { dir: dir.join("a"), ..Default::default() }).unwrap();
        let high = n(Severity::High);
        assert!(
            a.enqueue_once(crate::sinks::SinkKind::Slack, &high).unwrap()
                && a.enqueue_once(crate::sinks::SinkKind::Pagerduty, &high).unwrap()
        );
        let (ra, ids) = (remote(), a.pending().unwrap().into_iter().map(|d| d.id).collect::<Vec<_>>());
        assert_eq!(block_on(ra.push(&a)).unwrap().pushed, 2);
        assert_eq!(block_on(ra.push(&a)).unwrap(), RemoteReport::default(), "nothing new");
        assert_eq!(objects("pending"), 2);
        drop(a);
        std::fs::remove_dir_all(dir.join("a")).unwrap(); // the environment is recycled
        // Environment B takes them, as they were, and does not queue them again.
        let b = Outbox::open(OutboxConfig { dir: dir.join("b"), ..Default::default() }).unwrap();
        let rb = remote();
        assert_eq!(block_on(rb.pull(&b)).unwrap().pulled, 2);
        assert_eq!(b.pending().unwrap().into_iter().map(|d| d.id).collect::<Vec<_>>(), ids);
        assert!(!b.enqueue_once(crate::sinks::SinkKind::Slack, &high).unwrap(), "re-decided: not queued twice");
        assert_eq!(block_on(rb.pull(&b)).unwrap().pulled, 0);
        // One delivered, one dead: the bucket forgets both, keeping the dead one under dead/.
        let pending = b.pending().unwrap();
        std::fs::remove_file(dir.join("b/pending").join(format!("{}.json", pending[0].id))).unwrap();
        std::fs::rename(
            dir.join("b/pending").join(format!("{}.json", pending[1].id)),
            dir.join("b/dead").join(format!("{}.json", pending[1].id)),
        )
        .unwrap();
        let r = block_on(rb.push(&b)).unwrap();
        assert_eq!((r.pushed, r.removed), (0, 2));
        assert_eq!((objects("pending"), objects("dead")), (0, 1));
        drop(b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
