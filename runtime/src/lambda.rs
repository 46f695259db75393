//! The AWS Lambda handler: one monitoring tick per scheduled invocation.
//!
//! EventBridge Scheduler invokes the function with `{"mode": "detect", "shard": k, "shards": n}`
//! (terraform/lambda.tf); the tick monitors the servers of shard `k` (FNV-1a of the name mod
//! `n`), queues alerts in an outbox under `/tmp` (one per shard) and waits up to the remaining
//! time (less a margin) for it to drain. Monitors stay warm between invocations of the same
//! execution environment, so detectors keep their history; a cold start re-warms them from
//! `warmup_secs` of history. Undelivered alerts make the invocation fail (the scheduler's DLQ
//! records it) and stay in the outbox for the next tick — with an `s3://` registry also in the
//! bucket (`<registry>/outbox/shard-K-of-N/`, see [`crate::sinks::remote`]), so an execution
//! environment recycled meanwhile loses nothing: the next invocation, in any environment,
//! takes them from there and delivers them.
//!
//! Configuration: `RUNTIME_CONFIG` (a TOML file in the package, optional) plus the
//! environment terraform sets (`MODEL_URI`, `MODEL_ALIAS`, `INFLUXDB_URL`, `MONITORED_SERVERS`, …).
//! Secrets: `ALERTING_SECRET_ARN` (`{"slack_webhook_url", "pagerduty_routing_key"}`) and
//! `INFLUXDB_SECRET_ARN` (`{"username", "password"}` or `{"token"}`) are read through the AWS
//! Parameters and Secrets Lambda Extension (`localhost:2773`) when its layer is attached.
//! `mode = "predict"` forecasts every server of the shard with the statistical forecaster fitted
//! per server (the default without a bundle; `FORECAST_MODEL=auto`), the LSTM bundle of
//! `[forecast] bundle` (or `FORECASTER_BUNDLE`, a folder in the package; the default with one) or
//! the registry's forecaster (`model = "registry"`), and routes SCALE_NOW / SCALE_SOON alerts like
//! anomaly alerts; `model = "lstm"` without a bundle answers that it needs one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::monitor::config::RuntimeConfig;
use crate::monitor::telemetry::Telemetry;
use crate::monitor::{Monitor, TickReport};
use crate::sinks::Secret;

/// What an invocation does (`"detect"` or `"predict"` in the event; `RUNTIME_MODE` otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaMode {
    /// One monitoring tick of the shard.
    #[default]
    Detect,
    /// Predictive scaling of the shard's servers.
    Predict,
}

impl std::str::FromStr for LambdaMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "detect" => Ok(Self::Detect),
            "predict" => Ok(Self::Predict),
            other => Err(format!("unknown mode `{other}`: use detect or predict")),
        }
    }
}

/// The scheduler's input.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TickEvent {
    /// `detect` (default) or `predict`.
    pub mode: Option<LambdaMode>,
    /// Shard of this invocation.
    pub shard: Option<u32>,
    /// Number of shards.
    pub shards: Option<u32>,
}

/// The answer of an invocation.
#[derive(Debug, Clone, Serialize)]
pub struct TickResponse {
    /// The mode run.
    pub mode: LambdaMode,
    /// Shard `k/n`.
    pub shard: String,
    /// The tick.
    pub tick: Option<TickReport>,
    /// Deliveries still pending after the drain.
    pub pending: u64,
    /// Why nothing was done (e.g. predict without a forecaster), or what predict did.
    pub note: Option<String>,
    /// Predict mode: the recommendation per server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<(String, crate::forecast::ScalingAdvice)>,
}

/// Monitors by shard, kept across invocations of one execution environment.
#[derive(Debug)]
pub struct Handler {
    base: RuntimeConfig,
    telemetry: Arc<Telemetry>,
    monitors: tokio::sync::Mutex<HashMap<(u32, u32), Monitor>>,
    forecaster: tokio::sync::OnceCell<Result<crate::predict::Predictor, String>>,
}

