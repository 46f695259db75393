//! The runtime's own metrics (Prometheus text format on `/metrics`) and readiness, and the HTTP
//! server of `/healthz`, `/readyz` and `/metrics`.
//!
//! Metrics: `aiops_runtime_ticks_total{result}`, `aiops_runtime_tick_duration_seconds`
//! (histogram: read + score + decide), `aiops_runtime_rows_scored_total`,
//! `aiops_runtime_anomalous_rows_total`, `aiops_runtime_alerts_total{severity}`,
//! `aiops_runtime_resolves_total`, `aiops_runtime_alerts_sent_total{sink}`,
//! `aiops_runtime_alerts_failed_total{sink}`, `aiops_runtime_alerts_dead_total{sink}`,
//! `aiops_runtime_outbox_pending`, `aiops_runtime_model_version{model}`,
//! `aiops_runtime_model_load_errors_total`, `aiops_runtime_source_errors_total`,
//! `aiops_runtime_samples_late_total`, `aiops_runtime_rows_skipped_total{reason}`,
//! `aiops_runtime_values_filled_total`, `aiops_runtime_servers`,
//! `aiops_runtime_score_write_errors_total`, and
//! `aiops_runtime_anomaly_score{server}` (the latest score of each of the first
//! `[http] score_gauge_servers` servers seen, default 1000: cardinality stays bounded on any
//! fleet; the others are not exported).

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = [(String, String); 1];

/// The latest anomaly score of one server.
pub type ScoreGauge = Gauge<f64, AtomicU64>;

/// A labelled counter family.
pub type CounterFamily = Family<Labels, Counter>;

/// One label.
pub fn label(key: &str, value: &str) -> Labels {
    [(key.to_string(), value.to_string())]
}

/// Why the runtime is or is not ready.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readiness {
    /// `model@version` in use.
    pub model: Option<String>,
    /// The last model load error (the last good model stays in use).
    pub model_error: Option<String>,
    /// The last source error (cleared by a successful read).
    pub source_error: Option<String>,
    /// A tick has completed.
    pub ticked: bool,
}

impl Readiness {
    /// Ready = a model is loaded, a tick completed and the source answered the last time.
    pub fn ready(&self) -> bool {
        self.model.is_some() && self.ticked && self.source_error.is_none()
    }
}

