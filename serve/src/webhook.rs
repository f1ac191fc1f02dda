//! Webhooks: the engine's events become POSTs to the web app's pages (DESIGN §11).
//!
//! *finished* goes to `next_page.url`, *available* to `recording_available_page.url`, each as
//! `{"action_result": {...}}`. One record's deliveries run in order (the available call waits
//! until the next_page call has succeeded or given up); different records' run concurrently.
//! A delivery that fails (network error, timeout or a non-2xx answer) is retried with
//! exponential backoff up to a bound; a delivery that gives up is logged and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// One attempt's timeout.
    pub timeout: Duration,
    /// Attempts before giving up (at least 1).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout: Duration::from_secs(5),
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Webhook counters.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Deliveries that succeeded.
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Deliveries that gave up.
    pub failures: AtomicU64,
}

/// Sends webhooks.
#[derive(Clone, Debug)]
pub struct Webhooks {
    client: reqwest::Client,
    config: WebhookConfig,
    /// The counters.
    pub stats: Arc<WebhookStats>,
}

/// Resolves a page's `url` against the app URL (relative URLs need one); only http and https.
pub fn resolve(app_url: Option<&Url>, url: &str) -> Result<Url, String> {
    let resolved = match Url::parse(url) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match app_url {
            Some(base) => base
                .join(url)
                .map_err(|e| format!("cannot be resolved against --app-url: {e}"))?,
            None => return Err("is relative and the server has no --app-url".into()),
        },
        Err(e) => return Err(format!("is not a URL: {e}")),
    };
    match resolved.scheme() {
        "http" | "https" => Ok(resolved),
        _ => Err("must be an http or https URL".into()),
    }
}

impl Webhooks {
    /// A client with the configured timeout.
    pub fn new(config: WebhookConfig) -> Result<Webhooks, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("callrec-serve/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Webhooks {
            client,
            config,
            stats: Arc::new(WebhookStats::default()),
        })
    }

    /// POSTs `{"action_result": <action_result_json>}` to `url`, retrying; true when delivered.
    pub async fn deliver(
        &self,
        record_id: &str,
        page: &str,
        url: &Url,
        action_result_json: &str,
    ) -> bool {
        let body = format!("{{\"action_result\":{action_result_json}}}");
        let mut backoff = self.config.first_backoff;
        for attempt in 1..=self.config.attempts.max(1) {
            let sent = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => {
                    if page == "recording_available_page"
                        && r.status() != reqwest::StatusCode::NO_CONTENT
                    {
                        tracing::warn!(record_id, page, status = %r.status(), "expected 204 No Content");
                    }
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(record_id, page, %url, attempt, "webhook delivered");
                    return true;
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => without_url(&e),
            };
            if attempt == self.config.attempts.max(1) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(record_id, page, %url, attempt, error = %failure, "webhook delivery failed; giving up");
                return false;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(record_id, page, %url, attempt, error = %failure, retry_in_ms = backoff.as_millis() as u64, "webhook delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
        false
    }
}

/// reqwest's message without the URL it appends (already in the log line once).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
