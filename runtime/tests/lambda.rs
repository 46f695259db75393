//! The Lambda handler through the real `lambda_runtime` client, served by a local emulator of
//! the Lambda Runtime API (the protocol the Lambda service speaks to a `provided.al2023`
//! bootstrap): the binary, started with no arguments and `AWS_LAMBDA_RUNTIME_API`, takes the
//! EventBridge Scheduler inputs of terraform/lambda.tf (`{"mode","shard","shards"}`), ticks
//! its shard of servers and answers with the tick report; an invalid event is reported as an
//! invocation error.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use runtime::collector::simulate::SimConfig;
use runtime::monitor::config::shard_of;
use runtime::registry::Registry;
use serde_json::{Value, json};

#[derive(Default)]
struct Api {
    events: Mutex<VecDeque<(String, Value)>>,
    responses: Mutex<BTreeMap<String, Value>>,
    errors: Mutex<BTreeMap<String, Value>>,
}

async fn next(State(api): State<Arc<Api>>) -> (HeaderMap, String) {
    let ev = api.events.lock().unwrap().pop_front();
    let Some((id, body)) = ev else {
        tokio::time::sleep(Duration::from_secs(3600)).await; // no more invocations
        unreachable!()
    };
    let mut h = HeaderMap::new();
    h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    h.insert("lambda-runtime-deadline-ms", (runtime::now_ms() + 60_000).to_string().parse().unwrap());
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:aiops-anomaly-detector".parse().unwrap(),
    );
    h.insert("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap());
    (h, body.to_string())
}

async fn response(State(api): State<Arc<Api>>, Path(id): Path<String>, body: String) -> &'static str {
    api.responses.lock().unwrap().insert(id, serde_json::from_str(&body).unwrap_or(Value::String(body)));
    "{}"
}

async fn error(State(api): State<Arc<Api>>, Path(id): Path<String>, body: String) -> &'static str {
    api.errors.lock().unwrap().insert(id, serde_json::from_str(&body).unwrap_or(Value::String(body)));
    "{}"
}

/// What one execution environment did: the responses and errors by request id, stdout, stderr.
struct Outcome {
    responses: BTreeMap<String, Value>,
    errors: BTreeMap<String, Value>,
    stdout: String,
    stderr: String,
}

/// One execution environment: the bootstrap binary with `RUNTIME_CONFIG = config` (plus `env`)
/// against a Runtime API emulator serving `events`, until each is answered.
fn execution_environment(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    config: &std::path::Path,
    env: &[(&str, String)],
    events: &[(&str, Value)],
) -> Outcome {
    let api = Arc::new(Api::default());
    for (id, ev) in events {
        api.events.lock().unwrap().push_back((id.to_string(), ev.clone()));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", axum::routing::get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", axum::routing::post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", axum::routing::post(error))
        .with_state(api.clone());
    rt.spawn(async move { axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap() });
    let (out, err) = (dir.join(format!("stdout-{}.log", addr.port())), dir.join(format!("stderr-{}.log", addr.port())));
    let mut cmd = common::runtime_cmd();
    cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "aiops-anomaly-detector")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("RUNTIME_CONFIG", config)
        .env("RUNTIME_MODE", "detect")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while api.responses.lock().unwrap().len() + api.errors.lock().unwrap().len() < events.len() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let responses = api.responses.lock().unwrap().clone();
    let errors = api.errors.lock().unwrap().clone();
    Outcome { responses, errors, stdout: std::fs::read_to_string(out).unwrap(), stderr: std::fs::read_to_string(err).unwrap() }
}

