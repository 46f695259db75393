//! The runtime's configuration: one TOML file (every key optional, defaults that need no
//! server except the metric source) plus environment overrides, validated in one place so
//! `runtime check-config` can name every bad key.
//!
//! ```toml
//! [source]
//! kind = "influxdb"            # influxdb | prometheus | file
//! [source.influxdb]
//! url = "http://127.0.0.1:8086"
//! database = "metrics"
//! [model]
//! registry = "file://models"   # or s3://bucket/prefix
//! name = "anomaly-detector"
//! alias = "champion"
//! [schedule]
//! interval_secs = 30
//! [routing]
//! high = ["slack", "pagerduty"]
//! [sinks.slack]
//! webhook_url = "https://hooks.slack.com/services/…"   # or SLACK_WEBHOOK_URL
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sinks::outbox::OutboxConfig;
use crate::sinks::{RoutingConfig, SinksConfig};
use crate::sources::influxdb::InfluxConfig;

/// Which metric source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// InfluxDB 1.x HTTP API (InfluxQL).
    #[default]
    Influxdb,
    /// Prometheus `query_range`.
    Prometheus,
    /// A file replayed (CSV long `timestamp,server,metric,value`, CSV wide
    /// `timestamp,server,<metric>…`, or line protocol `.lp`).
    File,
    /// The seeded server simulator, generated live (demos with no database, benchmarks).
    Simulator,
}

/// `[source.prometheus]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusSourceConfig {
    /// Base URL.
    pub url: String,
    /// Label naming the server.
    pub server_label: String,
    /// Resolution of the range queries.
    pub step_secs: f64,
    /// Metric name → PromQL (one series per server).
    pub queries: BTreeMap<String, String>,
}

impl Default for PrometheusSourceConfig {
    fn default() -> Self {
        let q = |m: &str, e: &str| (m.to_string(), e.to_string());
        Self {
            url: "http://127.0.0.1:9090".into(),
            server_label: "instance".into(),
            step_secs: 10.0,
            queries: [
                q("cpu_usage", "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[1m])))"),
                q("memory_usage", "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"),
                q(
                    "network",
                    "sum by (instance) (rate(node_network_receive_bytes_total[1m]) + rate(node_network_transmit_bytes_total[1m])) / 1e6",
                ),
                q("disk_io", "sum by (instance) (rate(node_disk_reads_completed_total[1m]) + rate(node_disk_writes_completed_total[1m]))"),
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// `[source.file]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSourceConfig {
    /// The file.
    pub path: PathBuf,
}

/// `[source.simulator]`: the fleet of `runtime collect --simulate`, generated on demand. The
/// first read starts the fleet at the window's start; later reads must move forward in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorSourceConfig {
    /// Servers.
    pub servers: usize,
    /// Seed.
    pub seed: u64,
    /// Sampling interval.
    pub interval_secs: u32,
    /// Incidents per server per day.
    pub incidents_per_day: f64,
    /// Restarts, batch jobs, growth, counter resets and missing samples (see
    /// [`crate::collector::simulate`]).
    pub confounders: bool,
}

impl Default for SimulatorSourceConfig {
    fn default() -> Self {
        Self { servers: 5, seed: 42, interval_secs: 10, incidents_per_day: 2.0, confounders: true }
    }
}

/// `[source]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Which source is read.
    pub kind: SourceKind,
    /// InfluxDB settings (also `INFLUXDB_URL`, `INFLUXDB_DATABASE`, `INFLUXDB_USERNAME`,
    /// `INFLUXDB_PASSWORD`, `INFLUXDB_TOKEN`).
    pub influxdb: InfluxConfig,
    /// Prometheus settings.
    pub prometheus: PrometheusSourceConfig,
    /// File replay settings.
    pub file: FileSourceConfig,
    /// Simulator settings.
    pub simulator: SimulatorSourceConfig,
}

/// `[model]`: which bundle of the registry scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Registry URI (`file://DIR`, a folder, `s3://BUCKET/PREFIX`; or `MODEL_URI` / `AIOPS_REGISTRY`).
    pub registry: String,
    /// Registered model (or `MODEL_NAME`).
    pub name: String,
    /// Alias followed (or `MODEL_ALIAS`); hot reloaded when it moves.
    pub alias: String,
    /// Seconds between alias checks.
    pub reload_every_secs: i64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { registry: "file://models".into(), name: "anomaly-detector".into(), alias: "champion".into(), reload_every_secs: 60 }
    }
}

