//! The server: starts the engine, the receive threads, the event pump and the HTTP API, and
//! shuts them down in the order that loses nothing.
//!
//! Shutdown (SIGTERM or SIGINT): the HTTP listener stops; each receive thread releases its
//! windows into the recorders and drops them, which stops every open recording with `other`;
//! the engine finalizes and syncs every file and emits the last events; the pump turns them
//! into webhooks; the server waits for every delivery (each bounded by its retries) and exits.

use crate::config::ServeConfig;
use crate::ingest::IngestThread;
use crate::records::{Ports, Table};
use crate::stream::StreamStats;
use crate::webhook::Webhooks;
use callrec::{Engine, Event, EventKind};
use std::sync::{Arc, Mutex};

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
    // TLS for https webhooks: one process-wide provider (ring; no C toolchain beyond cc).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("callrec-http")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", config.listen))?;
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
    let rtp_totals = Arc::new(StreamStats::default());
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

    tracing::info!(listen = %config.listen, rtp_ports = %format!("{first}-{last}"), store = %config.store.display(), "callrec serve ready");
    let app = crate::api::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("HTTP server: {e}"))?;

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
