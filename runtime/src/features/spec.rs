//! The feature specification: one definition of every feature column, shared by the batch
//! (workbench, polars) and streaming (runtime) computations.

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::FeatureError;

/// Which features to compute from a set of base metrics.
///
/// Windows and lags count *rows* of one server's series (after resampling to a fixed interval),
/// not seconds. Every feature at row `t` uses only rows `<= t` of the same server (and segment):
/// the features are causal.
///
/// Column order (see [`FeatureSpec::column_names`]): for each metric in `metrics` order,
/// `{m}`, then `{m}_roll_mean_{w}`, `{m}_roll_std_{w}` for each window (and `_roll_min_`/`_roll_max_`
/// when enabled), then `{m}_lag_{k}` for each lag, then `{m}_roc`; then the temporal columns
/// `hour`, `day_of_week`, `is_business_hours`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureSpec {
    /// Base metric names, in column order. Any names work (SMD has 38 unnamed columns).
    pub metrics: Vec<String>,
    /// Rolling windows in rows. Mean and sample standard deviation (ddof = 1) over the last
    /// `min(w, rows seen)` rows; the std of a single row is 0.
    pub rolling_windows: Vec<usize>,
    /// Also emit rolling min and max for each window.
    pub rolling_min_max: bool,
    /// Lags in rows. Before `k` rows have been seen, the lag is the segment's first value.
    pub lags: Vec<usize>,
    /// Emit `{m}_roc`, the change from the previous row (`v[t] - v[t-1]`, 0 on a segment's first row).
    pub rate_of_change: bool,
    /// Emit `hour` (0..23, UTC), `day_of_week` (0 = Monday .. 6) and `is_business_hours`.
    pub temporal: bool,
    /// Business hours: first hour (inclusive, UTC).
    pub business_hours_start: u32,
    /// Business hours: end hour (exclusive, UTC). Monday to Friday only.
    pub business_hours_end: u32,
    /// Restart every window when consecutive rows of a server are more than this many seconds
    /// apart (a reboot, a collector outage): no window then mixes rows across the gap.
    /// `None` never restarts.
    pub reset_after_gap_secs: Option<i64>,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        Self {
            metrics: crate::BASE_METRICS.iter().map(|s| s.to_string()).collect(),
            rolling_windows: vec![3, 5, 10],
            rolling_min_max: false,
            lags: vec![1, 2, 3],
            rate_of_change: true,
            temporal: true,
            business_hours_start: 9,
            business_hours_end: 18,
            reset_after_gap_secs: None,
        }
    }
}

/// What one feature column computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// The metric's value itself.
    Value,
    /// Rolling mean over a window of rows.
    RollMean(usize),
    /// Rolling sample standard deviation over a window of rows.
    RollStd(usize),
    /// Rolling minimum over a window of rows.
    RollMin(usize),
    /// Rolling maximum over a window of rows.
    RollMax(usize),
    /// The value `k` rows earlier.
    Lag(usize),
    /// `v[t] - v[t-1]`.
    RateOfChange,
    /// Hour of day, UTC.
    Hour,
    /// Day of week, 0 = Monday.
    DayOfWeek,
    /// 1 inside business hours on a weekday, else 0.
    IsBusinessHours,
}

/// One output column: its name, the metric it derives from (index into `metrics`) and its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    /// Column name, e.g. `cpu_usage_roll_mean_5`.
    pub name: String,
    /// Index of the base metric, `None` for temporal columns.
    pub metric: Option<usize>,
    /// What the column computes.
    pub kind: FeatureKind,
}

impl FeatureSpec {
    /// A spec with the default feature family over the given metric names.
    pub fn for_metrics<S: AsRef<str>>(metrics: &[S]) -> Self {
        Self { metrics: metrics.iter().map(|m| m.as_ref().to_string()).collect(), ..Self::default() }
    }

