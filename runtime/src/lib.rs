//! # runtime
//!
//! The slim production half of the AIOps workbench. It owns what production needs and what
//! training must share with it:
//!
//! - [`features`]: the one [`features::FeatureSpec`] and its streaming twin;
//! - [`line_protocol`]: InfluxDB line protocol, encoded and strictly parsed;
//! - [`csv_file`]: the one CSV reader of file inputs (errors name file, line and field);
//! - [`sources`]: InfluxDB 1.x (InfluxQL over HTTP, writes with batching and retry) and Prometheus;
//! - [`collector`]: this host's metrics from `/proc`, and the seeded server simulator;
//! - [`registry`]: model bundles (manifest + files, checksummed) in a local or S3 registry;
//! - [`decisions`]: threshold, consecutive rows, cooldown, severity and primary issue;
//! - [`sinks`]: Slack, PagerDuty, Alertmanager, webhook, severity routing and the durable outbox;
//! - [`monitor`]: the scheduled scoring loop behind `runtime monitor`, `once`, `replay` and Lambda.
//!
//! It does not depend on polars or burn-autodiff; the `workbench` crate builds on it.
//!
//! ```
//! use runtime::MetricSample;
//! let s = MetricSample::new(1_700_000_000_000, "web-server-01", "cpu_usage", 45.2);
//! assert_eq!(runtime::line_protocol::encode(&s), "cpu_usage,server=web-server-01 value=45.2 1700000000000");
//! ```

pub mod collector;
pub mod csv_file;
pub mod decisions;
pub mod features;
pub mod forecast;
pub mod lambda;
pub mod line_protocol;
pub mod models;
pub mod monitor;
pub mod predict;
pub mod registry;
pub mod retry;
pub mod sinks;
pub mod sources;

/// Base metrics of the reference deployment, in the default feature order:
/// `cpu_usage` (%), `memory_usage` (%), `network` (MB/s), `disk_io` (ops/s).
pub const BASE_METRICS: [&str; 4] = ["cpu_usage", "memory_usage", "network", "disk_io"];

/// One observation: a metric of a server at a time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricSample {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    /// Server / host / instance name.
    pub server: String,
    /// Metric name (e.g. `cpu_usage`).
    pub metric: String,
    /// The value.
    pub value: f64,
}

impl MetricSample {
    /// Build a sample.
    pub fn new(timestamp_ms: i64, server: impl Into<String>, metric: impl Into<String>, value: f64) -> Self {
        Self { timestamp_ms, server: server.into(), metric: metric.into(), value }
    }
}

