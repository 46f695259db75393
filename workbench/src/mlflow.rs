//! MLflow tracking through its REST API (reqwest), used when `MLFLOW_TRACKING_URI` is set.
//!
//! Sweeps always track to the local folder first; [`push_sweep`] then mirrors a sweep folder to
//! MLflow: the sweep is a parent run, every trial a nested run (tag `mlflow.parentRunId`) with
//! its params, metrics, tags (git commit, dataset hash) and artifacts (through the
//! `mlflow-artifacts` proxy of a server started with `--serve-artifacts`). What was pushed is
//! recorded (`mlflow.json` in the sweep and trial folders), so pushing again only sends what is
//! missing: when MLflow is down or slow, requests are retried with backoff and then the trials
//! simply stay local until `experiment mlflow push DIR` succeeds. Batches respect MLflow's
//! limits (1000 metrics, 100 params, 100 tags per `log-batch`).
//! Credentials (`MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` / `_PASSWORD`) are sent
//! as headers and never appear in errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::tracking::TrackedFile;

/// MLflow failures (never carrying credentials).
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// Unreachable or failing after retries.
    #[error("MLflow at {uri}: {op} failed after {attempts} attempts: {reason}")]
    Unavailable {
        /// Tracking URI.
        uri: String,
        /// Endpoint.
        op: String,
        /// Attempts made.
        attempts: u32,
        /// Last error.
        reason: String,
    },
    /// MLflow answered with an error.
    #[error("MLflow at {uri}: {op}: HTTP {status}: {body}")]
    Api {
        /// Tracking URI.
        uri: String,
        /// Endpoint.
        op: String,
        /// HTTP status.
        status: u16,
        /// Error body (MLflow's error_code and message).
        body: String,
    },
    /// Local tracking files.
    #[error("{path}: {reason}")]
    Local {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A client of one MLflow tracking server.
#[derive(Debug, Clone)]
pub struct MlflowClient {
    uri: String,
    http: reqwest::Client,
    auth: Option<Auth>,
    /// Attempts per request (first try + retries).
    pub attempts: u32,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
}

/// Credentials; Debug never shows them.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(String, String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Basic(..) => "Basic(<redacted>)",
        })
    }
}

// Per log-batch call MLflow takes at most 1000 metrics, 100 params, 100 tags and 1000 items in all.
/// Tag holding a run's client-side key, looked up before a create is retried.
pub const RUN_KEY_TAG: &str = "aiops.run_key";

const MAX_METRICS: usize = 800;
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;

impl MlflowClient {
    /// A client for `uri` (e.g. `http://127.0.0.1:5000`).
    pub fn new(uri: &str) -> Self {
        let auth = if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
            Some(Auth::Bearer(token))
        } else if let (Ok(u), Ok(p)) = (std::env::var("MLFLOW_TRACKING_USERNAME"), std::env::var("MLFLOW_TRACKING_PASSWORD")) {
            Some(Auth::Basic(u, p))
        } else {
            None
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        Self { uri: uri.trim_end_matches('/').to_string(), http, auth, attempts: 4, backoff: Duration::from_millis(500) }
    }

    /// From `MLFLOW_TRACKING_URI`, when set to an http(s) URI.
    pub fn from_env() -> Option<Self> {
        std::env::var("MLFLOW_TRACKING_URI").ok().filter(|u| u.starts_with("http://") || u.starts_with("https://")).map(|u| Self::new(&u))
    }

