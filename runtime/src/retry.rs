//! One HTTP retry policy for every client of the project (InfluxDB reads and writes, MLflow,
//! the alert sinks): which answers are worth retrying, and how long to wait before the next
//! attempt — exponential backoff, or the server's `Retry-After` when it asks for longer, capped.
//!
//! ```
//! use std::time::Duration;
//! use runtime::retry::{RetryPolicy, retryable_status};
//! let p = RetryPolicy { max_retries: 3, base: Duration::from_millis(200), cap: Duration::from_secs(30) };
//! assert_eq!(p.delay(1, None), Duration::from_millis(200));
//! assert_eq!(p.delay(3, None), Duration::from_millis(800));
//! assert_eq!(p.delay(1, Some(Duration::from_secs(5))), Duration::from_secs(5), "Retry-After honoured");
//! assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(30), "and capped");
//! assert!(retryable_status(429) && retryable_status(503) && retryable_status(408) && !retryable_status(400));
//! ```

use std::time::{Duration, SystemTime};

/// Retry settings of one client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry; doubles each retry.
    pub base: Duration,
    /// Longest wait (also caps a server's `Retry-After`).
    pub cap: Duration,
}

/// Statuses worth retrying: 408 (timeout), 429 (rate limited), 5xx.
pub fn retryable_status(code: u16) -> bool {
    code == 408 || code == 429 || (500..600).contains(&code)
}

/// A `Retry-After` header value (RFC 9110: delay-seconds or an HTTP-date) as the wait from `now`;
/// `None` when unparseable. A date in the past is no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response, if it has a parseable one.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, SystemTime::now()))
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1-based): `base · 2^(attempt − 1)`, or the server's
    /// `Retry-After` when longer, at most `cap`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        backoff.max(retry_after.unwrap_or(Duration::ZERO)).min(self.cap)
    }

    /// Send the request `build` makes (once per attempt) until it answers with a success or a
    /// status not worth retrying, or the retries run out; transport errors are retried too.
    /// Returns the last outcome and the number of retries made.
    pub async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder) -> (Result<reqwest::Response, reqwest::Error>, u32) {
        let mut retries = 0;
        loop {
            let result = build().send().await;
            let wait = match &result {
                Ok(r) if retryable_status(r.status().as_u16()) => Some(retry_after(r)),
                Ok(_) => None,
                Err(_) => Some(None),
            };
            match wait {
                Some(after) if retries < self.max_retries => {
                    retries += 1;
                    tracing::warn!(attempt = retries, "HTTP request failed, retrying");
                    tokio::time::sleep(self.delay(retries, after)).await;
                }
                _ => return (result, retries),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A local server answering `answers` in turn (then 200), counting the requests.
    async fn server(answers: Vec<(u16, Option<&'static str>)>) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let i = h.fetch_add(1, Ordering::SeqCst);
                let (code, after) = answers.get(i).copied().unwrap_or((200, None));
                async move {
                    let mut resp = axum::response::Response::new(axum::body::Body::from("x"));
                    *resp.status_mut() = axum::http::StatusCode::from_u16(code).unwrap();
                    if let Some(a) = after {
                        resp.headers_mut().insert("retry-after", a.parse().unwrap());
                    }
                    resp
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    #[test]
    fn retries_what_is_worth_it_honouring_a_capped_retry_after() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let http = reqwest::Client::new();
            let policy = RetryPolicy { max_retries: 3, base: Duration::from_millis(10), cap: Duration::from_millis(300) };
            // 503 and 429 with Retry-After: 60 (capped at 300 ms each), then 200.
            let (url, hits) = server(vec![(503, Some("60")), (429, Some("60"))]).await;
            let t0 = std::time::Instant::now();
            let (resp, retries) = policy.send(|| http.get(&url)).await;
            assert_eq!(resp.unwrap().status().as_u16(), 200);
            assert_eq!((retries, hits.load(Ordering::SeqCst)), (2, 3));
            assert!(t0.elapsed() >= Duration::from_millis(590), "waited the capped Retry-After twice: {:?}", t0.elapsed());
            // A 400 is final; retries run out on a server that keeps failing.
            let (url, hits) = server(vec![(400, None)]).await;
            let (resp, retries) = policy.send(|| http.get(&url)).await;
            assert_eq!((resp.unwrap().status().as_u16(), retries, hits.load(Ordering::SeqCst)), (400, 0, 1));
            let (url, hits) = server(vec![(500, None); 10]).await;
            let (resp, retries) = policy.send(|| http.get(&url)).await;
            assert_eq!((resp.unwrap().status().as_u16(), retries, hits.load(Ordering::SeqCst)), (500, 3, 4));
        });
    }
}
