//! # runtime
//!
//! The slim production half of the AIOps workbench. It owns what production needs and what
//! training must share with it:
//!
//! - [`features`]: the one [`features::FeatureSpec`] and its streaming twin;
//! - [`line_protocol`]: InfluxDB line protocol, encoded and strictly parsed;
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

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Format epoch milliseconds as RFC 3339 UTC with second precision (`2024-01-15T10:27:45Z`).
pub fn format_ts(timestamp_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(timestamp_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parse RFC 3339 (`2024-01-15T10:27:45Z`) or `YYYY-MM-DD HH:MM:SS` (UTC) into epoch milliseconds.
pub fn parse_ts(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = if t.len() == 19 && t.as_bytes()[10] == b' ' { format!("{}T{}Z", &t[..10], &t[11..]) } else { t.to_string() };
    let st = humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok()?;
    Some(st.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// Parse a timestamp cell of a file into epoch milliseconds: `YYYY-MM-DD HH:MM:SS[.fff…]` or
/// with `T`, then optionally `Z` or an offset (`+02:00`, `-0530`, `+02`; a form without one is
/// UTC), as RFC 3339 and pandas write them; or integer epoch by magnitude (≤ 10 digits: seconds,
/// ≤ 13: milliseconds, ≤ 16: microseconds, else nanoseconds). Impossible dates are refused.
/// Used by the workbench's CSV reader and the runtime's replay source alike.
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
    let b = t.as_bytes();
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && matches!(b[10], b' ' | b'T' | b't') && b[13] == b':' && b[16] == b':' {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = std::str::from_utf8(&b[r]).ok()?;
            if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
        };
        let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
        // An impossible date (2024-02-31, 2023-02-29) is refused, never rolled into the next month.
        if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let mut rest = t.get(19..)?;
        let mut ms = 0;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let padded: String = frac[..digits].chars().chain(std::iter::repeat('0')).take(3).collect();
            ms = padded.parse().ok()?;
            rest = &frac[digits..];
        }
        let offset_secs = match rest {
            "" | "Z" | "z" => 0,
            _ => {
                let (sign, hm) = match rest.as_bytes()[0] {
                    b'+' => (1, &rest[1..]),
                    b'-' => (-1, &rest[1..]),
                    _ => return None,
                };
                let hm = hm.replace(':', "");
                if !(hm.len() == 2 || hm.len() == 4) || !hm.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let (oh, om): (i64, i64) = (hm[..2].parse().ok()?, if hm.len() == 4 { hm[2..].parse().ok()? } else { 0 });
                if oh > 23 || om > 59 {
                    return None;
                }
                sign * (oh * 3600 + om * 60)
            }
        };
        return Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + ms);
    }
    parse_ts(t)
}

/// Days in month `mo` (1–12) of year `y`, proleptic Gregorian.
fn days_in_month(y: i64, mo: i64) -> i64 {
    match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
        for bad in ["2024-01-15T10:00:00+25:00", "2024-01-15T10:00:00 +02:00", "2024-01-15T10:00:00.", "2024-01-15T10:00:00+2"] {
            assert_eq!(super::parse_timestamp_ms(bad), None, "{bad}");
        }
    }
}
