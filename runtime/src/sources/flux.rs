//! InfluxDB 2.x / Cloud through Flux (`POST /api/v2/query`), with the `influxdb2` crate.
//! Same data model as the 1.x source: measurement = metric, field `value` (other fields →
//! `{measurement}_{field}`), server from the `server`, `host` or `instance` tag.

use influxdb2::models::Query;
use influxdb2_structmap::value::Value;

use super::SourceError;
use crate::MetricSample;

/// Where and how to reach InfluxDB 2.x.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// Organization.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token. Never logged.
    pub token: String,
}

impl std::fmt::Debug for FluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluxConfig")
            .field("url", &self.url)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn flux_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The Flux query reading `metrics` between `start_ms` (inclusive) and `end_ms` (exclusive).
pub fn metrics_query(bucket: &str, metrics: &[String], start_ms: i64, end_ms: i64) -> String {
    let filter: Vec<String> = metrics.iter().map(|m| format!("r._measurement == {}", flux_string(m))).collect();
    format!(
        "from(bucket: {}) |> range(start: time(v: {}), stop: time(v: {})) |> filter(fn: (r) => {})",
        flux_string(bucket),
        start_ms.saturating_mul(1_000_000),
        end_ms.saturating_mul(1_000_000),
        if filter.is_empty() { "true".to_string() } else { filter.join(" or ") }
    )
}

/// Run a Flux query and turn its records into samples (records without a numeric `_value` or
/// a `_time` are skipped).
pub async fn query_samples(cfg: &FluxConfig, flux: &str) -> Result<Vec<MetricSample>, SourceError> {
    let client = influxdb2::Client::new(cfg.url.clone(), cfg.org.clone(), cfg.token.clone());
    let records = client.query_raw(Some(Query::new(flux.to_string()))).await.map_err(|e| SourceError::Status {
        service: "influxdb",
        url: cfg.url.clone(),
        status: 0,
        // The crate's error text carries the server's message, never the token.
        body: super::truncate(&e.to_string()),
    })?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let text = |k: &str| match r.values.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let value = match r.values.get("_value") {
            Some(Value::Double(v)) => v.0,
            Some(Value::Long(v)) => *v as f64,
            Some(Value::UnsignedLong(v)) => *v as f64,
            _ => continue,
        };
        let Some(Value::TimeRFC(t)) = r.values.get("_time") else {
            continue;
        };
        let measurement = text("_measurement").unwrap_or_else(|| "value".into());
        let metric = match text("_field") {
            Some(f) if f != "value" => format!("{measurement}_{f}"),
            _ => measurement,
        };
        let server = text("server").or_else(|| text("host")).or_else(|| text("instance")).unwrap_or_else(|| "unknown".into());
        out.push(MetricSample { timestamp_ms: t.timestamp_millis(), server, metric, value });
    }
    Ok(out)
}

/// Read `metrics` from the configured bucket.
pub async fn read_samples(cfg: &FluxConfig, metrics: &[String], start_ms: i64, end_ms: i64) -> Result<Vec<MetricSample>, SourceError> {
    query_samples(cfg, &metrics_query(&cfg.bucket, metrics, start_ms, end_ms)).await
}
