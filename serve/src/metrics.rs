//! `GET /metrics`: the server's counters in the Prometheus text format.
//!
//! The counters already live in atomics that the receive threads update without locks, so they
//! are printed directly in the (line-oriented, versioned) text exposition format rather than
//! mirrored into a metrics library's registry.

use crate::server::AppState;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP callrec_{name} {help}");
    let _ = writeln!(out, "# TYPE callrec_{name} {kind}");
    let _ = writeln!(out, "callrec_{name} {value}");
}

/// The metrics page.
pub fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let engine = state.engine.metrics();
    let rtp = &state.rtp_totals;
    let web = &state.webhooks.stats;
    let active = engine.recordings_started - engine.recordings_finished;
    metric(
        &mut out,
        "sessions_active",
        "gauge",
        "Recordings started and not yet finalized.",
        active,
    );
    metric(
        &mut out,
        "sessions_started_total",
        "counter",
        "Recordings started.",
        engine.recordings_started,
    );
    metric(
        &mut out,
        "sessions_finished_total",
        "counter",
        "Recordings finalized.",
        engine.recordings_finished,
    );
    metric(
        &mut out,
        "rtp_ports_free",
        "gauge",
        "RTP port pairs free for new recordings (not in a call, not resting after one).",
        state.ports.free_count() as u64,
    );
    metric(
        &mut out,
        "frames_total",
        "counter",
        "20 ms frames of call timeline received (samples / 160).",
        n(&rtp.samples) / 160,
    );
    metric(
        &mut out,
        "frames_dropped_total",
        "counter",
        "Frames lost because a writer fell behind.",
        engine.frames_dropped,
    );
    metric(
        &mut out,
        "bytes_written_total",
        "counter",
        "Audio bytes written to files.",
        engine.bytes_written,
    );
    metric(
        &mut out,
        "write_errors_total",
        "counter",
        "Recordings that failed to write or finalize.",
        engine.write_errors,
    );
    metric(
        &mut out,
        "rtp_packets_total",
        "counter",
        "RTP packets accepted.",
        n(&rtp.packets),
    );
    metric(
        &mut out,
        "rtp_packets_lost_total",
        "counter",
        "RTP packets never received (expected minus received).",
        n(&rtp.packets_lost),
    );
    metric(
        &mut out,
        "rtp_packets_late_total",
        "counter",
        "RTP packets that arrived after their time was recorded.",
        n(&rtp.packets_late),
    );
    metric(
        &mut out,
        "rtp_packets_reordered_total",
        "counter",
        "RTP packets reordered within the jitter window.",
        n(&rtp.packets_reordered),
    );
    metric(
        &mut out,
        "rtp_packets_duplicate_total",
        "counter",
        "RTP packets received twice.",
        n(&rtp.packets_duplicate),
    );
    metric(
        &mut out,
        "rtp_packets_foreign_total",
        "counter",
        "Packets from a source address other than the call's (ignored).",
        n(&rtp.packets_foreign),
    );
    metric(
        &mut out,
        "rtp_packets_invalid_total",
        "counter",
        "Datagrams that are not RTP for the call (ignored).",
        n(&rtp.packets_invalid),
    );
    metric(
        &mut out,
        "rtp_rtcp_packets_total",
        "counter",
        "RTCP packets received (on the RTCP port or multiplexed on the RTP port; ignored).",
        n(&rtp.rtcp_packets),
    );
    metric(
        &mut out,
        "rtp_samples_concealed_total",
        "counter",
        "Samples filled with silence for lost packets and gaps.",
        n(&rtp.samples_concealed),
    );
    metric(
        &mut out,
        "rtp_digits_total",
        "counter",
        "Key presses received as RFC 4733 events.",
        n(&rtp.digits),
    );
    metric(
        &mut out,
        "rtp_beep_packets_sent_total",
        "counter",
        "Beep packets sent to callers (beep_on_start).",
        n(&rtp.beep_packets_sent),
    );
    metric(
        &mut out,
        "webhooks_delivered_total",
        "counter",
        "Webhooks delivered.",
        n(&web.delivered),
    );
    metric(
        &mut out,
        "webhook_retries_total",
        "counter",
        "Webhook attempts that failed and were retried.",
        n(&web.retries),
    );
    metric(
        &mut out,
        "webhook_failures_total",
        "counter",
        "Webhooks that gave up after every retry.",
        n(&web.failures),
    );
    // The publisher's counters, only when the server publishes (--publish).
    if let Some(p) = state.engine.publish_metrics() {
        metric(
            &mut out,
            "publish_uploaded_total",
            "counter",
            "Recordings uploaded to the object store and verified there.",
            p.uploaded,
        );
        metric(
            &mut out,
            "publish_failed_attempts_total",
            "counter",
            "Upload attempts that failed (each retry counts).",
            p.failed_attempts,
        );
        metric(
            &mut out,
            "publish_gave_up_total",
            "counter",
            "Recordings reported with reason error after --publish-max-age of failed uploads.",
            p.gave_up,
        );
        metric(
            &mut out,
            "publish_pending",
            "gauge",
            "Recordings in the outbox waiting for their upload or a retry.",
            p.pending,
        );
    }
    out
}
