//! `runtime monitor` as a daemon against the real InfluxDB and Alertmanager started by
//! tests/run: not ready without a model, not ready while the source fails, hot reload of a
//! promoted model, recovery, an injected incident alerted through Alertmanager (whose webhook
//! receiver delivers to a local listener) and Slack, and the `/metrics` that count it.
//! Fails loudly when a service is missing.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use runtime::collector::simulate::{SimConfig, Simulator};
use runtime::registry::Registry;
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
use runtime::{BASE_METRICS, MetricSample};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn get(url: &str) -> (u16, String) {
    block_on(async {
        match reqwest::get(url).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    })
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) -> String {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The daemon's configuration: InfluxDB database `db`, a local registry and outbox in `dir`,
/// HTTP on `port`, Slack and Alertmanager sinks.
fn daemon_config(dir: &std::path::Path, influx_url: &str, db: &str, port: u16, am_url: &str, slack: &str) -> String {
    format!(
        r#"
[source.influxdb]
url = "{influx_url}"
database = "{db}"
max_retries = 0
[model]
registry = "file://{dir}/registry"
reload_every_secs = 1
[schedule]
interval_secs = 1
warmup_secs = 93600
settle_secs = 0
[outbox]
dir = "{dir}/outbox"
[http]
listen = "127.0.0.1:{port}"
[sinks.slack]
webhook_url = "{slack}/slack/T0/B0/SECRETTOKEN"
[sinks.alertmanager]
url = "{am_url}"
labels = {{ test_run = "{db}" }}
"#,
        dir = dir.display()
    )
}

/// 26 h of three simulated servers up to `now` (no incidents, no confounders: the daemon's
/// mechanics, not detection), and web-server-01's last row.
fn history(now: i64) -> (Vec<MetricSample>, [f64; 4]) {
    let mut sim = Simulator::new(SimConfig {
        servers: 3,
        start_ms: (now - 26 * 3_600_000) / 10_000 * 10_000,
        incidents_per_day: 0.0,
        confounders: false,
        ..SimConfig::default()
    });
    let mut batch = Vec::new();
    let mut last = [0.0; 4];
    while sim.next_timestamp_ms() <= now {
        let (t, rows) = sim.next_row();
        for (s, v) in rows {
            if s == "web-server-01" {
                last = v;
            }
            batch.extend(BASE_METRICS.iter().zip(v).map(|(m, x)| MetricSample::new(t, s.clone(), *m, x)));
        }
    }
    (batch, last)
}

#[test]
fn daemon_recovers_from_missing_model_and_source_then_alerts_through_alertmanager() {
    let influx_url = std::env::var("INFLUXDB_URL").unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    let am_url = std::env::var("ALERTMANAGER_URL").expect("ALERTMANAGER_URL (set by tests/run)");
    let am_port: u16 = std::env::var("AM_WEBHOOK_PORT").expect("AM_WEBHOOK_PORT (set by tests/run)").parse().unwrap();
    let (status, _) = get(&format!("{am_url}/-/ready"));
    assert_eq!(status, 200, "Alertmanager must run at {am_url}");
    let am_hook = Receiver::start_on(am_port);
    let slack = Receiver::start();

    let dir = std::env::temp_dir().join(format!("rt-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("rt_daemon_{}_{}", std::process::id(), runtime::now_ms());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("runtime.toml");
    std::fs::write(&config, daemon_config(&dir, &influx_url, &db, port, &am_url, &slack.url)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["monitor", "--config"])
        .arg(&config)
        .env_remove("SLACK_WEBHOOK_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // No model yet: alive, not ready, and says why.
    let body = wait("/readyz", Duration::from_secs(30), || match get(&format!("{base}/readyz")) {
        (503, b) => Some(b),
        _ => None,
    });
    assert!(body.contains("no model"), "{body}");
    assert_eq!(get(&format!("{base}/healthz")).0, 200);

    // Promote: hot reload; the database does not exist yet, so the source fails → not ready.
    let registry = Registry::open(&format!("file://{}/registry", dir.display())).unwrap();
    block_on(common::promote(&registry, &common::sim_bundle()));
    let body = wait("source error", Duration::from_secs(30), || match get(&format!("{base}/readyz")) {
        (503, b) if b.contains("metric source") => Some(b),
        _ => None,
    });
    assert!(body.contains("database not found"), "{body}");

    // The source comes back with 26 h of history: ready.
    let client = InfluxClient::new(InfluxConfig { url: influx_url.clone(), database: db.clone(), ..InfluxConfig::default() });
    let now = runtime::now_ms();
    let (batch, last) = history(now);
    block_on(async {
        client.create_database().await.unwrap();
        client.write(&batch).await.unwrap();
    });
    let ready = wait("ready", Duration::from_secs(60), || match get(&format!("{base}/readyz")) {
        (200, b) => Some(b),
        _ => None,
    });
    assert!(ready.contains("anomaly-detector@1"), "{ready}");

    // An incident: disk I/O ×40 on web-server-01, live.
    let t = runtime::now_ms() + 1000;
    let spike: Vec<MetricSample> = (0..3)
        .flat_map(|k| {
            let mut v = last;
            v[3] *= 40.0;
            BASE_METRICS.iter().zip(v).map(move |(m, x)| MetricSample::new(t + k * 1000, "web-server-01", *m, x)).collect::<Vec<_>>()
        })
        .collect();
    block_on(client.write(&spike)).unwrap();
    wait("Alertmanager webhook", Duration::from_secs(60), || {
        am_hook
            .accepted("/alertmanager")
            .iter()
            .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| {
                a["labels"]["server"] == "web-server-01"
                    && a["labels"]["metric"] == "disk_io"
                    && a["labels"]["test_run"] == db.as_str()
                    && a["status"] == "firing"
            })
            .map(|a| a.to_string())
    });
    let slack_msg = wait("Slack", Duration::from_secs(30), || {
        slack
            .accepted("/slack")
            .iter()
            .find(|r| r.body["text"].as_str().unwrap_or("").contains("web-server-01"))
            .map(|r| r.body.to_string())
    });
    assert!(slack_msg.contains("disk_io"), "{slack_msg}");
    assert!(slack.rejected().is_empty(), "{:?}", slack.rejected());
    let metrics = get(&format!("{base}/metrics")).1;
    for needle in [
        "aiops_runtime_alerts_sent_total{sink=\"alertmanager\"}",
        "aiops_runtime_alerts_sent_total{sink=\"slack\"}",
        "aiops_runtime_model_version{model=\"anomaly-detector\"} 1",
        "aiops_runtime_source_errors_total",
        "aiops_runtime_tick_duration_seconds_bucket",
        "aiops_runtime_anomaly_score{server=\"web-server-01\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // SIGTERM: a clean exit; nothing secret in the logs.
    std::process::Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let logs = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    assert!(logs.contains("anomaly alert") && !logs.contains("SECRETTOKEN"), "{logs}");
    block_on(client.drop_database()).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `[output] influxdb_scores`: every scored row's score lands in InfluxDB next to the metrics
/// (`aiops_anomaly_score`, tags server / metric / model), one point per row scored.
#[test]
fn scores_are_written_back_to_influxdb_one_point_per_scored_row() {
    let influx_url = std::env::var("INFLUXDB_URL").unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    let dir = std::env::temp_dir().join(format!("rt-scores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("rt_scores_{}_{}", std::process::id(), runtime::now_ms());
    let influx = InfluxConfig { url: influx_url, database: db.clone(), ..InfluxConfig::default() };
    let client = InfluxClient::new(influx.clone());
    // Two servers, 3 h of 10 s history in InfluxDB.
    let now = runtime::now_ms() / 10_000 * 10_000;
    let start = now - 3 * 3_600_000;
    let mut sim =
        Simulator::new(SimConfig { servers: 2, start_ms: start, incidents_per_day: 0.0, confounders: false, ..SimConfig::default() });
    let mut batch = Vec::new();
    while sim.next_timestamp_ms() <= now {
        let (t, rows) = sim.next_row();
        for (s, v) in rows {
            batch.extend(BASE_METRICS.iter().zip(v).map(|(m, x)| MetricSample::new(t, s.clone(), *m, x)));
        }
    }
    block_on(async {
        client.create_database().await.unwrap();
        client.write(&batch).await.unwrap();
    });
    let registry = Registry::open(&format!("file://{}/registry", dir.display())).unwrap();
    block_on(common::promote(&registry, &common::sim_bundle()));
    let mut cfg = runtime::monitor::config::RuntimeConfig::default();
    cfg.source.influxdb = influx;
    cfg.model.registry = format!("file://{}/registry", dir.display());
    cfg.outbox.dir = dir.join("outbox");
    cfg.http.listen = String::new();
    cfg.schedule.warmup_secs = 3600;
    cfg.schedule.settle_secs = 0;
    cfg.output.influxdb_scores = true;
    let telemetry = std::sync::Arc::new(runtime::monitor::telemetry::Telemetry::new());
    let mut m = runtime::monitor::Monitor::new(cfg, telemetry.clone()).unwrap();
    let reports = block_on(m.replay(start + 3_600_000, now));
    let scored: u64 = reports.iter().map(|r| r.rows_scored).sum();
    assert!(scored > 500, "{scored} rows scored");
    let points = block_on(
        client.query_samples(&format!("SELECT \"value\" FROM \"aiops_anomaly_score\" WHERE time >= {}ms GROUP BY \"server\"", start)),
    )
    .unwrap();
    assert_eq!(points.len() as u64, scored, "one score point per scored row");
    let servers: std::collections::BTreeSet<&str> = points.iter().map(|p| p.server.as_str()).collect();
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert!(points.iter().all(|p| (0.0..=1.0).contains(&p.value)), "scores in [0, 1]");
    let tagged =
        block_on(client.query_samples("SELECT \"value\" FROM \"aiops_anomaly_score\" WHERE \"model\" = 'anomaly-detector@1' LIMIT 1"))
            .unwrap();
    assert_eq!(tagged.len(), 1, "the model tag names the bundle");
    // Predictive scaling's forecasts land there too: per server, one point per step ahead, at
    // the times forecast, with the bands (the default forecaster, `auto`: nothing configured).
    let mut fcfg = runtime::monitor::config::ForecastConfig::default();
    (fcfg.auto.interval_secs, fcfg.auto.horizon_minutes, fcfg.auto.history_hours) = (60.0, 30.0, 2.5);
    let fc = runtime::predict::Predictor::from_config(&fcfg).unwrap().unwrap();
    let advice = block_on(m.predict(now, &fc)).unwrap();
    assert_eq!(advice.len(), 2);
    let fields = block_on(client.query_samples(&format!(
        "SELECT \"point\", \"upper_95\", \"lower_95\" FROM \"aiops_forecast\" WHERE time > {}ms GROUP BY \"server\"",
        now - 60_000
    )))
    .unwrap();
    let of = |field: &str| fields.iter().filter(|p| p.metric == format!("aiops_forecast_{field}")).collect::<Vec<_>>();
    let (point, upper, lower) = (of("point"), of("upper_95"), of("lower_95"));
    assert_eq!(point.len(), 2 * 30, "30 one-minute steps for each of 2 servers");
    assert!(point.iter().all(|p| p.timestamp_ms > now && p.timestamp_ms <= now + 31 * 60_000), "at the times forecast");
    for (p, (u, l)) in point.iter().zip(upper.iter().zip(&lower)) {
        assert!(l.value <= p.value && p.value <= u.value && p.timestamp_ms == u.timestamp_ms, "{l:?} {p:?} {u:?}");
    }
    assert!(telemetry.encode().contains("aiops_runtime_score_write_errors_total 0"));
    block_on(client.drop_database()).unwrap();
    std::fs::remove_dir_all(dir).ok();
}
