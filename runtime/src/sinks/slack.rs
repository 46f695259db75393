//! Slack incoming webhook: a Block Kit message (header, severity, server, time, primary issue,
//! score, current metrics) with a plain `text` fallback for notifications.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Notification, Secret, SinkError, Status, fmt_value, post_json};
use crate::decisions::Severity;

/// `[sinks.slack]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// Incoming webhook URL (a secret; or `SLACK_WEBHOOK_URL`).
    pub webhook_url: Secret,
    /// Messages per minute at most (Slack allows about one per second per webhook).
    pub rate_limit_per_minute: u32,
    /// Most metric lines listed in a message.
    pub max_metrics: usize,
    /// Seconds one post may take. Longer than the others: Slack has no idempotency key, so a
    /// post that times out after Slack accepted it is posted twice when retried.
    pub timeout_secs: f64,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self { webhook_url: Secret::default(), rate_limit_per_minute: 60, max_metrics: 12, timeout_secs: 30.0 }
    }
}

fn emoji(n: &Notification) -> &'static str {
    match (n.status, n.alert.severity) {
        (Status::Resolved, _) => "✅",
        (_, Severity::Critical) => "🔴",
        (_, Severity::High) => "🟠",
        (_, Severity::Medium) => "🟡",
        (_, Severity::Low) => "🔵",
        (_, Severity::Info) => "⚪",
    }
}

/// The message body.
pub fn payload(cfg: &SlackConfig, n: &Notification) -> Value {
    let a = &n.alert;
    let header = match n.status {
        Status::Firing => format!("{} {} anomaly on {}", emoji(n), a.severity.name(), a.server),
        Status::Resolved => format!("{} Resolved: {} on {}", emoji(n), a.primary_metric, a.server),
    };
    let header = if n.test { format!("[TEST] {header}") } else { header };
    let time = crate::format_ts(n.resolved_ms.unwrap_or(a.timestamp_ms));
    let mut lines: Vec<String> = a.values.iter().take(cfg.max_metrics).map(|(m, v)| format!("{m:<16} {}", fmt_value(*v))).collect();
    if a.values.len() > cfg.max_metrics {
        lines.push(format!("… and {} more", a.values.len() - cfg.max_metrics));
    }
    let field = |k: &str, v: String| json!({"type": "mrkdwn", "text": format!("*{k}:*\n{v}")});
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
        json!({"type": "section", "fields": [
            field("Severity", if n.status == Status::Resolved { "RESOLVED".into() } else { a.severity.name().into() }),
            field("Server", a.server.clone()),
            field("Time", time),
            field("Primary issue", format!("{} = {}", a.primary_metric, fmt_value(a.primary_value))),
            field("Anomaly score", format!("{:.2}", a.score)),
        ]}),
    ];
    if !lines.is_empty() {
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Current metrics*\n```{}```", lines.join("\n"))}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("model {} · key `{}`", n.model, a.dedup_key)}]}));
    json!({ "text": n.summary(), "blocks": blocks })
}

/// Post to the webhook (Slack answers `ok` with 200).
pub async fn send(http: &reqwest::Client, cfg: &SlackConfig, n: &Notification) -> Result<(), SinkError> {
    post_json(http, "slack", cfg.webhook_url.expose(), &payload(cfg, n), &[], cfg.timeout_secs).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::test_notification;

    #[test]
    fn block_kit_shape() {
        let n = test_notification(Severity::Critical);
        let p = payload(&SlackConfig::default(), &n);
        assert!(p["text"].as_str().unwrap().contains("CRITICAL anomaly on aiops-runtime-test"));
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(fields.iter().any(|f| f["text"].as_str().unwrap().contains("cpu_usage = 92.3")));
        assert!(blocks[2]["text"]["text"].as_str().unwrap().contains("memory_usage"));
    }
}
