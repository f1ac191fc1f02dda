//! Webhooks: the engine's events become POSTs to the web app's pages (DESIGN §11).
//!
//! *finished* goes to `next_page.url`, *available* to `recording_available_page.url`, each as
//! `{"action_result": {...}}`. One record's deliveries run in order (the available call waits
//! until the next_page call has succeeded or given up); different records' run concurrently.
//! A delivery that fails (network error, timeout or a non-2xx answer) is retried with
//! exponential backoff up to a bound; a delivery that gives up is logged and counted, and stays
//! in the durable outbox ([`crate::outbox`]) for the next start.
//!
//! Every POST carries `Callrec-Delivery: <id>`, one id per (recording, event), the same on every
//! retry and after a restart: a slow app that answers after the timeout gets the same delivery
//! again, and drops it by that id.
//!
//! Where webhooks may go: the URL comes from whoever can POST a record, so the client must not
//! become a way into the operator's network (a cloud metadata address, an admin page on
//! loopback). Destinations that are private, loopback, link-local, unspecified, multicast or
//! broadcast are refused unless the operator allows them (the `--app-url` host,
//! `--webhook-allow-host`, `--webhook-allow-private`). Literal addresses are checked when a record
//! is created; names are checked by the client's own resolver at every connection, so a name that
//! later resolves elsewhere (DNS rebinding) is still refused. Redirects are never followed (a 3xx
//! is a failed attempt): the app's page answers itself. No proxy from the environment is used, so
//! the check applies to the real destination.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

/// The idempotency header: one id per (recording, event), the same on retries and restarts.
pub const DELIVERY_HEADER: &str = "Callrec-Delivery";

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
    /// Allow private and loopback destinations (RFC 1918, fc00::/7, 100.64.0.0/10, 127.0.0.0/8,
    /// ::1); link-local, unspecified, multicast and broadcast stay refused.
    pub allow_private: bool,
    /// Hosts (names or literal addresses) allowed whatever they resolve to.
    pub allow_hosts: Vec<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout: Duration::from_secs(5),
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            allow_private: false,
            allow_hosts: Vec::new(),
        }
    }
}

/// Which webhook destinations are allowed.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    allow_private: bool,
    names: HashSet<String>,
    addresses: HashSet<IpAddr>,
}

/// Why an address is refused as a destination, if it is.
fn refused_kind(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, allow_private),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4, allow_private);
            }
            let first = v6.segments()[0];
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if allow_private {
                None
            } else if v6.is_loopback() {
                Some("loopback")
            } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
                Some("private")
            } else {
                None
            }
        }
    }
}

fn refused_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if allow_private {
        None
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some("private")
    } else {
        None
    }
}

impl Destinations {
    /// The policy of `config`, with the `--app-url` host allowed whatever it resolves to.
    pub fn new(config: &WebhookConfig, app_url: Option<&Url>) -> Result<Destinations, String> {
        let mut d = Destinations {
            allow_private: config.allow_private,
            ..Destinations::default()
        };
        for host in &config.allow_hosts {
            d.allow(&host_of(host).ok_or_else(|| {
                format!("--webhook-allow-host: {host:?} is not a host name or address")
            })?);
        }
        if let Some(host) = app_url.and_then(|u| u.host()) {
            d.allow(&host.to_owned());
        }
        Ok(d)
    }

    fn allow(&mut self, host: &Host<String>) {
        match host {
            Host::Domain(name) => {
                self.names.insert(name.to_ascii_lowercase());
            }
            Host::Ipv4(a) => {
                self.addresses.insert(IpAddr::V4(*a));
            }
            Host::Ipv6(a) => {
                self.addresses.insert(IpAddr::V6(*a));
            }
        }
    }

    /// True when `name` is allowed whatever it resolves to.
    fn name_allowed(&self, name: &str) -> bool {
        self.names
            .contains(name.trim_end_matches('.').to_ascii_lowercase().as_str())
    }

