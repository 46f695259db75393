//! PagerDuty Events API v2: `trigger` with a `dedup_key` per server + issue (repeats update the
//! same incident), `resolve` with the same key when the server is normal again.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Notification, Secret, SinkError, Status, post_json};
use crate::decisions::Severity;

/// `[sinks.pagerduty]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerDutyConfig {
    /// Integration (routing) key of an Events API v2 integration (a secret; or
    /// `PAGERDUTY_ROUTING_KEY` / `PAGERDUTY_KEY`).
    pub routing_key: Secret,
    /// Events endpoint.
    pub url: String,
    /// Events per minute at most.
    pub rate_limit_per_minute: u32,
    /// Seconds one post may take.
    pub timeout_secs: f64,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        Self {
            routing_key: Secret::default(),
            url: "https://events.pagerduty.com/v2/enqueue".into(),
            rate_limit_per_minute: 120,
            timeout_secs: 10.0,
        }
    }
}

/// PagerDuty's severity names.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium | Severity::Low => "warning",
        Severity::Info => "info",
    }
}

/// The event body.
pub fn payload(cfg: &PagerDutyConfig, n: &Notification) -> Value {
    let a = &n.alert;
    match n.status {
        Status::Resolved => json!({
            "routing_key": cfg.routing_key.expose(),
            "event_action": "resolve",
            "dedup_key": a.dedup_key,
        }),
        Status::Firing => {
            let details: serde_json::Map<String, Value> = a.values.iter().map(|(m, v)| (m.clone(), json!(v))).collect();
            json!({
                "routing_key": cfg.routing_key.expose(),
                "event_action": "trigger",
                "dedup_key": a.dedup_key,
                "client": "aiops-runtime",
                "payload": {
                    "summary": n.summary(),
                    "source": a.server,
                    "severity": severity(a.severity),
                    "timestamp": crate::format_ts(a.timestamp_ms),
                    "component": a.primary_metric,
                    "group": "aiops",
                    "class": "anomaly",
                    "custom_details": {
                        "aiops_severity": a.severity.name(),
                        "anomaly_score": a.score,
                        "primary_metric": a.primary_metric,
                        "primary_value": a.primary_value,
                        "model": n.model,
                        "metrics": details,
                        "test": n.test,
                    }
                }
            })
        }
    }
}

/// Enqueue the event (PagerDuty answers 202 `{"status":"success"}`).
pub async fn send(http: &reqwest::Client, cfg: &PagerDutyConfig, n: &Notification) -> Result<(), SinkError> {
    post_json(http, "pagerduty", &cfg.url, &payload(cfg, n), &[], cfg.timeout_secs).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::test_notification;

    #[test]
    fn events_v2_shape() {
        let cfg = PagerDutyConfig { routing_key: Secret::new("k".repeat(32)), ..Default::default() };
        let mut n = test_notification(Severity::High);
        let p = payload(&cfg, &n);
        assert_eq!((p["event_action"].as_str(), p["payload"]["severity"].as_str()), (Some("trigger"), Some("error")));
        assert_eq!(p["dedup_key"], "aiops-runtime-test/cpu_usage");
        assert_eq!(p["payload"]["source"], "aiops-runtime-test");
        n.status = Status::Resolved;
        let p = payload(&cfg, &n);
        assert_eq!(p["event_action"], "resolve");
        assert!(p.get("payload").is_none());
    }
}
