//! Alert sinks: where alerts go, how they are routed by severity, and the durable outbox that
//! makes sure none is lost.
//!
//! - [`slack`]: incoming webhook, Block Kit message;
//! - [`pagerduty`]: Events API v2 (trigger with `dedup_key`, resolve when normal again);
//! - [`alertmanager`]: `POST /api/v2/alerts` (Alertmanager dedups and groups by labels);
//! - [`webhook`]: generic JSON POST with an `Idempotency-Key` header;
//! - [`AlertRouter`]: severity → sinks, the reference README's table by default;
//! - [`outbox::Outbox`]: every notification is written to disk before it is sent, retried with
//!   backoff, rate limited per sink, and removed only once the sink accepted it.
//!
//! ```
//! use runtime::decisions::Severity;
//! use runtime::sinks::{AlertRouter, RoutingConfig, SinkKind};
//! let router = AlertRouter::new(RoutingConfig::default(), &[SinkKind::Slack, SinkKind::Pagerduty]);
//! assert!(router.route(Severity::Info).is_empty()); // log only
//! assert_eq!(router.route(Severity::Medium), ["slack"]);
//! assert_eq!(router.route(Severity::Critical), ["slack", "pagerduty"]);
//! ```

pub mod alertmanager;
pub mod outbox;
pub mod pagerduty;
pub mod remote;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decisions::{Alert, Severity};

/// A secret string (webhook URL, routing key, token): never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A new or repeated alert.
    Firing,
    /// The server is normal again.
    Resolved,
}

/// What a sink is asked to deliver: an alert (firing or resolved) with the model that raised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Firing or resolved.
    pub status: Status,
    /// The alert (for `resolved`: the alert that fired, with `resolved_ms` set).
    pub alert: Alert,
    /// When it was resolved.
    pub resolved_ms: Option<i64>,
    /// `model@version` that scored it.
    pub model: String,
    /// A test message (`runtime alert test`).
    #[serde(default)]
    pub test: bool,
}

impl Notification {
    /// A firing notification of `alert`, scored by `model`.
    pub fn firing(alert: Alert, model: String) -> Self {
        Self { status: Status::Firing, alert, resolved_ms: None, model, test: false }
    }

    /// The resolve of `alert` at `resolved_ms`.
    pub fn resolved(alert: Alert, resolved_ms: i64, model: String) -> Self {
        Self { status: Status::Resolved, alert, resolved_ms: Some(resolved_ms), model, test: false }
    }

    /// One-line summary, as used by every sink.
    pub fn summary(&self) -> String {
        let a = &self.alert;
        let prefix = if self.test { "[TEST] " } else { "" };
        match self.status {
            Status::Firing => format!(
                "{prefix}{} anomaly on {}: {} = {} (score {:.2})",
                a.severity.name(),
                a.server,
                a.primary_metric,
                fmt_value(a.primary_value),
                a.score
            ),
            Status::Resolved => format!("{prefix}RESOLVED: {} {} is back to normal", a.server, a.primary_metric),
        }
    }
}

/// A value with sensible precision.
pub(crate) fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        v.to_string()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Sink settings (`[sinks.slack]`, `[sinks.pagerduty]`, `[sinks.alertmanager]`, `[sinks.webhook]`).
/// A sink with no URL / key is not configured and is skipped (with a warning from `check-config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// Slack incoming webhook.
    pub slack: slack::SlackConfig,
    /// PagerDuty Events API v2.
    pub pagerduty: pagerduty::PagerDutyConfig,
    /// Prometheus Alertmanager.
    pub alertmanager: alertmanager::AlertmanagerConfig,
    /// Generic JSON webhook.
    pub webhook: webhook::WebhookConfig,
}

/// The sinks an alert can be routed to (`[routing]`, `runtime alert test --sink`, outbox
/// entries): lower-case names in TOML, JSON and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Prometheus Alertmanager.
    Alertmanager,
    /// Generic JSON webhook.
    Webhook,
}

