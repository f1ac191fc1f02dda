//! RTP sequence numbers: loss, reordering and duplicates, counted as RFC 3550 (Appendix A.1)
//! does: `lost = expected - received`, where `expected` follows the highest extended sequence
//! number. A window of the last 64 numbers tells a duplicate from a reordered packet.

/// A jump larger than this (forwards) restarts the count, as RFC 3550's MAX_DROPOUT.
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind the highest (or more) is a sender restart, as RFC 3550's MAX_MISORDER.
const MAX_MISORDER: u16 = 100;

/// What one sequence number is, relative to those seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqClass {
    /// The first packet (or the first after a restart).
    First,
    /// A new highest number; `skipped` numbers between it and the previous highest are missing.
    Ahead {
        /// Numbers skipped (lost unless they arrive later).
        skipped: u16,
    },
    /// Behind the highest, not seen before: reordered.
    Reordered,
    /// Seen before.
    Duplicate,
    /// A jump too large to be loss or reordering: the sender restarted its numbering.
    Restart,
}

/// Tracks one synchronization source's sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    started: bool,
    /// The highest extended sequence number seen.
    highest: u64,
    base: u64,
    /// Bit n set: `highest - n` was received.
    recent: u64,
    received: u64,
    /// Expected and received before the last restart.
    expected_before: u64,
    received_before: u64,
}

impl SequenceTracker {
    /// Classifies and records one packet's sequence number.
    pub fn packet(&mut self, seq: u16) -> SeqClass {
        if !self.started {
            self.restart(seq);
            return SeqClass::First;
        }
        let delta = seq.wrapping_sub(self.highest as u16);
        if delta == 0 {
            return SeqClass::Duplicate;
        }
        if delta < 0x8000 {
            if delta > MAX_DROPOUT {
                self.restart(seq);
                return SeqClass::Restart;
            }
            self.highest += delta as u64;
            self.recent = if delta >= 64 { 0 } else { self.recent << delta } | 1;
            self.received += 1;
            return SeqClass::Ahead { skipped: delta - 1 };
        }
        let behind = delta.wrapping_neg();
        if behind >= MAX_MISORDER || behind as u64 > self.highest - self.base {
            self.restart(seq);
            return SeqClass::Restart;
        }
        if behind < 64 {
            if self.recent & (1 << behind) != 0 {
                return SeqClass::Duplicate;
            }
            self.recent |= 1 << behind;
        }
        self.received += 1;
        SeqClass::Reordered
    }

    /// Starts a new count at `seq` (a restart or a new SSRC); totals carry over.
    pub fn restart(&mut self, seq: u16) {
        if self.started {
            self.expected_before += self.highest - self.base + 1;
            self.received_before += self.received;
        }
        self.started = true;
        // Extended numbers start high enough that `base` never underflows.
        self.highest = (1 << 16) + seq as u64;
        self.base = self.highest;
        self.recent = 1;
        self.received = 1;
    }

    /// Packets expected from the numbers seen (all restarts included).
    pub fn expected(&self) -> u64 {
        let now = if self.started {
            self.highest - self.base + 1
        } else {
            0
        };
        self.expected_before + now
    }

    /// Distinct packets received (all restarts included).
    pub fn received(&self) -> u64 {
        self.received_before + self.received
    }

    /// Packets never received: expected minus received (0 when reordering made it negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }
}