/// Metrics and readiness, shared by the monitor and the HTTP server.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    /// Ticks by result (`ok`, `source_error`, `no_model`).
    pub ticks: CounterFamily,
    /// Seconds per tick.
    pub tick_seconds: Histogram,
    /// Rows scored.
    pub rows_scored: Counter,
    /// Rows at or above the threshold.
    pub anomalous_rows: Counter,
    /// Alerts by severity.
    pub alerts: CounterFamily,
    /// Resolves.
    pub resolves: Counter,
    /// Deliveries accepted, by sink.
    pub sent: CounterFamily,
    /// Failed delivery attempts, by sink.
    pub failed: CounterFamily,
    /// Deliveries given up (kept in `dead/`), by sink.
    pub dead: CounterFamily,
    /// Outbox entries waiting.
    pub outbox_pending: Gauge,
    /// Model version in use.
    pub model_version: Family<Labels, Gauge>,
    /// Failed model loads.
    pub model_load_errors: Counter,
    /// Failed source reads.
    pub source_errors: Counter,
    /// Samples at or before the last processed row of their server (late, ignored).
    pub samples_late: Counter,
    /// Rows skipped, by reason (`incomplete`).
    pub rows_skipped: CounterFamily,
    /// Missing or non-finite values filled with the metric's last value.
    pub values_filled: Counter,
    /// Servers monitored.
    pub servers: Gauge,
    /// Failed writes of scores to InfluxDB (`[output] influxdb_scores`).
    pub score_write_errors: Counter,
    /// Latest anomaly score per server (bounded, see [`Telemetry::set_score`]).
    pub anomaly_score: Family<Labels, ScoreGauge>,
    score_servers: Mutex<HashSet<String>>,
    readiness: Mutex<Readiness>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Register every metric.
    pub fn new() -> Self {
        let mut t = Self {
            registry: Registry::with_prefix("aiops_runtime"),
            ticks: Family::default(),
            tick_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            rows_scored: Counter::default(),
            anomalous_rows: Counter::default(),
            alerts: Family::default(),
            resolves: Counter::default(),
            sent: Family::default(),
            failed: Family::default(),
            dead: Family::default(),
            outbox_pending: Gauge::default(),
            model_version: Family::default(),
            model_load_errors: Counter::default(),
            source_errors: Counter::default(),
            samples_late: Counter::default(),
            rows_skipped: Family::default(),
            values_filled: Counter::default(),
            servers: Gauge::default(),
            score_write_errors: Counter::default(),
            anomaly_score: Family::default(),
            score_servers: Mutex::new(HashSet::new()),
            readiness: Mutex::new(Readiness::default()),
        };
        let r = &mut t.registry;
        r.register("ticks", "Monitoring ticks by result", t.ticks.clone());
        r.register("tick_duration_seconds", "Seconds per tick (read, score, decide)", t.tick_seconds.clone());
        r.register("rows_scored", "Rows scored", t.rows_scored.clone());
        r.register("anomalous_rows", "Rows scored at or above the threshold", t.anomalous_rows.clone());
        r.register("alerts", "Alerts raised, by severity", t.alerts.clone());
        r.register("resolves", "Alerts resolved", t.resolves.clone());
        r.register("alerts_sent", "Deliveries accepted by a sink", t.sent.clone());
        r.register("alerts_failed", "Failed delivery attempts (retried)", t.failed.clone());
        r.register("alerts_dead", "Deliveries given up (kept in the outbox's dead/ folder)", t.dead.clone());
        r.register("outbox_pending", "Deliveries waiting in the outbox", t.outbox_pending.clone());
        r.register("model_version", "Version of the model bundle in use", t.model_version.clone());
        r.register("model_load_errors", "Failed model loads (the last good model stays in use)", t.model_load_errors.clone());
        r.register("source_errors", "Failed metric source reads", t.source_errors.clone());
        r.register("samples_late", "Samples older than their server's last processed row (ignored)", t.samples_late.clone());
        r.register("rows_skipped", "Rows skipped, by reason", t.rows_skipped.clone());
        r.register("values_filled", "Missing or non-finite values filled with the last value", t.values_filled.clone());
        r.register("servers", "Servers monitored by this process", t.servers.clone());
        r.register("score_write_errors", "Failed writes of scores to InfluxDB ([output] influxdb_scores)", t.score_write_errors.clone());
        r.register("anomaly_score", "Latest anomaly score per server (the first score_gauge_servers seen)", t.anomaly_score.clone());
        t
    }

    /// `server`'s anomaly-score gauge, unless `limit` other servers have one already (the
    /// monitor keeps it per server, so scoring a row takes no lock and no allocation).
    pub fn score_gauge(&self, server: &str, limit: usize) -> Option<ScoreGauge> {
        let mut admitted = self.score_servers.lock().expect("score servers");
        if !admitted.contains(server) {
            if admitted.len() >= limit {
                return None;
            }
            admitted.insert(server.to_string());
        }
        drop(admitted);
        Some(self.anomaly_score.get_or_create(&label("server", server)).clone())
    }

    /// Export `score` as `server`'s latest anomaly score, unless `limit` other servers have one
    /// already.
    pub fn set_score(&self, server: &str, score: f64, limit: usize) {
        if let Some(g) = self.score_gauge(server, limit) {
            g.set(score);
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encoding to a String cannot fail");
        out
    }

    /// Update readiness.
    pub fn update(&self, f: impl FnOnce(&mut Readiness)) {
        f(&mut self.readiness.lock().expect("readiness lock"));
    }

    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        self.readiness.lock().expect("readiness lock").clone()
    }

    /// Count a flush of the outbox.
    pub fn record_flush(&self, r: &crate::sinks::outbox::FlushReport) {
        for (sink, n) in &r.delivered {
            self.sent.get_or_create(&label("sink", sink)).inc_by(*n);
        }
        for (sink, n) in &r.failed {
            self.failed.get_or_create(&label("sink", sink)).inc_by(*n);
        }
        for (sink, n) in &r.dead {
            self.dead.get_or_create(&label("sink", sink)).inc_by(*n);
        }
        self.outbox_pending.set(r.pending as i64);
    }
}

/// Serve `/healthz` (always 200 while the process runs), `/readyz` (200 when ready, else 503
/// with the reason) and `/metrics` until the process ends.
pub async fn serve(listen: &str, telemetry: Arc<Telemetry>) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let t1 = telemetry.clone();
    let t2 = telemetry;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let r = t1.readiness();
                async move {
                    if r.ready() {
                        (StatusCode::OK, format!("ready: model {}\n", r.model.unwrap_or_default()))
                    } else {
                        let why = match (&r.model, &r.source_error, r.ticked) {
                            (None, _, _) => format!("no model loaded{}", r.model_error.map(|e| format!(": {e}")).unwrap_or_default()),
                            (_, Some(e), _) => format!("metric source: {e}"),
                            _ => "no tick completed yet".to_string(),
                        };
                        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"))
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = t2.encode();
                async move { ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await
}
