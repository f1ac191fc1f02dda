//! RTP sequence numbers: loss, reordering and duplicates, counted as RFC 3550 (Appendix A.1)
//! does: `lost = expected - received`, where `expected` follows the highest extended sequence
//! number. A history of the last [`HISTORY`] numbers tells a duplicate from a reordered packet,
//! so a copy replayed seconds late is a duplicate, not a new packet.
//!
//! As in RFC 3550, one packet far from the numbers seen (a stale copy from long ago, or a stray
//! jump) is never believed on its own: it is [`SeqClass::Stray`] and counts for nothing; the
//! count restarts only when the next packet follows it (a sender that really restarted its
//! numbering).

/// A jump larger than this (forwards) is not loss, as RFC 3550's MAX_DROPOUT.
const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers remembered behind the highest (10 s of 10 ms packets). A multiple of 64.
pub const HISTORY: u16 = 1024;
const WORDS: usize = HISTORY as usize / 64;

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
    /// Behind the highest, not seen before: reordered (or late).
    Reordered,
    /// Seen before.
    Duplicate,
    /// Far from every number seen (beyond [`HISTORY`] behind, or a jump beyond the dropout
    /// limit): not counted. The next packet decides whether it was a restart.
    Stray,
    /// The packet after a stray one followed it: the sender restarted its numbering there.
    Restart,
}

/// Tracks one synchronization source's sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    started: bool,
    /// The highest extended sequence number seen.
    highest: u64,
    base: u64,
    /// Bit `n % HISTORY` set: extended number `n` (within HISTORY of `highest`) was received.
    seen: [u64; WORDS],
    received: u64,
    /// The number that would confirm the last stray packet as a restart.
    probation: Option<u16>,
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
            self.probation = None;
            return SeqClass::Duplicate;
        }
        if delta <= MAX_DROPOUT {
            self.probation = None;
            for n in 1..=u64::from(delta.min(HISTORY)) {
                self.set(self.highest + n, false);
            }
            self.highest += u64::from(delta);
            self.set(self.highest, true);
            self.received += 1;
            return SeqClass::Ahead { skipped: delta - 1 };
        }
        let behind = u64::from(delta.wrapping_neg());
        if delta >= 0x8000 && behind < u64::from(HISTORY) && behind <= self.highest - self.base {
            self.probation = None;
            let n = self.highest - behind;
            if self.get(n) {
                return SeqClass::Duplicate;
            }
            self.set(n, true);
            self.received += 1;
            return SeqClass::Reordered;
        }
        if self.probation == Some(seq) {
            self.restart(seq);
            return SeqClass::Restart;
        }
        self.probation = Some(seq.wrapping_add(1));
        SeqClass::Stray
    }

    fn get(&self, n: u64) -> bool {
        let bit = n % u64::from(HISTORY);
        self.seen[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn set(&mut self, n: u64, on: bool) {
        let bit = n % u64::from(HISTORY);
        let word = &mut self.seen[(bit / 64) as usize];
        if on {
            *word |= 1 << (bit % 64);
        } else {
            *word &= !(1 << (bit % 64));
        }
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
        self.seen = [0; WORDS];
        self.set(self.highest, true);
        self.received = 1;
        self.probation = None;
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

    /// Distinct packets received (all restarts included; late ones too: they were not lost).
    pub fn received(&self) -> u64 {
        self.received_before + self.received
    }

    /// Packets never received: expected minus received (0 when reordering made it negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }
}
