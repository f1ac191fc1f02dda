//! The server: starts the engine, the receive threads, the event pump and the HTTP API, and
//! shuts them down in the order that loses nothing.
//!
//! HTTP: hyper's HTTP/1 server with a header-read timeout (also the idle timeout of a kept-alive
//! connection), a connection limit, and accept errors logged once per interval; what each
//! request may carry is bounded in [`crate::api`].
//!
//! The event pump turns the engine's events into webhooks through the durable outbox
//! ([`crate::outbox`]): the result is stored with the record's page URLs, then delivered; a
//! successful delivery is recorded, and an entry leaves the outbox once every page it names has
//! been delivered. At start, what a previous run left in the outbox is delivered (results stored
//! but not delivered) or waits for the engine's event (a recording recovered from its `.part`,
//! or published after a restart). One recording's deliveries run in order, each recording's
//! after its previous one.
//!
//! Shutdown (SIGTERM or SIGINT): the HTTP listener stops; each receive thread releases its
//! windows into the recorders and drops them, which stops every open recording with `other`;
//! the engine finalizes and syncs every file and emits the last events; the pump turns them
//! into webhooks; the server waits for every delivery (each bounded by its retries) and exits.

use crate::config::{HttpLimits, ServeConfig};
use crate::ingest::IngestThread;
use crate::outbox::{self, delivery_id, Entry, Outbox, Page};
use crate::records::{Ports, Table};
use crate::stream::RtpTotals;
use crate::webhook::Webhooks;
use callrec::{Engine, Event, EventKind};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use url::Url;

/// Each recording's last scheduled delivery, by filename, with its generation (a finished task
/// removes itself only if no later one replaced it).
type Chains = HashMap<String, (u64, JoinHandle<()>)>;

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
    pub rtp_totals: Arc<RtpTotals>,
    /// Webhook delivery.
    pub webhooks: Webhooks,
    /// The durable webhook outbox.
    pub outbox: Arc<Outbox>,
    /// Each recording's last scheduled delivery (the next one waits for it), by filename.
    deliveries: Arc<Mutex<Chains>>,
    /// The runtime that webhook deliveries run on.
    pub runtime: tokio::runtime::Handle,
}

impl AppState {
    /// A lock on the record table (a panic elsewhere does not take the table down with it).
    pub fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an engine event in the table and the outbox, and schedules its webhook.
    fn event(&self, event: Event) {
        let json = event.result.action_result_json();
        let filename = event.result.filename.clone();
        let page = match event.kind {
            EventKind::Finished => Page::Next,
            EventKind::Available => Page::Available,
        };
        {
            // The table first: a record being created holds it until its outbox entry is written.
            let mut table = self.table();
            match table.by_filename.get(&filename).cloned() {
                Some(id) => {
                    if let Some(record) = table.by_id.get_mut(&id) {
                        match event.kind {
                            EventKind::Finished => {
                                record.finished = Some(json.clone());
                                record.reason = Some(event.result.reason);
                            }
                            EventKind::Available => record.available = Some(json.clone()),
                        }
                    }
                    tracing::info!(record_id = %id, event = ?event.kind, result = %json, "recording event");
                    let finished_for_good = event.kind == EventKind::Available
                        || (event.kind == EventKind::Finished
                            && event.result.reason == callrec::Reason::Error);
                    if finished_for_good {
                        table.done.push_back(id);
                        let keep = self.config.records_kept;
                        table.prune(keep);
                    }
                }
                None => {
                    tracing::info!(%filename, event = ?event.kind, result = %json, "event for a recording of an earlier run");
                }
            }
        }
        if page == Page::Available {
            // After a crash with publishing, the publisher reports only *available* for a
            // recording whose *finished* it had journaled: derive the missing one first.
            if let Some(entry) = self.outbox.get(&filename) {
                if entry.next_page.result.is_none() {
                    if let Some(finished) = outbox::finished_from_available(&json) {
                        if let Some(entry) =
                            self.outbox.set_result(&filename, Page::Next, &finished)
                        {
                            self.schedule(&entry, Page::Next);
                        }
                    }
                }
            }
        }
        if let Some(entry) = self.outbox.set_result(&filename, page, &json) {
            self.schedule(&entry, page);
        }
    }

