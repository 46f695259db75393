//! InfluxDB 1.x HTTP API: InfluxQL queries and line protocol writes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runtime::sources::SourceError> {
//! use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
//! let client = InfluxClient::new(InfluxConfig::local("metrics"));
//! client.create_database().await?;
//! let samples = client.read_samples(&["cpu_usage".into()], 0, i64::MAX / 2).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::{SourceError, truncate};
use crate::MetricSample;

/// Where and how to reach InfluxDB. Fields also come from `INFLUXDB_*` variables in the binaries.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// Database name.
    pub database: String,
    /// Retention policy (empty: the database default).
    pub retention_policy: String,
    /// 1.x user name (empty: no auth).
    pub username: String,
    /// 1.x password. Never logged.
    pub password: String,
    /// Token for `Authorization: Token …` (1.8+ / 2.x compatibility API). Never logged.
    pub token: String,
    /// Lines per write request.
    pub batch_size: usize,
    /// Retries of a failed write or query (connection errors, 5xx, 429).
    pub max_retries: u32,
    /// First retry delay in milliseconds; doubles each retry.
    pub retry_backoff_ms: u64,
    /// Per-request timeout in seconds.
    pub timeout_secs: u64,
}

impl std::fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl Default for InfluxConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8086".into(),
            database: "metrics".into(),
            retention_policy: String::new(),
            username: String::new(),
            password: String::new(),
            token: String::new(),
            batch_size: 5000,
            max_retries: 5,
            retry_backoff_ms: 200,
            timeout_secs: 30,
        }
    }
}

impl InfluxConfig {
    /// Local defaults with the given database.
    pub fn local(database: &str) -> Self {
        Self { database: database.into(), ..Self::default() }
    }

    /// Defaults overridden by `INFLUXDB_URL`, `INFLUXDB_DATABASE` (or `INFLUXDB_BUCKET`),
    /// `INFLUXDB_USERNAME`, `INFLUXDB_PASSWORD`, `INFLUXDB_TOKEN`.
    pub fn from_env() -> Self {
        let mut c = Self::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("INFLUXDB_URL") {
            c.url = v;
        }
        if let Some(v) = var("INFLUXDB_DATABASE").or_else(|| var("INFLUXDB_BUCKET")) {
            c.database = v;
        }
        if let Some(v) = var("INFLUXDB_USERNAME") {
            c.username = v;
        }
        if let Some(v) = var("INFLUXDB_PASSWORD") {
            c.password = v;
        }
        if let Some(v) = var("INFLUXDB_TOKEN") {
            c.token = v;
        }
        c
    }
}

/// Counts from a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Samples written.
    pub points: usize,
    /// HTTP requests that succeeded.
    pub batches: usize,
    /// Requests retried after a transient failure.
    pub retries: usize,
}

/// An InfluxDB 1.x HTTP client.
#[derive(Debug, Clone)]
pub struct InfluxClient {
    cfg: InfluxConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Series {
    name: String,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    columns: Vec<String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// Quote an InfluxQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

impl InfluxClient {
    /// A client for the configured server.
    pub fn new(cfg: InfluxConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .build()
            .expect("reqwest client with rustls builds");
        Self { cfg, http }
    }

    /// The configuration.
    pub fn config(&self) -> &InfluxConfig {
        &self.cfg
    }

    fn transport(&self, e: reqwest::Error) -> SourceError {
        SourceError::Transport { service: "influxdb", url: self.cfg.url.clone(), message: e.without_url().to_string() }
    }

    /// The shared retry policy with this client's `max_retries` and `retry_backoff_ms` (cap 30 s).
    fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            max_retries: self.cfg.max_retries,
            base: Duration::from_millis(self.cfg.retry_backoff_ms),
            cap: Duration::from_secs(30),
        }
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut req = req;
        if !self.cfg.username.is_empty() {
            req = req.query(&[("u", self.cfg.username.as_str()), ("p", self.cfg.password.as_str())]);
        }
        if !self.cfg.token.is_empty() {
            req = req.header("Authorization", format!("Token {}", self.cfg.token));
        }
        req
    }

