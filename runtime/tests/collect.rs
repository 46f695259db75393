//! `runtime collect` against the real InfluxDB started by `tests/run`.

use runtime::sources::influxdb::{InfluxClient, InfluxConfig};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn collect_simulate_with_backfill_writes_history_then_live_ticks() {
    let url = std::env::var("INFLUXDB_URL").unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    let db = format!("test_collect_{}", std::process::id());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args([
            "collect",
            "--influx-url",
            &url,
            "--database",
            &db,
            "--simulate",
            "2",
            "--backfill",
            "10m",
            "--interval-secs",
            "1",
            "--count",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("✓ InfluxDB connection: pass"), "{stdout}");
    assert!(stdout.contains("Generating 10m of historical data..."), "{stdout}");
    assert!(stdout.contains("web-server-02: CPU="), "{stdout}");
    let client = InfluxClient::new(InfluxConfig { url, database: db, ..InfluxConfig::default() });
    let samples = block_on(client.read_samples(&["cpu_usage".into(), "disk_io".into()], 0, i64::MAX / 4)).unwrap();
    // 10 minutes at 1 s ≈ 600 rows per server and metric of history, plus 2 live ticks.
    let cpu_a = samples.iter().filter(|s| s.metric == "cpu_usage" && s.server == "web-server-01").count();
    assert!((590..=610).contains(&cpu_a), "{cpu_a} cpu samples for web-server-01");
    block_on(client.drop_database()).unwrap();
}

#[test]
fn collect_host_metrics_once() {
    let url = std::env::var("INFLUXDB_URL").unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    let db = format!("test_host_{}", std::process::id());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["collect", "--influx-url", &url, "--database", &db, "--interval-secs", "1", "--count", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = InfluxClient::new(InfluxConfig { url, database: db, ..InfluxConfig::default() });
    let samples = block_on(client.read_samples(&runtime::BASE_METRICS.map(String::from), 0, i64::MAX / 4)).unwrap();
    assert_eq!(samples.len(), 4, "{samples:?}");
    block_on(client.drop_database()).unwrap();
}

#[test]
fn backfill_without_simulate_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["collect", "--influx-url", "http://127.0.0.1:8086", "--database", "unused", "--backfill", "1h"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backfill needs --simulate"));
}