impl Handler {
    /// With the base configuration (shard settings are taken from each event).
    pub fn new(base: RuntimeConfig) -> Self {
        Self {
            base,
            telemetry: Arc::new(Telemetry::new()),
            monitors: tokio::sync::Mutex::new(HashMap::new()),
            forecaster: tokio::sync::OnceCell::new(),
        }
    }

    /// Run one invocation; `budget` is the time left before the Lambda deadline.
    pub async fn handle(&self, event: TickEvent, budget: Duration) -> Result<TickResponse, String> {
        let mode = match event.mode {
            Some(m) => m,
            None => std::env::var("RUNTIME_MODE").ok().map_or(Ok(LambdaMode::Detect), |m| m.parse())?,
        };
        let shards = event.shards.unwrap_or(self.base.selection.shards).max(1);
        let shard = event.shard.unwrap_or(self.base.selection.shard);
        if shard >= shards {
            return Err(format!("event shard {shard} is not in 0..{shards}"));
        }
        let shard_label = format!("{shard}/{shards}");
        if mode == LambdaMode::Predict
            && self.base.forecast.model() == crate::predict::ForecastModel::Lstm
            && self.base.forecast.bundle_dir().is_none()
        {
            return Ok(TickResponse {
                mode,
                shard: shard_label,
                tick: None,
                pending: 0,
                note: Some(
                    "model = \"lstm\" without a bundle ([forecast] bundle or FORECASTER_BUNDLE; or leave model unset for `auto`)".into(),
                ),
                advice: Vec::new(),
            });
        }
        let mut monitors = self.monitors.lock().await;
        if let std::collections::hash_map::Entry::Vacant(e) = monitors.entry((shard, shards)) {
            let mut cfg = self.base.clone();
            cfg.selection.shard = shard;
            cfg.selection.shards = shards;
            cfg.outbox.dir = cfg.outbox.dir.join(format!("shard-{shard}-of-{shards}"));
            // `/tmp` goes with the execution environment: keep what is undelivered in the bucket.
            if cfg.outbox.remote.is_none() {
                cfg.outbox.remote = Some(cfg.model.registry.starts_with("s3://"));
            }
            cfg.http.listen = String::new();
            let m = Monitor::new(cfg, self.telemetry.clone()).map_err(|e| e.to_string())?;
            e.insert(m);
        }
        let monitor = monitors.get_mut(&(shard, shards)).expect("inserted above");
        if mode == LambdaMode::Predict {
            let advice = if self.base.forecast.model() == crate::predict::ForecastModel::Registry {
                // Read the alias at every invocation: a promotion is served from the next one.
                let (_, fc) = monitor.refresh_forecaster().await?;
                monitor.predict(crate::now_ms(), &fc).await?
            } else {
                let forecast_cfg = self.base.forecast.clone();
                let fc = self
                    .forecaster
                    .get_or_init(|| async move {
                        crate::predict::Predictor::from_config(&forecast_cfg)
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| "no forecaster configured".to_string())
                    })
                    .await
                    .as_ref()
                    .map_err(Clone::clone)?;
                monitor.predict(crate::now_ms(), fc).await?
            };
            let timeout =
                budget.saturating_sub(Duration::from_secs(3)).min(Duration::from_secs(monitor.config().schedule.deliver_timeout_secs));
            let drained = monitor.drain(timeout).await.map_err(|e| e.to_string())?;
            if drained.pending > 0 {
                return Err(format!("{} predictive alert deliveries still pending (kept in the outbox)", drained.pending));
            }
            let alerting = advice.iter().filter(|(_, a)| a.recommendation != crate::forecast::Recommendation::None).count();
            return Ok(TickResponse {
                mode,
                shard: shard_label,
                tick: None,
                pending: 0,
                note: Some(format!("{} servers forecast, {alerting} need capacity", advice.len())),
                advice,
            });
        }
        let tick = monitor.tick(crate::now_ms()).await;
        emit_emf(&tick);
        let timeout =
            budget.saturating_sub(Duration::from_secs(3)).min(Duration::from_secs(monitor.config().schedule.deliver_timeout_secs));
        let drained = monitor.drain(timeout).await.map_err(|e| e.to_string())?;
        if drained.pending > 0 {
            return Err(format!(
                "{} alert deliveries still pending after {:.0} s (kept in the outbox for the next tick)",
                drained.pending,
                timeout.as_secs_f64()
            ));
        }
        if let Some(e) = &tick.error {
            return Err(format!("tick failed: {e}"));
        }
        Ok(TickResponse { mode, shard: shard_label, tick: Some(tick), pending: drained.pending, note: None, advice: Vec::new() })
    }
}