/// `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Seconds between ticks (reference: every 30 s on 10 s data).
    pub interval_secs: u64,
    /// History read for a fresh detector (at start and after a model change), so it scores
    /// from its first live row.
    pub warmup_secs: i64,
    /// Rows newer than `now - settle_secs` wait for the next tick (late writers catch up).
    pub settle_secs: i64,
    /// A metric missing at a row's timestamp is filled with its last value if that is at
    /// most this old (counted as a repair); otherwise the row is skipped (counted).
    pub max_fill_secs: i64,
    /// Seconds `runtime once` / a Lambda tick waits for the outbox to drain.
    pub deliver_timeout_secs: u64,
    /// After a restart, rows since the last processed window (the outbox's checkpoint) are
    /// scored, so nothing that arrived while the runtime was down goes unalerted — if that
    /// window ended at most this long ago; after a longer outage only new rows are scored.
    pub max_catchup_secs: i64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            interval_secs: 30,
            warmup_secs: 6 * 3600,
            settle_secs: 5,
            max_fill_secs: 60,
            deliver_timeout_secs: 20,
            max_catchup_secs: 3600,
        }
    }
}

/// `[selection]`: which servers and metrics this process monitors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Servers (empty: every server the source has; or `MONITORED_SERVERS`, comma-separated).
    pub servers: Vec<String>,
    /// This process' shard, `0..shards` (a server belongs to shard `fnv1a(name) % shards`).
    pub shard: u32,
    /// Number of shards.
    pub shards: u32,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self { servers: Vec::new(), shard: 0, shards: 1 }
    }
}

impl SelectionConfig {
    /// Whether a server is monitored by this process.
    pub fn includes(&self, server: &str) -> bool {
        (self.servers.is_empty() || self.servers.iter().any(|s| s == server)) && shard_of(server, self.shards) == self.shard
    }
}

/// Stable shard of a server name (FNV-1a, so every process and language agrees).
pub fn shard_of(server: &str, shards: u32) -> u32 {
    let h = server.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (h % u64::from(shards.max(1))) as u32
}

/// `[http]`: health and metrics endpoints of `runtime monitor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address (empty: no server).
    pub listen: String,
    /// Servers whose latest anomaly score `/metrics` exports as
    /// `aiops_runtime_anomaly_score{server}`: the first this many seen (bounded cardinality; 0:
    /// none).
    pub score_gauge_servers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9898".into(), score_gauge_servers: 1000 }
    }
}

/// `[forecast]`: predictive scaling with the statistical `auto` forecaster fitted per server
/// (settings in `[forecast.auto]`; the default when no bundle is given), an LSTM bundle
/// (`experiment lstm train`; the default when `bundle` is set) or the registry's forecaster (see
/// [`crate::predict`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// `auto`, `lstm` (the bundle) or `registry` (also `FORECAST_MODEL`); unset: `lstm` when
    /// `bundle` is given, else `auto` ([`ForecastConfig::model`]), so predictive scaling needs no
    /// training job.
    pub model: Option<crate::predict::ForecastModel>,
    /// Bundle folder of `model = "lstm"` (also `FORECASTER_BUNDLE`).
    pub bundle: String,
    /// Level of the target metric that needs capacity (default: 80 for `*_usage` metrics, else
    /// the 95th percentile of each server's window).
    pub threshold: Option<f64>,
    /// A crossing forecast within this many minutes is SCALE_NOW (HIGH), later SCALE_SOON (MEDIUM).
    pub now_minutes: f64,
    /// The statistical forecaster's settings.
    pub auto: crate::predict::StatisticalForecast,
    /// With `model = "registry"`: the registered forecaster model (in `[model] registry`).
    pub registry_model: String,
    /// With `model = "registry"`: its alias.
    pub alias: String,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            model: None,
            bundle: String::new(),
            threshold: None,
            now_minutes: 10.0,
            auto: crate::predict::StatisticalForecast::default(),
            registry_model: "forecaster".into(),
            alias: "champion".into(),
        }
    }
}

