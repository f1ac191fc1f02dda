//! `callrec serve`: the command-line face of the `callrec-serve` crate (DESIGN §11).
//!
//! Only flag parsing lives here; the server is `callrec_serve::run`.

use callrec_serve::ServeConfig;
use clap::Args;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `callrec serve`.
#[derive(Args, Debug)]
#[command(
    about = "Record live calls over RTP: an HTTP control API, one UDP port per recording, webhooks to the web app",
    long_about = "Record live calls over RTP. POST /v1/records with {\"record\": {...record action...}, \
\"media\": {\"codec\": \"alaw\", \"payload_type\": 8, \"telephone_event_payload_type\": 101}} answers 201 with \
the UDP port to send the call's RTP to (and its RTCP port, the next one); the finished and available results are POSTed to the record's \
next_page and recording_available_page URLs. SIGTERM or SIGINT finalizes every recording (reason other), \
delivers its webhooks and exits. The bearer token is read from --token-file or the CALLREC_TOKEN \
environment variable; logs go to standard error (RUST_LOG sets the level, default info)."
)]
pub struct ServeArgs {
    /// Address and port of the HTTP control API. Beyond loopback a token is required.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// UDP ports for RTP as FIRST-LAST: each recording takes an even port at random for RTP and
    /// the next for RTCP.
    #[arg(long, default_value = "40000-40999", value_name = "FIRST-LAST", value_parser = parse_ports)]
    rtp_ports: (u16, u16),
    /// Address the RTP sockets bind to (default: the --listen address).
    #[arg(long, value_name = "IP")]
    rtp_address: Option<IpAddr>,
    /// Host or address told to the app as the RTP destination (default: --rtp-address), e.g.
    /// the public address when behind NAT.
    #[arg(long, value_name = "HOST")]
    rtp_advertise: Option<String>,
    /// After a call ends, its ports rest this long before another recording may draw them, in
    /// ms (media still flowing from the finished call never reaches the next one's file).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    rtp_port_quarantine_ms: u64,
    /// Receive threads (each serves a block of the ports).
    #[arg(long, default_value_t = 1, value_name = "N")]
    rtp_threads: usize,
    /// Jitter window: how late a packet may arrive and still be put in order, in ms (0-300).
    #[arg(long, default_value_t = 60, value_name = "MS")]
    jitter_ms: u32,
    /// No RTP packet for this long (after the first) ends the call: the recording stops with hangup.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    rtp_timeout_ms: u64,
    /// No first RTP packet for this long after the POST ends the call (hangup).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    rtp_first_packet_timeout_ms: u64,
    /// The recording store's root directory.
    #[arg(long, default_value = "recordings", value_name = "DIR")]
    store: PathBuf,
    /// The web app's base URL: relative next_page / recording_available_page URLs resolve against it.
    #[arg(long, value_name = "URL")]
    app_url: Option<url::Url>,
    /// A file holding the bearer token (its first line); overrides CALLREC_TOKEN.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The largest request body accepted, in bytes (larger gets 413).
    #[arg(long, default_value_t = 65_536, value_name = "BYTES")]
    body_limit: usize,
    /// HTTP: a connection must send a complete request head within this many ms of the server
    /// waiting for one, on a new connection and between requests (the idle timeout), or is closed.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    http_header_timeout_ms: u64,
    /// HTTP: the longest wait for the next piece of a request body, in ms.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    http_body_timeout_ms: u64,
    /// HTTP: connections served at once (at most a quarter of the open-file limit); more wait
    /// in the kernel's accept queue.
    #[arg(long, default_value_t = 256, value_name = "N")]
    http_max_connections: usize,
    /// HTTP: the largest request head (request line and headers) answered; larger gets 431.
    #[arg(long, default_value_t = 16_384, value_name = "BYTES")]
    http_max_header_bytes: usize,
    /// One webhook attempt's timeout, in ms.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    webhook_timeout_ms: u64,
    /// Webhook attempts before giving up (failures are logged and counted in /metrics).
    #[arg(long, default_value_t = 6, value_name = "N")]
    webhook_attempts: u32,
    /// Wait after a webhook's first failure, in ms; doubled after each, up to --webhook-max-backoff-ms.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    webhook_backoff_ms: u64,
    /// The longest wait between webhook attempts, in ms.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    webhook_max_backoff_ms: u64,
    /// Allow webhooks to private and loopback addresses (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7, 127/8, ::1). Link-local (169.254/16, fe80::/10), unspecified,
    /// multicast and broadcast stay refused unless named by --webhook-allow-host.
    #[arg(long)]
    webhook_allow_private: bool,
    /// Allow webhooks to HOST (a name or an address) whatever it resolves to; repeatable. The
    /// --app-url host is always allowed.
    #[arg(long, value_name = "HOST")]
    webhook_allow_host: Vec<String>,
    /// Engine writer threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    writers: usize,
    /// Publish every recording to an S3-compatible object store, e.g. s3://recordings/calls:
    /// recording_available_page is called once the object is stored and verified. Endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    /// (plain HTTP only with AWS_ALLOW_HTTP=true).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    publish: Option<String>,
    /// With --publish: remove each local file once its upload is verified.
    #[arg(long, requires = "publish")]
    publish_remove_local: bool,
    /// With --publish: retry a failing upload for this many seconds before reporting `error`.
    #[arg(long, value_name = "SECONDS", requires = "publish")]
    publish_max_age: Option<u64>,
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port range FIRST-LAST (e.g. 40000-40999)");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

fn read_token(args: &ServeArgs) -> Result<Option<String>, String> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(format!(
                "--token-file {}: the first line is empty",
                path.display()
            ));
        }
        return Ok(Some(token));
    }
    match std::env::var("CALLREC_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        _ => Ok(None),
    }
}

