//! Prometheus HTTP API `query_range` reads.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runtime::sources::SourceError> {
//! use runtime::sources::prometheus::PrometheusClient;
//! let prom = PrometheusClient::new("http://127.0.0.1:9090");
//! let now = runtime::now_ms();
//! let series = prom.query_range("up", now - 60_000, now, 5.0).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{SourceError, truncate};
use crate::MetricSample;

/// A Prometheus server.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    url: String,
    http: reqwest::Client,
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels (including `__name__` when the query keeps it).
    pub labels: BTreeMap<String, String>,
    /// `(timestamp_ms, value)` pairs in time order.
    pub points: Vec<(i64, f64)>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ResultSeries>,
}

#[derive(Deserialize)]
struct ResultSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

impl PrometheusClient {
    /// A client for the server at `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("reqwest client builds");
        Self { url: url.trim_end_matches('/').to_string(), http }
    }

    /// `GET /-/ready`.
    pub async fn ready(&self) -> Result<(), SourceError> {
        let r = self.http.get(format!("{}/-/ready", self.url)).send().await.map_err(|e| self.transport(e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(SourceError::Status { service: "prometheus", url: self.url.clone(), status: r.status().as_u16(), body: String::new() })
        }
    }

    fn transport(&self, e: reqwest::Error) -> SourceError {
        SourceError::Transport { service: "prometheus", url: self.url.clone(), message: e.without_url().to_string() }
    }

    /// `GET /api/v1/query_range`.
    pub async fn query_range(&self, query: &str, start_ms: i64, end_ms: i64, step_secs: f64) -> Result<Vec<RangeSeries>, SourceError> {
        let params = [
            ("query", query.to_string()),
            ("start", format!("{:.3}", start_ms as f64 / 1000.0)),
            ("end", format!("{:.3}", end_ms as f64 / 1000.0)),
            ("step", format!("{step_secs}")),
        ];
        // The project's one retry policy (408 / 429 / 5xx / transport errors, Retry-After honoured).
        let policy = crate::retry::RetryPolicy {
            max_retries: 2,
            base: std::time::Duration::from_millis(200),
            cap: std::time::Duration::from_secs(10),
        };
        let (result, _) = policy.send(|| self.http.get(format!("{}/api/v1/query_range", self.url)).query(&params)).await;
        let resp = result.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let env: Envelope = serde_json::from_str(&text).map_err(|e| {
            if status >= 400 {
                SourceError::Status { service: "prometheus", url: self.url.clone(), status, body: truncate(&text) }
            } else {
                SourceError::Decode { service: "prometheus", url: self.url.clone(), message: e.to_string() }
            }
        })?;
        if env.status != "success" {
            return Err(SourceError::Status {
                service: "prometheus",
                url: self.url.clone(),
                status,
                body: env.error.unwrap_or_else(|| "status != success".into()),
            });
        }
        let data =
            env.data.ok_or_else(|| SourceError::Decode { service: "prometheus", url: self.url.clone(), message: "no data".into() })?;
        if data.result_type != "matrix" {
            return Err(SourceError::Decode {
                service: "prometheus",
                url: self.url.clone(),
                message: format!("resultType {} (expected matrix)", data.result_type),
            });
        }
        let mut out = Vec::with_capacity(data.result.len());
        for s in data.result {
            let mut points = Vec::with_capacity(s.values.len());
            for (t, v) in s.values {
                let v: f64 = v.parse().map_err(|_| SourceError::Decode {
                    service: "prometheus",
                    url: self.url.clone(),
                    message: format!("value {v:?} is not a number"),
                })?;
                points.push(((t * 1000.0).round() as i64, v));
            }
            out.push(RangeSeries { labels: s.metric, points });
        }
        Ok(out)
    }

    /// A range query turned into samples named `metric`, the server taken from `server_label`
    /// (usually `instance`). Non-finite values (Prometheus' `NaN` for 0/0) are kept: cleaning
    /// counts and repairs them.
    pub async fn read_samples(
        &self,
        query: &str,
        metric: &str,
        server_label: &str,
        start_ms: i64,
        end_ms: i64,
        step_secs: f64,
    ) -> Result<Vec<MetricSample>, SourceError> {
        let series = self.query_range(query, start_ms, end_ms, step_secs).await?;
        let mut out = Vec::new();
        for s in series {
            let server = s.labels.get(server_label).cloned().unwrap_or_else(|| "unknown".into());
            out.extend(s.points.into_iter().map(|(t, v)| MetricSample::new(t, server.clone(), metric, v)));
        }
        Ok(out)
    }
}
