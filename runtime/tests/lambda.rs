//! The Lambda handler through the real `lambda_runtime` client, served by a local emulator of
//! the Lambda Runtime API (the protocol the Lambda service speaks to a `provided.al2023`
//! bootstrap): the binary, started with no arguments and `AWS_LAMBDA_RUNTIME_API`, takes the
//! EventBridge Scheduler inputs of terraform/lambda.tf (`{"mode","shard","shards"}`), ticks
//! its shard of servers and answers with the tick report; an invalid event is reported as an
//! invocation error.

mod common;

use std::collections::{BTreeMap, VecDeque};
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
        format!("[source]\nkind = \"file\"\n[source.file]\npath = \"{0}/fleet.csv\"\n[model]\nregistry = \"file://{0}/registry\"\n[outbox]\ndir = \"{0}/outbox\"\n[forecast]\nmodel = \"auto\"\n[forecast.auto]\ninterval_secs = 60\nhistory_hours = 6\n", dir.display()),
    )
    .unwrap();

    // The Runtime API emulator with three scheduled invocations queued.
    let api = Arc::new(Api::default());
    for (id, ev) in [
        ("req-0", json!({"mode": "detect", "shard": 0, "shards": 2})),
        ("req-1", json!({"mode": "detect", "shard": 1, "shards": 2})),
        ("req-2", json!({"mode": "detect", "shard": 5, "shards": 2})),
        ("req-3", json!({"mode": "predict", "shard": 0, "shards": 2})),
    ] {
        api.events.lock().unwrap().push_back((id.to_string(), ev));
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

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .env_remove("ALERTMANAGER_URL")
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "aiops-anomaly-detector")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("RUNTIME_CONFIG", dir.join("runtime.toml"))
        .env("RUNTIME_MODE", "detect")
        .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while api.responses.lock().unwrap().len() + api.errors.lock().unwrap().len() < 4 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let responses = api.responses.lock().unwrap().clone();
    let errors = api.errors.lock().unwrap().clone();
    let logs = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
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
    // Predictive scaling with the statistical forecaster: no bundle, fitted per server of the shard.
    let p = &responses["req-3"];
    assert_eq!(p["mode"], "predict", "{p}");
    let shard0 = names.iter().filter(|n| shard_of(n, 2) == 0).count();
    assert!(p["note"].as_str().unwrap().starts_with(&format!("{shard0} servers forecast")), "{p}");
    assert!(errors["req-2"]["errorMessage"].as_str().unwrap().contains("shard 5 is not in 0..2"), "{errors:?}");
    assert_eq!(errors["req-2"]["errorType"], "AIOpsRuntimeError");
    // CloudWatch embedded metrics for the dashboard of terraform/cloudwatch.tf.
    let stdout = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
    let emf: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).filter(|v: &Value| v.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 2, "{stdout}");
    assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "AIOps/Monitoring");
    assert!(emf[0].get("AnomaliesDetected").is_some() && emf[0].get("LambdaExecutionTime").is_some());
    std::fs::remove_dir_all(dir).unwrap();
}