    /// Why a resolved address may not be connected to (for a host not allowed by name).
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.addresses.contains(&ip) {
            return None;
        }
        refused_kind(ip, self.allow_private)
    }

    /// Checks a URL when a record is created: a literal address ([`Destinations::check_literal`])
    /// or a `localhost` name. Other names are checked when connecting (the client's resolver).
    pub fn check(&self, url: &Url) -> Result<(), String> {
        self.check_literal(url)?;
        if let Some(Host::Domain(name)) = url.host() {
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            let local = lower == "localhost" || lower.ends_with(".localhost");
            if local && !self.name_allowed(name) && !self.allow_private {
                return Err(refused_message("loopback"));
            }
        }
        Ok(())
    }

    /// Checks a URL whose host is a literal address (which no resolver sees); a name passes.
    pub fn check_literal(&self, url: &Url) -> Result<(), String> {
        let refused = match url.host() {
            None => return Err("has no host".into()),
            Some(Host::Ipv4(a)) => self.refuses(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => self.refuses(IpAddr::V6(a)),
            Some(Host::Domain(_)) => None,
        };
        refused.map_or(Ok(()), |kind| Err(refused_message(kind)))
    }
}

fn refused_message(kind: &str) -> String {
    format!(
        "goes to a {kind} address, which webhooks may not reach (see --webhook-allow-host, --webhook-allow-private)"
    )
}

fn host_of(text: &str) -> Option<Host<String>> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        });
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(a) = bare.parse::<Ipv6Addr>() {
        return Some(Host::Ipv6(a));
    }
    match Host::parse(text) {
        Ok(Host::Domain(d)) if !d.is_empty() => Some(Host::Domain(d)),
        Ok(h @ (Host::Ipv4(_) | Host::Ipv6(_))) => Some(h),
        _ => None,
    }
}

/// The client's resolver: the system's, keeping only the addresses the policy allows, so that
/// the address a connection goes to is the address that was checked.
#[derive(Debug)]
struct CheckedResolver {
    destinations: Arc<Destinations>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.destinations.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if destinations.name_allowed(&host) {
                return Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs);
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match destinations.refuses(a.ip()) {
                    Some(kind) => {
                        refused = Some(kind);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let kind = refused.unwrap_or("no");
                return Err(format!(
                    "{host} resolves to a {kind} address, which webhooks may not reach (see --webhook-allow-host, --webhook-allow-private)"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
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
    /// Where webhooks may go.
    pub destinations: Arc<Destinations>,
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
    /// A client with the configured timeout and destination policy (the `--app-url` host is
    /// allowed), which follows no redirect and uses no proxy.
    pub fn new(config: WebhookConfig, app_url: Option<&Url>) -> Result<Webhooks, String> {
        let destinations = Arc::new(Destinations::new(&config, app_url)?);
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("callrec-serve/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(CheckedResolver {
                destinations: destinations.clone(),
            })
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Webhooks {
            client,
            config,
            destinations,
            stats: Arc::new(WebhookStats::default()),
        })
    }

    /// POSTs `{"action_result": <action_result_json>}` to `url` with `Callrec-Delivery:
    /// <delivery_id>`, retrying; true when delivered (a 2xx answer; a 3xx is not followed and
    /// counts as a failed attempt).
    pub async fn deliver(
        &self,
        delivery_id: &str,
        page: &str,
        url: &Url,
        action_result_json: &str,
    ) -> bool {
        let body = format!("{{\"action_result\":{action_result_json}}}");
        let mut backoff = self.config.first_backoff;
        for attempt in 1..=self.config.attempts.max(1) {
            let failure = match self.destinations.check_literal(url) {
                Err(e) => format!("the URL {e}"),
                Ok(()) => {
                    let sent = self
                        .client
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .header(DELIVERY_HEADER, delivery_id)
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            if page == "recording_available_page"
                                && r.status() != reqwest::StatusCode::NO_CONTENT
                            {
                                tracing::warn!(delivery_id, page, status = %r.status(), "expected 204 No Content");
                            }
                            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(delivery_id, page, %url, attempt, "webhook delivered");
                            return true;
                        }
                        Ok(r) if r.status().is_redirection() => {
                            format!("HTTP {} (redirects are not followed)", r.status())
                        }
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => without_url(&e),
                    }
                }
            };
            if attempt == self.config.attempts.max(1) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(delivery_id, page, %url, attempt, error = %failure, "webhook delivery failed; giving up (kept in the outbox for the next start)");
                return false;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(delivery_id, page, %url, attempt, error = %failure, retry_in_ms = backoff.as_millis() as u64, "webhook delivery failed; retrying");
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
