//! `beep_on_start` in serve: the beep goes to the caller as valid RTP, paced by the deadlines
//! `BeepSender` returns (driven here with synthetic instants: no sleeping, no timed assertion),
//! its audio is exactly the core's beep, and the recording starts only after it.

use callrec::{Codec, Engine, EngineConfig, Status};
use callrec_serve::beep::{BeepSender, BeepState, PACKET_INTERVAL, PACKET_SAMPLES};
use rtp_types::RtpPacket;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const OPTIONS: &str = r#"{"beep_on_start":true,"beep_milliseconds":250,"beep_frequency_hz":1000,"beep_level_dbm0":-12,"milliseconds_max_initial_silence":60000}"#;

/// An engine whose store is in a temporary directory removed on drop (passed or panicked).
fn engine(name: &str) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("callrec-serve-beep-{name}-"))
        .tempdir()
        .unwrap();
    let config = EngineConfig {
        poll_interval: Duration::from_millis(1),
        ..EngineConfig::default()
    };
    (Engine::new(dir.path().join("store"), config).unwrap(), dir)
}

/// The core's beep for these options, pulled directly and padded to whole packets.
fn reference_beep(engine: &Engine, codec: Codec) -> Vec<u8> {
    let (mut recorder, handle) = engine.record_json(OPTIONS, codec).unwrap();
    let mut out = Vec::new();
    loop {
        let mut packet = [codec.silence(); PACKET_SAMPLES];
        let n = recorder.playout(&mut packet);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&packet);
        if n < PACKET_SAMPLES {
            break;
        }
    }
    handle.abort();
    out
}

