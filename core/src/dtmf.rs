//! In-band DTMF detection to ITU-T Q.24 (DESIGN §5), for the real-time path: no allocation,
//! state carried across inputs of any length, a fixed cost per sample.
//!
//! Written by hand: no maintained Rust crate detects DTMF to Q.24 limits on a real-time path.
//! SpanDSP's `dtmf_rx` and Asterisk's `dsp.c` were read for what they check and why (level,
//! twist, relative peak, tone-to-total energy); the design here is different.
//!
//! **Design.** The signal is cut into 5 ms *blocks* of [`BLOCK`] = 40 samples. For each block
//! and each of the 8 DTMF frequencies one complex correlation against precomputed twiddles is
//! taken (a single-bin DFT, 16 dot products of 40 samples that vectorise), plus the block's
//! energy. Two consecutive blocks combine coherently into a 10 ms (80-sample) DFT bin
//! `S(n) = C(n) + C(n-1)·e^{jω·40}`; decisions are made on *triples* of blocks (15 ms, hop
//! 5 ms), i.e. on two overlapping 10 ms bins:
//!
//! * **Frequency** is *measured*, not inferred from bin shape: a tone at `f_k + δ` turns bin
//!   `k` by `2π·δ·40/8000` from one 10 ms window to the next (5 ms later), so the angle of
//!   `S(n)·conj(S(n-1))` (less the nominal advance) gives `δ` directly. A triple passes when
//!   both tones are within ±2.5 % of nominal: Q.24's ±1.5 % is accepted and ±3.5 % rejected
//!   with a margin either side, on every frequency. The 10 ms windows (not single 5 ms
//!   blocks) keep the other group's tone leaking into the bin ≥ 20 dB down even with 8 dB of
//!   twist, so it cannot swing the measured phase.
//! * **Level**: each tone at least −42 dBm0 (Q.24: −38 accepted; −45 ignored).
//! * **Twist**: the low-group tone at most 8.5 dB above the high one (normal twist, 8 dB
//!   accepted) and at most 4.5 dB below it (reverse twist, 4 dB accepted).
//! * **Relative peak**: the chosen tone of each group stands ≥ 4.8 dB above the group's other
//!   tones over the triple (a 15 ms coherent DFT).
//! * **Tone to total energy**: the two tones hold ≥ 65 % of the triple's energy (speech
//!   and music spread theirs: talk-off). With 18 dB per-tone S/N white noise they hold ~98 %.
//! * **All three blocks hold the tone** (none more than 12 dB below another, per tone), so a
//!   triple partly in silence does not count: this is what makes the duration rules exact.
//!
//! **Duration** is counted in triples. A digit is confirmed after [`CONFIRM_TRIPLES`] = 5
//! passing triples: a 40 ms tone (320 samples) always covers ≥ 7 whole blocks, hence ≥ 5 whole
//! triples; a 23 ms tone (184 samples) touches at most 6 blocks, hence at most 4 triples whose
//! blocks all hold it. A digit ends after [`END_TRIPLES`] = 6 failing triples: a dropout of
//! ≤ 10 ms (80 samples) touches at most 3 blocks and spoils at most 5 triples, while a 40 ms
//! pause holds ≥ 7 silent blocks and fails ≥ 9. So a ≤ 10 ms dropout never splits a digit and
//! a 40 ms pause always separates two presses of the same key.
//!
//! **Timing.** A digit's `start` is the first sample of its first passing triple; the tone
//! began no earlier than one block before it (a block it only partly covered may have failed)
//! and no later than one block after. Its `end` is the last sample of its last passing triple
//! (same tolerance). [`MARGIN`] (one block) either side covers every sample of the tone, which is
//! what masking uses.

use crate::g711::Codec;

/// Samples per analysis block (5 ms at 8 kHz).
pub const BLOCK: usize = 40;
/// Passing triples that confirm a digit (see the module docs for why 5).
pub const CONFIRM_TRIPLES: u32 = 5;
/// Failing triples that end a digit (see the module docs for why 6).
pub const END_TRIPLES: u32 = 6;
/// How far outside `[start, end)` a tone's samples can lie: one block.
pub const MARGIN: u64 = BLOCK as u64;

