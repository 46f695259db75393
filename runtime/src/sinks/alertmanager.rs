//! Prometheus Alertmanager: `POST /api/v2/alerts`. Labels (`alertname`, `server`, `metric`,
//! `severity`) identify an alert, so Alertmanager deduplicates repeated deliveries and groups
//! by its own route; `endsAt` is the resolve time, or for a firing alert its time plus
//! `firing_secs` (the runtime re-alerts after its cooldown while the anomaly lasts).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Notification, SinkError, Status, fmt_value, post_json};

/// `[sinks.alertmanager]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093` (or `ALERTMANAGER_URL`).
    pub url: String,
    /// `alertname` label.
    pub alertname: String,
    /// How long a firing alert stays active without a repeat.
    pub firing_secs: i64,
    /// Posts per minute at most.
    pub rate_limit_per_minute: u32,
    /// Extra static labels (e.g. `env = "prod"`, `cluster = "eu-1"`) for Alertmanager routes.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Seconds one post may take.
    pub timeout_secs: f64,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            alertname: "AIOpsAnomaly".into(),
            firing_secs: 3600,
            rate_limit_per_minute: 600,
            labels: std::collections::BTreeMap::new(),
            timeout_secs: 10.0,
        }
    }
}

/// The request body (a list with one alert).
pub fn payload(cfg: &AlertmanagerConfig, n: &Notification) -> Value {
    let a = &n.alert;
    let ends = match n.status {
        Status::Resolved => n.resolved_ms.unwrap_or(a.timestamp_ms),
        Status::Firing => a.timestamp_ms + cfg.firing_secs * 1000,
    };
    let metrics: Vec<String> = a.values.iter().map(|(m, v)| format!("{m}={}", fmt_value(*v))).collect();
    let mut labels: serde_json::Map<String, Value> = cfg.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    for (k, v) in [
        ("alertname", cfg.alertname.clone()),
        ("server", a.server.clone()),
        ("metric", a.primary_metric.clone()),
        ("severity", a.severity.name().to_lowercase()),
        ("source", "aiops-runtime".into()),
    ] {
        labels.insert(k.into(), json!(v));
    }
    json!([{
        "labels": labels,
        "annotations": {
            "summary": n.summary(),
            "description": metrics.join(", "),
            "anomaly_score": format!("{:.3}", a.score),
            "model": n.model,
            "dedup_key": a.dedup_key,
        },
        "startsAt": crate::format_ts(a.timestamp_ms),
        "endsAt": crate::format_ts(ends),
    }])
}

/// Post the alert.
pub async fn send(http: &reqwest::Client, cfg: &AlertmanagerConfig, n: &Notification) -> Result<(), SinkError> {
    let url = format!("{}/api/v2/alerts", cfg.url.trim_end_matches('/'));
    post_json(http, "alertmanager", &url, &payload(cfg, n), &[], cfg.timeout_secs).await.map(|_| ())
}
