use aiops_tests::{block_on, influx_url, unique_db};
use runtime::collector::simulate::SimConfig;
use runtime::sources::SourceError;
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
use workbench::frames::{remote::read_influx, wide_to_samples};

fn cfg(db: &str) -> InfluxConfig {
    InfluxConfig { url: influx_url(), database: db.into(), batch_size: 500, ..InfluxConfig::default() }
}

#[test]
fn simulated_fleet_written_to_influxdb_reads_back_identical() {
    let db = unique_db("roundtrip");
    let client = InfluxClient::new(cfg(&db));
    block_on(client.create_database()).expect("InfluxDB must be running (tests/run starts it)");
    let sim = SimConfig { servers: 3, ..SimConfig::default() };
    let (source, _) = workbench::simulate::simulate(&sim, 0.05, false).unwrap();
    let samples = wide_to_samples(&source, "x").unwrap();
    let report = block_on(client.write(&samples)).unwrap();
    assert_eq!(report.points, samples.len());
    assert_eq!(report.batches, samples.len().div_ceil(500), "batched by batch_size");

    let metrics: Vec<String> = runtime::BASE_METRICS.iter().map(|s| s.to_string()).collect();
    let (back, dups) = read_influx(&cfg(&db), &metrics, 0, i64::MAX / 4).unwrap();
    assert_eq!(dups, 0);
    assert_eq!(back.shape(), source.shape());
    assert!(back.equals(&source), "frame read back from InfluxDB differs:\n{back}\nvs\n{source}");
    block_on(client.drop_database()).unwrap();
}

#[test]
fn bad_line_protocol_is_refused_with_influxdbs_message() {
    let db = unique_db("bad");
    let client = InfluxClient::new(cfg(&db));
    block_on(client.create_database()).unwrap();
    let err = block_on(client.write_lines("cpu_usage,server=a value=\"text\" 1\ncpu_usage,server=a value=1 2\n")).unwrap_err();
    match err {
        SourceError::Status { status, ref body, .. } => {
            assert_eq!(status, 400, "{err}");
            assert!(body.contains("field type conflict") || body.contains("partial write") || body.contains("invalid"), "{body}");
        }
        other => panic!("expected a 400, got {other}"),
    }
    block_on(client.drop_database()).unwrap();
}

#[test]
fn unreachable_influxdb_fails_after_retries_without_leaking_the_password() {
    let cfg = InfluxConfig {
        url: "http://127.0.0.1:9".into(),
        password: "s3cret-pw".into(),
        username: "admin".into(),
        max_retries: 2,
        retry_backoff_ms: 10,
        ..InfluxConfig::default()
    };
    let client = InfluxClient::new(cfg);
    let samples = vec![runtime::MetricSample::new(0, "a", "cpu_usage", 1.0)];
    let err = block_on(client.write(&samples)).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, SourceError::Transport { .. }), "{text}");
    assert!(!text.contains("s3cret-pw"), "password leaked: {text}");
}

#[test]
fn influxql_errors_are_reported() {
    let client = InfluxClient::new(cfg(&unique_db("q")));
    let err = block_on(client.query_samples("SELEKT nonsense")).unwrap_err();
    assert!(err.to_string().contains("error parsing query") || err.to_string().contains("400"), "{err}");
}
