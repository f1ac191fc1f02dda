//! RFC 4733 telephone-event payloads (parsed by hand in `callrec serve`) and "one press, one
//! digit": never a panic; a parse is exactly the payload's four fields (checked against an
//! independent bit-level reading); shorter payloads are refused; only event codes 0-15 are
//! digits; and a run of packets sharing one timestamp is at most one press.
//!
//! Input: packets of [marker+length byte][timestamp selector][payload bytes].
#![no_main]
use callrec_serve::telephone_event::{PressTracker, TelephoneEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tracker = PressTracker::default();
    let mut rest = data;
    let mut previous_ts = None;
    while let [head, selector, tail @ ..] = rest {
        let len = usize::from(head & 0x07).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let parsed = TelephoneEvent::parse(payload);
        if payload.len() < 4 {
            assert!(parsed.is_none(), "a {}-byte payload parsed", payload.len());
            continue;
        }
        let event = parsed.expect("four bytes parse");
        let word = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        assert_eq!(u32::from(event.event), word >> 24);
        assert_eq!(event.end, (word >> 23) & 1 == 1);
        assert_eq!(u32::from(event.volume), (word >> 16) & 0x3f);
        assert_eq!(u32::from(event.duration), word & 0xffff);
        match event.digit() {
            Some(d) => {
                assert!(event.event <= 15);
                assert!(callrec::options::is_dtmf_digit(d), "digit {d:?}");
            }
            None => assert!(event.event > 15),
        }
        // Few distinct timestamps, so runs that share one are common.
        let ts = u32::from(selector & 0x03) * 160;
        let marker = head & 0x80 != 0;
        let new_press = tracker.packet(ts, marker, &event);
        if previous_ts.is_none() {
            assert!(new_press, "the first packet is a press");
        }
        if previous_ts == Some(ts) {
            assert!(
                !new_press,
                "a new press on the same timestamp as the last packet"
            );
        }
        previous_ts = Some(ts);
    }
});
