//! The server: starts the engine, the receive threads, the event pump and the HTTP API, and
//! shuts them down in the order that loses nothing.
//!
//! HTTP: hyper's HTTP/1 server with a header-read timeout (also the idle timeout of a kept-alive
//! connection), a connection limit, and accept errors logged once per interval; what each
//! request may carry is bounded in [`crate::api`].
//!
//! Shutdown (SIGTERM or SIGINT): the HTTP listener stops; each receive thread releases its
//! windows into the recorders and drops them, which stops every open recording with `other`;
//! the engine finalizes and syncs every file and emits the last events; the pump turns them
//! into webhooks; the server waits for every delivery (each bounded by its retries) and exits.

use crate::config::{HttpLimits, ServeConfig};
use crate::ingest::IngestThread;
use crate::records::{Ports, Table};
use crate::stream::StreamStats;
use crate::webhook::Webhooks;
use callrec::{Engine, Event, EventKind};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Everything the handlers share.
pub struct AppState {
    /// The server's configuration.
    pub config: ServeConfig,
    /// The recording engine.
    pub engine: Arc<Engine>,
    /// The record table.
    pub table: Mutex<Table>,
    /// The RTP port pool.
    pub ports: Ports,
    /// The receive threads.
    pub threads: Vec<IngestThread>,
    /// RTP counters over every stream.
    pub rtp_totals: Arc<StreamStats>,
    /// Webhook delivery.
    pub webhooks: Webhooks,
    /// The runtime that webhook deliveries run on.
    pub runtime: tokio::runtime::Handle,
}

impl AppState {
    /// A lock on the record table (a panic elsewhere does not take the table down with it).
    pub fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an engine event and schedules its webhook after the record's previous one.
    fn event(&self, event: Event) {
        let json = event.result.action_result_json();
        let mut table = self.table();
        let Some(id) = table.by_filename.get(&event.result.filename).cloned() else {
            // A recording this server did not start (e.g. recovered by the engine): no page to call.
            tracing::info!(filename = %event.result.filename, kind = ?event.kind, result = %json, "event for an unknown recording");
            return;
        };
        let Some(record) = table.by_id.get_mut(&id) else {
            return;
        };
        let (page, url) = match event.kind {
            EventKind::Finished => {
                record.finished = Some(json.clone());
                record.reason = Some(event.result.reason);
                ("next_page", record.next_page.clone())
            }
            EventKind::Available => {
                record.available = Some(json.clone());
                ("recording_available_page", record.available_page.clone())
            }
        };
        tracing::info!(record_id = %id, event = ?event.kind, result = %json, "recording event");
        if let Some(url) = url {
            let previous = record.delivery.take();
            let webhooks = self.webhooks.clone();
            let record_id = id.clone();
            record.delivery = Some(self.runtime.spawn(async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                webhooks.deliver(&record_id, page, &url, &json).await;
            }));
        }
        let finished_for_good = event.kind == EventKind::Available
            || (event.kind == EventKind::Finished && event.result.reason == callrec::Reason::Error);
        if finished_for_good {
            table.done.push_back(id);
            let keep = self.config.records_kept;
            table.prune(keep);
        }
    }
}

/// Runs `callrec serve` until SIGTERM or SIGINT; returns after a graceful shutdown.
pub fn run(config: ServeConfig) -> Result<(), String> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("callrec-http")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", config.listen))?;
        serve(config, listener, shutdown_signal()).await
    })
}