impl SinkKind {
    /// Every sink, in routing order.
    pub const ALL: [SinkKind; 4] = [Self::Slack, Self::Pagerduty, Self::Alertmanager, Self::Webhook];

    /// Its name (`slack`, `pagerduty`, `alertmanager`, `webhook`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Pagerduty => "pagerduty",
            Self::Alertmanager => "alertmanager",
            Self::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for SinkKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::str::FromStr for SinkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown sink `{s}`; use {}", Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")))
    }
}

impl SinksConfig {
    /// Fill unset secrets and URLs from the environment: `SLACK_WEBHOOK_URL`,
    /// `PAGERDUTY_ROUTING_KEY` (or the reference's `PAGERDUTY_KEY`), `ALERTMANAGER_URL`,
    /// `ALERT_WEBHOOK_URL`.
    pub fn apply_env(&mut self) {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if self.slack.webhook_url.is_empty()
            && let Some(v) = env("SLACK_WEBHOOK_URL")
        {
            self.slack.webhook_url = Secret::new(v);
        }
        if self.pagerduty.routing_key.is_empty()
            && let Some(v) = env("PAGERDUTY_ROUTING_KEY").or_else(|| env("PAGERDUTY_KEY"))
        {
            self.pagerduty.routing_key = Secret::new(v);
        }
        if self.alertmanager.url.is_empty()
            && let Some(v) = env("ALERTMANAGER_URL")
        {
            self.alertmanager.url = v;
        }
        if self.webhook.url.is_empty()
            && let Some(v) = env("ALERT_WEBHOOK_URL")
        {
            self.webhook.url = Secret::new(v);
        }
    }

    /// The configured sinks.
    pub fn configured(&self) -> Vec<SinkKind> {
        SinkKind::ALL.into_iter().filter(|&k| self.is_configured(k)).collect()
    }

    /// Whether a sink has its URL (or routing key).
    pub fn is_configured(&self, sink: SinkKind) -> bool {
        match sink {
            SinkKind::Slack => !self.slack.webhook_url.is_empty(),
            SinkKind::Pagerduty => !self.pagerduty.routing_key.is_empty(),
            SinkKind::Alertmanager => !self.alertmanager.url.trim().is_empty(),
            SinkKind::Webhook => !self.webhook.url.is_empty(),
        }
    }

    /// Per-minute rate limit of a sink.
    pub fn rate_limit_per_minute(&self, sink: SinkKind) -> u32 {
        match sink {
            SinkKind::Slack => self.slack.rate_limit_per_minute,
            SinkKind::Pagerduty => self.pagerduty.rate_limit_per_minute,
            SinkKind::Alertmanager => self.alertmanager.rate_limit_per_minute,
            SinkKind::Webhook => self.webhook.rate_limit_per_minute,
        }
    }

    /// Request timeout of a sink, seconds.
    pub fn timeout_secs(&self, sink: SinkKind) -> f64 {
        match sink {
            SinkKind::Slack => self.slack.timeout_secs,
            SinkKind::Pagerduty => self.pagerduty.timeout_secs,
            SinkKind::Alertmanager => self.alertmanager.timeout_secs,
            SinkKind::Webhook => self.webhook.timeout_secs,
        }
    }