    /// `GET /ping`: true on 204.
    pub async fn ping(&self) -> Result<(), SourceError> {
        let resp = self.http.get(format!("{}/ping", self.cfg.url)).send().await.map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(SourceError::Status { service: "influxdb", url: self.cfg.url.clone(), status: resp.status().as_u16(), body: String::new() })
        }
    }

    /// Run an InfluxQL statement through `POST /query` (millisecond epochs, chunked).
    async fn query_raw(&self, q: &str, database: bool) -> Result<Vec<Series>, SourceError> {
        let mut params = vec![("q", q), ("epoch", "ms"), ("chunked", "true"), ("chunk_size", "10000")];
        if database {
            params.push(("db", self.cfg.database.as_str()));
            if !self.cfg.retention_policy.is_empty() {
                params.push(("rp", self.cfg.retention_policy.as_str()));
            }
        }
        let (result, _) = self.retry_policy().send(|| self.auth(self.http.post(format!("{}/query", self.cfg.url)).form(&params))).await;
        let resp = result.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(SourceError::Status {
                service: "influxdb",
                url: self.cfg.url.clone(),
                status: status.as_u16(),
                body: truncate(&String::from_utf8_lossy(&body)),
            });
        }
        // Chunked responses are a sequence of JSON documents.
        let mut series = Vec::new();
        for doc in serde_json::Deserializer::from_slice(&body).into_iter::<QueryResponse>() {
            let doc = doc.map_err(|e| SourceError::Decode { service: "influxdb", url: self.cfg.url.clone(), message: e.to_string() })?;
            if let Some(e) = doc.error {
                return Err(SourceError::Status { service: "influxdb", url: self.cfg.url.clone(), status: 200, body: e });
            }
            for r in doc.results {
                if let Some(e) = r.error {
                    return Err(SourceError::Status { service: "influxdb", url: self.cfg.url.clone(), status: 200, body: e });
                }
                series.extend(r.series);
            }
        }
        Ok(series)
    }

    /// `CREATE DATABASE` (idempotent).
    pub async fn create_database(&self) -> Result<(), SourceError> {
        self.query_raw(&format!("CREATE DATABASE {}", quote_ident(&self.cfg.database)), false).await.map(|_| ())
    }

    /// `DROP DATABASE` (for tests and resets).
    pub async fn drop_database(&self) -> Result<(), SourceError> {
        self.query_raw(&format!("DROP DATABASE {}", quote_ident(&self.cfg.database)), false).await.map(|_| ())
    }

    /// Read the `value` field of the given measurements between `start_ms` (inclusive) and
    /// `end_ms` (exclusive), one sample per point, grouped by the `server` tag.
    pub async fn read_samples(&self, metrics: &[String], start_ms: i64, end_ms: i64) -> Result<Vec<MetricSample>, SourceError> {
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        // InfluxDB stores nanoseconds in an i64 (years 1677..2262): clamp the range to it.
        const LIMIT_MS: i64 = 9_000_000_000_000;
        let (start_ms, end_ms) = (start_ms.clamp(-LIMIT_MS, LIMIT_MS), end_ms.clamp(-LIMIT_MS, LIMIT_MS));
        let from: Vec<String> = metrics.iter().map(|m| quote_ident(m)).collect();
        let q = format!("SELECT \"value\" FROM {} WHERE time >= {start_ms}ms AND time < {end_ms}ms GROUP BY \"server\"", from.join(","));
        self.samples_from(self.query_raw(&q, true).await?)
    }

    /// Run any InfluxQL `SELECT` and turn every numeric column into samples (metric =
    /// measurement for `value`, `{measurement}_{column}` otherwise; server from the `server`,
    /// `host` or `instance` tag).
    pub async fn query_samples(&self, influxql: &str) -> Result<Vec<MetricSample>, SourceError> {
        self.samples_from(self.query_raw(influxql, true).await?)
    }

    fn samples_from(&self, series: Vec<Series>) -> Result<Vec<MetricSample>, SourceError> {
        let mut out = Vec::new();
        for s in series {
            let server = ["server", "host", "instance"].iter().find_map(|k| s.tags.get(*k).cloned()).unwrap_or_else(|| "unknown".into());
            let time_col = s.columns.iter().position(|c| c == "time").ok_or_else(|| SourceError::Decode {
                service: "influxdb",
                url: self.cfg.url.clone(),
                message: format!("series {} has no time column", s.name),
            })?;
            for (ci, col) in s.columns.iter().enumerate() {
                if ci == time_col {
                    continue;
                }
                let metric = if col == "value" { s.name.clone() } else { format!("{}_{col}", s.name) };
                for row in &s.values {
                    let (Some(t), Some(v)) = (row.get(time_col).and_then(|t| t.as_i64()), row.get(ci).and_then(|v| v.as_f64())) else {
                        continue; // null cells (fill(none) gaps) are not samples
                    };
                    out.push(MetricSample { timestamp_ms: t, server: server.clone(), metric: metric.clone(), value: v });
                }
            }
        }
        Ok(out)
    }

    /// Write samples as line protocol in batches of `batch_size`, retrying transient failures
    /// with exponential backoff. A 4xx answer (bad data) fails at once with InfluxDB's message.
    pub async fn write(&self, samples: &[MetricSample]) -> Result<WriteReport, SourceError> {
        let mut report = WriteReport::default();
        let mut body = String::new();
        for batch in samples.chunks(self.cfg.batch_size.max(1)) {
            body.clear();
            for s in batch {
                crate::line_protocol::encode_into(s, &mut body);
                body.push('\n');
            }
            report.retries += self.write_lines(&body).await?;
            report.batches += 1;
            report.points += batch.len();
        }
        Ok(report)
    }

    /// Write a body of line protocol (millisecond precision); returns the retry count.
    pub async fn write_lines(&self, body: &str) -> Result<usize, SourceError> {
        let mut params = vec![("db", self.cfg.database.as_str()), ("precision", "ms")];
        if !self.cfg.retention_policy.is_empty() {
            params.push(("rp", self.cfg.retention_policy.as_str()));
        }
        let (result, attempt) = self
            .retry_policy()
            .send(|| self.auth(self.http.post(format!("{}/write", self.cfg.url)).query(&params).body(body.to_string())))
            .await;
        let resp = result.map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(attempt as usize);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(SourceError::Status { service: "influxdb", url: self.cfg.url.clone(), status, body: truncate(&text) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let cfg = InfluxConfig { password: "hunter2".into(), token: "tok-123".into(), ..InfluxConfig::default() };
        let text = format!("{cfg:?}");
        assert!(!text.contains("hunter2") && !text.contains("tok-123"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\\\"b\"");
    }
}
