//! The monitor: reads live metrics on a schedule, scores them with the promoted model, decides
//! and routes alerts through the durable outbox. One [`Monitor::tick`] is the unit of work of
//! every mode: `runtime monitor` (a daemon ticking every `interval_secs`), `runtime once` (one
//! tick, for cron), `runtime replay` (ticks on a virtual clock over recorded data) and the
//! AWS Lambda handler (one tick per scheduled invocation, optionally for a shard of servers).
//!
//! Per tick: check the registry alias (every `reload_every_secs`; a new version is loaded and
//! verified, an invalid one is refused and the last good model stays), read
//! `[fetched_until, now - settle)` from the source (a fresh detector first learns
//! `warmup_secs` of history), align samples into rows per server (a missing or non-finite value
//! is filled from the metric's last value when at most `max_fill_secs` old, otherwise the row
//! is skipped; samples at or before a server's last row are late and ignored — all counted),
//! score each row with the model's streaming detector (causal: each score uses rows ≤ t), run
//! the [`AlertDecider`] (threshold, consecutive rows, cooldown, severity, primary issue) and
//! queue each alert in the outbox for the sinks its severity routes to.

pub mod config;
pub mod source;
mod state;
pub mod telemetry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::decisions::{Alert, AlertDecider, Decision};
use crate::models::detectors::{DetectorConfig, StreamingDetector};
use crate::registry::{Bundle, Manifest, Registry, RegistryError};
use crate::sinks::outbox::{Outbox, OutboxError};
use crate::sinks::{AlertRouter, Notification, SinkKind, SinksConfig};
use config::RuntimeConfig;
use source::LiveSource;
use telemetry::{Telemetry, label};

/// Errors that stop the monitor from starting.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Registry URI or access.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Replay file.
    #[error(transparent)]
    File(#[from] source::FileError),
    /// Outbox folder.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A bundle the runtime cannot use.
    #[error("model {model} v{version}: {reason}")]
    BadModel {
        /// Model name.
        model: String,
        /// Version.
        version: u64,
        /// Why.
        reason: String,
    },
}

/// A verified model bundle ready to score.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The manifest (metrics, decisions, …).
    pub manifest: Manifest,
    /// The detector settings.
    pub detector: DetectorConfig,
}

impl LoadedModel {
    /// Check that the bundle is usable: a detector that builds for its metrics, valid decisions.
    pub fn from_bundle(bundle: &Bundle) -> Result<Self, MonitorError> {
        let m = &bundle.manifest;
        let bad = |reason: String| MonitorError::BadModel { model: m.model.clone(), version: m.version, reason };
        let detector = bundle.detector().map_err(|e| bad(e.to_string()))?;
        if m.metrics.is_empty() {
            return Err(bad("the manifest lists no metrics".into()));
        }
        detector.build(m.metrics.len()).map_err(|e| bad(e.to_string()))?;
        m.decisions.validate().map_err(|e| bad(e.to_string()))?;
        Ok(Self { manifest: m.clone(), detector })
    }

    /// `model@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.manifest.model, self.manifest.version)
    }
}

#[derive(Debug)]
struct ServerState {
    detector: Box<dyn StreamingDetector>,
    last_ms: i64,
    /// Last accepted value and its time, per metric.
    last_values: Vec<(i64, f64)>,
    /// Rows before this time only train the detector (history), rows from it on are scored.
    live_from_ms: i64,
    /// Its `aiops_runtime_anomaly_score` gauge (`None` beyond `[http] score_gauge_servers`).
    score_gauge: Option<telemetry::ScoreGauge>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    /// The tick's clock.
    pub now_ms: i64,
    /// `model@version` used.
    pub model: Option<String>,
    /// Servers with rows this tick.
    pub servers: usize,
    /// Rows scored (live rows).
    pub rows_scored: u64,
    /// Rows that only trained a fresh detector.
    pub rows_learned: u64,
    /// Rows at or above the threshold.
    pub anomalous_rows: u64,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// Keys resolved.
    pub resolved: Vec<String>,
    /// Why the tick did nothing, if it did not.
    pub error: Option<String>,
    /// Wall time of the tick.
    pub duration_ms: f64,
}