/// Runs the server until SIGTERM/SIGINT. Exit 2 for a bad flag, 1 when it cannot run.
pub fn serve(args: &ServeArgs) -> Result<(), (u8, String)> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let mut config = ServeConfig {
        listen: args.listen,
        rtp_address: args.rtp_address.unwrap_or(args.listen.ip()),
        rtp_advertise: args.rtp_advertise.clone(),
        rtp_ports: args.rtp_ports,
        rtp_threads: args.rtp_threads,
        rtp_quarantine: Duration::from_millis(args.rtp_port_quarantine_ms),
        jitter_ms: args.jitter_ms,
        store: args.store.clone(),
        app_url: args.app_url.clone(),
        token: read_token(args).map_err(|e| (2, e))?,
        body_limit: args.body_limit,
        ..ServeConfig::default()
    };
    config.timeouts.inactivity = Duration::from_millis(args.rtp_timeout_ms);
    config.timeouts.first_packet = Duration::from_millis(args.rtp_first_packet_timeout_ms);
    config.http = callrec_serve::config::HttpLimits {
        header_timeout: Duration::from_millis(args.http_header_timeout_ms),
        body_timeout: Duration::from_millis(args.http_body_timeout_ms),
        max_connections: args.http_max_connections,
        max_header_bytes: args.http_max_header_bytes,
    };
    config.webhook.timeout = Duration::from_millis(args.webhook_timeout_ms);
    config.webhook.attempts = args.webhook_attempts;
    config.webhook.first_backoff = Duration::from_millis(args.webhook_backoff_ms);
    config.webhook.max_backoff = Duration::from_millis(args.webhook_max_backoff_ms);
    config.webhook.allow_private = args.webhook_allow_private;
    config.webhook.allow_hosts = args.webhook_allow_host.clone();
    config.engine.writers = args.writers;
    if let Some(url) = &args.publish {
        let mut publish = callrec::PublishConfig::new(url.as_str());
        publish.keep_local = !args.publish_remove_local;
        if let Some(s) = args.publish_max_age {
            publish.max_age = Duration::from_secs(s);
        }
        publish.validate().map_err(|e| (2, format!("--{e}")))?;
        config.engine.publish = Some(publish);
    }
    config.validate().map_err(|e| (2, e))?;
    callrec_serve::run(config).map_err(|e| (1, e))
}
