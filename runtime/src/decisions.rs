//! Alert decisions: from a stream of scores to alerts, the same rules in every mode.
//!
//! Per server: a row is anomalous when its score ≥ `threshold`; `consecutive` anomalous rows
//! in a row (the reference's CONSECUTIVE_ANOMALIES = 2) trigger an alert for the row's
//! *primary issue* (the metric contributing most to the score); the same server + issue does
//! not alert again within `cooldown_secs`; after `resolve_after_rows` normal rows an active
//! alert is resolved. Severity is the higher of the score band and the metric-level rule of
//! the primary metric.
//!
//! ```
//! use runtime::decisions::{AlertDecider, DecisionConfig, Decision, Severity};
//! let mut d = AlertDecider::new(DecisionConfig::default()).unwrap();
//! let metrics = vec!["cpu_usage".to_string(), "memory_usage".to_string()];
//! assert!(d.observe("web-01", 0, 0.95, &metrics, &[92.3, 60.0], &[0.9, 0.1]).is_empty());
//! let out = d.observe("web-01", 10_000, 0.97, &metrics, &[93.0, 60.0], &[0.9, 0.1]);
//! let Decision::Trigger(alert) = &out[0] else { panic!() };
//! assert_eq!((alert.severity, alert.primary_metric.as_str()), (Severity::Critical, "cpu_usage"));
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Alert severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Log only.
    Info,
    /// Notification.
    Low,
    /// Team notification.
    Medium,
    /// On-call alert.
    High,
    /// Immediate escalation.
    Critical,
}

impl Severity {
    /// Upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A metric-level rule: when `metric` ≥ `at_least`, severity is at least `severity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelRule {
    /// Metric name.
    pub metric: String,
    /// Level.
    pub at_least: f64,
    /// Minimum severity at that level.
    pub severity: Severity,
}

/// Decision settings (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    /// Score at or above which a row is anomalous.
    pub threshold: f64,
    /// Anomalous rows in a row before alerting (reference: 2).
    pub consecutive: usize,
    /// Seconds before the same server + issue may alert again.
    pub cooldown_secs: i64,
    /// Normal rows after which an active alert is resolved.
    pub resolve_after_rows: usize,
    /// Score bands `(minimum score, severity)`, highest first.
    pub score_bands: Vec<(f64, Severity)>,
    /// Metric-level rules.
    pub levels: Vec<LevelRule>,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        let level = |metric: &str, at_least: f64, severity| LevelRule { metric: metric.into(), at_least, severity };
        Self {
            threshold: 0.5,
            consecutive: 2,
            cooldown_secs: 900,
            resolve_after_rows: 6,
            score_bands: vec![(0.9, Severity::Critical), (0.75, Severity::High), (0.6, Severity::Medium), (0.5, Severity::Low)],
            levels: vec![
                level("cpu_usage", 95.0, Severity::Critical),
                level("cpu_usage", 90.0, Severity::High),
                level("memory_usage", 95.0, Severity::Critical),
                level("memory_usage", 90.0, Severity::High),
            ],
        }
    }
}

/// Invalid decision settings.
#[derive(Debug, thiserror::Error)]
#[error("invalid decision setting `{field}` = {value}: {reason}")]
pub struct DecisionError {
    /// Field.
    pub field: String,
    /// Value.
    pub value: String,
    /// Why.
    pub reason: String,
}

impl DecisionConfig {
    /// Check every field.
    pub fn validate(&self) -> Result<(), DecisionError> {
        let bad = |f: &str, v: String, r: &str| Err(DecisionError { field: f.into(), value: v, reason: r.into() });
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad("threshold", self.threshold.to_string(), "must be in [0, 1]");
        }
        if self.consecutive == 0 {
            return bad("consecutive", "0".into(), "at least 1");
        }
        if self.cooldown_secs < 0 {
            return bad("cooldown_secs", self.cooldown_secs.to_string(), "must not be negative");
        }
        if self.score_bands.windows(2).any(|w| w[0].0 < w[1].0) {
            return bad("score_bands", format!("{:?}", self.score_bands), "list bands from the highest score down");
        }
        Ok(())
    }

    /// Severity of an anomalous row: max of its score band and the level rules of `metric`.
    pub fn severity(&self, score: f64, metric: &str, value: f64) -> Severity {
        let band = self.score_bands.iter().find(|(s, _)| score >= *s).map_or(Severity::Info, |b| b.1);
        let level =
            self.levels.iter().filter(|r| r.metric == metric && value >= r.at_least).map(|r| r.severity).max().unwrap_or(Severity::Info);
        band.max(level)
    }
}