/// CloudWatch embedded metric format: one JSON log line the Lambda log pipeline turns into
/// `AIOps/Monitoring` metrics (the dashboard of terraform/cloudwatch.tf).
fn emit_emf(t: &TickReport) {
    let ns = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "AIOps/Monitoring".into());
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "runtime".into());
    println!("{}", emf_line(t, &ns, &function, crate::now_ms()));
}

/// The EMF line of a tick: the metrics the dashboard charts, with the `Function` dimension it
/// queries them by.
fn emf_line(t: &TickReport, namespace: &str, function: &str, now_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Function"]],
                "Metrics": [
                    {"Name": "AnomaliesDetected", "Unit": "Count"},
                    {"Name": "AlertsGenerated", "Unit": "Count"},
                    {"Name": "RowsScored", "Unit": "Count"},
                    {"Name": "LambdaExecutionTime", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Function": function,
        "AnomaliesDetected": t.anomalous_rows,
        "AlertsGenerated": t.alerts.len(),
        "RowsScored": t.rows_scored,
        "LambdaExecutionTime": t.duration_ms,
    })
}

/// Fill secrets from Secrets Manager through the Parameters and Secrets Lambda Extension, when
/// the ARNs are set and the extension answers. Failures are logged (without values) and leave
/// the configuration as it was.
pub async fn apply_secrets(cfg: &mut RuntimeConfig) {
    let (Ok(token), port) =
        (std::env::var("AWS_SESSION_TOKEN"), std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").unwrap_or_else(|_| "2773".into()))
    else {
        return;
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client builds");
    let fetch = |arn: String| {
        let (http, token, port) = (http.clone(), token.clone(), port.clone());
        async move {
            let url = format!("http://localhost:{port}/secretsmanager/get");
            let resp = http.get(url).query(&[("secretId", arn.as_str())]).header("X-Aws-Parameters-Secrets-Token", token).send().await;
            let body: serde_json::Value = match resp {
                Ok(r) if r.status().is_success() => r.json().await.map_err(|e| e.without_url().to_string())?,
                Ok(r) => return Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) => return Err(e.without_url().to_string()),
            };
            let text = body.get("SecretString").and_then(|s| s.as_str()).ok_or("no SecretString")?;
            serde_json::from_str::<HashMap<String, Option<String>>>(text)
                .map_err(|_| "SecretString is not a JSON object of strings".to_string())
        }
    };
    if let Ok(arn) = std::env::var("ALERTING_SECRET_ARN") {
        match fetch(arn).await {
            Ok(v) => {
                let get = |k: &str| v.get(k).cloned().flatten().filter(|s| !s.is_empty());
                if let (true, Some(s)) = (cfg.sinks.slack.webhook_url.is_empty(), get("slack_webhook_url")) {
                    cfg.sinks.slack.webhook_url = Secret::new(s);
                }
                if let (true, Some(s)) = (cfg.sinks.pagerduty.routing_key.is_empty(), get("pagerduty_routing_key")) {
                    cfg.sinks.pagerduty.routing_key = Secret::new(s);
                }
            }
            Err(e) => tracing::error!(secret = "alerting", error = %e, "cannot read secret"),
        }
    }
    if let Ok(arn) = std::env::var("INFLUXDB_SECRET_ARN") {
        match fetch(arn).await {
            Ok(v) => {
                let i = &mut cfg.source.influxdb;
                for (k, slot) in [("username", &mut i.username), ("password", &mut i.password), ("token", &mut i.token)] {
                    if let Some(s) = v.get(k).cloned().flatten().filter(|s| !s.is_empty()) {
                        *slot = s;
                    }
                }
            }
            Err(e) => tracing::error!(secret = "influxdb", error = %e, "cannot read secret"),
        }
    }
}

/// Serve invocations through the Lambda Runtime API until the environment is shut down.
#[cfg(feature = "lambda")]
pub async fn run(mut base: RuntimeConfig) -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    if base.outbox.dir.is_relative() {
        base.outbox.dir = std::path::PathBuf::from("/tmp").join(&base.outbox.dir);
    }
    apply_secrets(&mut base).await;
    let handler = Arc::new(Handler::new(base));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<TickEvent>| {
        let handler = handler.clone();
        async move {
            let deadline_ms = ev.context.deadline as i64;
            let budget = Duration::from_millis((deadline_ms - crate::now_ms()).max(0) as u64);
            handler
                .handle(ev.payload, budget)
                .await
                .map_err(|e| lambda_runtime::Diagnostic { error_type: "AIOpsRuntimeError".into(), error_message: e })
        }
    }))
    .await
}

