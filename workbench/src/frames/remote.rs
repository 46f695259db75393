//! InfluxDB (InfluxQL over the 1.x HTTP API) and Prometheus (`query_range`) into wide frames.
//! These block on a small tokio runtime so notebooks and the CLI can call them directly.

use polars::prelude::DataFrame;
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
use runtime::sources::prometheus::PrometheusClient;

use super::{FrameError, samples_to_wide};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

/// Read `metrics` (measurements with a `value` field, tag `server`) from InfluxDB between
/// `start_ms` and `end_ms` into a wide frame. Returns the frame and the count of duplicate points.
pub fn read_influx(cfg: &InfluxConfig, metrics: &[String], start_ms: i64, end_ms: i64) -> Result<(DataFrame, usize), FrameError> {
    let client = InfluxClient::new(cfg.clone());
    let samples = block_on(client.read_samples(metrics, start_ms, end_ms))?;
    samples_to_wide(&samples)
}

/// One Prometheus query per metric: `(metric name, PromQL)`; the server is the `server_label` label.
pub fn read_prometheus(
    url: &str,
    queries: &[(String, String)],
    server_label: &str,
    start_ms: i64,
    end_ms: i64,
    step_secs: f64,
) -> Result<(DataFrame, usize), FrameError> {
    let client = PrometheusClient::new(url);
    let mut samples = Vec::new();
    for (metric, q) in queries {
        samples.extend(block_on(client.read_samples(q, metric, server_label, start_ms, end_ms, step_secs))?);
    }
    samples_to_wide(&samples)
}

/// Read `metrics` from InfluxDB 2.x / Cloud through Flux (cargo feature `flux`).
#[cfg(feature = "flux")]
pub fn read_flux(
    cfg: &runtime::sources::flux::FluxConfig,
    metrics: &[String],
    start_ms: i64,
    end_ms: i64,
) -> Result<(DataFrame, usize), FrameError> {
    let samples = block_on(runtime::sources::flux::read_samples(cfg, metrics, start_ms, end_ms))?;
    samples_to_wide(&samples)
}