/// An alert for one server and issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Server.
    pub server: String,
    /// Time of the triggering row.
    pub timestamp_ms: i64,
    /// Severity.
    pub severity: Severity,
    /// Anomaly score of the triggering row.
    pub score: f64,
    /// Metric contributing most (the "primary issue").
    pub primary_metric: String,
    /// Its value.
    pub primary_value: f64,
    /// All metric values of the row.
    pub values: Vec<(String, f64)>,
    /// `server/metric`: one incident per server and issue, for downstream deduplication.
    pub dedup_key: String,
}

/// What the decider concluded for a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A new alert.
    Trigger(Alert),
    /// An active alert is over.
    Resolve {
        /// Server.
        server: String,
        /// Key of the alert resolved.
        dedup_key: String,
        /// Time of the row that resolved it.
        timestamp_ms: i64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ServerState {
    run: usize,
    normal_run: usize,
    last_alert_ms: HashMap<String, i64>,
    active: Vec<String>,
}

/// What decides a decider's next alerts, per server: consecutive-row counters, cooldown clocks
/// and open alerts ([`AlertDecider::state`], [`AlertDecider::restore`]), kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeciderState(HashMap<String, ServerState>);

/// Applies a [`DecisionConfig`] to scored rows, per server.
#[derive(Debug)]
pub struct AlertDecider {
    cfg: DecisionConfig,
    servers: HashMap<String, ServerState>,
}

impl AlertDecider {
    /// Validate and start.
    pub fn new(cfg: DecisionConfig) -> Result<Self, DecisionError> {
        cfg.validate()?;
        Ok(Self { cfg, servers: HashMap::new() })
    }

    /// The settings.
    pub fn config(&self) -> &DecisionConfig {
        &self.cfg
    }

    /// Its state, to carry over a restart.
    pub fn state(&self) -> DeciderState {
        DeciderState(self.servers.clone())
    }

    /// Continue from a [`Self::state`].
    pub fn restore(&mut self, state: DeciderState) {
        self.servers = state.0;
    }

    /// Mark an alert as active (carried over from a previous model or process) so it resolves,
    /// and respects its cooldown, as if this decider had raised it.
    pub fn mark_active(&mut self, server: &str, dedup_key: &str, timestamp_ms: i64) {
        let st = self.servers.entry(server.to_string()).or_default();
        st.last_alert_ms.insert(dedup_key.to_string(), timestamp_ms);
        if !st.active.iter().any(|k| k == dedup_key) {
            st.active.push(dedup_key.to_string());
        }
    }

    /// One scored row: `contributions` per metric (same order as `metrics`; empty → the
    /// first metric is primary).
    pub fn observe(
        &mut self,
        server: &str,
        timestamp_ms: i64,
        score: f64,
        metrics: &[String],
        values: &[f64],
        contributions: &[f64],
    ) -> Vec<Decision> {
        let cfg = &self.cfg;
        let st = self.servers.entry(server.to_string()).or_default();
        let mut out = Vec::new();
        if score >= cfg.threshold {
            st.run += 1;
            st.normal_run = 0;
        } else {
            st.run = 0;
            st.normal_run += 1;
            if st.normal_run >= cfg.resolve_after_rows {
                for key in st.active.drain(..) {
                    out.push(Decision::Resolve { server: server.to_string(), dedup_key: key, timestamp_ms });
                }
            }
            return out;
        }
        if st.run < cfg.consecutive || metrics.is_empty() {
            return out;
        }
        let primary = contributions
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)
            .min(metrics.len() - 1);
        let metric = &metrics[primary];
        let key = format!("{server}/{metric}");
        if st.last_alert_ms.get(&key).is_some_and(|t| timestamp_ms - t < cfg.cooldown_secs * 1000) {
            return out;
        }
        st.last_alert_ms.insert(key.clone(), timestamp_ms);
        if !st.active.contains(&key) {
            st.active.push(key.clone());
        }
        let value = values.get(primary).copied().unwrap_or(f64::NAN);
        out.push(Decision::Trigger(Alert {
            server: server.to_string(),
            timestamp_ms,
            severity: cfg.severity(score, metric, value),
            score,
            primary_metric: metric.clone(),
            primary_value: value,
            values: metrics.iter().cloned().zip(values.iter().copied()).collect(),
            dedup_key: key,
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Vec<String> {
        vec!["cpu_usage".into(), "memory_usage".into()]
    }

    #[test]
    fn consecutive_cooldown_and_resolve() {
        let mut d = AlertDecider::new(DecisionConfig { cooldown_secs: 60, resolve_after_rows: 2, ..Default::default() }).unwrap();
        let c = [0.2, 0.8];
        assert!(d.observe("a", 0, 0.7, &m(), &[50.0, 70.0], &c).is_empty(), "one anomalous row is not enough");
        assert!(d.observe("a", 10_000, 0.1, &m(), &[50.0, 70.0], &c).is_empty(), "the run is broken");
        assert!(d.observe("a", 20_000, 0.7, &m(), &[50.0, 70.0], &c).is_empty());
        let out = d.observe("a", 30_000, 0.7, &m(), &[50.0, 71.0], &c);
        let Decision::Trigger(alert) = &out[0] else { panic!("{out:?}") };
        assert_eq!(
            (alert.primary_metric.as_str(), alert.severity, alert.dedup_key.as_str()),
            ("memory_usage", Severity::Medium, "a/memory_usage")
        );
        assert!(d.observe("a", 40_000, 0.7, &m(), &[50.0, 72.0], &c).is_empty(), "cooldown");
        assert!(d.observe("b", 40_000, 0.7, &m(), &[50.0, 72.0], &c).is_empty(), "servers are independent");
        assert!(d.observe("a", 50_000, 0.1, &m(), &[50.0, 60.0], &c).is_empty());
        let out = d.observe("a", 60_000, 0.1, &m(), &[50.0, 60.0], &c);
        assert_eq!(out, vec![Decision::Resolve { server: "a".into(), dedup_key: "a/memory_usage".into(), timestamp_ms: 60_000 }]);
        assert!(matches!(d.observe("a", 95_000, 0.8, &m(), &[50.0, 60.0], &c)[..], []));
        assert!(
            matches!(d.observe("a", 100_000, 0.8, &m(), &[50.0, 60.0], &c)[..], [Decision::Trigger(_)]),
            "after the cooldown it alerts again"
        );
    }

    #[test]
    fn severity_is_the_higher_of_band_and_level() {
        let cfg = DecisionConfig::default();
        assert_eq!(cfg.severity(0.55, "cpu_usage", 40.0), Severity::Low);
        assert_eq!(cfg.severity(0.55, "cpu_usage", 92.3), Severity::High);
        assert_eq!(cfg.severity(0.95, "network", 10.0), Severity::Critical);
        assert_eq!(cfg.severity(0.3, "x", 0.0), Severity::Info);
    }

    #[test]
    fn bad_settings_are_named() {
        let e = AlertDecider::new(DecisionConfig { consecutive: 0, ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("consecutive"));
        let e =
            DecisionConfig { score_bands: vec![(0.5, Severity::Low), (0.9, Severity::High)], ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("score_bands"));
        let e = toml::from_str::<DecisionConfig>("treshold = 0.5").unwrap_err();
        assert!(e.to_string().contains("treshold"));
    }
}
