//! A local HTTP receiver standing in for Slack and PagerDuty (external services): it checks
//! each request against the real payload format (answering 400 with the reason, as the services
//! do), records what it accepted, and can fail on demand (HTTP 500 or a hang) for outage tests.
//! Shared by runtime/tests and tests/services (included with `#[path]`).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Headers (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// JSON body.
    pub body: Value,
}

#[derive(Debug, Default)]
struct Shared {
    accepted: Mutex<Vec<Received>>,
    rejected: Mutex<Vec<String>>,
    fail_next: AtomicUsize,
    throttle_next: AtomicUsize,
    down: AtomicBool,
    hang: AtomicBool,
}

/// The receiver; dropping it leaves its thread running until the test process ends.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
}

/// Check a Slack incoming-webhook payload (text and/or Block Kit blocks).
pub fn check_slack(body: &Value) -> Result<(), String> {
    let text = body.get("text").and_then(Value::as_str);
    let blocks = body.get("blocks").and_then(Value::as_array);
    if text.is_none() && blocks.is_none() {
        return Err("no_text".into());
    }
    if let Some(blocks) = blocks {
        if blocks.len() > 50 {
            return Err("invalid_blocks: more than 50".into());
        }
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("header") => {
                    let t = &b["text"];
                    if t["type"] != "plain_text" || t["text"].as_str().is_none_or(|s| s.is_empty() || s.chars().count() > 150) {
                        return Err("invalid_blocks: header needs plain_text of 1..150 chars".into());
                    }
                }
                Some("section") => {
                    let fields = b.get("fields").and_then(Value::as_array);
                    if b.get("text").is_none() && fields.is_none() {
                        return Err("invalid_blocks: section needs text or fields".into());
                    }
                    if let Some(f) = fields
                        && (f.len() > 10 || f.iter().any(|x| x["text"].as_str().is_none_or(|s| s.chars().count() > 2000)))
                    {
                        return Err("invalid_blocks: at most 10 fields of ≤ 2000 chars".into());
                    }
                    if let Some(t) = b.get("text")
                        && (t["text"].as_str().is_none_or(|s| s.chars().count() > 3000)
                            || !matches!(t["type"].as_str(), Some("mrkdwn" | "plain_text")))
                    {
                        return Err("invalid_blocks: section text".into());
                    }
                }
                Some("context") => {
                    if b["elements"].as_array().is_none_or(|e| e.is_empty() || e.len() > 10) {
                        return Err("invalid_blocks: context elements".into());
                    }
                }
                Some("divider" | "actions" | "image" | "rich_text") => {}
                other => return Err(format!("invalid_blocks: unknown block type {other:?}")),
            }
        }
    }
    Ok(())
}

/// Check a PagerDuty Events API v2 body.
pub fn check_pagerduty(body: &Value) -> Result<(), String> {
    let key = body["routing_key"].as_str().ok_or("routing_key missing")?;
    if key.len() != 32 {
        return Err("Invalid routing key: must be 32 characters".into());
    }
    let action = body["event_action"].as_str().ok_or("event_action missing")?;
    let dedup = body.get("dedup_key").and_then(Value::as_str);
    if dedup.is_some_and(|d| d.len() > 255) {
        return Err("dedup_key longer than 255".into());
    }
    match action {
        "trigger" => {
            let p = &body["payload"];
            let summary = p["summary"].as_str().ok_or("payload.summary missing")?;
            if summary.is_empty() || summary.len() > 1024 {
                return Err("payload.summary must be 1..1024 chars".into());
            }
            p["source"].as_str().filter(|s| !s.is_empty()).ok_or("payload.source missing")?;
            if !matches!(p["severity"].as_str(), Some("critical" | "error" | "warning" | "info")) {
                return Err("payload.severity must be critical, error, warning or info".into());
            }
            if let Some(ts) = p.get("timestamp") {
                ts.as_str().and_then(runtime::parse_ts).ok_or("payload.timestamp is not ISO 8601")?;
            }
        }
        "acknowledge" | "resolve" => {
            dedup.ok_or("dedup_key is required to acknowledge or resolve")?;
        }
        other => return Err(format!("unknown event_action {other}")),
    }
    Ok(())
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: String) -> axum::response::Response {
    if shared.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if shared.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    if shared.fail_next.load(Ordering::SeqCst) > 0 {
        shared.fail_next.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    if shared.throttle_next.load(Ordering::SeqCst) > 0 {
        shared.throttle_next.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate limited").into_response();
    }
    let path = uri.path().to_string();
    let parsed: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            shared.rejected.lock().unwrap().push(format!("{path}: invalid JSON: {e}"));
            return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
        }
    };
    let check = if path.starts_with("/slack") {
        check_slack(&parsed)
    } else if path.starts_with("/pagerduty") {
        check_pagerduty(&parsed)
    } else {
        Ok(())
    };
    if let Err(e) = check {
        shared.rejected.lock().unwrap().push(format!("{path}: {e}"));
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    let headers = headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    shared.accepted.lock().unwrap().push(Received { path: path.clone(), headers, body: parsed });
    if path.starts_with("/pagerduty") {
        (StatusCode::ACCEPTED, r#"{"status":"success","message":"Event processed"}"#).into_response()
    } else {
        (StatusCode::OK, "ok").into_response()
    }
}

impl Receiver {
    /// Listen on a free local port in a background thread.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Listen on a given local port (0: any free one).
    pub fn start_on(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind a local port");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(handle).with_state(s);
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        Self { url, shared }
    }

    /// Requests accepted so far, optionally only those under a path prefix.
    pub fn accepted(&self, prefix: &str) -> Vec<Received> {
        self.shared.accepted.lock().unwrap().iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }

    /// Requests refused for their format.
    pub fn rejected(&self) -> Vec<String> {
        self.shared.rejected.lock().unwrap().clone()
    }

    /// Answer 500 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Answer 429 with `Retry-After: 1` to the next `n` requests.
    pub fn throttle_next(&self, n: usize) {
        self.shared.throttle_next.store(n, Ordering::SeqCst);
    }

    /// Answer 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Never answer while `hang` (clients time out).
    pub fn set_hang(&self, hang: bool) {
        self.shared.hang.store(hang, Ordering::SeqCst);
    }

    /// Wait until `f` holds or `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&Self) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        f(self)
    }
}