    /// Parse and validate a TOML spec. Errors name the file and the bad key.
    pub fn from_toml_file(path: &Path) -> Result<Self, FeatureError> {
        let text = std::fs::read_to_string(path).map_err(|e| FeatureError::Io { path: path.display().to_string(), source: e })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parse and validate a TOML spec from a string; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, FeatureError> {
        let spec: FeatureSpec =
            toml::from_str(text).map_err(|e| FeatureError::Toml { origin: origin.to_string(), message: e.to_string() })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Check every field; the error names the field and the value.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |field: &str, value: String, why: &str| {
            Err(FeatureError::InvalidSpec { field: field.to_string(), value, reason: why.to_string() })
        };
        if self.metrics.is_empty() {
            return bad("metrics", "[]".into(), "at least one metric is required");
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.metrics {
            if m.is_empty() || !seen.insert(m) {
                return bad("metrics", format!("{m:?}"), "metric names must be non-empty and unique");
            }
        }
        if let Some(w) = self.rolling_windows.iter().find(|w| **w < 2) {
            return bad("rolling_windows", w.to_string(), "windows must be at least 2 rows");
        }
        if let Some(k) = self.lags.iter().find(|k| **k == 0) {
            return bad("lags", k.to_string(), "lags must be at least 1 row");
        }
        if self.business_hours_start >= self.business_hours_end || self.business_hours_end > 24 {
            return bad(
                "business_hours_end",
                format!("{}..{}", self.business_hours_start, self.business_hours_end),
                "need 0 <= start < end <= 24",
            );
        }
        if let Some(g) = self.reset_after_gap_secs
            && g <= 0
        {
            return bad("reset_after_gap_secs", g.to_string(), "must be positive");
        }
        Ok(())
    }

    /// Every output column in order.
    pub fn columns(&self) -> Vec<FeatureColumn> {
        let mut cols = Vec::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let mut push = |name: String, kind| cols.push(FeatureColumn { name, metric: Some(i), kind });
            push(m.clone(), FeatureKind::Value);
            for &w in &self.rolling_windows {
                push(format!("{m}_roll_mean_{w}"), FeatureKind::RollMean(w));
                push(format!("{m}_roll_std_{w}"), FeatureKind::RollStd(w));
                if self.rolling_min_max {
                    push(format!("{m}_roll_min_{w}"), FeatureKind::RollMin(w));
                    push(format!("{m}_roll_max_{w}"), FeatureKind::RollMax(w));
                }
            }
            for &k in &self.lags {
                push(format!("{m}_lag_{k}"), FeatureKind::Lag(k));
            }
            if self.rate_of_change {
                push(format!("{m}_roc"), FeatureKind::RateOfChange);
            }
        }
        if self.temporal {
            for (name, kind) in
                [("hour", FeatureKind::Hour), ("day_of_week", FeatureKind::DayOfWeek), ("is_business_hours", FeatureKind::IsBusinessHours)]
            {
                cols.push(FeatureColumn { name: name.to_string(), metric: None, kind });
            }
        }
        cols
    }

    /// Output column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns().into_iter().map(|c| c.name).collect()
    }

    /// Number of rows of history the streaming twin must keep per server.
    pub fn history_rows(&self) -> usize {
        let w = self.rolling_windows.iter().copied().max().unwrap_or(1);
        let l = self.lags.iter().copied().max().map_or(1, |k| k + 1);
        w.max(l).max(2)
    }
}

/// Temporal features of a UTC timestamp in milliseconds: (hour, day_of_week with Monday = 0).
pub fn hour_and_weekday(timestamp_ms: i64) -> (u32, u32) {
    let secs = timestamp_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = (secs.rem_euclid(86_400) / 3600) as u32;
    // 1970-01-01 was a Thursday (Monday = 0 -> Thursday = 3).
    let weekday = (days + 3).rem_euclid(7) as u32;
    (hour, weekday)
}

/// 1.0 when the timestamp falls inside business hours on Monday..Friday, else 0.0.
pub fn is_business_hours(spec: &FeatureSpec, hour: u32, weekday: u32) -> f64 {
    if weekday < 5 && hour >= spec.business_hours_start && hour < spec.business_hours_end { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_has_47_columns_in_documented_order() {
        let spec = FeatureSpec::default();
        let names = spec.column_names();
        assert_eq!(names.len(), 47);
        assert_eq!(&names[..4], &["cpu_usage", "cpu_usage_roll_mean_3", "cpu_usage_roll_std_3", "cpu_usage_roll_mean_5"]);
        assert_eq!(names[10], "cpu_usage_roc");
        assert_eq!(names[11], "memory_usage");
        assert_eq!(&names[44..], &["hour", "day_of_week", "is_business_hours"]);
    }

    #[test]
    fn toml_errors_name_the_field() {
        let err = FeatureSpec::from_toml_str("rolling_windows = [1, 5]", "spec.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("rolling_windows") && msg.contains('1'), "{msg}");
        let err = FeatureSpec::from_toml_str("rolling_windowz = [3]", "spec.toml").unwrap_err();
        assert!(err.to_string().contains("rolling_windowz") && err.to_string().contains("spec.toml"));
    }

    #[test]
    fn weekday_and_hour_of_known_dates() {
        // 2014-04-01 00:00:00 UTC was a Tuesday.
        assert_eq!(hour_and_weekday(1_396_310_400_000), (0, 1));
        // 1969-12-31 23:00 UTC was a Wednesday (negative timestamps).
        assert_eq!(hour_and_weekday(-3_600_000), (23, 2));
    }
}
