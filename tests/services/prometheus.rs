use std::time::{Duration, Instant};

use aiops_tests::prometheus_url;
use workbench::frames::{f64_column, remote::read_prometheus, server_column};

#[test]
fn node_exporter_metrics_of_this_machine_read_through_prometheus_into_a_frame() {
    let queries = vec![
        ("memory_available_bytes".to_string(), "node_memory_MemAvailable_bytes".to_string()),
        ("cpu_usage".to_string(), "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5s])))".to_string()),
    ];
    // Prometheus scrapes every second (tests/run); wait until a few points exist.
    let deadline = Instant::now() + Duration::from_secs(45);
    let df = loop {
        let now = runtime::now_ms();
        let (df, _) = read_prometheus(&prometheus_url(), &queries, "instance", now - 60_000, now, 1.0)
            .expect("Prometheus must be running (tests/run starts it)");
        let complete = df.height() >= 5 && df.column("cpu_usage").is_ok_and(|c| c.len() - c.null_count() >= 3);
        if complete || Instant::now() > deadline {
            break df;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(df.height() >= 5, "too few points from Prometheus:\n{df}");
    let servers = server_column(&df, "?").unwrap();
    assert!(servers.iter().all(|s| s == "127.0.0.1:9100"), "{servers:?}");
    let mem = f64_column(&df, "memory_available_bytes").unwrap();
    assert!(mem.iter().flatten().all(|v| *v > 1e6), "{mem:?}");
    let cpu = f64_column(&df, "cpu_usage").unwrap();
    assert!(cpu.iter().flatten().count() >= 3 && cpu.iter().flatten().all(|v| (-1.0..=101.0).contains(v)), "{cpu:?}");
}

#[test]
fn bad_promql_is_an_error_naming_the_problem() {
    let err = read_prometheus(&prometheus_url(), &[("x".into(), "rate(".into())], "instance", 0, 60_000, 1.0).unwrap_err();
    assert!(err.to_string().contains("parse error") || err.to_string().contains("400"), "{err}");
}

/// The runtime's own alert rules (runtime/deploy/prometheus) are loaded by the Prometheus that
/// tests/run starts, every one healthy.
#[test]
fn the_runtime_alert_rules_are_loaded_and_healthy() {
    let body: serde_json::Value = aiops_tests::block_on(async {
        reqwest::get(format!("{}/api/v1/rules", prometheus_url())).await.expect("Prometheus must be running").json().await.unwrap()
    });
    let groups = body["data"]["groups"].as_array().unwrap();
    let group = groups.iter().find(|g| g["name"] == "aiops-runtime").unwrap_or_else(|| panic!("no aiops-runtime group: {body}"));
    let rules = group["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for want in [
        "AIOpsRuntimeDown",
        "AIOpsRuntimeTicksFailing",
        "AIOpsRuntimeOutboxBacklog",
        "AIOpsRuntimeDeadLetters",
        "AIOpsRuntimeModelLoadErrors",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert!(rules.iter().all(|r| r["health"] != "err"), "{rules:?}");
}