/// The DTMF frequencies: four rows (low group), four columns (high group).
pub const FREQUENCIES_HZ: [f64; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[u8; 4]; 4] = [*b"123A", *b"456B", *b"789C", *b"*0#D"];
const SAMPLE_RATE: f64 = 8000.0;

/// Accepted frequency deviation: between Q.24's must-accept 1.5 % and must-reject 3.5 %.
const MAX_DEVIATION: f64 = 0.025;
/// Minimum per-tone level, dBm0.
const MIN_LEVEL_DBM0: f64 = -42.0;
/// Normal twist (low group stronger) and reverse twist (high group stronger) limits, dB.
const NORMAL_TWIST_DB: f64 = 8.5;
const REVERSE_TWIST_DB: f64 = 4.5;
/// Each group's peak over its other tones (power ratio, 4.8 dB).
const RELATIVE_PEAK: f32 = 3.0;
/// Share of the triple's energy the two tones must hold.
const TONE_TO_TOTAL: f32 = 0.65;
/// Largest power ratio between two blocks of a triple, per tone (12 dB).
const BLOCK_BALANCE: f32 = 16.0;

/// A detected key press, in samples from the first sample the detector was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToneSpan {
    /// `0-9`, `*`, `#` or `A-D`.
    pub digit: char,
    /// First sample of the first passing triple (the tone began within [`MARGIN`] of it).
    pub start: u64,
    /// One past the last sample of the last passing triple (within [`MARGIN`] of the tone's
    /// end).
    pub end: u64,
}

/// What the detector reports, in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A digit was confirmed (its tone has lasted long enough); it is still sounding.
    Pressed {
        /// The digit.
        digit: char,
        /// As in [`ToneSpan::start`].
        start: u64,
    },
    /// The confirmed digit's tone ended.
    Released(ToneSpan),
}

/// Twiddles and limits, computed once per detector (no allocation; about 3 KiB inline).
#[derive(Clone, Debug)]
struct Tables {
    /// `cos(ω_k n)` and `sin(ω_k n)` for n in one block, per frequency.
    cos: [[f32; BLOCK]; 8],
    sin: [[f32; BLOCK]; 8],
    /// `e^{jω_k·BLOCK}`: the nominal advance of a bin's phase from one block to the next.
    advance: [(f32, f32); 8],
    /// `e^{jω_k·2·BLOCK}`: the same over two blocks.
    advance2: [(f32, f32); 8],
    /// `tan` of the largest accepted phase deviation per block, per frequency.
    max_tan: [f32; 8],
    /// Minimum coherent triple (15 ms) power per tone.
    min_power: f32,
    normal_twist: f32,
    reverse_twist: f32,
}

impl Tables {
    fn new() -> Tables {
        let mut cos = [[0.0; BLOCK]; 8];
        let mut sin = [[0.0; BLOCK]; 8];
        let mut advance = [(0.0, 0.0); 8];
        let mut advance2 = [(0.0, 0.0); 8];
        let mut max_tan = [0.0; 8];
        for (k, &f) in FREQUENCIES_HZ.iter().enumerate() {
            let w = std::f64::consts::TAU * f / SAMPLE_RATE;
            for n in 0..BLOCK {
                cos[k][n] = (w * n as f64).cos() as f32;
                sin[k][n] = (w * n as f64).sin() as f32;
            }
            let a = w * BLOCK as f64;
            advance[k] = (a.cos() as f32, a.sin() as f32);
            advance2[k] = ((2.0 * a).cos() as f32, (2.0 * a).sin() as f32);
            let max_angle = std::f64::consts::TAU * MAX_DEVIATION * f * BLOCK as f64 / SAMPLE_RATE;
            max_tan[k] = max_angle.tan() as f32;
        }
        // A sine of amplitude A gives a coherent 3-block (120-sample) power of (120·A/2)².
        // Levels follow energy.rs: a full-scale (32768) sine is +3.14 dBm0.
        let amplitude = 32768.0
            * 10f64.powf((MIN_LEVEL_DBM0 - crate::energy::FULL_SCALE_SINE_DBM0 as f64) / 20.0);
        let min_power = (3.0 * BLOCK as f64 * amplitude / 2.0).powi(2) as f32;
        Tables {
            cos,
            sin,
            advance,
            advance2,
            max_tan,
            min_power,
            normal_twist: 10f64.powf(NORMAL_TWIST_DB / 10.0) as f32,
            reverse_twist: 10f64.powf(REVERSE_TWIST_DB / 10.0) as f32,
        }
    }
}

