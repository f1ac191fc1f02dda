//! RFC 4733 telephone-events: the 4-byte payload and "one press, one digit".
//!
//! The payload is parsed by hand (four fixed fields; no crate adds anything). A key press is
//! sent as a run of packets sharing one RTP timestamp (the event's start), the duration growing,
//! then usually three copies of the end packet. A press is counted once: a packet starts a new
//! press when its timestamp differs from the current press's and either the marker bit is set,
//! the previous press has ended, or the event code changed (the marker packet may be lost; the
//! segments of a very long press share the code and carry no end flag, so they stay one press).
//! A packet older than the current press (an update or end of an earlier press, arriving late)
//! never starts one. The press's timestamp is its start for as long as the key is held: the
//! tracker counts digits, it never places anything in time (that is [`crate::playout`]'s job).

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`; others are not DTMF.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// The tone's level, 0 to 63 meaning 0 to -63 dBm0.
    pub volume: u8,
    /// The event's length so far, in timestamp units (samples at 8 kHz).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event of a payload; None when it is shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let bytes: [u8; 4] = payload.get(..4)?.try_into().ok()?;
        Some(TelephoneEvent {
            event: bytes[0],
            end: bytes[1] & 0x80 != 0,
            volume: bytes[1] & 0x3f,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }

    /// The DTMF digit of the event code, or None for a non-DTMF event (e.g. fax tones).
    pub fn digit(&self) -> Option<char> {
        match self.event {
            0..=9 => Some((b'0' + self.event) as char),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some((b'A' + self.event - 12) as char),
            _ => None,
        }
    }
}

/// Turns a stream of telephone-event packets into key presses, each reported once.
#[derive(Clone, Debug, Default)]
pub struct PressTracker {
    current: Option<Press>,
}

#[derive(Clone, Copy, Debug)]
struct Press {
    timestamp: u32,
    event: u8,
    ended: bool,
}

impl PressTracker {
    /// Feeds one packet; returns true when it starts a new press.
    pub fn packet(&mut self, timestamp: u32, marker: bool, event: &TelephoneEvent) -> bool {
        let new_press = match self.current {
            None => true,
            Some(p) if p.timestamp == timestamp => false,
            // An update of an earlier press arriving late is never a press of its own.
            Some(p) if timestamp.wrapping_sub(p.timestamp) > u32::MAX / 2 => false,
            Some(p) => marker || p.ended || p.event != event.event,
        };
        match &mut self.current {
            Some(p) if !new_press => {
                if timestamp.wrapping_sub(p.timestamp) <= u32::MAX / 2 {
                    p.timestamp = timestamp;
                    p.ended |= event.end;
                }
            }
            _ => {
                self.current = Some(Press {
                    timestamp,
                    event: event.event,
                    ended: event.end,
                })
            }
        }
        new_press
    }

    /// Forgets the current press (a new SSRC starts a new event sequence).
    pub fn reset(&mut self) {
        self.current = None;
    }
}
