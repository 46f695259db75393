//! What a restart needs to alert exactly as an uninterrupted run would: after each processed
//! window (once alerts are queued) the monitor writes, in one atomic file next to the outbox
//! (`state.bin`), the end of that window, every server's detector state, last values and
//! live-from time, the alert decider's counters, cooldown clocks and open alerts, and the firing
//! alerts with the sinks they went to.
//!
//! A restart restores them under the same model version and reads on from the saved window's
//! end, so each row is scored and decided once, by the same state, as without the restart. Rows
//! decided again (killed after queueing, before saving) queue nothing twice: the outbox keeps a
//! key per notification ([`crate::sinks::outbox::Outbox::enqueue_once`]). Open alerts are restored
//! under any model, so their resolves are sent. A detector kind that does not keep its state
//! ([`crate::models::detectors::StreamingDetector::save_state`] is `None`) is re-learned from history as before, and so is
//! everything after an outage longer than `max_catchup_secs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LoadedModel, Monitor, ServerState};
use crate::decisions::{Alert, AlertDecider, DeciderState};

/// Bumped when the layout changes (an older file is then ignored, loudly).
const FORMAT: u32 = 1;

/// The saved state (MessagePack).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SavedState {
    format: u32,
    /// Every row before this time was scored, decided and queued.
    pub(super) processed_until_ms: i64,
    /// `model@version` whose detectors these are.
    model: String,
    decider: DeciderState,
    servers: Vec<SavedServer>,
    /// Firing alerts by key, with the sinks that got them.
    active: Vec<(String, Alert, Vec<String>)>,
}

/// [`SavedState`] as it is written: the servers serialized one at a time, each detector's state
/// taken as its turn comes (same layout, so [`SavedState`] reads it).
#[derive(Serialize)]
struct SavedStateRef<'a> {
    format: u32,
    processed_until_ms: i64,
    model: String,
    decider: DeciderState,
    servers: ServersRef<'a>,
    active: Vec<(String, Alert, Vec<String>)>,
}

struct ServersRef<'a>(&'a BTreeMap<String, ServerState>);

impl Serialize for ServersRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(name, st)| SavedServerRef {
            name,
            last_ms: st.last_ms,
            last_values: &st.last_values,
            live_from_ms: st.live_from_ms,
            detector: st.detector.save_state(),
        }))
    }
}

#[derive(Serialize)]
struct SavedServerRef<'a> {
    name: &'a str,
    last_ms: i64,
    last_values: &'a [(i64, f64)],
    live_from_ms: i64,
    #[serde(with = "serde_bytes")]
    detector: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedServer {
    name: String,
    last_ms: i64,
    last_values: Vec<(i64, f64)>,
    live_from_ms: i64,
    #[serde(with = "serde_bytes")]
    detector: Option<Vec<u8>>,
}

impl Monitor {
    /// Write the state after the window ending at `until_ms` (throttled by `[outbox]
    /// state_every_secs`; failures are logged: the next window tries again).
    pub(super) fn save_state(&mut self, model: &LoadedModel, until_ms: i64) {
        let every = self.cfg.outbox.state_every_secs;
        if self.state_saved_at.is_some_and(|t| t.elapsed().as_secs_f64() < every) {
            return;
        }
        let Some(decider) = &self.decider else { return };
        let active =
            self.active.iter().map(|(k, (a, sinks))| (k.clone(), a.clone(), sinks.iter().map(|s| s.to_string()).collect())).collect();
        let saved = SavedStateRef {
            format: FORMAT,
            processed_until_ms: until_ms,
            model: model.label(),
            decider: decider.state(),
            servers: ServersRef(&self.servers),
            active,
        };
        let written = self.outbox.write_state(|w| rmp_serde::encode::write_named(w, &saved).map_err(std::io::Error::other));
        match written {
            Ok(()) => self.state_saved_at = Some(std::time::Instant::now()),
            Err(e) => tracing::error!(error = %e, "cannot save the monitor state"),
        }
    }

    /// Read the state a previous run left (`None`: none, or unreadable, said in the log), and take
    /// its open alerts at once: their resolves go out whatever model scores next.
    pub(super) fn load_state(&mut self) {
        let Some(bytes) = self.outbox.read_state() else { return };
        let saved = match rmp_serde::from_slice::<SavedState>(&bytes) {
            Ok(s) if s.format == FORMAT => s,
            Ok(s) => {
                tracing::warn!(format = s.format, "saved monitor state of another format ignored: history is re-learned");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "saved monitor state unreadable, ignored: history is re-learned");
                return;
            }
        };
        for (key, alert, sinks) in &saved.active {
            let sinks: Vec<crate::sinks::SinkKind> = sinks.iter().filter_map(|s| s.parse().ok()).collect();
            self.active.insert(key.clone(), (alert.clone(), sinks));
        }
        tracing::info!(
            until = %crate::format_ts(saved.processed_until_ms), model = %saved.model, servers = saved.servers.len(),
            open_alerts = saved.active.len(), "resuming from the saved monitor state"
        );
        self.restored = Some(saved);
    }

    /// On installing `model`: continue from the saved state if it is this model's (detectors,
    /// decider, where reading stopped). Returns whether it did.
    pub(super) fn resume_saved(&mut self, model: &LoadedModel, decider: &mut AlertDecider) -> bool {
        let Some(saved) = self.restored.take() else { return false };
        if saved.model != model.label() {
            tracing::info!(saved = %saved.model, now = %model.label(), "another model: detectors re-learned, open alerts kept");
            return false;
        }
        decider.restore(saved.decider);
        let n = model.manifest.metrics.len();
        let mut servers = BTreeMap::new();
        for s in saved.servers {
            let mut detector = model.detector.build(n).expect("validated when loaded");
            let loaded = s.detector.as_deref().map(|b| detector.load_state(b));
            if !matches!(loaded, Some(Ok(()))) {
                let why = loaded.map_or_else(|| "its kind keeps no state".to_string(), |r| r.err().unwrap_or_default());
                tracing::warn!(server = %s.name, reason = %why, "detector state not restored: history is re-learned");
                return false;
            }
            let score_gauge = self.telemetry.score_gauge(&s.name, self.cfg.http.score_gauge_servers);
            servers.insert(
                s.name,
                ServerState { detector, last_ms: s.last_ms, last_values: s.last_values, live_from_ms: s.live_from_ms, score_gauge },
            );
        }
        self.servers = servers;
        self.fetched_until_ms = Some(saved.processed_until_ms);
        self.restored_until_ms = Some(saved.processed_until_ms);
        self.rewarm = false;
        true
    }
}