/// An error and its causes on one line, as the binaries print it (never a backtrace); a cause
/// the message above it already quotes (most errors here name their source) is not repeated.
///
/// ```
/// let e = std::io::Error::other("disk full");
/// assert_eq!(runtime::error_line(&e), "disk full");
/// ```
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    line
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Format epoch milliseconds as RFC 3339 UTC with second precision (`2024-01-15T10:27:45Z`).
pub fn format_ts(timestamp_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(timestamp_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parse a written time (`2024-01-15T10:27:45Z`, `2024-01-15 10:27:45`, any offset or fraction) into
/// epoch milliseconds: [`parse_timestamp_ms`] without the bare epoch numbers (a command-line time
/// such as `--from` must say what it means).
pub fn parse_ts(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    parse_timestamp_ms(t)
}

/// Parse a timestamp cell of a file into epoch milliseconds: `YYYY-MM-DD HH:MM:SS[.fff…]` or
/// with `T`, then optionally `Z` or an offset (`+02:00`, `-0530`, `+02`; a form without one is
/// UTC), as RFC 3339 and pandas write them; or integer epoch by magnitude (≤ 10 digits: seconds,
/// ≤ 13: milliseconds, ≤ 16: microseconds, else nanoseconds). Impossible dates are refused.
/// Used by the workbench's CSV reader and the runtime's replay source alike (chrono parses).
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = t.parse().ok()?;
        return Some(match t.len() {
            0..=10 => v.checked_mul(1000)?,
            11..=13 => v,
            14..=16 => v / 1000,
            _ => v / 1_000_000,
        });
    }
    // One layout for chrono: `T` between date and time, `Z` as `+00:00`.
    let mut s = t.to_string();
    if s.get(10..11).is_some_and(|c| c == " " || c == "t") {
        s.replace_range(10..11, "T");
    }
    if let Some(utc) = s.strip_suffix(['Z', 'z']) {
        s = format!("{utc}+00:00");
    }
    if let Ok(d) = chrono::DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Some(d.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|d| d.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_round_trip() {
        let ms = super::parse_ts("2014-04-01 00:05:00").unwrap();
        assert_eq!(ms, 1_396_310_700_000);
        assert_eq!(super::format_ts(ms), "2014-04-01T00:05:00Z");
        assert_eq!(super::parse_ts("2014-04-01T00:05:00Z"), Some(ms));
        assert_eq!(super::parse_ts("yesterday"), None);
    }

    #[test]
    fn impossible_dates_are_refused_not_rolled_over() {
        for t in ["2024-02-31 00:00:00", "2023-02-29 12:00:00", "2024-04-31T00:00:00Z", "2024-13-01 00:00:00", "2024-02-30T00:00:00.5Z"] {
            assert_eq!(super::parse_timestamp_ms(t), None, "{t}");
            assert_eq!(super::parse_ts(t), None, "{t}");
        }
        assert_eq!(super::parse_timestamp_ms("2024-02-29 00:00:00"), super::parse_ts("2024-02-29T00:00:00Z"));
        assert!(super::parse_timestamp_ms("2000-02-29 00:00:00").is_some() && super::parse_timestamp_ms("1900-02-29 00:00:00").is_none());
    }

    #[test]
    fn offsets_fractions_and_epoch_units_are_read() {
        let utc = super::parse_timestamp_ms("2024-01-15 08:00:00").unwrap();
        assert_eq!(super::parse_timestamp_ms("2024-01-15T10:00:00+02:00"), Some(utc));
        assert_eq!(super::parse_timestamp_ms("2024-01-15T03:30:00-0430"), Some(utc));
        assert_eq!(super::parse_timestamp_ms("2024-01-15 09:00:00+01"), Some(utc));
        assert_eq!(super::parse_timestamp_ms("2024-01-15 08:00:45.123+00:00"), Some(utc + 45_123), "pandas' form");
        assert_eq!(super::parse_timestamp_ms("2024-01-15T08:00:00.5Z"), Some(utc + 500));
        let s = utc / 1000;
        for (text, want) in
            [(s.to_string(), utc), (utc.to_string(), utc), ((utc * 1000).to_string(), utc), ((utc * 1_000_000).to_string(), utc)]
        {
            assert_eq!(super::parse_timestamp_ms(&text), Some(want), "{text}");
        }
        assert_eq!(super::parse_timestamp_ms("2024-01-15 10:00:00 +0200"), Some(utc), "git's form");
        assert_eq!(super::parse_timestamp_ms("2024-01-15T08:00:00.123456789Z"), Some(utc + 123), "nanoseconds");
        for bad in ["2024-01-15T10:00:00+25:00", "2024-1-15 10:00:00", "2024-01-15T10:00:00.", "2024-01-15T10:00:00+2", "2024-01-15T08:00Z"]
        {
            assert_eq!(super::parse_timestamp_ms(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_instant_in_any_written_form_reads_back(
            ms in -2_000_000_000_000i64..8_000_000_000_000,
            offset_min in -14 * 60i32..=14 * 60,
            form in 0usize..6,
        ) {
            let utc = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            let local = utc.with_timezone(&chrono::FixedOffset::east_opt(offset_min * 60).unwrap());
            let (text, want) = match form {
                0 => (local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(), ms),
                1 => (local.format("%Y-%m-%d %H:%M:%S%.6f%z").to_string(), ms),
                2 => (utc.format("%Y-%m-%d %H:%M:%S").to_string(), ms.div_euclid(1000) * 1000),
                3 => (utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(), ms),
                4 => (ms.to_string(), ms),
                _ => ((i128::from(ms) * 1_000_000).to_string(), ms),
            };
            // Epoch forms only where the magnitude rule applies (positive, 11–13 / 17–19 digits).
            let epoch_ok = match form { 4 => (10_000_000_000..10_000_000_000_000).contains(&ms), 5 => (100_000_000_000..9_000_000_000_000).contains(&ms), _ => true };
            if epoch_ok {
                proptest::prop_assert_eq!(super::parse_timestamp_ms(&text), Some(want), "{}", text);
            }
        }

        #[test]
        fn arbitrary_text_is_a_timestamp_or_none(text in "\\PC{0,40}") {
            let _ = super::parse_timestamp_ms(&text);
        }
    }
}
