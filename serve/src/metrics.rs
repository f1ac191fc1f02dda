//! `GET /metrics`: the server's counters in the Prometheus text format.
//!
//! The counters already live in atomics that the receive threads update without locks, so they
//! are printed directly in the (line-oriented, versioned) text exposition format rather than
//! mirrored into a metrics library's registry.

use crate::server::AppState;
use crate::stream::StreamStats;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    series_head(out, name, kind, help);
    let _ = writeln!(out, "callrec_{name} {value}");
}

/// A metric's HELP and TYPE lines (its samples follow).
fn series_head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP callrec_{name} {help}");
    let _ = writeln!(out, "# TYPE callrec_{name} {kind}");
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
        "20 ms frames of call timeline received, every leg of two-leg calls counted (samples / 160).",
        rtp.sum(|s| &s.samples) / 160,
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
    // The RTP counters over every stream, then each leg's of the two-leg calls (DESIGN §13).
    type Field = fn(&StreamStats) -> &AtomicU64;
    let counters: [(&str, &str, Field); 11] = [
        ("packets", "RTP packets accepted.", |s| &s.packets),
        (
            "packets_lost",
            "RTP packets never received (expected minus received).",
            |s| &s.packets_lost,
        ),
        (
            "packets_late",
            "RTP packets that arrived after their time was recorded.",
            |s| &s.packets_late,
        ),
        (
            "packets_reordered",
            "RTP packets reordered within the jitter window.",
            |s| &s.packets_reordered,
        ),
        ("packets_duplicate", "RTP packets received twice.", |s| {
            &s.packets_duplicate
        }),
        (
            "packets_foreign",
            "Packets from a source address other than the call's (ignored).",
            |s| &s.packets_foreign,
        ),
        (
            "packets_invalid",
            "Datagrams that are not RTP for the call (ignored).",
            |s| &s.packets_invalid,
        ),
        (
            "rtcp_packets",
            "RTCP packets received (on the RTCP port or multiplexed on the RTP port; ignored).",
            |s| &s.rtcp_packets,
        ),
        (
            "samples_concealed",
            "Samples filled with silence for lost packets and gaps.",
            |s| &s.samples_concealed,
        ),
        ("digits", "Key presses received as RFC 4733 events.", |s| {
            &s.digits
        }),
        (
            "beep_packets_sent",
            "Beep packets sent to callers (beep_on_start).",
            |s| &s.beep_packets_sent,
        ),
    ];
    for (name, help, field) in counters {
        metric(
            &mut out,
            &format!("rtp_{name}_total"),
            "counter",
            help,
            rtp.sum(field),
        );
    }
    for (name, help, field) in counters {
        series_head(
            &mut out,
            &format!("rtp_leg_{name}_total"),
            "counter",
            &format!("Of two-leg calls, per leg: {help}"),
        );
        for (leg, stats) in ["caller", "other"].iter().zip(&rtp.legs) {
            let _ = writeln!(
                out,
                "callrec_rtp_leg_{name}_total{{leg=\"{leg}\"}} {}",
                n(field(stats))
            );
        }
    }
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