/// One block's analysis: the 8 complex correlations and the energy.
#[derive(Clone, Copy, Debug, Default)]
struct BlockBins {
    re: [f32; 8],
    im: [f32; 8],
    energy: f32,
}

impl BlockBins {
    fn power(&self, k: usize) -> f32 {
        self.re[k] * self.re[k] + self.im[k] * self.im[k]
    }
}

/// The coherent 10 ms bins over two consecutive blocks, and their energy.
#[derive(Clone, Copy, Debug, Default)]
struct WindowBins {
    re: [f32; 8],
    im: [f32; 8],
    energy: f32,
}

/// The detector's digit state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Idle,
    /// A digit seen in `hits` passing triples (confirmed once `hits >= CONFIRM_TRIPLES`), the
    /// last `misses` triples failing.
    Digit {
        key: u8,
        start: u64,
        end: u64,
        hits: u32,
        misses: u32,
    },
}

/// A streaming in-band DTMF detector (8 kHz). Feed it audio of any length, any number of
/// times; it reports [`DtmfEvent`]s through a callback. Real-time safe: no allocation, no
/// system call; cost proportional to the input.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    tables: Tables,
    block: [f32; BLOCK],
    filled: usize,
    /// Whole blocks analysed so far.
    blocks: u64,
    /// The blocks before this one: `prev[1]` the last, `prev[0]` the one before it.
    prev: [BlockBins; 2],
    /// The 10 ms window ending with the last block.
    prev_window: WindowBins,
    track: Track,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        DtmfDetector::new()
    }
}