impl ForecastConfig {
    /// The forecaster predictive scaling runs ([`crate::predict::ForecastModel::resolve`]).
    pub fn model(&self) -> crate::predict::ForecastModel {
        crate::predict::ForecastModel::resolve(self.model, self.bundle_dir().is_some())
    }

    /// The LSTM bundle folder, if one is given (`bundle` less surrounding blanks; empty: none).
    pub fn bundle_dir(&self) -> Option<&str> {
        Some(self.bundle.trim()).filter(|b| !b.is_empty())
    }
}

/// `FORECAST_MODEL`'s value as a [`crate::predict::ForecastModel`] (`lstm`, `auto`, `registry`).
fn forecast_model(v: &str) -> Option<crate::predict::ForecastModel> {
    serde_json::from_value(serde_json::Value::String(v.trim().to_string())).ok()
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Metric source.
    pub source: SourceConfig,
    /// Model bundle.
    pub model: ModelConfig,
    /// Timing.
    pub schedule: ScheduleConfig,
    /// Servers of this process.
    pub selection: SelectionConfig,
    /// Severity → sinks.
    pub routing: RoutingConfig,
    /// Sinks.
    pub sinks: SinksConfig,
    /// Durable outbox.
    pub outbox: OutboxConfig,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: HttpConfig,
    /// Predictive scaling.
    pub forecast: ForecastConfig,
    /// Scores written back for charting.
    pub output: OutputConfig,
}

/// `[output]`: each scored row's anomaly score written back to InfluxDB as
/// `aiops_anomaly_score,server=…,metric=…,model=… value=…` (the metric tag is the row's top
/// contributor), and each forecast of predictive scaling as `aiops_forecast` (point and the 80 % /
/// 95 % bounds at the times forecast; see [`crate::line_protocol::encode_forecast_into`]), next to
/// the metrics, so a dashboard can chart them together. A failed write is logged and counted
/// (`aiops_runtime_score_write_errors_total`); it never delays alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Write the scores and forecasts (also `RUNTIME_WRITE_SCORES=1`).
    pub influxdb_scores: bool,
    /// Where to (default: `[source.influxdb]`, which also takes `INFLUXDB_*`).
    pub influxdb: Option<InfluxConfig>,
}