/// The monitoring engine (see the module docs).
#[derive(Debug)]
pub struct Monitor {
    cfg: RuntimeConfig,
    source: LiveSource,
    registry: Registry,
    model: Option<Arc<LoadedModel>>,
    last_model_check: Option<Instant>,
    /// The forecaster of `[forecast] model = "registry"` and its version (the last good one).
    forecaster: Option<(u64, Arc<crate::predict::Predictor>)>,
    servers: BTreeMap<String, ServerState>,
    decider: Option<AlertDecider>,
    /// Firing alerts by key, with the sinks they went to (resolves go to the same sinks).
    active: HashMap<String, (Alert, Vec<SinkKind>)>,
    router: AlertRouter,
    outbox: Arc<Outbox>,
    telemetry: Arc<Telemetry>,
    fetched_until_ms: Option<i64>,
    /// The checkpoint found at start (rows after it are scored, not just learned).
    resume_from_ms: Option<i64>,
    rewarm: bool,
    http: reqwest::Client,
    /// Where scores are written back (`[output] influxdb_scores`).
    score_sink: Option<crate::sources::influxdb::InfluxClient>,
    /// A previous run's saved state, until a model is installed (see `state`).
    restored: Option<state::SavedState>,
    /// Where the restored state stopped (checked against `max_catchup_secs` at the first tick).
    restored_until_ms: Option<i64>,
    state_saved_at: Option<Instant>,
    /// The outbox's copy in the registry's bucket (`[outbox] remote`), and whether it was read.
    remote: Option<crate::sinks::remote::RemoteOutbox>,
    remote_pulled: std::sync::atomic::AtomicBool,
}