#[test]
fn the_beep_is_paced_rtp_carrying_the_cores_beep_and_the_recording_starts_after_it() {
    for (codec, pt) in [(Codec::Alaw, 8u8), (Codec::Ulaw, 0)] {
        let (engine, dir) = engine(codec.name());
        let expected = reference_beep(&engine, codec);
        // 250 ms in 20 ms packets: 13 packets, the last one half silence.
        assert_eq!(expected.len(), 13 * PACKET_SAMPLES);

        let (mut recorder, handle) = engine.record_json(OPTIONS, codec).unwrap();
        assert_eq!(recorder.status(), Status::Beeping);
        let ours = UdpSocket::bind("127.0.0.1:0").unwrap();
        let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
        caller
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut beep = BeepSender::new(codec, pt);
        // The caller has sent more than the beep: the allowance is not what this test is about.
        beep.allow(100, 100 * 172);

        // Wakes: on time, a little late, late by two packets (caught up), then a stall of a
        // second (pacing restarts from the wake instead of bursting 50 packets).
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut sent_per_wake = Vec::new();
        let mut deadlines = Vec::new();
        let wakes = [
            0, 20, 45, 100, 1100, 1120, 1140, 1160, 1180, 1200, 1220, 1240, 1260, 1280,
        ];
        let mut done = false;
        for w in wakes {
            let before = beep.packets_sent();
            match beep.send_due(ms(w), &mut recorder, &ours, caller.local_addr().unwrap()) {
                BeepState::NextAt(at) => deadlines.push(at),
                BeepState::Done => done = true,
                BeepState::Allowance => panic!("allowed 100 packets"),
            }
            sent_per_wake.push(beep.packets_sent() - before);
            if done {
                break;
            }
        }
        assert!(done, "the beep ended");
        assert_eq!(beep.send_errors(), 0);
        // 0 ms: #1; 20: #2; 45: #3 (due 40); 100: due 60, 80, 100 -> 3 (within the burst);
        // 1100: far behind -> restart at 1100: #7; then one per 20 ms until #13 at 1220.
        assert_eq!(sent_per_wake, [1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(
            deadlines,
            [20, 40, 60, 120, 1120, 1140, 1160, 1180, 1200, 1220].map(ms)
        );
        assert_eq!(beep.packets_sent(), 13);

        let mut buf = [0u8; 2048];
        let mut audio = Vec::new();
        for i in 0..13u16 {
            let (n, from) = caller.recv_from(&mut buf).unwrap();
            assert_eq!(
                from,
                ours.local_addr().unwrap(),
                "sent from the record's own port"
            );
            let p = RtpPacket::parse(&buf[..n]).expect("valid RTP");
            assert_eq!(p.version(), 2);
            assert_eq!(p.payload_type(), pt);
            assert_eq!(p.ssrc(), beep.ssrc());
            assert_eq!(
                p.marker_bit(),
                i == 0,
                "the marker on the first packet only"
            );
            assert_eq!(p.payload().len(), PACKET_SAMPLES);
            assert_eq!(p.n_csrcs(), 0);
            assert!(p.extension().is_none());
            if i == 0 {
                audio.push((p.sequence_number(), p.timestamp()));
            } else {
                let (s0, t0) = audio[0];
                assert_eq!(p.sequence_number(), s0.wrapping_add(i));
                assert_eq!(p.timestamp(), t0.wrapping_add(u32::from(i) * 160));
            }
            let payload = p.payload().to_vec();
            assert_eq!(
                payload,
                expected[usize::from(i) * PACKET_SAMPLES..][..PACKET_SAMPLES],
                "packet {i} carries the core's beep"
            );
        }
        caller.set_nonblocking(true).unwrap();
        assert!(
            caller.recv_from(&mut buf).is_err(),
            "nothing after the beep"
        );

        // The echo guard: the caller's next 800 samples are not taken for sound, then the
        // recorder waits for the first sound, and a tone starts the recording.
        assert_eq!(recorder.status(), Status::Beeping);
        let silence = [codec.silence(); 160];
        for _ in 0..5 {
            recorder.push(&silence).unwrap();
        }
        assert_eq!(recorder.status(), Status::Waiting);
        handle.abort();
        drop(recorder);
        engine.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_stopped_recording_ends_its_beep() {
    let (engine, dir) = engine("stopped");
    let (mut recorder, handle) = engine.record_json(OPTIONS, Codec::Alaw).unwrap();
    let ours = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut beep = BeepSender::new(Codec::Alaw, 8);
    beep.allow(100, 100 * 172);
    let t0 = Instant::now();
    let to = caller.local_addr().unwrap();
    assert!(matches!(
        beep.send_due(t0, &mut recorder, &ours, to),
        BeepState::NextAt(_)
    ));
    handle.abort();
    let _ = recorder.push(&[0xd5; 160]);
    assert_eq!(
        beep.send_due(t0 + PACKET_INTERVAL, &mut recorder, &ours, to),
        BeepState::Done
    );
    assert_eq!(beep.packets_sent(), 1);
    drop(recorder);
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_beep_sends_no_more_packets_or_bytes_than_it_was_allowed() {
    let (engine, dir) = engine("allowance");
    let (mut recorder, handle) = engine.record_json(OPTIONS, Codec::Alaw).unwrap();
    let ours = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = caller.local_addr().unwrap();
    let mut beep = BeepSender::new(Codec::Alaw, 8);
    let t0 = Instant::now();
    // Nothing received: nothing sent, and the sender waits.
    assert_eq!(
        beep.send_due(t0, &mut recorder, &ours, to),
        BeepState::Allowance
    );
    assert_eq!(beep.packets_sent(), 0);
    // Two packets of 172 bytes and one of 100 received: 2 beep packets (bytes: 444 < 3 x 172).
    beep.allow(2, 344);
    beep.allow(1, 100);
    let mut states = Vec::new();
    for w in 0..4u32 {
        states.push(beep.send_due(t0 + PACKET_INTERVAL * w, &mut recorder, &ours, to));
    }
    assert_eq!(beep.packets_sent(), 2);
    assert_eq!(states[2], BeepState::Allowance);
    assert_eq!(states[3], BeepState::Allowance);
    // Many packets, few bytes (a caller sending bare headers): bounded by the bytes.
    beep.allow(100, 12 * 100);
    let mut w = 4;
    while beep.send_due(t0 + PACKET_INTERVAL * w, &mut recorder, &ours, to) != BeepState::Allowance
    {
        w += 1;
    }
    assert_eq!(beep.packets_sent(), 2 + (100 + 1200) / 172);
    handle.abort();
    drop(recorder);
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