    /// Delivers `page` of `entry` (its stored result) after the recording's previous delivery.
    fn schedule(&self, entry: &Entry, page: Page) {
        let state = entry.page(page);
        let (Some(url), Some(result)) = (state.url.clone(), state.result.clone()) else {
            return;
        };
        if state.delivered {
            return;
        }
        let filename = entry.filename.clone();
        let webhooks = self.webhooks.clone();
        let outbox = self.outbox.clone();
        let deliveries = self.deliveries.clone();
        let mut chains = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        let generation = chains.get(&filename).map_or(0, |(g, _)| g + 1);
        let previous = chains.remove(&filename).map(|(_, h)| h);
        let key = filename.clone();
        let handle = self.runtime.spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let id = delivery_id(&filename, page);
            match Url::parse(&url) {
                Ok(url) => {
                    if webhooks.deliver(&id, page.name(), &url, &result).await {
                        let f = filename.clone();
                        let _ =
                            tokio::task::spawn_blocking(move || outbox.delivered(&f, page)).await;
                    }
                }
                Err(e) => {
                    webhooks.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(delivery_id = %id, error = %e, "webhook outbox entry has a bad URL; kept");
                }
            }
            let mut chains = deliveries.lock().unwrap_or_else(|p| p.into_inner());
            if chains.get(&filename).is_some_and(|(g, _)| *g == generation) {
                chains.remove(&filename);
            }
        });
        chains.insert(key, (generation, handle));
    }

    /// Takes up what a previous run left in the outbox: delivers stored results, derives
    /// *available* where no engine will report it, and says what waits for the engine.
    fn resume(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let publishing = self.config.engine.publish.is_some();
        let root = self.engine.store_root().to_path_buf();
        let mut waiting = 0usize;
        for entry in entries {
            for page in entry.pending() {
                self.schedule(&entry, page);
            }
            let finished = entry.next_page.result.as_deref();
            match (finished, entry.recording_available_page.result.as_deref()) {
                (Some(finished), None) if finished.contains("\"reason\":\"error\"") => {
                    // A file that could not be finalized gets no *available*, now or later.
                    self.outbox.drop_page(&entry.filename, Page::Available);
                }
                (Some(finished), None) if !publishing => {
                    // Finished before the crash, but its *available* never came and no engine
                    // will report it: make the file durable and report it ourselves.
                    let derived = outbox::sync_recording(&root, &entry.filename)
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            outbox::available_from_finished(finished)
                                .ok_or_else(|| "the stored result is not the engine's".into())
                        });
                    match derived {
                        Ok(available) => {
                            if let Some(e) =
                                self.outbox
                                    .set_result(&entry.filename, Page::Available, &available)
                            {
                                self.schedule(&e, Page::Available);
                            }
                        }
                        Err(e) => {
                            self.webhooks.stats.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(filename = %entry.filename, error = %e, "cannot make a recording of an earlier run available; its webhook stays in the outbox");
                        }
                    }
                }
                // Recovered from its `.part` (or published) by the engine, which reports it.
                // (The engine's recovery runs from its start, so the `.part` may already be
                // gone: whether it was there cannot tell a lost result from a recovered one.)
                (None, _) => waiting += 1,
                _ => {}
            }
        }
        tracing::info!(
            waiting_for_the_engine = waiting,
            "webhook outbox of an earlier run taken up"
        );
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
    let ports = Ports::new(
        first,
        last,
        config.rtp_threads,
        config.rtp_quarantine,
        freed_rx,
    );
    let rtp_totals = Arc::new(RtpTotals::default());
    let mut threads = Vec::new();
    for (n, (first_port, pairs)) in ports.blocks().into_iter().enumerate() {
        threads.push(
            IngestThread::start(
                format!("callrec-rtp-{n}"),
                first_port,
                pairs,
                config.timeouts,
                rtp_totals.clone(),
                freed_tx.clone(),
            )
            .map_err(|e| format!("cannot start a receive thread: {e}"))?,
        );
    }
    let webhooks = Webhooks::new(config.webhook.clone(), config.app_url.as_ref())?;
    let (outbox, left) = Outbox::open(engine.store_root()).map_err(|e| {
        format!(
            "--store: cannot open the webhook outbox {}: {e}",
            outbox::OUTBOX_DIR
        )
    })?;
    let state = Arc::new(AppState {
        config: config.clone(),
        engine: engine.clone(),
        table: Mutex::new(Table::default()),
        ports,
        threads,
        rtp_totals,
        webhooks,
        outbox: Arc::new(outbox),
        deliveries: Arc::default(),
        runtime: tokio::runtime::Handle::current(),
    });
    // Before the pump: an event of a recovered recording finds its entry and its order.
    let resume_state = state.clone();
    tokio::task::spawn_blocking(move || resume_state.resume(left))
        .await
        .map_err(|e| format!("webhook outbox: {e}"))?;

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
        .deliveries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .map(|(_, (_, handle))| handle)
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