    /// The tracking URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>, json_body: bool) -> Result<Value, MlflowError> {
        self.send_attempts(method, path, body, json_body, self.attempts).await
    }

    async fn send_attempts(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        json_body: bool,
        attempts: u32,
    ) -> Result<Value, MlflowError> {
        let url = format!("{}{path}", self.uri);
        let op = path.split('?').next().unwrap_or(path).to_string();
        // The project's one retry policy: 408 / 429 / 5xx and transport errors retried with
        // backoff (or the server's Retry-After), other answers final.
        let policy =
            runtime::retry::RetryPolicy { max_retries: attempts.saturating_sub(1), base: self.backoff, cap: Duration::from_secs(30) };
        let build = || {
            let mut req = self.http.request(method.clone(), &url);
            req = match &self.auth {
                Some(Auth::Bearer(t)) => req.bearer_auth(t),
                Some(Auth::Basic(u, p)) => req.basic_auth(u, Some(p)),
                None => req,
            };
            if let Some(b) = &body {
                req = req.body(b.clone());
                if json_body {
                    req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
                }
            }
            req
        };
        let reason = match policy.send(build).await.0 {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() {
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
                if !runtime::retry::retryable_status(status.as_u16()) {
                    return Err(MlflowError::Api {
                        uri: self.uri.clone(),
                        op,
                        status: status.as_u16(),
                        body: text.chars().take(500).collect(),
                    });
                }
                format!("HTTP {status}: {}", text.chars().take(300).collect::<String>())
            }
            Err(e) => without_url(&e),
        };
        Err(MlflowError::Unavailable { uri: self.uri.clone(), op, attempts, reason })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, MlflowError> {
        self.send(reqwest::Method::POST, path, Some(body.to_string().into_bytes()), true).await
    }

    async fn get(&self, path: &str) -> Result<Value, MlflowError> {
        self.send(reqwest::Method::GET, path, None, false).await
    }

    /// Experiment id of `name`, created if missing.
    pub async fn experiment(&self, name: &str) -> Result<String, MlflowError> {
        let q = format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={}", urlencode(name));
        match self.get(&q).await {
            Ok(v) => return Ok(v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string()),
            Err(MlflowError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        match self.post("/api/2.0/mlflow/experiments/create", json!({ "name": name })).await {
            Ok(v) => Ok(v["experiment_id"].as_str().unwrap_or_default().to_string()),
            // Created concurrently by someone else: read it.
            Err(MlflowError::Api { body, .. }) if body.contains("RESOURCE_ALREADY_EXISTS") => {
                let v = self.get(&q).await?;
                Ok(v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// Create a run; returns its id. Idempotent: the run carries a client-side key (tag
    /// [`RUN_KEY_TAG`], from the experiment, name and start time); when a create fails in a way
    /// that may have reached the server (a timeout, a 5xx), the key is looked up before the next
    /// attempt, so a retry never makes a second run.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_ms: i64,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, MlflowError> {
        use sha2::{Digest, Sha256};
        let key: String =
            Sha256::digest(format!("{experiment_id}\n{name}\n{start_ms}").as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
        let mut all: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        all.push(json!({"key": RUN_KEY_TAG, "value": key}));
        let body = json!({"experiment_id": experiment_id, "run_name": name, "start_time": start_ms, "tags": all}).to_string().into_bytes();
        let mut delay = self.backoff;
        let mut last = None;
        for attempt in 1..=self.attempts {
            if attempt > 1
                && let Some(id) = self.run_with_key(experiment_id, &key).await?
            {
                return Ok(id);
            }
            match self.send_attempts(reqwest::Method::POST, "/api/2.0/mlflow/runs/create", Some(body.clone()), true, 1).await {
                Ok(v) => return Ok(v["run"]["info"]["run_id"].as_str().unwrap_or_default().to_string()),
                Err(e @ MlflowError::Unavailable { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(last.unwrap_or_else(|| MlflowError::Unavailable {
            uri: self.uri.clone(),
            op: "/api/2.0/mlflow/runs/create".into(),
            attempts: self.attempts,
            reason: "no attempt made".into(),
        }))
    }

    /// The run of `experiment_id` tagged with client-side key `key` ([`RUN_KEY_TAG`]), if one
    /// exists.
    pub async fn run_with_key(&self, experiment_id: &str, key: &str) -> Result<Option<String>, MlflowError> {
        let filter = format!("tags.`{RUN_KEY_TAG}` = '{key}'");
        let v = self
            .post("/api/2.0/mlflow/runs/search", json!({"experiment_ids": [experiment_id], "filter": filter, "max_results": 1}))
            .await?;
        Ok(v["runs"].as_array().and_then(|r| r.first()).and_then(|r| r["info"]["run_id"].as_str()).map(str::to_string))
    }

    /// Log params, metrics (`(key, value, step, timestamp_ms)`) and tags in batches within
    /// MLflow's limits.
    pub async fn log_batch(
        &self,
        run_id: &str,
        params: &BTreeMap<String, String>,
        metrics: &[(String, f64, i64, i64)],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), MlflowError> {
        let params: Vec<Value> = params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let metrics: Vec<Value> =
            metrics.iter().map(|(k, v, step, ts)| json!({"key": k, "value": v, "step": step, "timestamp": ts})).collect();
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let rounds = params.len().div_ceil(MAX_PARAMS).max(metrics.len().div_ceil(MAX_METRICS)).max(tags.len().div_ceil(MAX_TAGS));
        for i in 0..rounds {
            let chunk = |items: &[Value], n: usize| items.iter().skip(i * n).take(n).cloned().collect::<Vec<_>>();
            let body = json!({
                "run_id": run_id,
                "params": chunk(&params, MAX_PARAMS),
                "metrics": chunk(&metrics, MAX_METRICS),
                "tags": chunk(&tags, MAX_TAGS),
            });
            self.post("/api/2.0/mlflow/runs/log-batch", body).await?;
        }
        Ok(())
    }

    /// Upload one artifact through the mlflow-artifacts proxy.
    pub async fn log_artifact(&self, experiment_id: &str, run_id: &str, name: &str, bytes: Vec<u8>) -> Result<(), MlflowError> {
        let path = format!("/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{name}");
        self.send(reqwest::Method::PUT, &path, Some(bytes), false).await.map(|_| ())
    }

    /// Mark a run finished (or failed).
    pub async fn finish_run(&self, run_id: &str, status: &str, end_ms: i64) -> Result<(), MlflowError> {
        self.post("/api/2.0/mlflow/runs/update", json!({"run_id": run_id, "status": status, "end_time": end_ms})).await.map(|_| ())
    }

    /// Register `source` as a new version of registered model `name` (created if missing),
    /// linked to `run_id` when known, and point `alias` at it. Returns the MLflow version.
    pub async fn register(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        alias: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, MlflowError> {
        match self.post("/api/2.0/mlflow/registered-models/create", json!({ "name": name })).await {
            Ok(_) => {}
            Err(MlflowError::Api { body, .. }) if body.contains("RESOURCE_ALREADY_EXISTS") => {}
            Err(e) => return Err(e),
        }
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let mut body = json!({"name": name, "source": source, "tags": tags});
        if let Some(r) = run_id {
            body["run_id"] = json!(r);
        }
        let v = self.post("/api/2.0/mlflow/model-versions/create", body).await?;
        let version =
            v["model_version"]["version"].as_str().map(str::to_string).unwrap_or_else(|| v["model_version"]["version"].to_string());
        self.post("/api/2.0/mlflow/registered-models/alias", json!({"name": name, "alias": alias, "version": version})).await?;
        Ok(version)
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Value, MlflowError> {
    let text = std::fs::read_to_string(path).map_err(|e| MlflowError::Local { path: path.display().to_string(), reason: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| MlflowError::Local { path: path.display().to_string(), reason: e.to_string() })
}

fn write_json(path: &Path, v: &Value) -> Result<(), MlflowError> {
    std::fs::write(path, v.to_string()).map_err(|e| MlflowError::Local { path: path.display().to_string(), reason: e.to_string() })
}

/// What a push sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushReport {
    /// Experiment id.
    pub experiment_id: String,
    /// Parent (sweep) run id.
    pub parent_run_id: String,
    /// Trials pushed now.
    pub pushed: usize,
    /// Trials already in MLflow.
    pub already: usize,
}

/// Mirror a local sweep folder (`runs/sweeps/<name>`) to MLflow: experiment `<name>`, a parent
/// run for the sweep, a nested run per trial. Idempotent.
pub async fn push_sweep(client: &MlflowClient, dir: &Path) -> Result<PushReport, MlflowError> {
    let spec_text = std::fs::read_to_string(dir.join("spec.toml"))
        .map_err(|e| MlflowError::Local { path: dir.join("spec.toml").display().to_string(), reason: e.to_string() })?;
    let spec: crate::sweep::SweepSpec = toml::from_str(&spec_text)
        .map_err(|e| MlflowError::Local { path: dir.join("spec.toml").display().to_string(), reason: e.to_string() })?;
    let name = spec.name.clone();
    let objective = spec.objective.as_str().to_string();
    let dataset = spec.dataset.as_str().to_string();
    let dataset_hash = crate::sweep::dataset_dir(spec.dataset).ok().and_then(|d| crate::promote::hash_dir(&d).ok()).unwrap_or_default();
    let git = crate::sweep::git_commit().unwrap_or_default();
    let state_path = dir.join("mlflow.json");
    let mut state = read_json(&state_path).unwrap_or(Value::Null);
    if state["tracking_uri"].as_str() != Some(client.uri()) {
        state = Value::Null;
    }
    let experiment_id = client.experiment(&name).await?;
    let now = runtime::now_ms();
    let parent = match state["parent_run_id"].as_str() {
        Some(id) => id.to_string(),
        None => {
            let tags = BTreeMap::from([
                ("mlflow.runName".to_string(), format!("sweep {name}")),
                ("mlflow.source.git.commit".to_string(), git.clone()),
                ("mlflow.source.name".to_string(), "experiment sweep".to_string()),
                ("dataset".to_string(), dataset.clone()),
                ("dataset_sha256".to_string(), dataset_hash.clone()),
                ("objective".to_string(), objective.clone()),
            ]);
            let id = client.create_run(&experiment_id, &format!("sweep {name}"), now, &tags).await?;
            client.log_artifact(&experiment_id, &id, "spec.toml", spec_text.clone().into_bytes()).await?;
            write_json(&state_path, &json!({"tracking_uri": client.uri(), "experiment_id": experiment_id, "parent_run_id": id}))?;
            id
        }
    };
    let mut report = PushReport { experiment_id: experiment_id.clone(), parent_run_id: parent.clone(), ..PushReport::default() };
    let mut trials: Vec<_> = std::fs::read_dir(dir.join("trials"))
        .map_err(|e| MlflowError::Local { path: dir.join("trials").display().to_string(), reason: e.to_string() })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("metrics.jsonl").is_file())
        .collect();
    trials.sort();
    let mut objective_history = Vec::new();
    for (step, tdir) in trials.iter().enumerate() {
        let id = tdir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let metrics: Vec<(String, f64, i64, i64)> = crate::sweep::read_metrics(tdir)
            .into_iter()
            .map(|m| (m.key, m.value, m.step, if m.timestamp > 0 { m.timestamp } else { now }))
            .collect();
        if pushed_to(client, tdir).is_some() {
            report.already += 1;
            continue;
        }
        // Only trials pushed now: a later push must not log earlier points of the history again.
        if let Some(m) = metrics.iter().find(|m| m.0 == objective) {
            objective_history.push((objective.clone(), m.1, step as i64, m.3));
        }
        let local = |e: crate::tracking::TrackingError| MlflowError::Local { path: e.path, reason: e.reason };
        let params = crate::tracking::read_params(tdir).map_err(local)?;
        let local_tags = crate::tracking::TrialTags::read(tdir).map_err(local)?;
        let (start, end) = (local_tags.start_time, local_tags.end_time);
        let tags = BTreeMap::from([
            ("mlflow.parentRunId".to_string(), parent.clone()),
            ("mlflow.runName".to_string(), format!("trial {}", &id[..id.len().min(8)])),
            ("mlflow.source.git.commit".to_string(), local_tags.git_commit.clone().unwrap_or_else(|| git.clone())),
            ("trial_id".to_string(), id.clone()),
            ("dataset_sha256".to_string(), dataset_hash.clone()),
            ("sweep".to_string(), local_tags.sweep.clone()),
            ("dataset".to_string(), local_tags.dataset.to_string()),
            ("detector".to_string(), local_tags.detector.clone()),
        ]);
        let run = client.create_run(&experiment_id, &format!("trial {}", &id[..id.len().min(8)]), start, &tags).await?;
        client.log_batch(&run, &params, &metrics, &BTreeMap::new()).await?;
        for file in ["trial.json", "params.json", "tags.json"] {
            if let Ok(bytes) = std::fs::read(tdir.join(file)) {
                client.log_artifact(&experiment_id, &run, file, bytes).await?;
            }
        }
        client.finish_run(&run, local_tags.status.as_str(), end).await?;
        mark_pushed(client, tdir, &experiment_id, &run)?;
        report.pushed += 1;
    }
    // The parent: the objective of every trial as a metric history, the leaderboard and chart.
    if report.pushed > 0 {
        client.log_batch(&parent, &BTreeMap::new(), &objective_history, &BTreeMap::new()).await?;
        for file in ["leaderboard.md", "objective.svg", "report.html"] {
            if let Ok(bytes) = std::fs::read(dir.join(file)) {
                client.log_artifact(&experiment_id, &parent, file, bytes).await?;
            }
        }
    }
    client.finish_run(&parent, "FINISHED", runtime::now_ms()).await?;
    Ok(report)
}

/// The (experiment, run) a folder was pushed as to this tracking server, if it was.
fn pushed_to(client: &MlflowClient, dir: &Path) -> Option<(String, String)> {
    let same = read_json(&dir.join("mlflow.json")).ok()?["tracking_uri"].as_str()? == client.uri();
    if same { trial_run(dir) } else { None }
}

/// Record in `dir/mlflow.json` the run a folder was pushed as.
fn mark_pushed(client: &MlflowClient, dir: &Path, experiment_id: &str, run_id: &str) -> Result<(), MlflowError> {
    write_json(&dir.join("mlflow.json"), &json!({"tracking_uri": client.uri(), "experiment_id": experiment_id, "run_id": run_id}))
}

/// Mirror a forecaster run folder (`runs/forecasts/<name>/<id>`, `experiment forecast train`)
/// to MLflow: experiment `forecast-<name>`, one run with the settings as params, the evaluation
/// as metrics and `forecast.json` as an artifact; `mlflow.json` in the folder records it.
/// Idempotent: a folder already pushed to this tracking server is not pushed again.
pub async fn push_forecast_run(client: &MlflowClient, dir: &Path) -> Result<(String, String), MlflowError> {
    if let Some(pushed) = pushed_to(client, dir) {
        return Ok(pushed);
    }
    let local = |e: crate::tracking::TrackingError| MlflowError::Local { path: e.path, reason: e.reason };
    let run = crate::tracking::ForecastRun::read(dir).map_err(local)?;
    let params = crate::tracking::read_params(dir).map_err(local)?;
    let metrics: Vec<(String, f64, i64, i64)> =
        crate::tracking::read_metrics(dir).into_iter().map(|m| (m.key, m.value, m.step, m.timestamp)).collect();
    let name = dir.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let id = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let experiment_id = client.experiment(&format!("forecast-{name}")).await?;
    let run_name = format!("forecast {}", &id[..id.len().min(8)]);
    let tags = BTreeMap::from([
        ("mlflow.runName".to_string(), run_name.clone()),
        ("mlflow.source.name".to_string(), "experiment forecast train".to_string()),
        ("mlflow.source.git.commit".to_string(), run.git_commit.clone().unwrap_or_default()),
        ("run_id".to_string(), id.clone()),
        ("input".to_string(), run.input.clone()),
        ("column".to_string(), run.column.clone()),
        ("metric".to_string(), run.forecaster.metric.clone()),
        ("input_sha256".to_string(), run.input_sha256.clone()),
        ("kind".to_string(), "auto".to_string()),
    ]);
    let run_id = client.create_run(&experiment_id, &run_name, run.start_time, &tags).await?;
    client.log_batch(&run_id, &params, &metrics, &BTreeMap::new()).await?;
    for file in [crate::tracking::ForecastRun::FILE, "params.json"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            client.log_artifact(&experiment_id, &run_id, file, bytes).await?;
        }
    }
    client.finish_run(&run_id, "FINISHED", run.end_time).await?;
    mark_pushed(client, dir, &experiment_id, &run_id)?;
    Ok((experiment_id, run_id))
}

/// Mirror an LSTM bundle folder (`experiment lstm train`) to MLflow: experiment `lstm`, one run
/// named after the folder with the model's shape and training settings as params, the loss and
/// validation loss of every epoch as metric histories, and `forecaster.json` and `history.csv`
/// as artifacts; `mlflow.json` in the folder records it. Idempotent per tracking server.
pub async fn push_lstm_bundle(client: &MlflowClient, dir: &Path) -> Result<(String, String), MlflowError> {
    if let Some(pushed) = pushed_to(client, dir) {
        return Ok(pushed);
    }
    let local = |reason: String| MlflowError::Local { path: dir.display().to_string(), reason };
    let fc = runtime::forecast::Forecaster::load_dir(dir).map_err(|e| local(e.to_string()))?;
    let mut params = BTreeMap::new();
    for v in [serde_json::to_value(&fc.meta.config).ok(), fc.meta.training.clone()].into_iter().flatten() {
        if let Value::Object(map) = v {
            params.extend(map.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string))));
        }
    }
    let now = runtime::now_ms();
    let mut metrics: Vec<(String, f64, i64, i64)> = Vec::new();
    for (epoch, loss, val) in crate::promote::lstm_history(dir) {
        metrics.push(("loss".into(), loss, epoch, now));
        if let Some(v) = val {
            metrics.push(("val_loss".into(), v, epoch, now));
        }
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let experiment_id = client.experiment("lstm").await?;
    let tags = BTreeMap::from([
        ("mlflow.runName".to_string(), name.clone()),
        ("mlflow.source.name".to_string(), "experiment lstm train".to_string()),
        ("server".to_string(), fc.meta.server.clone()),
        ("weights_sha256".to_string(), fc.meta.weights_sha256.clone()),
        ("kind".to_string(), "lstm".to_string()),
    ]);
    let run_id = client.create_run(&experiment_id, &name, now, &tags).await?;
    client.log_batch(&run_id, &params, &metrics, &BTreeMap::new()).await?;
    for file in [runtime::forecast::META_FILE, "history.csv"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            client.log_artifact(&experiment_id, &run_id, file, bytes).await?;
        }
    }
    client.finish_run(&run_id, "FINISHED", runtime::now_ms()).await?;
    mark_pushed(client, dir, &experiment_id, &run_id)?;
    Ok((experiment_id, run_id))
}

/// The MLflow (experiment id, run id) a trial folder was pushed as, if any.
pub fn trial_run(trial_dir: &Path) -> Option<(String, String)> {
    let v = read_json(&trial_dir.join("mlflow.json")).ok()?;
    Some((v["experiment_id"].as_str()?.to_string(), v["run_id"].as_str()?.to_string()))
}

/// Record a promoted bundle in the MLflow model registry: push the trial's sweep if needed,
/// upload the bundle files to the trial's run (`bundle/`), create a model version from them and
/// point `alias` at it. Returns the MLflow version.
pub async fn register_promotion(
    client: &MlflowClient,
    trial_dir: &Path,
    bundle: &runtime::registry::Bundle,
    registry_source: &str,
    alias: &str,
) -> Result<String, MlflowError> {
    if trial_run(trial_dir).is_none() {
        if crate::promote::is_forecast_run(trial_dir) {
            push_forecast_run(client, trial_dir).await?;
        } else if crate::promote::is_lstm_bundle(trial_dir) {
            push_lstm_bundle(client, trial_dir).await?;
        } else if let Some(sweep_dir) = trial_dir.parent().and_then(Path::parent) {
            push_sweep(client, sweep_dir).await?;
        }
    }
    let (experiment_id, run_id) = trial_run(trial_dir).ok_or_else(|| MlflowError::Local {
        path: trial_dir.join("mlflow.json").display().to_string(),
        reason: "the trial has no MLflow run".into(),
    })?;
    let manifest = serde_json::to_vec_pretty(&bundle.manifest).unwrap_or_default();
    client.log_artifact(&experiment_id, &run_id, "bundle/manifest.json", manifest).await?;
    for (name, bytes) in &bundle.files {
        client.log_artifact(&experiment_id, &run_id, &format!("bundle/{name}"), bytes.clone()).await?;
    }
    let source = format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/bundle");
    let tags = BTreeMap::from([
        ("registry_uri".to_string(), registry_source.to_string()),
        ("registry_version".to_string(), bundle.manifest.version.to_string()),
        ("source_run".to_string(), bundle.manifest.source_run.clone()),
        ("kind".to_string(), bundle.manifest.kind.clone()),
    ]);
    client.register(&bundle.manifest.model, &source, Some(&run_id), alias, &tags).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_names_are_url_encoded() {
        assert_eq!(urlencode("sweep a/b"), "sweep%20a%2Fb");
    }

    /// A create that reached the server but whose answer was lost (a 503 from a proxy after the
    /// backend committed) is not retried into a second run: the key finds the first.
    #[tokio::test]
    async fn a_retried_create_finds_the_run_the_lost_answer_made() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let creates = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&creates);
        tokio::spawn(async move {
            let mut stored_key: Option<String> = None;
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 65536];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = req.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
                let (status, answer) = if req.starts_with("POST /api/2.0/mlflow/runs/create") {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    stored_key = v["tags"]
                        .as_array()
                        .and_then(|t| t.iter().find(|t| t["key"] == RUN_KEY_TAG))
                        .map(|t| t["value"].as_str().unwrap().to_string());
                    ("503 Service Unavailable", "{}".to_string())
                } else if req.starts_with("POST /api/2.0/mlflow/runs/search") {
                    let hit = stored_key.as_ref().is_some_and(|k| body.contains(k.as_str()));
                    ("200 OK", if hit { r#"{"runs":[{"info":{"run_id":"run-1"}}]}"#.to_string() } else { "{}".to_string() })
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                let _ = sock
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len()).as_bytes())
                    .await;
            }
        });
        let mut client = MlflowClient::new(&format!("http://{addr}"));
        client.backoff = Duration::from_millis(10);
        let id = client.create_run("1", "trial", 1_700_000_000_000, &BTreeMap::new()).await.unwrap();
        assert_eq!(id, "run-1");
        assert_eq!(creates.load(std::sync::atomic::Ordering::SeqCst), 1, "one create, then found by its key");
    }
}
