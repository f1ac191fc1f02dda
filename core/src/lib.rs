//! callrec: the record action of a cloud telephony platform as a lock-free, zero-allocation
//! real-time engine.
//!
//! A host's media thread feeds the caller's 20 ms G.711 frames to a [`Recorder`]; callrec decides
//! when the recording starts and stops, writes a G.711 WAV file from a writer thread, and reports
//! a [`RecordingResult`] through the [`Engine`]'s events. See `DESIGN.md` and the README.
//!
//! ```no_run
//! use callrec::{Codec, Engine, EngineConfig, EventKind, Status};
//! let engine = Engine::new("recordings", EngineConfig::default())?;
//! let (mut recorder, _handle) = engine.record_json(r#"{"milliseconds_max_silence": 2000}"#, Codec::Alaw)?;
//! let frame = [0xD5u8; 160];
//! while let Ok(status) = recorder.push(&frame) {
//!     if let Status::Stopped(_) = status { break; }
//! }
//! let finished = engine.next_event(None).unwrap();
//! assert_eq!(finished.kind, EventKind::Finished);
//! println!("{}", finished.result.action_result_json());
//! # Ok::<(), callrec::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod barrier;
pub mod call;
pub mod cipher;
pub mod convert;
pub mod detect;
pub mod dtmf;
pub mod energy;
pub mod engine;
pub mod features;
pub mod g711;
mod inband;
pub mod json;
pub mod metrics;
pub mod options;
pub mod publish;
pub mod recorder;
pub mod recover;
pub mod result;
mod session;
pub mod store;
pub mod tone;
pub mod wav;
mod writer;

pub use engine::{Engine, EngineConfig, Error};
pub use g711::Codec;
pub use metrics::MetricsSnapshot;
pub use options::{Legs, OptionsError, RecordOptions};
pub use publish::{ObjectSink, PublishConfig};
pub use recorder::{Recorder, RecorderError, RecorderHandle, Status};
pub use result::{Event, EventKind, LegResult, LegsResult, Reason, RecordingResult};