    /// Check URLs and limits; errors name the key.
    pub fn validate(&self) -> Result<(), SinkError> {
        let bad = |key: &str, reason: &str| Err(SinkError::Config { key: key.into(), reason: reason.into() });
        let url_ok = |u: &str| u.is_empty() || u.starts_with("http://") || u.starts_with("https://");
        if !url_ok(self.slack.webhook_url.expose()) {
            return bad("sinks.slack.webhook_url", "must be an http(s) URL");
        }
        if !url_ok(&self.pagerduty.url) || self.pagerduty.url.is_empty() {
            return bad("sinks.pagerduty.url", "must be an http(s) URL");
        }
        if !url_ok(&self.alertmanager.url) {
            return bad("sinks.alertmanager.url", "must be an http(s) URL");
        }
        if !url_ok(self.webhook.url.expose()) {
            return bad("sinks.webhook.url", "must be an http(s) URL");
        }
        for name in SinkKind::ALL {
            let timeout = self.timeout_secs(name);
            if !(timeout.is_finite() && (0.1..=600.0).contains(&timeout)) {
                return bad(&format!("sinks.{name}.timeout_secs"), "a number of seconds in [0.1, 600]");
            }
            if self.rate_limit_per_minute(name) == 0 {
                return bad(&format!("sinks.{name}.rate_limit_per_minute"), "at least 1");
            }
        }
        Ok(())
    }

    /// Send one notification to one sink now (no outbox): the outbox and `runtime alert test`
    /// call this.
    pub async fn send(&self, http: &reqwest::Client, sink: SinkKind, n: &Notification) -> Result<(), SinkError> {
        match sink {
            SinkKind::Slack => slack::send(http, &self.slack, n).await,
            SinkKind::Pagerduty => pagerduty::send(http, &self.pagerduty, n).await,
            SinkKind::Alertmanager => alertmanager::send(http, &self.alertmanager, n).await,
            SinkKind::Webhook => webhook::send(http, &self.webhook, n).await,
        }
    }
}

/// Severity → sinks (`[routing]`). Sinks routed but not configured are skipped; an unknown
/// sink name is refused when the config is read, naming the key and the choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// INFO: log only by default.
    pub info: Vec<SinkKind>,
    /// LOW.
    pub low: Vec<SinkKind>,
    /// MEDIUM.
    pub medium: Vec<SinkKind>,
    /// HIGH.
    pub high: Vec<SinkKind>,
    /// CRITICAL.
    pub critical: Vec<SinkKind>,
}

impl Default for RoutingConfig {
    /// The reference README's table (INFO → log only; LOW, MEDIUM → Slack; HIGH, CRITICAL →
    /// Slack + PagerDuty), with Alertmanager and the webhook receiving LOW and above when configured.
    fn default() -> Self {
        use SinkKind::*;
        Self {
            info: vec![],
            low: vec![Slack, Alertmanager, Webhook],
            medium: vec![Slack, Alertmanager, Webhook],
            high: vec![Slack, Pagerduty, Alertmanager, Webhook],
            critical: vec![Slack, Pagerduty, Alertmanager, Webhook],
        }
    }
}

impl RoutingConfig {
    /// Sinks of a severity as configured.
    pub fn for_severity(&self, s: Severity) -> &[SinkKind] {
        match s {
            Severity::Info => &self.info,
            Severity::Low => &self.low,
            Severity::Medium => &self.medium,
            Severity::High => &self.high,
            Severity::Critical => &self.critical,
        }
    }
}

/// Routes a severity to the configured sinks of [`RoutingConfig`].
#[derive(Debug, Clone)]
pub struct AlertRouter {
    table: BTreeMap<Severity, Vec<SinkKind>>,
}

impl AlertRouter {
    /// Keep only the sinks in `configured`.
    pub fn new(routing: RoutingConfig, configured: &[SinkKind]) -> Self {
        let mut table = BTreeMap::new();
        for s in [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical] {
            let sinks: Vec<SinkKind> =
                SinkKind::ALL.into_iter().filter(|n| configured.contains(n) && routing.for_severity(s).contains(n)).collect();
            table.insert(s, sinks);
        }
        Self { table }
    }

    /// The sinks of a severity (empty: log only).
    pub fn route(&self, s: Severity) -> &[SinkKind] {
        self.table.get(&s).map_or(&[], Vec::as_slice)
    }
}