#[test]
fn scheduled_shard_ticks_through_the_runtime_api() {
    let dir = std::env::temp_dir().join(format!("rt-lambda-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Five servers with 7 h of data up to now, and a promoted model.
    let now = runtime::now_ms();
    let start_ms = (now - 7 * 3_600_000) / 10_000 * 10_000;
    common::fleet_csv(&dir, SimConfig { servers: 5, start_ms, ..SimConfig::default() }, 7);
    let registry = Registry::open(&format!("file://{}/registry", dir.display())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(common::promote(&registry, &common::sim_bundle()));
    std::fs::write(
        dir.join("runtime.toml"),
        format!("[source]\nkind = \"file\"\n[source.file]\npath = \"{0}/fleet.csv\"\n[model]\nregistry = \"file://{0}/registry\"\n[outbox]\ndir = \"{0}/outbox\"\n[forecast.auto]\ninterval_secs = 60\nhistory_hours = 6\n", dir.display()),
    )
    .unwrap();
    // Four scheduled invocations.
    let events = [
        ("req-0", json!({"mode": "detect", "shard": 0, "shards": 2})),
        ("req-1", json!({"mode": "detect", "shard": 1, "shards": 2})),
        ("req-2", json!({"mode": "detect", "shard": 5, "shards": 2})),
        ("req-3", json!({"mode": "predict", "shard": 0, "shards": 2})),
    ];
    let Outcome { responses, errors, stdout, stderr: logs } = execution_environment(&rt, &dir, &dir.join("runtime.toml"), &[], &events);
    assert_eq!(responses.len(), 3, "responses {responses:?} errors {errors:?}\n{logs}");
    let names: Vec<String> = (0..5).map(runtime::collector::simulate::server_name).collect();
    for (id, shard) in [("req-0", 0), ("req-1", 1)] {
        let r = &responses[id];
        assert_eq!(r["shard"], format!("{shard}/2"));
        let tick = &r["tick"];
        assert_eq!(tick["model"], "anomaly-detector@1", "{r}");
        let expected = names.iter().filter(|n| shard_of(n, 2) == shard).count();
        assert_eq!(tick["servers"], expected, "shard {shard}: {r}");
        assert!(tick["rows_learned"].as_u64().unwrap() > 0 && tick["rows_scored"].as_u64().unwrap() > 0, "{r}");
    }
    // Predictive scaling with the statistical forecaster, the default without a bundle (no
    // `model` set): fitted per server of the shard.
    let p = &responses["req-3"];
    assert_eq!(p["mode"], "predict", "{p}");
    let shard0 = names.iter().filter(|n| shard_of(n, 2) == 0).count();
    assert!(p["note"].as_str().unwrap().starts_with(&format!("{shard0} servers forecast")), "{p}");
    assert!(errors["req-2"]["errorMessage"].as_str().unwrap().contains("shard 5 is not in 0..2"), "{errors:?}");
    assert_eq!(errors["req-2"]["errorType"], "AIOpsRuntimeError");
    // CloudWatch embedded metrics for the dashboard of terraform/cloudwatch.tf.
    let emf: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).filter(|v: &Value| v.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 2, "{stdout}");
    assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "AIOps/Monitoring");
    assert!(emf[0].get("AnomaliesDetected").is_some() && emf[0].get("LambdaExecutionTime").is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Undelivered alerts outlive the execution environment: an invocation with the sinks down
/// leaves them in the registry's bucket (the S3 server started by tests/run); its `/tmp` is
/// deleted (the environment recycled); the next invocation, in a fresh environment, delivers
/// every one of them and leaves the bucket's outbox empty.
#[test]
fn alerts_left_by_a_recycled_environment_are_delivered_by_the_next() {
    let dir = std::env::temp_dir().join(format!("rt-lambda-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Three servers, 7 h up to now, all far off their normal in the last 4 minutes.
    let now = runtime::now_ms();
    let start_ms = (now - 7 * 3_600_000) / 10_000 * 10_000;
    let (data, _) =
        common::fleet_csv(&dir, SimConfig { servers: 3, start_ms, confounders: false, incidents_per_day: 0.0, ..SimConfig::default() }, 7);
    let text = std::fs::read_to_string(&data).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let t: i64 = line.split(',').next().unwrap().parse().unwrap_or(0);
        if i > 0 && t >= now - 240_000 {
            let server = line.split(',').nth(1).unwrap();
            out.push_str(&format!("{t},{server},100.0,99.5,900.0,9000.0\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&data, out).unwrap();
    // The registry in S3.
    let endpoint = std::env::var("S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9002".into());
    let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "models".into());
    let (ak, sk) =
        (std::env::var("S3_ACCESS_KEY").unwrap_or_else(|_| "AK".into()), std::env::var("S3_SECRET_KEY").unwrap_or_else(|_| "SK".into()));
    let uri = format!("s3://{bucket}/lambda-outbox-{}-{now}", std::process::id());
    let opts = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", ak.as_str()),
        ("aws_secret_access_key", sk.as_str()),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
    ];
    let registry = Registry::open_with(&uri, &opts).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(common::promote(&registry, &common::sim_bundle()));
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", ak.clone()),
        ("AWS_SECRET_ACCESS_KEY", sk.clone()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let receiver = common::receiver::Receiver::start();
    let config = |name: &str| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[source]\nkind = \"file\"\n[source.file]\npath = \"{data}\"\n[model]\nregistry = \"{uri}\"\n[schedule]\ninterval_secs = 300\nsettle_secs = 0\ndeliver_timeout_secs = 3\n[outbox]\ndir = \"{tmp}\"\nbackoff_initial_secs = 0.05\nbackoff_max_secs = 0.2\n[routing]\ninfo = [\"webhook\"]\nlow = [\"webhook\"]\nmedium = [\"webhook\"]\nhigh = [\"webhook\"]\ncritical = [\"webhook\"]\n[sinks.webhook]\nurl = \"{url}/webhook\"\n",
                data = data.display(),
                tmp = dir.join(name).join("tmp").display(),
                url = receiver.url
            ),
        )
        .unwrap();
        path
    };
    let (store, root) = registry.store_at(&["outbox", "shard-0-of-1"]);
    let remote_pending = || {
        let prefix = root.clone().join("pending");
        rt.block_on(store.list_with_delimiter(Some(&prefix))).unwrap().objects.len()
    };
    let event = [("req-0", json!({"mode": "detect", "shard": 0, "shards": 1}))];

    // Sinks down: the invocation fails with its alerts pending, and they are in the bucket.
    receiver.set_down(true);
    let first = execution_environment(&rt, &dir, &config("env-1"), &env, &event);
    let message = first.errors.get("req-0").map(|e| e["errorMessage"].to_string()).unwrap_or_default();
    assert!(message.contains("still pending"), "{message} {:?}\n{}", first.responses, first.stderr);
    let left = remote_pending();
    assert!(left >= 2, "{left} in the bucket\n{}", first.stderr);
    let pending_keys: BTreeSet<String> = std::fs::read_dir(dir.join("env-1/tmp/shard-0-of-1/pending"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
        .map(|d| {
            let n = &d["notification"];
            let status = if n["status"] == "resolved" { "Resolved" } else { "Firing" };
            format!("{}@{}:{status}", n["alert"]["dedup_key"].as_str().unwrap(), n["alert"]["timestamp_ms"])
        })
        .collect();
    assert_eq!(pending_keys.len(), left, "the bucket holds what was pending");
    std::fs::remove_dir_all(dir.join("env-1")).unwrap(); // the execution environment is recycled with its /tmp

    // A fresh environment, sinks up: everything arrives, once, and the bucket's outbox empties.
    receiver.set_down(false);
    let second = execution_environment(&rt, &dir, &config("env-2"), &env, &event);
    assert!(second.responses.contains_key("req-0"), "{:?}\n{}", second.errors, second.stderr);
    assert!(second.stderr.contains("taken from the remote outbox"), "{}", second.stderr);
    let delivered: Vec<String> = receiver.accepted("/webhook").iter().map(|r| r.headers["idempotency-key"].clone()).collect();
    for key in &pending_keys {
        assert_eq!(delivered.iter().filter(|d| *d == key).count(), 1, "{key} delivered once: {delivered:?}");
    }
    assert_eq!(remote_pending(), 0, "nothing left in the bucket");
    std::fs::remove_dir_all(dir).unwrap();
}
