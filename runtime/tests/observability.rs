//! The shipped Grafana dashboard and Prometheus alert rules (runtime/deploy/) query only metrics
//! the runtime exports, and the per-server score gauge stays bounded.

use runtime::monitor::telemetry::Telemetry;

/// Every `aiops_runtime_…` metric name in `text`.
fn queried(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("aiops_runtime_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// The sample names `/metrics` can carry: counters with `_total`, histograms with `_bucket`,
/// `_sum` and `_count`, gauges as they are (from the `# TYPE` lines).
fn exported(exposition: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        let mut parts = line.strip_prefix("# TYPE ").unwrap_or_default().split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        match kind {
            "counter" => out.insert(format!("{name}_total")),
            "histogram" => ["_bucket", "_sum", "_count"].iter().all(|s| out.insert(format!("{name}{s}"))),
            _ => out.insert(name.to_string()),
        };
    }
    out
}

#[test]
fn every_metric_the_dashboard_and_the_rules_query_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let dashboard = std::fs::read_to_string(root.join("grafana/aiops-runtime.json")).unwrap();
    let rules = std::fs::read_to_string(root.join("prometheus/aiops-runtime.rules.yml")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = json["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())), "{}", p["title"]);
    }
    // A labelled family shows in the exposition once it has a label set, as after a running
    // runtime's first tick, alert, delivery and failure.
    let t = Telemetry::new();
    let one = |k: &str, v: &str| [(k.to_string(), v.to_string())];
    t.ticks.get_or_create(&one("result", "ok")).inc();
    t.alerts.get_or_create(&one("severity", "high")).inc();
    for family in [&t.sent, &t.failed, &t.dead] {
        family.get_or_create(&one("sink", "slack")).inc();
    }
    t.rows_skipped.get_or_create(&one("reason", "incomplete")).inc();
    t.model_version.get_or_create(&one("model", "anomaly-detector")).set(1);
    t.set_score("web-server-01", 0.2, 10);
    let exposition = t.encode();
    let have = exported(&exposition);
    let wanted: Vec<String> = queried(&dashboard).into_iter().chain(queried(&rules)).collect();
    // What the issue asks the dashboard to show, and the rules to watch.
    for must in [
        "aiops_runtime_ticks_total",
        "aiops_runtime_tick_duration_seconds_bucket",
        "aiops_runtime_alerts_total",
        "aiops_runtime_alerts_sent_total",
        "aiops_runtime_outbox_pending",
        "aiops_runtime_model_version",
        "aiops_runtime_anomaly_score",
        "aiops_runtime_alerts_dead_total",
        "aiops_runtime_model_load_errors_total",
    ] {
        assert!(wanted.iter().any(|w| w == must), "{must} is not queried");
    }
    let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(*w)).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}\n{exposition}");
}

#[test]
fn the_score_gauge_exports_at_most_the_configured_number_of_servers() {
    let t = Telemetry::new();
    for (server, score) in [("a", 0.1), ("b", 0.9), ("c", 0.5), ("a", 0.3)] {
        t.set_score(server, score, 2);
    }
    let text = t.encode();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("aiops_runtime_anomaly_score{")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().any(|l| l.contains("server=\"a\"") && l.ends_with(" 0.3")), "{lines:?}");
    assert!(!text.contains("server=\"c\""), "{text}");
}