/// A configuration error naming the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML or an unknown / mistyped key.
    #[error("invalid config {path}: {message}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value out of its domain.
    #[error("invalid config {path}: `{key}`: {reason}")]
    Invalid {
        /// The file (or `environment`).
        path: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl RuntimeConfig {
    /// Parse TOML text (`origin` names it in errors).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml { path: origin.to_string(), message: e.to_string().trim().to_string() })
    }

    /// Read a file (or defaults when `path` is `None`), apply the environment, validate.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (mut cfg, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io { path: p.display().to_string(), source })?;
                (Self::from_toml_str(&text, &p.display().to_string())?, p.display().to_string())
            }
            None => (Self::default(), "(defaults)".to_string()),
        };
        cfg.apply_env();
        if let Ok(v) = std::env::var("FORECAST_MODEL")
            && !v.trim().is_empty()
            && forecast_model(&v).is_none()
        {
            return Err(ConfigError::Invalid {
                path: "environment".into(),
                key: "FORECAST_MODEL".into(),
                reason: format!("`{v}`: use lstm, auto or registry"),
            });
        }
        cfg.validate(&origin)?;
        Ok(cfg)
    }

    /// Environment overrides: `MODEL_URI` / `AIOPS_REGISTRY`, `MODEL_NAME`, `MODEL_ALIAS`,
    /// `INFLUXDB_*`, `PROMETHEUS_URL`, `MONITORED_SERVERS`, `RUNTIME_OUTBOX_DIR`,
    /// `RUNTIME_HTTP_LISTEN` (e.g. `0.0.0.0:9898` in a container; `off` for no server),
    /// `FORECASTER_BUNDLE`, `FORECAST_MODEL` (`auto` or `lstm`), and the
    /// sinks' variables (see [`SinksConfig::apply_env`]).
    pub fn apply_env(&mut self) {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("RUNTIME_HTTP_LISTEN") {
            self.http.listen = if v.trim() == "off" { String::new() } else { v.trim().to_string() };
        }
        if let Some(v) = var("MODEL_URI").or_else(|| var("AIOPS_REGISTRY")) {
            self.model.registry = v;
        }
        if let Some(v) = var("MODEL_NAME") {
            self.model.name = v;
        }
        if let Some(v) = var("MODEL_ALIAS") {
            self.model.alias = v;
        }
        let env_influx = InfluxConfig::from_env();
        let defaults = InfluxConfig::default();
        let i = &mut self.source.influxdb;
        for (mine, env, default) in [
            (&mut i.url, env_influx.url, defaults.url),
            (&mut i.database, env_influx.database, defaults.database),
            (&mut i.username, env_influx.username, defaults.username),
            (&mut i.password, env_influx.password, defaults.password),
            (&mut i.token, env_influx.token, defaults.token),
        ] {
            if env != default {
                *mine = env;
            }
        }
        if let Some(v) = var("PROMETHEUS_URL") {
            self.source.prometheus.url = v;
        }
        if let Some(v) = var("MONITORED_SERVERS") {
            self.selection.servers = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        }
        if let Some(v) = var("RUNTIME_OUTBOX_DIR") {
            self.outbox.dir = PathBuf::from(v);
        }
        if let Some(v) = var("FORECASTER_BUNDLE") {
            self.forecast.bundle = v;
        }
        if let Some(v) = var("RUNTIME_WRITE_SCORES") {
            self.output.influxdb_scores = matches!(v.trim(), "1" | "true" | "yes");
        }
        if let Some(m) = var("FORECAST_MODEL").as_deref().and_then(forecast_model) {
            self.forecast.model = Some(m);
        }
        self.sinks.apply_env();
    }

    /// Check every value; the error names the key.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| Err(ConfigError::Invalid { path: origin.to_string(), key: key.into(), reason });
        if self.schedule.interval_secs == 0 {
            return bad("schedule.interval_secs", "at least 1".into());
        }
        if self.schedule.warmup_secs < 0
            || self.schedule.settle_secs < 0
            || self.schedule.max_fill_secs < 0
            || self.schedule.max_catchup_secs < 0
        {
            return bad("schedule", "warmup_secs, settle_secs, max_fill_secs and max_catchup_secs must not be negative".into());
        }
        let o = &self.outbox;
        for (key, v, min) in [
            ("outbox.backoff_initial_secs", o.backoff_initial_secs, f64::MIN_POSITIVE),
            ("outbox.backoff_max_secs", o.backoff_max_secs, f64::MIN_POSITIVE),
            ("outbox.state_every_secs", o.state_every_secs, 0.0),
            ("outbox.max_age_secs", o.max_age_secs as f64, 0.0),
        ] {
            if !(v.is_finite() && v >= min) {
                return bad(key, format!("{v}: a finite number, {}", if min > 0.0 { "above 0" } else { "at least 0" }));
            }
        }
        if self.selection.shards == 0 || self.selection.shard >= self.selection.shards {
            return bad("selection.shard", format!("{} is not in 0..{}", self.selection.shard, self.selection.shards));
        }
        if self.model.reload_every_secs < 1 {
            return bad("model.reload_every_secs", "at least 1".into());
        }
        let registry_ok =
            self.model.registry.starts_with("s3://") || !self.model.registry.contains("://") || self.model.registry.starts_with("file://");
        if !registry_ok || self.model.registry.is_empty() {
            return bad("model.registry", format!("`{}`: use file://DIR, a folder, or s3://BUCKET/PREFIX", self.model.registry));
        }
        match self.source.kind {
            SourceKind::Influxdb if !self.source.influxdb.url.starts_with("http") => {
                return bad("source.influxdb.url", "must be an http(s) URL".into());
            }
            SourceKind::Prometheus if !self.source.prometheus.url.starts_with("http") => {
                return bad("source.prometheus.url", "must be an http(s) URL".into());
            }
            SourceKind::Prometheus if self.source.prometheus.queries.is_empty() => {
                return bad("source.prometheus.queries", "at least one metric query".into());
            }
            SourceKind::File if self.source.file.path.as_os_str().is_empty() => {
                return bad("source.file.path", "a file to replay".into());
            }
            SourceKind::Simulator if self.source.simulator.servers == 0 || self.source.simulator.interval_secs == 0 => {
                return bad("source.simulator", "servers and interval_secs must be at least 1".into());
            }
            _ => {}
        }
        if self.source.prometheus.step_secs <= 0.0 {
            return bad("source.prometheus.step_secs", "must be positive".into());
        }
        let sink_err = |e: crate::sinks::SinkError| match e {
            crate::sinks::SinkError::Config { key, reason } => ConfigError::Invalid { path: origin.to_string(), key, reason },
            other => ConfigError::Invalid { path: origin.to_string(), key: "sinks".into(), reason: other.to_string() },
        };
        if self.output.influxdb_scores && !self.output.influxdb.as_ref().unwrap_or(&self.source.influxdb).url.starts_with("http") {
            return bad("output.influxdb.url", "must be an http(s) URL".into());
        }
        if !(self.forecast.now_minutes.is_finite() && self.forecast.now_minutes >= 0.0) {
            return bad("forecast.now_minutes", format!("{}: a finite number of minutes ≥ 0", self.forecast.now_minutes));
        }
        if self.forecast.threshold.is_some_and(|t| !t.is_finite()) {
            return bad("forecast.threshold", "must be finite".into());
        }
        if self.forecast.model() == crate::predict::ForecastModel::Auto {
            self.forecast.auto.validate().map_err(|e| ConfigError::Invalid {
                path: origin.to_string(),
                key: "forecast.auto".into(),
                reason: e.to_string(),
            })?;
        }
        self.sinks.validate().map_err(sink_err)?;
        if self.http.listen.trim().is_empty() {
            return Ok(());
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("http.listen", format!("`{}` is not host:port", self.http.listen));
        }
        Ok(())
    }

    /// Warnings that do not stop the runtime: sinks routed but not configured.
    pub fn warnings(&self) -> Vec<String> {
        let configured = self.sinks.configured();
        let mut out = Vec::new();
        for name in [crate::sinks::SinkKind::Slack, crate::sinks::SinkKind::Pagerduty] {
            let routed = [&self.routing.low, &self.routing.medium, &self.routing.high, &self.routing.critical, &self.routing.info]
                .iter()
                .any(|l| l.contains(&name));
            if routed && !configured.contains(&name) {
                out.push(format!("sink `{name}` is routed but not configured (set [sinks.{name}] or its environment variable): its alerts are only logged"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = RuntimeConfig::from_toml_str("[schedule]\ninterval = 30\n", "rt.toml").unwrap_err().to_string();
        assert!(e.contains("rt.toml") && e.contains("interval") && e.contains("line 2"), "{e}");
        let e = RuntimeConfig::from_toml_str("[sinks.slack]\nwebhok_url = \"x\"\n", "rt.toml").unwrap_err().to_string();
        assert!(e.contains("webhok_url"), "{e}");
        let cfg = RuntimeConfig::from_toml_str("[selection]\nshard = 3\nshards = 2\n", "rt.toml").unwrap();
        assert!(cfg.validate("rt.toml").unwrap_err().to_string().contains("selection.shard"));
        let e = RuntimeConfig::from_toml_str("[routing]\ncritical = [\"pager\"]\n", "rt.toml").unwrap_err().to_string();
        assert!(
            e.contains("rt.toml") && e.contains("line 2") && e.contains("critical") && e.contains("pager") && e.contains("pagerduty"),
            "{e}"
        );
        for (text, key) in [
            ("[outbox]\nstate_every_secs = nan\n", "outbox.state_every_secs"),
            ("[outbox]\nbackoff_initial_secs = -1.0\n", "outbox.backoff_initial_secs"),
            ("[outbox]\nbackoff_max_secs = inf\n", "outbox.backoff_max_secs"),
        ] {
            let e = RuntimeConfig::from_toml_str(text, "rt.toml").unwrap().validate("rt.toml").unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        RuntimeConfig::default().validate("defaults").unwrap();
    }

    #[test]
    fn shards_partition_servers() {
        let names: Vec<String> = (0..200).map(|i| format!("web-server-{i:03}")).collect();
        let counts: Vec<usize> = (0..4).map(|s| names.iter().filter(|n| shard_of(n, 4) == s).count()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 200);
        assert!(counts.iter().all(|&c| c > 30), "{counts:?}");
        assert_eq!(shard_of("web-server-001", 1), 0);
    }
}
