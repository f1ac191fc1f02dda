//! What `callrec serve` is told on its command line, checked before anything starts.

use crate::ingest::Timeouts;
use crate::webhook::WebhookConfig;
use callrec::EngineConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// How much of the server one HTTP client may hold (DESIGN §11: the server bounds its clients).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// How long a connection has to deliver a complete request head, counted from when the
    /// server starts waiting for one: on a new connection and between requests on a kept-alive
    /// one, so it is also the idle timeout (hyper's `header_read_timeout`).
    pub header_timeout: Duration,
    /// How long the server waits for each piece of a request body.
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue, holding no descriptor
    /// of this process.
    pub max_connections: usize,
    /// The largest request head (request line and headers, in bytes) answered; larger gets 431.
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The server's configuration.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where the HTTP control API listens.
    pub listen: SocketAddr,
    /// The address RTP sockets bind to.
    pub rtp_address: IpAddr,
    /// The host name or address given to the app as the RTP destination (default: `rtp_address`).
    pub rtp_advertise: Option<String>,
    /// The UDP ports recordings receive on, inclusive: an even port for RTP and the next for
    /// RTCP each.
    pub rtp_ports: (u16, u16),
    /// How long a port pair rests after its call ends before it is drawn again.
    pub rtp_quarantine: Duration,
    /// Receive threads.
    pub rtp_threads: usize,
    /// The jitter window in milliseconds.
    pub jitter_ms: u32,
    /// Inactivity and first-packet timeouts.
    pub timeouts: Timeouts,
    /// The recording store.
    pub store: PathBuf,
    /// The web app's base URL, against which relative page URLs resolve.
    pub app_url: Option<Url>,
    /// The bearer token every endpoint but health requires.
    pub token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// What one HTTP client may hold: time, connections, header size.
    pub http: HttpLimits,
    /// Webhook delivery.
    pub webhook: WebhookConfig,
    /// The recording engine's configuration (the object-store publisher plugs in here).
    pub engine: EngineConfig,
    /// Finished records kept for `GET /v1/records/{id}` before the oldest are forgotten.
    pub records_kept: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            rtp_address: IpAddr::from([127, 0, 0, 1]),
            rtp_advertise: None,
            rtp_ports: (40000, 40999),
            rtp_threads: 1,
            rtp_quarantine: Duration::from_millis(5000),
            jitter_ms: 60,
            timeouts: Timeouts {
                inactivity: Duration::from_millis(5000),
                first_packet: Duration::from_millis(30_000),
            },
            store: PathBuf::from("recordings"),
            app_url: None,
            token: None,
            body_limit: 64 * 1024,
            http: HttpLimits::default(),
            webhook: WebhookConfig::default(),
            engine: EngineConfig::default(),
            records_kept: 10_000,
        }
    }
}

impl ServeConfig {
    /// Checks the settings together; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        match &self.token {
            None if !self.listen.ip().is_loopback() => {
                return Err(format!(
                    "--listen {}: a token (--token-file or CALLREC_TOKEN) is required to listen beyond loopback",
                    self.listen
                ))
            }
            Some(t) if t.is_empty() || t.len() > 4096 || t.chars().any(|c| !c.is_ascii_graphic()) => {
                return Err("token: must be 1 to 4096 printable ASCII characters without spaces".into())
            }
            _ => {}
        }
        let (first, last) = self.rtp_ports;
        if first == 0 || last < first {
            return Err(format!(
                "--rtp-ports: {first}-{last} is not a port range (FIRST-LAST, FIRST > 0)"
            ));
        }
        if crate::records::Ports::pairs_in(first, last) == 0 {
            return Err(format!(
                "--rtp-ports: {first}-{last} holds no even port with the next port (RTP and its RTCP)"
            ));
        }
        if self.rtp_quarantine > Duration::from_secs(3600) {
            return Err("--rtp-port-quarantine-ms: must be at most 3600000".into());
        }
        if self.rtp_threads == 0 || self.rtp_threads > 64 {
            return Err(format!(
                "--rtp-threads: must be 1..=64, not {}",
                self.rtp_threads
            ));
        }
        if self.jitter_ms > crate::playout::MAX_WINDOW_SAMPLES / 8 {
            return Err(format!(
                "--jitter-ms: must be 0..={}, not {}",
                crate::playout::MAX_WINDOW_SAMPLES / 8,
                self.jitter_ms
            ));
        }
        if self.timeouts.inactivity < Duration::from_millis(100) {
            return Err("--rtp-timeout-ms: must be at least 100".into());
        }
        if self.timeouts.first_packet < Duration::from_millis(100) {
            return Err("--rtp-first-packet-timeout-ms: must be at least 100".into());
        }
        if self.body_limit < 1024 {
            return Err("--body-limit: must be at least 1024 bytes".into());
        }
        if self.http.header_timeout < Duration::from_millis(100) {
            return Err("--http-header-timeout-ms: must be at least 100".into());
        }
        if self.http.body_timeout < Duration::from_millis(100) {
            return Err("--http-body-timeout-ms: must be at least 100".into());
        }
        if self.http.max_connections == 0 || self.http.max_connections > 1_000_000 {
            return Err("--http-max-connections: must be 1..=1000000".into());
        }
        if !(1024..=1024 * 1024).contains(&self.http.max_header_bytes) {
            return Err("--http-max-header-bytes: must be 1024..=1048576".into());
        }
        if self.webhook.attempts == 0 || self.webhook.attempts > 100 {
            return Err("--webhook-attempts: must be 1..=100".into());
        }
        crate::webhook::Destinations::new(&self.webhook, self.app_url.as_ref())?;
        if let Some(u) = &self.app_url {
            if !matches!(u.scheme(), "http" | "https") {
                return Err("--app-url: must be an http or https URL".into());
            }
        }
        Ok(())
    }
}
