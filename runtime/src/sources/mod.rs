//! Metric sources and the InfluxDB writer.
//!
//! - [`influxdb::InfluxClient`]: InfluxDB 1.x HTTP API (also served by InfluxDB 1.8+ and 3.x):
//!   InfluxQL reads through `/query` and line protocol writes through `/write` with batching and
//!   retry.
//! - [`prometheus::PrometheusClient`]: `query_range` reads.
//! - `flux` (cargo feature `flux`): InfluxDB 2.x / Cloud through Flux with the `influxdb2` crate.
//!
//! Both are async (tokio + reqwest). Credentials never appear in `Debug` output or errors.

#[cfg(feature = "flux")]
pub mod flux;
pub mod influxdb;
pub mod prometheus;

/// Errors talking to a metric store.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Connection refused, timeout, TLS, …
    #[error("{service} at {url}: request failed: {message}")]
    Transport {
        /// `influxdb` or `prometheus`.
        service: &'static str,
        /// Base URL (no credentials).
        url: String,
        /// The cause.
        message: String,
    },
    /// The server answered with an error status or an error body.
    #[error("{service} at {url}: HTTP {status}: {body}")]
    Status {
        /// `influxdb` or `prometheus`.
        service: &'static str,
        /// Base URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Error text from the server (truncated).
        body: String,
    },
    /// The response body did not have the documented shape.
    #[error("{service} at {url}: unexpected response: {message}")]
    Decode {
        /// `influxdb` or `prometheus`.
        service: &'static str,
        /// Base URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 500;
    if text.len() <= MAX {
        text.trim().to_string()
    } else {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}
