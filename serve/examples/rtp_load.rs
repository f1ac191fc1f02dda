//! The load sender for `scripts/bench-serve`: N real-time RTP streams (20 ms PCMA packets of
//! a raw A-law file's audio, looped, one stream per destination port), from this separate process.
//!
//! `rtp_load PORTS_FILE SECONDS ALAW_FILE [HOST]` reads one UDP port per line and sends each port its own
//! stream (its own SSRC and numbering) for SECONDS, every stream's packet once per 20 ms tick,
//! the ticks kept on the wall clock, in `sendmmsg` batches of 1,024 over headers built once, so
//! a tick costs the packets' bytes and one system call per batch. Prints one JSON line: packets sent, ticks that started
//! late by more than a tick (the sender itself fell behind), and the worst lateness.

use std::io::BufRead;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: rtp_load PORTS_FILE SECONDS ALAW_FILE [HOST]");
        std::process::exit(2);
    }
    let host = args.get(4).map(String::as_str).unwrap_or("127.0.0.1");
    let ports: Vec<u16> =
        std::io::BufReader::new(std::fs::File::open(&args[1]).expect("ports file"))
            .lines()
            .map(|l| l.expect("a line").trim().parse().expect("a port"))
            .collect();
    let seconds: u64 = args[2].parse().expect("seconds");
    let destinations: Vec<SocketAddr> = ports
        .iter()
        .map(|p| format!("{host}:{p}").parse().expect("an address"))
        .collect();
    // One socket for every stream: each of the server's ports latches this one source address.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let _ = socket.set_write_timeout(Some(Duration::from_millis(100)));
    // The call's audio: a raw A-law file, looped (speech, so every stream is recorded).
    let audio = std::fs::read(&args[3]).expect("the A-law file");
    assert!(
        audio.len() >= 8000,
        "the A-law file must hold at least one second"
    );
    let ticks = seconds * 50;
    let start = Instant::now();
    let addrs: Vec<libc::sockaddr_in> = destinations
        .iter()
        .map(|d| {
            let SocketAddr::V4(v4) = d else {
                panic!("IPv4 destinations only")
            };
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = v4.port().to_be();
            a.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            a
        })
        .collect();
    // The most messages one sendmmsg takes (UIO_MAXIOV).
    const BATCH: usize = 1024;
    let mut packets = vec![[0u8; 172]; destinations.len()];
    // The message headers and iovecs are allocated once; each tick only points them at this
    // tick's packets (pointers taken after the packets were written), so a tick costs the
    // packets' bytes and one system call per batch of BATCH messages, no allocation.
    // SAFETY: iovec and mmsghdr are plain data; all-zero is a valid value of each.
    let mut iovecs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; destinations.len()];
    // SAFETY: as above.
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; destinations.len()];
    let (mut sent, mut send_errors, mut late_ticks, mut worst_late) =
        (0u64, 0u64, 0u64, Duration::ZERO);
    let fd = socket.as_raw_fd();
    for tick in 0..ticks {
        let due = start + Duration::from_millis(20 * tick);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(20) {
            late_ticks += 1;
            worst_late = worst_late.max(now - due);
        }
        for (i, packet) in packets.iter_mut().enumerate() {
            let seq = (tick as u16).wrapping_add(i as u16 * 7919);
            let ts = (tick as u32 * 160).wrapping_add(i as u32 * 104_729);
            packet[0] = 0x80;
            packet[1] = 8;
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[4..8].copy_from_slice(&ts.to_be_bytes());
            packet[8..12].copy_from_slice(&(0x1000_0000 + i as u32).to_be_bytes());
            // Each stream at its own offset into the audio.
            let at = ((tick as usize * 160) + i * 1601) % (audio.len() - 160);
            packet[12..].copy_from_slice(&audio[at..at + 160]);
        }
        for (((packet, iov), header), addr) in packets
            .iter_mut()
            .zip(iovecs.iter_mut())
            .zip(headers.iter_mut())
            .zip(&addrs)
        {
            iov.iov_base = packet.as_mut_ptr().cast();
            iov.iov_len = packet.len();
            header.msg_hdr.msg_name = (addr as *const libc::sockaddr_in).cast_mut().cast();
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < headers.len() {
            let batch = (headers.len() - done).min(BATCH);
            // SAFETY: `headers[done..done + batch]` are valid mmsghdrs, pointed this tick at
            // `addrs`, `iovecs` and `packets`, none of which is touched again until the call
            // returns; `fd` is an open UDP socket.
            let n = unsafe { libc::sendmmsg(fd, headers[done..].as_mut_ptr(), batch as u32, 0) };
            if n <= 0 {
                // Skip the message that failed (counted), keep sending the rest.
                send_errors += 1;
                done += 1;
                continue;
            }
            done += n as usize;
            sent += n as u64;
        }
    }
    println!(
        "{{\"streams\":{},\"seconds\":{},\"packets_sent\":{},\"send_errors\":{},\"late_ticks\":{},\"worst_late_ms\":{}}}",
        destinations.len(),
        seconds,
        sent,
        send_errors,
        late_ticks,
        worst_late.as_millis()
    );
}