impl Monitor {
    /// Open the registry, the source and the outbox (nothing is contacted yet).
    pub fn new(cfg: RuntimeConfig, telemetry: Arc<Telemetry>) -> Result<Self, MonitorError> {
        let registry = Registry::open(&cfg.model.registry)?;
        let source = LiveSource::from_config(&cfg.source)?;
        let outbox = Arc::new(Outbox::open(cfg.outbox.clone())?);
        let router = AlertRouter::new(cfg.routing.clone(), &cfg.sinks.configured());
        // Each delivery sets its sink's own timeout (`sinks.<name>.timeout_secs`).
        let http = reqwest::Client::builder().build().expect("reqwest client builds");
        for w in cfg.warnings() {
            tracing::warn!("{w}");
        }
        let score_sink = cfg.output.influxdb_scores.then(|| {
            crate::sources::influxdb::InfluxClient::new(cfg.output.influxdb.clone().unwrap_or_else(|| cfg.source.influxdb.clone()))
        });
        let remote = cfg.outbox.remote.unwrap_or(false).then(|| {
            let shard = format!("shard-{}-of-{}", cfg.selection.shard, cfg.selection.shards);
            let (store, root) = registry.store_at(&["outbox", &shard]);
            crate::sinks::remote::RemoteOutbox::new(store, root)
        });
        let resume_from_ms = outbox.read_checkpoint();
        let pending = outbox.pending()?.len();
        if pending > 0 {
            tracing::warn!(pending, dir = %outbox.dir().display(), "undelivered alerts from a previous run will be sent");
        }
        let mut monitor = Self {
            cfg,
            source,
            registry,
            model: None,
            last_model_check: None,
            forecaster: None,
            servers: BTreeMap::new(),
            decider: None,
            active: HashMap::new(),
            router,
            outbox,
            telemetry,
            fetched_until_ms: None,
            resume_from_ms,
            rewarm: true,
            http,
            score_sink,
            restored: None,
            restored_until_ms: None,
            state_saved_at: None,
            remote,
            remote_pulled: std::sync::atomic::AtomicBool::new(false),
        };
        monitor.load_state();
        Ok(monitor)
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The sinks' settings.
    pub fn sinks(&self) -> &SinksConfig {
        &self.cfg.sinks
    }

    /// The HTTP client used for deliveries.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The metric source.
    pub fn source(&self) -> &LiveSource {
        &self.source
    }

    /// The model in use.
    pub fn model(&self) -> Option<&LoadedModel> {
        self.model.as_deref()
    }

    /// Check the alias (when due) and swap in a new version if it loads and verifies.
    pub async fn refresh_model(&mut self, force: bool) {
        let due = force
            || self.model.is_none()
            || self.last_model_check.is_none_or(|t| t.elapsed().as_secs_f64() >= self.cfg.model.reload_every_secs as f64);
        if !due {
            return;
        }
        self.last_model_check = Some(Instant::now());
        let (name, alias) = (self.cfg.model.name.clone(), self.cfg.model.alias.clone());
        let state = match self.registry.read_alias(&name, &alias).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.model_error(format!("registry {} has no alias {name}/{alias}", self.registry.uri()));
                return;
            }
            Err(e) => {
                self.model_error(e.to_string());
                return;
            }
        };
        if self.model.as_ref().is_some_and(|m| m.manifest.version == state.pointer.version) {
            return;
        }
        let loaded = match self.registry.load_alias(&name, &alias).await {
            Ok(bundle) => LoadedModel::from_bundle(&bundle),
            Err(e) => Err(e.into()),
        };
        match loaded {
            Ok(m) => self.install(m),
            Err(e) if self.model.is_none() => {
                // Cold start with an invalid champion: serve the newest valid version of the
                // alias history rather than nothing, loudly.
                let message = format!("{name}@{alias} → v{}: {e}", state.pointer.version);
                for &v in state.pointer.history.iter().rev() {
                    let candidate = match self.registry.load_version(&name, v).await {
                        Ok(bundle) => LoadedModel::from_bundle(&bundle),
                        Err(e) => Err(e.into()),
                    };
                    if let Ok(m) = candidate {
                        tracing::error!(error = %message, fallback = v, "champion invalid at start: serving the newest valid version of the alias history");
                        self.install(m);
                        self.telemetry.model_load_errors.inc();
                        self.telemetry.update(|r| r.model_error = Some(format!("{message}; serving v{v} from the alias history")));
                        return;
                    }
                }
                self.model_error(message);
            }
            Err(e) => self.model_error(e.to_string()),
        }
    }

    /// The forecaster of `[forecast] model = "registry"`: the registered forecaster model at
    /// its alias, loaded when the alias points to another version than the one held. When the
    /// new version does not load (or the registry cannot be read) the last good one is kept
    /// (counted in `aiops_runtime_model_load_errors_total`); without one, the error. Returns the
    /// version served and the predictor.
    pub async fn refresh_forecaster(&mut self) -> Result<(u64, Arc<crate::predict::Predictor>), String> {
        let (name, alias) = (self.cfg.forecast.registry_model.clone(), self.cfg.forecast.alias.clone());
        let loaded: Result<(u64, Arc<crate::predict::Predictor>), String> = async {
            let state = self
                .registry
                .read_alias(&name, &alias)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("registry {} has no alias {name}/{alias}", self.registry.uri()))?;
            if let Some((v, f)) = &self.forecaster
                && *v == state.pointer.version
            {
                return Ok((*v, f.clone()));
            }
            let bundle = self.registry.load_alias(&name, &alias).await.map_err(|e| e.to_string())?;
            let f = bundle.predictor().map_err(|e| e.to_string())?;
            tracing::info!(model = %name, alias = %alias, version = bundle.manifest.version, kind = %bundle.manifest.kind, metric = %f.target_metric(), "forecaster loaded");
            Ok((bundle.manifest.version, Arc::new(f)))
        }
        .await;
        match loaded {
            Ok((v, f)) => {
                self.forecaster = Some((v, f.clone()));
                Ok((v, f))
            }
            Err(e) => {
                self.telemetry.model_load_errors.inc();
                match &self.forecaster {
                    Some((v, f)) => {
                        tracing::error!(error = %e, keeping = v, "forecaster load failed: the last good one is kept");
                        Ok((*v, f.clone()))
                    }
                    None => Err(format!("forecaster {name}@{alias}: {e}")),
                }
            }
        }
    }

    fn model_error(&mut self, message: String) {
        self.telemetry.model_load_errors.inc();
        let keeping = self.model.as_ref().map(|m| m.label());
        tracing::error!(error = %message, keeping = keeping.as_deref().unwrap_or("none"), "model load failed");
        self.telemetry.update(|r| r.model_error = Some(message));
    }

    /// Use a model now (fresh detectors, re-warmed from history; firing alerts carried over).
    pub fn install(&mut self, model: LoadedModel) {
        let label = model.label();
        tracing::info!(model = %label, detector = model.detector.name(), metrics = ?model.manifest.metrics, "model loaded");
        if let Some(old) = &self.model {
            self.telemetry.model_version.get_or_create(&telemetry::label("model", &old.manifest.model)).set(0);
        }
        self.telemetry.model_version.get_or_create(&telemetry::label("model", &model.manifest.model)).set(model.manifest.version as i64);
        let mut decider = AlertDecider::new(model.manifest.decisions.clone()).expect("validated in from_bundle");
        for (key, (alert, _)) in &self.active {
            decider.mark_active(&alert.server, key, alert.timestamp_ms);
        }
        self.servers.clear();
        self.rewarm = true;
        if self.resume_saved(&model, &mut decider) {
            tracing::info!(model = %label, servers = self.servers.len(), "detectors and alert state restored");
        }
        self.decider = Some(decider);
        self.model = Some(Arc::new(model));
        self.telemetry.update(|r| {
            r.model = Some(label);
            r.model_error = None;
        });
    }

    /// One tick at `now_ms` (wall clock, or a virtual clock in replay).
    pub async fn tick(&mut self, now_ms: i64) -> TickReport {
        let t0 = Instant::now();
        if !self.remote_pulled.load(std::sync::atomic::Ordering::Relaxed) {
            self.pull_remote().await;
        }
        self.refresh_model(false).await;
        let mut report = TickReport { now_ms, ..TickReport::default() };
        let result = self.tick_inner(now_ms, &mut report).await;
        let outcome = match result {
            Ok(()) => "ok",
            Err(reason) => {
                report.error = Some(reason.1);
                reason.0
            }
        };
        self.telemetry.ticks.get_or_create(&label("result", outcome)).inc();
        let secs = t0.elapsed().as_secs_f64();
        self.telemetry.tick_seconds.observe(secs);
        report.duration_ms = secs * 1000.0;
        report
    }

    async fn tick_inner(&mut self, now_ms: i64, report: &mut TickReport) -> Result<(), (&'static str, String)> {
        let Some(model) = self.model.clone() else {
            let why = self.telemetry.readiness().model_error.unwrap_or_else(|| "no model loaded".into());
            return Err(("no_model", why));
        };
        report.model = Some(model.label());
        let sched = &self.cfg.schedule;
        let end = now_ms - sched.settle_secs * 1000;
        let oldest = end - sched.warmup_secs * 1000;
        if let Some(until) = self.restored_until_ms.take()
            && until < end - sched.max_catchup_secs * 1000
        {
            tracing::warn!(until = %crate::format_ts(until), "saved state older than max_catchup_secs: detectors re-learned from history");
            self.servers.clear();
            self.rewarm = true;
            self.fetched_until_ms = None;
        }
        let start = match self.fetched_until_ms {
            Some(f) if !self.rewarm => f.max(oldest),
            _ => oldest,
        };
        // Rows before this only train fresh detectors: the first tick scores its last interval,
        // or everything since the checkpoint of a previous run when that is recent enough.
        let first_live = end - sched.interval_secs as i64 * 1000;
        let resume = self.resume_from_ms.filter(|c| *c >= end - sched.max_catchup_secs * 1000).map(|c| c.max(oldest));
        let live_from = self.fetched_until_ms.or(resume).unwrap_or(first_live);
        if end <= start {
            return Ok(());
        }
        // The window in chunks of about CHUNK_SAMPLES samples (sized from the density seen so
        // far), so a long warm-up of a large fleet never holds hours of samples at once.
        const CHUNK_SAMPLES: f64 = 250_000.0;
        let min_chunk = sched.interval_secs as i64 * 1000;
        let mut chunk_ms = min_chunk;
        let mut lo = start;
        while lo < end {
            let hi = (lo + chunk_ms).min(end);
            let n = self.process_window(&model, lo, hi, live_from, report).await?;
            let density = n as f64 / (hi - lo) as f64;
            chunk_ms = if density > 0.0 { ((CHUNK_SAMPLES / density) as i64).clamp(min_chunk, 3_600_000) } else { 3_600_000 };
            lo = hi;
        }
        Ok(())
    }

    /// Write scored rows' line protocol to the `[output]` InfluxDB (logged and counted on
    /// failure; alerts are decided and queued either way).
    async fn write_scores(&self, lines: &str) {
        if let Some(sink) = &self.score_sink
            && !lines.is_empty()
            && let Err(e) = sink.write_lines(lines).await
        {
            self.telemetry.score_write_errors.inc();
            tracing::warn!(error = %e, "writing scores to InfluxDB failed (alerts are not affected)");
        }
    }

    /// Align long samples into rows per monitored server, by timestamp (NaN = missing).
    fn align_rows(&self, metrics: &[String], samples: &[crate::MetricSample]) -> BTreeMap<String, BTreeMap<i64, Vec<f64>>> {
        let index: HashMap<&str, usize> = metrics.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
        let mut rows: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
        for s in samples {
            let Some(&mi) = index.get(s.metric.as_str()) else { continue };
            if !self.cfg.selection.includes(&s.server) {
                continue;
            }
            let row = rows.entry(s.server.clone()).or_default().entry(s.timestamp_ms).or_insert_with(|| vec![f64::NAN; metrics.len()]);
            row[mi] = s.value;
        }
        rows
    }

    /// Act on one decision of the alert stage: a trigger is logged, counted, reported, queued
    /// for its severity's sinks and kept open; a resolve of an open alert is queued for the
    /// sinks that got its trigger.
    fn apply_decision(&mut self, decision: Decision, model: &str, report: &mut TickReport, out: &mut Vec<(SinkKind, Notification)>) {
        match decision {
            Decision::Trigger(alert) => {
                let sinks = self.router.route(alert.severity).to_vec();
                tracing::warn!(
                    server = %alert.server, severity = alert.severity.name(), metric = %alert.primary_metric,
                    value = alert.primary_value, score = alert.score, sinks = ?sinks, time = %crate::format_ts(alert.timestamp_ms),
                    "anomaly alert"
                );
                self.telemetry.alerts.get_or_create(&label("severity", alert.severity.name())).inc();
                report.alerts.push(alert.clone());
                let n = Notification::firing(alert.clone(), model.to_string());
                out.extend(sinks.iter().map(|s| (*s, n.clone())));
                self.active.insert(alert.dedup_key.clone(), (alert, sinks));
            }
            Decision::Resolve { dedup_key, timestamp_ms, .. } => {
                if let Some((alert, sinks)) = self.active.remove(&dedup_key) {
                    tracing::info!(key = %dedup_key, time = %crate::format_ts(timestamp_ms), "alert resolved");
                    self.telemetry.resolves.inc();
                    report.resolved.push(dedup_key.clone());
                    let n = Notification::resolved(alert, timestamp_ms, model.to_string());
                    out.extend(sinks.iter().map(|s| (*s, n.clone())));
                }
            }
        }
    }

    /// The source's samples of `[start, end)`; a failure is counted and reported as the
    /// tick's error.
    async fn read_window(&mut self, metrics: &[String], start: i64, end: i64) -> Result<Vec<crate::MetricSample>, (&'static str, String)> {
        let samples = match self.source.read(metrics, start, end).await {
            Ok(s) => s,
            Err(e) => {
                self.telemetry.source_errors.inc();
                tracing::error!(source = self.source.name(), error = %e, "metric source read failed");
                let msg = e.to_string();
                self.telemetry.update(|r| r.source_error = Some(msg.clone()));
                return Err(("source_error", msg));
            }
        };
        self.telemetry.update(|r| {
            r.source_error = None;
            r.ticked = true;
        });
        self.fetched_until_ms = Some(end);
        self.rewarm = false;
        Ok(samples)
    }

    /// One server's aligned rows, oldest first: late rows skipped, gaps repaired, rows before
    /// its live time learned, the others scored (the score written back when asked) and fed to
    /// the decider, whose decisions are returned.
    fn score_server(
        &mut self,
        model: &LoadedModel,
        server: &str,
        by_time: BTreeMap<i64, Vec<f64>>,
        (live_from, model_label): (i64, &str),
        report: &mut TickReport,
        score_lines: &mut String,
    ) -> Vec<Decision> {
        let metrics = &model.manifest.metrics;
        let threshold = model.manifest.decisions.threshold;
        let max_fill_ms = self.cfg.schedule.max_fill_secs * 1000;
        if !self.servers.contains_key(server) {
            let detector = model.detector.build(metrics.len()).expect("validated when loaded");
            self.servers.insert(
                server.to_string(),
                ServerState {
                    detector,
                    last_ms: i64::MIN,
                    last_values: vec![(i64::MIN, f64::NAN); metrics.len()],
                    live_from_ms: live_from,
                    score_gauge: self.telemetry.score_gauge(server, self.cfg.http.score_gauge_servers),
                },
            );
        }
        let st = self.servers.get_mut(server).expect("inserted above");
        let mut decisions = Vec::new();
        let mut latest_score = None;
        for (ts, mut values) in by_time {
            if ts <= st.last_ms {
                self.telemetry.samples_late.inc_by(values.iter().filter(|v| !v.is_nan()).count() as u64);
                continue;
            }
            if !repair_row(st, ts, &mut values, max_fill_ms, &self.telemetry) {
                self.telemetry.rows_skipped.get_or_create(&label("reason", "incomplete")).inc();
                continue;
            }
            st.last_ms = ts;
            if ts < st.live_from_ms {
                st.detector.learn(ts, &values);
                report.rows_learned += 1;
                continue;
            }
            let score = st.detector.push(ts, &values);
            latest_score = Some(score);
            report.rows_scored += 1;
            if score >= threshold {
                report.anomalous_rows += 1;
            }
            let contributions = st.detector.contributions();
            if self.score_sink.is_some() {
                let top = contributions.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                let metric = metrics.get(top).map_or("", String::as_str);
                crate::line_protocol::encode_score_into(ts, server, metric, model_label, score, score_lines);
                score_lines.push('\n');
            }
            let decider = self.decider.as_mut().expect("installed with the model");
            decisions.extend(decider.observe(server, ts, score, metrics, &values, &contributions));
        }
        if let (Some(score), Some(g)) = (latest_score, &st.score_gauge) {
            g.set(score);
        }
        decisions
    }

    /// Read, score, decide and queue the rows of `[start, end)`: read the window, align its
    /// samples into rows per server, repair and score each server's rows, apply the decisions,
    /// queue the notifications, checkpoint.
    async fn process_window(
        &mut self,
        model: &LoadedModel,
        start: i64,
        end: i64,
        live_from: i64,
        report: &mut TickReport,
    ) -> Result<usize, (&'static str, String)> {
        let (scored_before, anomalous_before) = (report.rows_scored, report.anomalous_rows);
        let metrics = &model.manifest.metrics;
        let samples = self.read_window(metrics, start, end).await?;
        let n_samples = samples.len();
        let rows = self.align_rows(metrics, &samples);
        report.servers = report.servers.max(rows.len());
        let mut notifications: Vec<(SinkKind, Notification)> = Vec::new();
        let mut decisions: Vec<Decision> = Vec::new();
        let mut score_lines = String::new();
        let model_label = model.label();
        for (server, by_time) in rows {
            decisions.extend(self.score_server(model, &server, by_time, (live_from, &model_label), report, &mut score_lines));
        }
        for decision in decisions {
            self.apply_decision(decision, &model_label, report, &mut notifications);
        }
        self.write_scores(&score_lines).await;
        self.telemetry.rows_scored.inc_by(report.rows_scored - scored_before);
        self.telemetry.anomalous_rows.inc_by(report.anomalous_rows - anomalous_before);
        self.telemetry.servers.set(self.servers.len() as i64);
        for (sink, n) in notifications {
            if let Err(e) = self.outbox.enqueue_once(sink, &n) {
                tracing::error!(sink = %sink, key = %n.alert.dedup_key, error = %e, "cannot queue alert in the outbox");
                return Err(("outbox_error", e.to_string()));
            }
        }
        // Everything up to `end` is decided and queued: a restart resumes from here.
        if let Err(e) = self.outbox.write_checkpoint(end) {
            tracing::error!(error = %e, "cannot write the checkpoint");
        }
        self.save_state(model, end);
        Ok(n_samples)
    }

    /// Predictive scaling: forecast every monitored server's target metric with `fc` from the
    /// latest window and alert SCALE_NOW as HIGH and SCALE_SOON as MEDIUM through the routing
    /// and outbox of anomaly alerts (key `server/metric/forecast`, one alert until the forecast
    /// no longer crosses, then a resolve). Returns the advice per server.
    pub async fn predict(
        &mut self,
        now_ms: i64,
        fc: &crate::predict::Predictor,
    ) -> Result<Vec<(String, crate::forecast::ScalingAdvice)>, String> {
        let inputs = fc.inputs();
        let target = fc.target_metric().to_string();
        let span = fc.read_span_ms();
        let samples = self.source.read(&inputs, now_ms - span, now_ms).await.map_err(|e| e.to_string())?;
        let mut servers: Vec<&str> = samples.iter().map(|s| s.server.as_str()).collect();
        servers.sort_unstable();
        servers.dedup();
        let mut out = Vec::new();
        let mut notifications = Vec::new();
        let mut forecast_lines = String::new();
        let model_label = fc.label();
        for server in servers.into_iter().filter(|s| self.cfg.selection.includes(s)) {
            let crate::predict::Advised { at_ms: at, prediction, advice, .. } =
                match fc.advise(&samples, server, self.cfg.forecast.threshold, self.cfg.forecast.now_minutes) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(server, error = %e, "no forecast");
                        continue;
                    }
                };
            if self.score_sink.is_some() {
                crate::line_protocol::encode_forecast_into(
                    at,
                    fc.interval_ms(),
                    (server, &target, &model_label),
                    &prediction.forecast,
                    &mut forecast_lines,
                );
            }
            let key = format!("{server}/{target}/forecast");
            let severity = advice.recommendation.severity();
            match severity {
                Some(severity) if !self.active.contains_key(&key) => {
                    let mut values = vec![
                        (target.clone(), advice.current),
                        ("predicted_peak".into(), advice.predicted_peak),
                        ("minutes_to_peak".into(), advice.minutes_to_peak),
                        ("scale_up_percent".into(), f64::from(advice.scale_up_percent)),
                    ];
                    values.extend(advice.minutes_to_crossing.map(|m| ("minutes_to_crossing".to_string(), m)));
                    values.extend(advice.crossing_probability.map(|p| ("crossing_probability".to_string(), p)));
                    let alert = Alert {
                        server: server.to_string(),
                        timestamp_ms: at,
                        severity,
                        score: 1.0,
                        primary_metric: target.clone(),
                        primary_value: advice.predicted_peak,
                        values,
                        dedup_key: key.clone(),
                    };
                    let sinks = self.router.route(severity).to_vec();
                    tracing::warn!(server, recommendation = %advice.recommendation, peak = advice.predicted_peak, minutes = advice.minutes_to_peak, "predictive scaling alert");
                    self.telemetry.alerts.get_or_create(&label("severity", severity.name())).inc();
                    let n = Notification::firing(alert.clone(), model_label.clone());
                    notifications.extend(sinks.iter().map(|s| (*s, n.clone())));
                    self.active.insert(key, (alert, sinks));
                }
                None => {
                    if let Some((alert, sinks)) = self.active.remove(&key) {
                        let n = Notification::resolved(alert, at, model_label.clone());
                        notifications.extend(sinks.iter().map(|s| (*s, n.clone())));
                    }
                }
                _ => {}
            }
            out.push((server.to_string(), advice));
        }
        for (sink, n) in notifications {
            self.outbox.enqueue_once(sink, &n).map_err(|e| e.to_string())?;
        }
        self.write_scores(&forecast_lines).await;
        Ok(out)
    }

    /// Send what the outbox has due (one pass) and record it.
    pub async fn flush(&self) -> Result<crate::sinks::outbox::FlushReport, OutboxError> {
        let r = self.outbox.flush(&self.cfg.sinks, &self.http).await?;
        self.telemetry.record_flush(&r);
        Ok(r)
    }

    /// Flush until empty or `timeout` passes. With a remote outbox: first take what other
    /// execution environments left there, and afterwards leave there what is still pending.
    pub async fn drain(&self, timeout: std::time::Duration) -> Result<crate::sinks::outbox::FlushReport, OutboxError> {
        self.pull_remote().await;
        let r = self.outbox.drain(&self.cfg.sinks, &self.http, Instant::now() + timeout).await?;
        self.telemetry.record_flush(&r);
        if let Some(remote) = &self.remote {
            match remote.push(&self.outbox).await {
                Ok(p) if p.pushed + p.removed > 0 => tracing::info!(pushed = p.pushed, removed = p.removed, "remote outbox updated"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot update the remote outbox (pending alerts stay in the local one)"),
            }
        }
        Ok(r)
    }

    /// Take into the local outbox what the remote one holds (logged on failure: the local
    /// outbox goes on either way).
    async fn pull_remote(&self) {
        let Some(remote) = &self.remote else { return };
        match remote.pull(&self.outbox).await {
            Ok(_) => self.remote_pulled.store(true, std::sync::atomic::Ordering::Relaxed),
            Err(e) => tracing::error!(error = %e, "cannot read the remote outbox"),
        }
    }

    /// Ticks on a virtual clock from `from_ms` to `until_ms` (inclusive) every `interval_secs`,
    /// flushing the outbox after each; returns every tick's report.
    pub async fn replay(&mut self, from_ms: i64, until_ms: i64) -> Vec<TickReport> {
        self.replay_with_progress(from_ms, until_ms, |_, _| {}).await
    }

    /// [`Monitor::replay`], calling `progress(ticks done, ticks in all)` after each tick.
    pub async fn replay_with_progress(&mut self, from_ms: i64, until_ms: i64, mut progress: impl FnMut(usize, usize)) -> Vec<TickReport> {
        let step = self.cfg.schedule.interval_secs as i64 * 1000;
        let total = if until_ms >= from_ms { ((until_ms - from_ms) / step + 1) as usize } else { 0 };
        let mut out = Vec::new();
        let mut now = from_ms;
        while now <= until_ms {
            out.push(self.tick(now).await);
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "outbox flush failed");
            }
            progress(out.len(), total);
            now += step;
        }
        out
    }
}

