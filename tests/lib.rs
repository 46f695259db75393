//! Shared helpers for the service tests: where the services started by `tests/run` listen.
//! A test that needs a service fails loudly when it is not there; nothing is skipped.

/// InfluxDB base URL (`INFLUXDB_URL`, default `http://127.0.0.1:8086`).
pub fn influx_url() -> String {
    std::env::var("INFLUXDB_URL").unwrap_or_else(|_| "http://127.0.0.1:8086".into())
}

/// Prometheus base URL (`PROMETHEUS_URL`, default `http://127.0.0.1:9090`).
pub fn prometheus_url() -> String {
    std::env::var("PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:9090".into())
}

/// A database name unique to this test process and tag.
pub fn unique_db(tag: &str) -> String {
    format!("test_{tag}_{}_{}", std::process::id(), runtime::now_ms())
}

/// Run a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio").block_on(f)
}