/// Serves on `listener` until `shutdown` completes, then shuts down as [`run`] does on a
/// signal. Runs on the caller's tokio runtime (with time and I/O enabled).
pub async fn serve(
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    config.validate()?;
    // TLS for https webhooks: one process-wide provider (ring; no C toolchain beyond cc).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nofile = crate::limits::raise_nofile();
    let engine = Arc::new(
        callrec_publish::start_engine(&config.store, config.engine.clone())
            .map_err(|e| format!("--store: {e}"))?,
    );
    let (first, last) = config.rtp_ports;
    let (freed_tx, freed_rx) = crossbeam_channel::unbounded();
    let ports = Ports::new(first, last, config.rtp_threads, freed_rx);
    let rtp_totals = Arc::new(StreamStats::default());
    let mut threads = Vec::new();
    let count = (last - first) as usize + 1;
    for n in 0..config.rtp_threads {
        let start = n * ports.per_thread();
        if start >= count {
            break;
        }
        let block = ports.per_thread().min(count - start);
        threads.push(
            IngestThread::start(
                format!("callrec-rtp-{n}"),
                first + start as u16,
                block,
                config.timeouts,
                rtp_totals.clone(),
                freed_tx.clone(),
            )
            .map_err(|e| format!("cannot start a receive thread: {e}"))?,
        );
    }
    let webhooks = Webhooks::new(config.webhook.clone())?;
    let state = Arc::new(AppState {
        config: config.clone(),
        engine: engine.clone(),
        table: Mutex::new(Table::default()),
        ports,
        threads,
        rtp_totals,
        webhooks,
        runtime: tokio::runtime::Handle::current(),
    });

    let pump_state = state.clone();
    let pump = std::thread::Builder::new()
        .name("callrec-events".into())
        .spawn(move || {
            // Ends when the engine has shut down and every event has been read.
            while let Some(event) = pump_state.engine.next_event(None) {
                pump_state.event(event);
            }
        })
        .map_err(|e| format!("cannot start the event thread: {e}"))?;

    let listen = listener
        .local_addr()
        .map_err(|e| format!("--listen {}: {e}", config.listen))?;
    crate::limits::log_capacity(nofile, &config);
    tracing::info!(%listen, rtp_ports = %format!("{first}-{last}"), store = %config.store.display(), "callrec serve ready");
    let app = crate::api::router(state.clone());
    let mut http = config.http;
    http.max_connections = crate::limits::connection_limit(nofile, http.max_connections);
    serve_http(listener, app, http, shutdown).await;

    tracing::info!("shutting down: finalizing every recording");
    let stop_state = state.clone();
    tokio::task::spawn_blocking(move || {
        for t in &stop_state.threads {
            t.shutdown();
        }
        stop_state.engine.shutdown();
        let _ = pump.join();
    })
    .await
    .map_err(|e| format!("shutdown: {e}"))?;
    let deliveries: Vec<_> = state
        .table()
        .by_id
        .values_mut()
        .filter_map(|r| r.delivery.take())
        .collect();
    tracing::info!(pending = deliveries.len(), "delivering the last webhooks");
    for d in deliveries {
        let _ = d.await;
    }
    tracing::info!("callrec serve stopped");
    Ok(())
}

/// The HTTP side: hyper's HTTP/1 connection with its header-read timeout (which also bounds a
/// kept-alive connection's idle wait for its next request), at most `max_connections` at once
/// (a semaphore permit is taken before `accept`, so connections beyond the limit wait in the
/// kernel's queue and hold no descriptor here), graceful shutdown from hyper-util.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The API answers oversized heads itself (JSON 431, `api`); hyper's own limits sit
        // above that, a backstop that answers a bare 431.
        .max_headers(2 * crate::api::MAX_HEADERS)
        .max_buf_size(2 * limits.max_header_bytes + 8192);
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    accept_errors.reset();
                    stream
                }
                Err(e) => {
                    let pause = accept_errors.failed(&e);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept failures (EMFILE above all): logged once per interval with how many were not, and
/// the loop pauses (doubling up to a second) rather than spinning on a queue it cannot drain.
#[derive(Default)]
struct AcceptErrors {
    logged: Option<Instant>,
    unlogged: u64,
    pause: Duration,
}

impl AcceptErrors {
    const LOG_INTERVAL: Duration = Duration::from_secs(10);

    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Self::LOG_INTERVAL)
        {
            let out_of_fds = crate::limits::is_out_of_descriptors(e);
            tracing::warn!(error = %e, out_of_file_descriptors = out_of_fds, not_logged_since_last = self.unlogged, "cannot accept HTTP connections");
            self.logged = Some(Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        self.pause
    }

    fn reset(&mut self) {
        self.pause = Duration::ZERO;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT"),
        _ = term => tracing::info!("SIGTERM"),
    }
}