/// Repair a row's missing values with the server's last value of that metric when it is at
/// most `max_fill_ms` old (counted); false when a value stays missing (the row is skipped).
/// A complete row becomes the server's last values.
fn repair_row(st: &mut ServerState, ts: i64, values: &mut [f64], max_fill_ms: i64, telemetry: &Telemetry) -> bool {
    let mut complete = true;
    for (m, v) in values.iter_mut().enumerate() {
        if !v.is_finite() {
            let (t, last) = st.last_values[m];
            if last.is_finite() && ts - t <= max_fill_ms {
                *v = last;
                telemetry.values_filled.inc();
            } else {
                complete = false;
            }
        }
    }
    if !complete {
        return false;
    }
    for (m, v) in values.iter().enumerate() {
        st.last_values[m] = (ts, *v);
    }
    true
}

/// Run as a daemon until Ctrl-C / SIGTERM: a tick every `interval_secs`, the outbox flushed
/// every second in the background, and the HTTP endpoints when `[http] listen` is set.
pub async fn run_daemon(mut monitor: Monitor, telemetry: Arc<Telemetry>) -> Result<(), MonitorError> {
    let listen = monitor.config().http.listen.clone();
    if !listen.trim().is_empty() {
        let t = telemetry.clone();
        tokio::spawn(async move {
            if let Err(e) = telemetry::serve(&listen, t).await {
                tracing::error!(listen = %listen, error = %e, "HTTP endpoints failed");
            }
        });
    }
    let (outbox, sinks, http, t) = (monitor.outbox.clone(), monitor.cfg.sinks.clone(), monitor.http.clone(), telemetry.clone());
    let flusher = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            match outbox.flush(&sinks, &http).await {
                Ok(r) => t.record_flush(&r),
                Err(e) => tracing::error!(error = %e, "outbox flush failed"),
            }
        }
    });
    let mut every = tokio::time::interval(std::time::Duration::from_secs(monitor.cfg.schedule.interval_secs));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let r = monitor.tick(crate::now_ms()).await;
                tracing::info!(rows = r.rows_scored, servers = r.servers, alerts = r.alerts.len(), resolved = r.resolved.len(),
                    ms = format!("{:.1}", r.duration_ms), error = r.error.as_deref().unwrap_or(""), "tick");
            }
            _ = &mut shutdown => break,
        }
    }
    flusher.abort();
    tracing::info!("shutting down; undelivered alerts stay in the outbox for the next start");
    let _ = monitor.drain(std::time::Duration::from_secs(2)).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
