//! `callrec serve`: a ready host for the record action (DESIGN §11).
//!
//! RTP in, files and webhooks out. A web application asks for a recording over the HTTP
//! control API ([`api`]), gets a UDP port, and points its media server's RTP at it. Receive
//! threads ([`ingest`]) read each port and push the call's timeline straight into the core's
//! [`callrec::Recorder`] (no async runtime between the socket and the push); the engine's
//! events become webhooks to the app's `next_page` and `recording_available_page`
//! ([`webhook`]). Recording logic stays in the core: this crate only hosts it.
//!
//! The RTP path, from the socket in: [`ingest`] → [`stream`] (source, SSRC, payload types,
//! using [`sequence`] and [`telephone_event`]) → [`playout`] (jitter window, loss as silence)
//! → the recorder. With `beep_on_start`, [`beep`] sends the core's beep back to the caller.
//! A request may describe the media as an SDP offer instead of payload types: [`sdp`] reads
//! it and writes the answer the 201 carries.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod beep;
pub mod config;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod playout;
pub mod records;
pub mod sdp;
pub mod sequence;
pub mod server;
pub mod store_file;
pub mod stream;
pub mod telephone_event;
pub mod webhook;

pub use config::ServeConfig;
pub use server::run;