#[cfg(test)]
mod emf_tests {
    use super::*;

    /// Every metric the CloudWatch dashboard charts is emitted, with the dimension it queries.
    #[test]
    fn emf_lines_carry_what_the_dashboard_queries() {
        let tf = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/cloudwatch.tf")).unwrap();
        let block = &tf[tf.find("custom_metric_widgets").unwrap()..tf.find("lambda_metric_widgets").unwrap()];
        let charted: Vec<&str> = block.split("name = \"").skip(1).filter_map(|p| p.split('"').next()).collect();
        assert!(charted.len() >= 4, "{charted:?}");
        assert!(block.contains("\"Function\", f.function_name"), "the dashboard queries by Function");
        let line = emf_line(&TickReport { rows_scored: 7, ..TickReport::default() }, "AIOps/Monitoring", "aiops-anomaly-detector", 1);
        let declared: Vec<&str> =
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        for m in &charted {
            assert!(declared.contains(m) && line.get(*m).is_some(), "{m} is charted but not emitted");
        }
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Function"]]));
        assert_eq!((line["Function"].as_str(), line["RowsScored"].as_u64()), (Some("aiops-anomaly-detector"), Some(7)));
    }
}

#[cfg(test)]
mod event_tests {
    use super::{LambdaMode, TickEvent};

    #[test]
    fn modes_are_checked_when_the_event_is_read() {
        let e: TickEvent = serde_json::from_str(r#"{"mode": "predict", "shard": 1, "shards": 4}"#).unwrap();
        assert_eq!((e.mode, e.shard, e.shards), (Some(LambdaMode::Predict), Some(1), Some(4)));
        assert_eq!(serde_json::from_str::<TickEvent>("{}").unwrap().mode, None);
        let err = serde_json::from_str::<TickEvent>(r#"{"mode": "forecast"}"#).unwrap_err().to_string();
        assert!(err.contains("forecast") && err.contains("detect") && err.contains("predict"), "{err}");
        assert_eq!("detect".parse::<LambdaMode>(), Ok(LambdaMode::Detect));
        assert!("Detect!".parse::<LambdaMode>().unwrap_err().contains("use detect or predict"));
        assert_eq!(serde_json::to_value(LambdaMode::Predict).unwrap(), "predict", "responses keep the string");
    }
}
