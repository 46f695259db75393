//! A generic JSON webhook: the [`Notification`] itself (`status`, `alert`, `model`, …) plus a
//! `dedup_key`, with an `Idempotency-Key` header so receivers can drop repeats of an
//! at-least-once delivery.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Notification, Secret, SinkError, post_json};

/// `[sinks.webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// URL (a secret: it often carries a token; or `ALERT_WEBHOOK_URL`).
    pub url: Secret,
    /// Extra headers (values are secrets, e.g. `Authorization`).
    pub headers: BTreeMap<String, Secret>,
    /// Posts per minute at most.
    pub rate_limit_per_minute: u32,
    /// Seconds one post may take.
    pub timeout_secs: f64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self { url: Secret::default(), headers: BTreeMap::new(), rate_limit_per_minute: 600, timeout_secs: 10.0 }
    }
}

/// The body.
pub fn payload(n: &Notification) -> Value {
    json!({
        "version": "1",
        "status": n.status,
        "summary": n.summary(),
        "dedup_key": n.alert.dedup_key,
        "alert": n.alert,
        "resolved_ms": n.resolved_ms,
        "model": n.model,
        "test": n.test,
    })
}

/// The `Idempotency-Key`: the alert (key, time) and its status, the same for every retry and for
/// a re-detection of the same row after a restart.
pub fn idempotency_key(n: &Notification) -> String {
    format!("{}@{}:{:?}", n.alert.dedup_key, n.alert.timestamp_ms, n.status)
}

/// Post the notification.
pub async fn send(http: &reqwest::Client, cfg: &WebhookConfig, n: &Notification) -> Result<(), SinkError> {
    let mut headers: Vec<(String, String)> = cfg.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect();
    headers.push(("Idempotency-Key".into(), idempotency_key(n)));
    post_json(http, "webhook", cfg.url.expose(), &payload(n), &headers, cfg.timeout_secs).await.map(|_| ())
}