/// Errors of sinks.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Bad configuration.
    #[error("invalid sink setting `{key}`: {reason}")]
    Config {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Delivery failed. `retryable`: transport errors, timeouts, 408, 429, 5xx.
    #[error("{sink}: {message}")]
    Delivery {
        /// The sink.
        sink: &'static str,
        /// What happened (never the URL or key).
        message: String,
        /// Worth retrying.
        retryable: bool,
        /// How long the server asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
}

impl SinkError {
    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, SinkError::Delivery { retryable: true, .. })
    }

    /// The wait the server asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Delivery { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub use crate::retry::parse_retry_after;

/// POST JSON and map the answer: 2xx ok; 408, 429, 5xx and transport errors retryable; other
/// 4xx permanent. Errors never contain the URL (it may be the secret).
pub(crate) async fn post_json(
    http: &reqwest::Client,
    sink: &'static str,
    url: &str,
    body: &serde_json::Value,
    headers: &[(String, String)],
    timeout_secs: f64,
) -> Result<String, SinkError> {
    let mut req = http.post(url).timeout(Duration::from_secs_f64(timeout_secs)).json(body);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| SinkError::Delivery {
        sink,
        message: format!("request failed: {}", crate::sinks::error_chain(&e.without_url())),
        retryable: true,
        retry_after: None,
    })?;
    let status = resp.status();
    let retry_after = crate::retry::retry_after(&resp);
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(text);
    }
    let code = status.as_u16();
    Err(SinkError::Delivery {
        sink,
        message: format!("HTTP {code}: {}", crate::sources::truncate(&text)),
        retryable: crate::retry::retryable_status(code),
        retry_after,
    })
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A test notification for `runtime alert test`.
pub fn test_notification(severity: Severity) -> Notification {
    let now = crate::now_ms();
    let values = vec![
        ("cpu_usage".to_string(), 92.3),
        ("memory_usage".to_string(), 71.0),
        ("network".to_string(), 12.4),
        ("disk_io".to_string(), 310.0),
    ];
    Notification {
        status: Status::Firing,
        alert: Alert {
            server: "aiops-runtime-test".into(),
            timestamp_ms: now,
            severity,
            score: 0.93,
            primary_metric: "cpu_usage".into(),
            primary_value: 92.3,
            values,
            dedup_key: "aiops-runtime-test/cpu_usage".into(),
        },
        resolved_ms: None,
        model: "test".into(),
        test: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routing_is_the_reference_table() {
        let r = AlertRouter::new(RoutingConfig::default(), &SinkKind::ALL);
        assert!(r.route(Severity::Info).is_empty());
        assert_eq!(r.route(Severity::Low), ["slack", "alertmanager", "webhook"]);
        assert_eq!(r.route(Severity::High), ["slack", "pagerduty", "alertmanager", "webhook"]);
        let only_slack = AlertRouter::new(RoutingConfig::default(), &[SinkKind::Slack]);
        assert_eq!(only_slack.route(Severity::Critical), ["slack"]);
    }

    #[test]
    fn unknown_sinks_and_bad_urls_are_named() {
        let e = toml::from_str::<RoutingConfig>("low = [\"slack\"]\nhigh = [\"sms\"]").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("high") && e.contains("sms") && e.contains("pagerduty"), "{e}");
        assert_eq!("sms".parse::<SinkKind>().unwrap_err(), "unknown sink `sms`; use slack, pagerduty, alertmanager, webhook");
        let mut s = SinksConfig::default();
        s.slack.webhook_url = Secret::new("hooks.slack.com/x");
        assert!(s.validate().unwrap_err().to_string().contains("sinks.slack.webhook_url"));
    }

    #[test]
    fn secrets_do_not_print() {
        let mut s = SinksConfig::default();
        s.slack.webhook_url = Secret::new("https://hooks.slack.com/services/T000/B000/XXXXSECRET");
        s.pagerduty.routing_key = Secret::new("R0UTINGKEYSECRET");
        let shown = format!("{s:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