/// Dot product of two blocks with 8 independent lanes, so it vectorises without reassociating.
#[inline(always)]
fn dot(a: &[f32; BLOCK], b: &[f32; BLOCK]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

impl DtmfDetector {
    /// A detector at sample 0, with no digit in progress.
    pub fn new() -> DtmfDetector {
        DtmfDetector {
            tables: Tables::new(),
            block: [0.0; BLOCK],
            filled: 0,
            blocks: 0,
            prev: [BlockBins::default(); 2],
            prev_window: WindowBins::default(),
            track: Track::Idle,
        }
    }

    /// Starts again at sample 0 with no digit in progress (keeps the tables).
    pub fn reset(&mut self) {
        self.filled = 0;
        self.blocks = 0;
        self.prev = [BlockBins::default(); 2];
        self.prev_window = WindowBins::default();
        self.track = Track::Idle;
    }

    /// Samples given so far.
    pub fn samples(&self) -> u64 {
        self.blocks * BLOCK as u64 + self.filled as u64
    }

    /// Feeds G.711 audio in `codec`.
    pub fn process(&mut self, codec: Codec, audio: &[u8], mut on_event: impl FnMut(DtmfEvent)) {
        let table = codec.decode_table();
        for &byte in audio {
            self.block[self.filled] = table[byte as usize] as f32;
            self.filled += 1;
            if self.filled == BLOCK {
                self.filled = 0;
                self.analyse(&mut on_event);
            }
        }
    }

    /// Feeds linear 16-bit audio.
    pub fn process_linear(&mut self, samples: &[i16], mut on_event: impl FnMut(DtmfEvent)) {
        for &s in samples {
            self.block[self.filled] = s as f32;
            self.filled += 1;
            if self.filled == BLOCK {
                self.filled = 0;
                self.analyse(&mut on_event);
            }
        }
    }

    /// The end of the stream: a digit still sounding is released (at its last passing triple).
    /// The detector is then reset.
    pub fn finish(&mut self, mut on_event: impl FnMut(DtmfEvent)) {
        if let Track::Digit {
            key,
            start,
            end,
            hits,
            ..
        } = self.track
        {
            if hits >= CONFIRM_TRIPLES {
                on_event(DtmfEvent::Released(ToneSpan {
                    digit: key as char,
                    start,
                    end,
                }));
            }
        }
        self.reset();
    }

    /// The first sample of a digit that is confirmed and still sounding, if any.
    pub fn sounding_since(&self) -> Option<u64> {
        match self.track {
            Track::Digit { start, hits, .. } if hits >= CONFIRM_TRIPLES => Some(start),
            _ => None,
        }
    }

    /// Where a tone that is not confirmed yet (it may still be rejected) could begin: one
    /// [`MARGIN`] before its first passing triple. None when no unconfirmed tone is in view.
    pub fn unconfirmed_since(&self) -> Option<u64> {
        match self.track {
            Track::Digit { start, hits, .. } if hits < CONFIRM_TRIPLES => {
                Some(start.saturating_sub(MARGIN))
            }
            _ => None,
        }
    }

    /// Every sample before this one is decided: it belongs to no tone, or to a tone already
    /// reported (`Pressed`, with its end still to come or already `Released`) — plus
    /// [`MARGIN`]. Samples from here on may still turn out to be part of a tone. A host that
    /// must keep tones out of its output (masking) holds audio from here on.
    pub fn decided_before(&self) -> u64 {
        let whole = self.blocks * BLOCK as u64;
        // The next triple may start two blocks back; a tone in it one block earlier still.
        let mut before = whole.saturating_sub(3 * MARGIN);
        if let Track::Digit {
            start,
            end,
            hits,
            misses,
            ..
        } = self.track
        {
            if hits < CONFIRM_TRIPLES {
                before = before.min(start.saturating_sub(MARGIN));
            } else if misses > 0 {
                // A confirmed digit that may have ended: its span ends at `end + MARGIN` unless
                // it resumes; hold from there.
                before = before.min(end + MARGIN);
            }
        }
        before
    }

    fn analyse(&mut self, on_event: &mut impl FnMut(DtmfEvent)) {
        let t = &self.tables;
        let x = &self.block;
        let mut bins = BlockBins {
            energy: dot(x, x),
            ..BlockBins::default()
        };
        for k in 0..8 {
            bins.re[k] = dot(x, &t.cos[k]);
            bins.im[k] = -dot(x, &t.sin[k]);
        }
        // S(n) = C(n) + C(n-1)·e^{jω·40}: the 80-sample DFT bin over this block and the last.
        let last = &self.prev[1];
        let mut window = WindowBins {
            energy: bins.energy + last.energy,
            ..WindowBins::default()
        };
        for k in 0..8 {
            let (ar, ai) = t.advance[k];
            window.re[k] = bins.re[k] + last.re[k] * ar - last.im[k] * ai;
            window.im[k] = bins.im[k] + last.re[k] * ai + last.im[k] * ar;
        }
        let key = if self.blocks >= 2 {
            self.triple_key(&bins, &window)
        } else {
            None
        };
        self.prev = [self.prev[1], bins];
        self.prev_window = window;
        let triple_start = self.blocks.saturating_sub(2) * BLOCK as u64;
        self.blocks += 1;
        let triple_end = self.blocks * BLOCK as u64;
        self.step(key, triple_start, triple_end, on_event);
    }

    /// The key whose two tones pass every check over the triple (two blocks back, last block,
    /// this block), given this block's bins and the 10 ms window ending with it.
    fn triple_key(&self, cur: &BlockBins, window: &WindowBins) -> Option<u8> {
        let t = &self.tables;
        // Level, twist, relative peak and tone-to-total use the coherent 15 ms (120-sample)
        // bin S(n) + C(n-2)·e^{jω·80}: its nulls are 67 Hz apart, so neither a neighbour in
        // the same group nor the other group's tone (8 dB stronger with twist) leaks into it
        // by more than about -26 dB.
        let old = &self.prev[0];
        let mut power = [0.0f32; 8];
        for (k, p) in power.iter_mut().enumerate() {
            let (ar, ai) = t.advance2[k];
            let re = window.re[k] + old.re[k] * ar - old.im[k] * ai;
            let im = window.im[k] + old.re[k] * ai + old.im[k] * ar;
            *p = re * re + im * im;
        }
        let energy = window.energy + old.energy;
        let peak = |range: std::ops::Range<usize>| {
            let best = range
                .clone()
                .max_by(|&a, &b| power[a].total_cmp(&power[b]))
                .unwrap_or(range.start);
            let clear = range
                .filter(|&k| k != best)
                .all(|k| power[k] * RELATIVE_PEAK <= power[best]);
            (best, clear)
        };
        let (row, row_clear) = peak(0..4);
        let (col, col_clear) = peak(4..8);
        let (pr, pc) = (power[row], power[col]);
        let ok = row_clear
            && col_clear
            && pr >= t.min_power
            && pc >= t.min_power
            && pr <= pc * t.normal_twist
            && pc <= pr * t.reverse_twist
            // A tone's coherent 120-sample power is 60 (1.5 BLOCK) times its energy there.
            && (pr + pc) >= TONE_TO_TOTAL * 1.5 * BLOCK as f32 * energy
            && self.steady(cur, window, row)
            && self.steady(cur, window, col);
        ok.then(|| KEYS[row][col - 4])
    }

    /// All three blocks hold bin `k`'s tone, and its frequency is within the accepted deviation.
    fn steady(&self, cur: &BlockBins, window: &WindowBins, k: usize) -> bool {
        let p = [self.prev[0].power(k), self.prev[1].power(k), cur.power(k)];
        let (lo, hi) = (p[0].min(p[1]).min(p[2]), p[0].max(p[1]).max(p[2]));
        if lo * BLOCK_BALANCE < hi {
            return false;
        }
        // Z = S(n)·conj(S(n-1))·e^{-jω·40}: its angle is the tone's phase drift over 5 ms.
        let (sr, si) = (window.re[k], window.im[k]);
        let (qr, qi) = (self.prev_window.re[k], self.prev_window.im[k]);
        let zr = sr * qr + si * qi;
        let zi = si * qr - sr * qi;
        let (ar, ai) = self.tables.advance[k];
        let dr = zr * ar + zi * ai;
        let di = zi * ar - zr * ai;
        dr > 0.0 && di.abs() <= self.tables.max_tan[k] * dr
    }

    fn step(
        &mut self,
        key: Option<u8>,
        triple_start: u64,
        triple_end: u64,
        on_event: &mut impl FnMut(DtmfEvent),
    ) {
        self.track = match (self.track, key) {
            (Track::Idle, None) => Track::Idle,
            (Track::Idle, Some(k)) => Track::Digit {
                key: k,
                start: triple_start,
                end: triple_end,
                hits: 1,
                misses: 0,
            },
            (
                Track::Digit {
                    key,
                    start,
                    end,
                    hits,
                    misses,
                },
                None,
            ) => {
                if misses + 1 >= END_TRIPLES {
                    if hits >= CONFIRM_TRIPLES {
                        on_event(DtmfEvent::Released(ToneSpan {
                            digit: key as char,
                            start,
                            end,
                        }));
                    }
                    Track::Idle
                } else {
                    Track::Digit {
                        key,
                        start,
                        end,
                        hits,
                        misses: misses + 1,
                    }
                }
            }
            (
                Track::Digit {
                    key,
                    start,
                    end,
                    hits,
                    ..
                },
                Some(k),
            ) => {
                if k == key {
                    let hits = hits + 1;
                    if hits == CONFIRM_TRIPLES {
                        on_event(DtmfEvent::Pressed {
                            digit: key as char,
                            start,
                        });
                    }
                    Track::Digit {
                        key,
                        start,
                        end: triple_end,
                        hits,
                        misses: 0,
                    }
                } else {
                    // Another key without a gap: the first one ends where it was last seen.
                    if hits >= CONFIRM_TRIPLES {
                        on_event(DtmfEvent::Released(ToneSpan {
                            digit: key as char,
                            start,
                            end,
                        }));
                    }
                    Track::Digit {
                        key: k,
                        start: triple_start,
                        end: triple_end,
                        hits: 1,
                        misses: 0,
                    }
                }
            }
        };
    }
}

/// Every key press in a whole G.711 buffer, as [`ToneSpan`]s in samples. Convenience for
/// offline use (allocates the result); the real-time path uses [`DtmfDetector`] directly.
pub fn detect(codec: Codec, audio: &[u8]) -> Vec<ToneSpan> {
    let mut d = DtmfDetector::new();
    let mut spans = Vec::new();
    let mut on = |e| {
        if let DtmfEvent::Released(span) = e {
            spans.push(span)
        }
    };
    d.process(codec, audio, &mut on);
    d.finish(&mut on);
    spans
}

/// Every key press in linear 16-bit audio at 8 kHz (see [`detect`]).
pub fn detect_linear(samples: &[i16]) -> Vec<ToneSpan> {
    let mut d = DtmfDetector::new();
    let mut spans = Vec::new();
    let mut on = |e| {
        if let DtmfEvent::Released(span) = e {
            spans.push(span)
        }
    };
    d.process_linear(samples, &mut on);
    d.finish(&mut on);
    spans
}

/// The two frequencies of a key, `(row, column)` in Hz; None for a character that is no key.
pub fn key_frequencies(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase() as u32;
    for (r, row) in KEYS.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k as u32 == d {
                return Some((FREQUENCIES_HZ[r], FREQUENCIES_HZ[4 + c]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's two tones at `level_dbm0` each, `ms` long, with `twist_db` (row minus column).
    fn tone(digit: char, ms: u32, level_dbm0: f64) -> Vec<i16> {
        let (r, c) = key_frequencies(digit).unwrap();
        let a =
            32768.0 * 10f64.powf((level_dbm0 - crate::energy::FULL_SCALE_SINE_DBM0 as f64) / 20.0);
        (0..ms * 8)
            .map(|n| {
                let t = n as f64 / 8000.0;
                let w = std::f64::consts::TAU;
                (a * (w * r * t).sin() + a * (w * c * t + 1.0).sin()) as i16
            })
            .collect()
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; ms as usize * 8]
    }

    #[test]
    fn every_key_in_any_push_size() {
        let keys = "123A456B789C*0#D";
        let mut audio = silence(30);
        for d in keys.chars() {
            audio.extend(tone(d, 60, -10.0));
            audio.extend(silence(60));
        }
        for size in [1, 7, 40, 160, 333, audio.len()] {
            let mut det = DtmfDetector::new();
            let mut got = String::new();
            let mut spans = Vec::new();
            for piece in audio.chunks(size) {
                det.process_linear(piece, |e| match e {
                    DtmfEvent::Pressed { digit, .. } => got.push(digit),
                    DtmfEvent::Released(s) => spans.push(s),
                });
            }
            assert_eq!(got, keys, "push size {size}");
            assert_eq!(spans.len(), 16);
            for (i, s) in spans.iter().enumerate() {
                let begin = 240 + i as u64 * 960;
                assert!(
                    s.start + MARGIN >= begin && s.start <= begin + MARGIN,
                    "{s:?}"
                );
                assert!(s.end + MARGIN >= begin + 480 && s.end <= begin + 480 + MARGIN);
            }
        }
    }

    #[test]
    fn key_frequencies_are_the_grid() {
        assert_eq!(key_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(key_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(key_frequencies('x'), None);
    }

    #[test]
    fn decided_before_holds_a_candidate() {
        let mut det = DtmfDetector::new();
        det.process_linear(&silence(100), |_| {});
        assert_eq!(det.decided_before(), 800 - 120);
        det.process_linear(&tone('7', 15, -10.0), |_| panic!("not yet confirmed"));
        assert!(det.decided_before() <= 800);
        assert!(det.decided_before() + MARGIN >= 760);
    }
}
