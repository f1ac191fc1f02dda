//! The receive threads: UDP sockets in, `Recorder` pushes out, in real time.
//!
//! Each thread owns a `polling` poller (epoll on Linux, level-triggered) and the sessions
//! assigned to it, indexed by port pair: the even RTP port's socket and the RTCP socket on the
//! next port are both polled. A wake reads a ready RTP socket until the call's own packet, an
//! empty socket or [`BURST`] datagrams (level-triggered: what is left wakes the next poll at
//! once, so one busy port cannot starve the others): a flood from a foreign address costs one
//! `recv_from` and one address comparison per packet, without a poll per packet, and the call's
//! packets, one per packet time, cost no second `recv_from` that would find the socket empty. Datagrams are read whole, up to 64 KiB (any UDP payload), into one buffer
//! the thread allocates when it starts; each is parsed in place and its timeline pushed straight
//! into the session's [`Recorder`]: no async runtime, no lock and no allocation between the
//! socket and the push. What arrives on the RTCP port is counted (`rtcp_packets`) and dropped. Sessions arrive from the control API fully
//! built (socket bound, recorder started, window allocated) over a channel that is read after
//! each wake; stopping a session (its recorder stopped, the control API's hangup, inactivity,
//! shutdown) releases what its window holds, hangs up, and hands the port back.
//!
//! A gap in the call (DTX, comfort noise, a long key press) is silence the window releases no
//! faster than the recorder's ring can take ([`Sink::room`]); each tick drains what is still
//! owed, so a gap never drops a frame.
//!
//! A session with `beep_on_start` also sends: once the latched source has sent
//! [`BEEP_AFTER_PACKETS`] valid packets (one spoofed packet cannot aim the beep anywhere), the
//! thread keeps it on a short list of beeping sessions (allocated for every port at start, so
//! adding to it never allocates), cuts its poll timeout to the next packet's deadline, and sends
//! what is due ([`BeepSender`]) until the core's beep has been pulled in full. The beep never
//! sends more packets or bytes than the source sent (no amplifier): when it has used what it was
//! given it leaves the list, and the source's next packet puts it back.

use crate::beep::{BeepSender, BeepState};
use crate::playout::Sink;
use crate::records::Freed;
use crate::stream::{Accepted, Counters, RtpStream, RtpTotals, StreamStats};
use callrec::{Recorder, Status};
use crossbeam_channel::{Receiver, Sender};
use polling::{Event, Events, PollMode, Poller};
use std::net::UdpSocket;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a thread wakes without packets, to check inactivity and stops from other threads.
const TICK: Duration = Duration::from_millis(20);
/// The most a push writes to the recorder's ring beyond its input: the pre-roll (with the
/// detector's onset delay) and a held partial frame, written when recording starts.
const PUSH_OVERHEAD: usize =
    (callrec::recorder::PREROLL_FRAMES + callrec::detect::MAX_ONSET_DELAY_FRAMES + 1)
        * callrec::recorder::FRAME_SAMPLES;
/// The receive buffer: the largest UDP payload (65,507 bytes over IPv4, 65,527 over IPv6) fits.
pub const MAX_DATAGRAM: usize = 65_536;
/// The most datagrams read from one socket per wake.
pub const BURST: usize = 64;
/// Valid packets the latched source sends before the beep goes to it.
pub const BEEP_AFTER_PACKETS: u64 = 5;

/// Where a session is, for the control API (`SessionShared::phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// No RTP yet.
    Starting = 0,
    /// Playing the beep.
    Beeping = 1,
    /// Waiting for the first sound.
    Waiting = 2,
    /// Recording.
    Recording = 3,
    /// Stopped; the file is being finalized.
    Stopped = 4,
}

impl Phase {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Beeping => "beeping",
            Phase::Waiting => "waiting",
            Phase::Recording => "recording",
            Phase::Stopped => "stopped",
        }
    }

    fn from_status(status: Status) -> Phase {
        match status {
            Status::Beeping => Phase::Beeping,
            Status::Waiting => Phase::Waiting,
            Status::Recording => Phase::Recording,
            Status::Stopped(_) => Phase::Stopped,
        }
    }
}

/// What the control side and the receive thread share about one session.
#[derive(Debug, Default)]
pub struct SessionShared {
    /// The RTP counters.
    pub stats: StreamStats,
    phase: AtomicU8,
    paused: AtomicBool,
}

impl SessionShared {
    /// The session's phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Starting,
            1 => Phase::Beeping,
            2 => Phase::Waiting,
            3 => Phase::Recording,
            _ => Phase::Stopped,
        }
    }

    /// True between the app's pause and resume.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

/// A session ready to receive: built on the control side.
#[derive(Debug)]
pub struct Session {
    /// The bound, non-blocking RTP socket.
    pub socket: UdpSocket,
    /// The bound, non-blocking RTCP socket (`port + 1`).
    pub rtcp: UdpSocket,
    /// The RTP port it is bound to (even: the session's key).
    pub port: u16,
    /// The RTP state.
    pub stream: RtpStream,
    /// The recorder the timeline goes to.
    pub recorder: Recorder,
    /// Shared with the control side.
    pub shared: Arc<SessionShared>,
    /// The record id, for logs.
    pub record_id: String,
    /// The beep to send the caller once its packets show where it is (`beep_on_start`).
    pub beep: Option<BeepSender>,
    /// For a leg of a two-leg call: where it goes on the call's timeline.
    pub leg: Option<CallLeg>,
}

/// A leg of a two-leg call (DESIGN §13). Both legs are served by one receive thread, so that
/// the call's inactivity, hangup and pause see both.
///
/// The file's timeline is the wall clock since the recording began, as each leg's packets
/// arrive: a leg's first packet, and its first packet after it went quiet, is placed at its
/// arrival (`Recorder::push_at`), and from there the leg's own RTP timestamps place its audio
/// (the jitter window fills its losses, as for one leg). A leg without packets for
/// `quiet_after` is *moved on*: its window is released and forgotten, and each tick pushes it
/// on to the wall clock less `quiet_after` (as silence), so the other leg's stop on silence is
/// never held up by a party that stopped sending or never sent.
#[derive(Clone, Copy, Debug)]
pub struct CallLeg {
    /// When the recording began: index 0 of the call's timeline.
    pub origin: Instant,
    /// The other leg's RTP port (served by the same receive thread).
    pub partner_port: u16,
    /// How long the leg goes without a packet before it is moved on: longer than the jitter
    /// window and any gap between the packets of a talkspurt.
    pub quiet_after: Duration,
}

impl CallLeg {
    /// The call timeline's index at `t` (8,000 a second since `origin`).
    pub fn index_at(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.origin);
        since.as_secs() * 8000 + u64::from(since.subsec_nanos()) / 125_000
    }
}

/// A leg as the receive thread follows it.
struct LegState {
    call: CallLeg,
    /// The partner's slot.
    partner: usize,
    /// No timeline: the next talkspurt is placed by its arrival.
    detached: bool,
}

/// Timeouts of the receive side.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// No packet for this long after the first: the call hung up.
    pub inactivity: Duration,
    /// No first packet for this long: the call hung up.
    pub first_packet: Duration,
}

/// A control request for a session, by port.
#[derive(Debug)]
pub enum Command {
    /// Start receiving.
    Start(Box<Session>),
    /// The call ended (the app says so).
    Hangup(u16),
    /// A digit from the app.
    Digit(u16, char),
    /// Pause the recording (PCI), after recording what was received before.
    Pause(u16),
    /// Resume a paused recording.
    Resume(u16),
    /// Release everything, stop every recording (`other`) and exit.
    Shutdown,
}

/// Why a session ended, for the log.
#[derive(Clone, Copy, Debug)]
enum Ended {
    Stopped,
    Inactive,
    HungUp,
    Shutdown,
}

struct Live {
    session: Box<Session>,
    leg: Option<LegState>,
    /// Where the next audio the window releases goes on the call's timeline (a leg's first
    /// talkspurt after it was detached); None: right after what came before.
    place_at: Option<u64>,
    last_packet: Option<Instant>,
    /// Packets accepted from the latched source.
    accepted: u64,
    started: Instant,
    /// When the next beep packet is due (None: no beep playing).
    beep_due: Option<Instant>,
}

/// A recorder as the window's sink: what the receive thread pushes into.
pub struct RecorderSink<'a> {
    recorder: &'a mut Recorder,
    place_at: Option<&'a mut Option<u64>>,
}

impl<'a> RecorderSink<'a> {
    /// Audio goes on where the recorder is.
    pub fn new(recorder: &'a mut Recorder) -> RecorderSink<'a> {
        RecorderSink {
            recorder,
            place_at: None,
        }
    }

    /// A leg's sink: the next audio released goes at `place_at` (taken) when it is set, or at
    /// the leg's position if that is further (nothing pushed is ever late by our own doing).
    pub fn placing(recorder: &'a mut Recorder, place_at: &'a mut Option<u64>) -> RecorderSink<'a> {
        RecorderSink {
            recorder,
            place_at: Some(place_at),
        }
    }
}

impl Sink for RecorderSink<'_> {
    fn audio(&mut self, audio: &[u8]) {
        // The window never releases more than one push's worth at a time.
        match self.place_at.as_mut().and_then(|p| p.take()) {
            Some(at) => {
                let at = at.max(self.recorder.position().unwrap_or(0));
                let _ = self.recorder.push_at(at, audio);
            }
            None => {
                let _ = self.recorder.push(audio);
            }
        }
    }
    fn digit(&mut self, digit: char) {
        // Only DTMF digits reach here (the event code was mapped).
        let _ = self.recorder.digit(digit);
    }
    fn room(&self) -> usize {
        // A push may also write the pre-roll and a held partial frame when recording starts.
        self.recorder
            .ring_free_bytes()
            .saturating_sub(PUSH_OVERHEAD)
    }
}

/// One receive thread, seen from the control side.
pub struct IngestThread {
    poller: Arc<Poller>,
    commands: Sender<Command>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl IngestThread {
    /// Starts a thread serving `pairs` port pairs from the even `first_port` (RTP on the even
    /// port, RTCP on the next). `freed` gets each pair back when its session ends.
    pub fn start(
        name: String,
        first_port: u16,
        pairs: usize,
        timeouts: Timeouts,
        totals: Arc<RtpTotals>,
        freed: Sender<Freed>,
    ) -> std::io::Result<IngestThread> {
        let poller = Arc::new(Poller::new()?);
        let (commands, rx) = crossbeam_channel::unbounded();
        let thread_poller = poller.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut receiver = ReceiveLoop {
                poller: thread_poller,
                commands: rx,
                first_port,
                live: (0..pairs).map(|_| None).collect(),
                // Each session is in it at most once: pushing never reallocates.
                beeping: Vec::with_capacity(pairs),
                timeouts,
                totals,
                freed,
                count: 0,
            };
            receiver.run();
        })?;
        Ok(IngestThread {
            poller,
            commands,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Sends a command and wakes the thread.
    pub fn send(&self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|e| e.into_inner())?;
        let _ = self.poller.notify();
        Ok(())
    }

    /// Stops every session (`other`, after releasing their windows) and joins the thread.
    pub fn shutdown(&self) {
        let _ = self.send(Command::Shutdown);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for IngestThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct ReceiveLoop {
    poller: Arc<Poller>,
    commands: Receiver<Command>,
    first_port: u16,
    live: Vec<Option<Live>>,
    /// Keys of the sessions whose beep is playing.
    beeping: Vec<usize>,
    timeouts: Timeouts,
    totals: Arc<RtpTotals>,
    freed: Sender<Freed>,
    count: usize,
}

impl Live {
    /// The session's stream, the sink its window releases into, and its counters.
    fn parts<'a>(
        &'a mut self,
        totals: &'a RtpTotals,
    ) -> (&'a mut RtpStream, RecorderSink<'a>, Counters<'a>) {
        let session = &mut *self.session;
        let counters = Counters {
            stream: &session.shared.stats,
            total: totals.of(session.recorder.leg()),
        };
        (
            &mut session.stream,
            RecorderSink::placing(&mut session.recorder, &mut self.place_at),
            counters,
        )
    }

    /// No packet for the inactivity timeout (or no first packet for the first-packet one).
    fn quiet(&self, now: Instant, timeouts: &Timeouts) -> bool {
        match self.last_packet {
            Some(t) => now.duration_since(t) >= timeouts.inactivity,
            None => now.duration_since(self.started) >= timeouts.first_packet,
        }
    }

    /// The stream's window releases what it holds; a leg that sent nothing for its
    /// `quiet_after` is moved on by the wall clock (see [`CallLeg`]).
    fn release(&mut self, now: Instant, totals: &RtpTotals) {
        let quiet_leg = self.leg.as_ref().and_then(|leg| {
            let last = self.last_packet.unwrap_or(self.started);
            let since = now.checked_sub(leg.call.quiet_after)?;
            (since >= last).then(|| leg.call.index_at(since))
        });
        let detach = quiet_leg.is_some() && self.leg.as_ref().is_some_and(|l| !l.detached);
        let (stream, mut sink, counters) = self.parts(totals);
        if detach {
            stream.detach(&mut sink, counters);
        } else {
            stream.drain(&mut sink, counters);
        }
        if let (Some(to), Some(leg)) = (quiet_leg, self.leg.as_mut()) {
            leg.detached = true;
            self.place_at = None;
            let recorder = &mut self.session.recorder;
            if to > recorder.position().unwrap_or(u64::MAX) {
                let _ = recorder.push_at(to, &[]);
            }
        }
    }
}

impl ReceiveLoop {
    fn run(&mut self) {
        let capacity = NonZeroUsize::new(1024).expect("non-zero");
        let mut events = Events::with_capacity(capacity);
        let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
        let mut last_sweep = Instant::now();
        loop {
            events.clear();
            // Wake for the next beep packet if it is due before the tick.
            let timeout = self.next_beep().map_or(TICK, |due| {
                due.saturating_duration_since(Instant::now()).min(TICK)
            });
            if let Err(e) = self.poller.wait(&mut events, Some(timeout)) {
                tracing::error!(error = %e, "RTP poll failed");
                std::thread::sleep(TICK);
            }
            let now = Instant::now();
            for event in events.iter() {
                self.receive(event.key, &mut buf, now);
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) => {
                        self.end_all();
                        return;
                    }
                    Ok(command) => self.command(command, now),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        self.end_all();
                        return;
                    }
                }
            }
            if !self.beeping.is_empty() {
                self.beep(Instant::now());
            }
            if now.duration_since(last_sweep) >= TICK {
                last_sweep = now;
                self.sweep(now);
            }
        }
    }

    /// The earliest deadline of a playing beep.
    fn next_beep(&self) -> Option<Instant> {
        self.beeping
            .iter()
            .filter_map(|&key| self.live[key].as_ref()?.beep_due)
            .min()
    }

    /// Sends the beep packets due at `now`; a finished beep leaves the list.
    fn beep(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.beeping.len() {
            let key = self.beeping[i];
            let playing = match self.live[key].as_mut() {
                Some(live) if live.beep_due.is_some_and(|due| due <= now) => {
                    Self::send_beep(live, &self.totals, now)
                }
                Some(live) => live.beep_due.is_some(),
                None => false,
            };
            if playing {
                i += 1;
            } else {
                self.beeping.swap_remove(i);
            }
        }
    }

    /// Sends what is due of one session's beep; false once it is over or waits for the caller.
    fn send_beep(live: &mut Live, totals: &RtpTotals, now: Instant) -> bool {
        let session = &mut *live.session;
        let (Some(beep), Some(to)) = (session.beep.as_mut(), session.stream.source()) else {
            live.beep_due = None;
            return false;
        };
        let before = beep.packets_sent();
        let state = beep.send_due(now, &mut session.recorder, &session.socket, to);
        Counters {
            stream: &session.shared.stats,
            total: totals.of(session.recorder.leg()),
        }
        .add(|s| &s.beep_packets_sent, beep.packets_sent() - before);
        match state {
            BeepState::NextAt(due) => {
                live.beep_due = Some(due);
                true
            }
            BeepState::Allowance => {
                // Off the list until the source's next packet gives it more to send.
                live.beep_due = None;
                false
            }
            BeepState::Done => {
                tracing::debug!(record_id = %session.record_id, packets = beep.packets_sent(),
                    errors = beep.send_errors(), "beep sent");
                live.beep_due = None;
                session.beep = None;
                false
            }
        }
    }

    /// Reads a ready socket: `key` is twice the session's slot, plus one for its RTCP socket.
    fn receive(&mut self, key: usize, buf: &mut [u8], now: Instant) {
        let slot = key / 2;
        if key % 2 == 1 {
            self.receive_rtcp(slot, buf);
            return;
        }
        for _ in 0..BURST {
            let Some(live) = self.live.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let (n, from) = match live.session.socket.recv_from(buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // ICMP errors reported on the socket (e.g. port unreachable) are not fatal.
                Err(e) => {
                    tracing::debug!(record_id = %live.session.record_id, error = %e, "recv_from");
                    continue;
                }
            };
            if !live.session.stream.may_send(from) {
                // The early reject: a foreign packet is counted and never parsed.
                let session = &live.session;
                Counters {
                    stream: &session.shared.stats,
                    total: self.totals.of(session.recorder.leg()),
                }
                .add(|s| &s.packets_foreign, 1);
                continue;
            }
            if let Some(leg) = live.leg.as_ref() {
                if leg.detached && live.place_at.is_none() {
                    // A detached leg's talkspurt goes where it arrives on the call's clock.
                    live.place_at = Some(leg.call.index_at(now));
                }
            }
            let (stream, mut sink, counters) = live.parts(&self.totals);
            let accepted = stream.datagram(from, &buf[..n], &mut sink, counters);
            if let Some(leg) = live.leg.as_mut() {
                if leg.detached {
                    if !live.session.stream.has_timeline() {
                        // Nothing placed (an event, comfort noise, a foreign datagram): the
                        // talkspurt's first audio sets the place when it comes.
                        live.place_at = None;
                    } else if live.place_at.is_none() {
                        leg.detached = false;
                    }
                }
            }
            let session = &mut live.session;
            if accepted == Accepted::Yes {
                live.accepted += 1;
                live.last_packet = Some(now);
                if let Some(beep) = session.beep.as_mut() {
                    // What the source sent is what the beep may send back.
                    beep.allow(1, n as u64);
                    if live.beep_due.is_none() && live.accepted >= BEEP_AFTER_PACKETS {
                        // The caller's address is known: the beep (re)starts now.
                        live.beep_due = Some(now);
                        self.beeping.push(slot);
                    }
                }
            }
            let status = session.recorder.status();
            session
                .shared
                .phase
                .store(Phase::from_status(status) as u8, Ordering::Relaxed);
            if let Status::Stopped(_) = status {
                self.end(slot, Ended::Stopped);
                return;
            }
            if accepted == Accepted::Yes {
                // The call's own packets come one per packet time: reading on would almost
                // always cost a `recv_from` that finds the socket empty (level-triggered, a
                // second packet already there wakes the next poll at once).
                return;
            }
        }
    }

    /// Drains a session's RTCP socket: counted, not otherwise used.
    fn receive_rtcp(&mut self, slot: usize, buf: &mut [u8]) {
        let Some(live) = self.live.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let session = &live.session;
        let counters = Counters {
            stream: &session.shared.stats,
            total: self.totals.of(session.recorder.leg()),
        };
        for _ in 0..BURST {
            match session.rtcp.recv_from(buf) {
                Ok(_) => counters.add(|s| &s.rtcp_packets, 1),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {}
            }
        }
    }

    fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Start(session) => {
                let Some(key) = self.slot_of(session.port) else {
                    tracing::error!(port = session.port, "port outside this thread's range");
                    return;
                };
                let leg = match session.leg {
                    None => None,
                    Some(call) => match self.slot_of(call.partner_port) {
                        Some(partner) => Some(LegState {
                            call,
                            partner,
                            detached: true,
                        }),
                        None => {
                            tracing::error!(
                                port = call.partner_port,
                                "a call's legs on two receive threads"
                            );
                            return;
                        }
                    },
                };
                // SAFETY: the socket is removed from the poller (`end`) before it is dropped.
                let added = unsafe {
                    self.poller.add_with_mode(
                        &session.socket,
                        Event::readable(2 * key),
                        PollMode::Level,
                    )
                };
                // SAFETY: as above, `end` removes it before the session (and it) is dropped.
                let added = added.and_then(|()| unsafe {
                    self.poller.add_with_mode(
                        &session.rtcp,
                        Event::readable(2 * key + 1),
                        PollMode::Level,
                    )
                });
                if let Err(e) = added {
                    tracing::error!(record_id = %session.record_id, error = %e, "cannot poll the RTP socket");
                    let _ = self.poller.delete(&session.socket);
                    let _ = self.freed.send(Freed {
                        port: session.port,
                        at: now,
                        source: None,
                    });
                    return; // dropping the recorder stops it with `other`
                }
                session
                    .shared
                    .phase
                    .store(Phase::Starting as u8, Ordering::Relaxed);
                self.live[key] = Some(Live {
                    session,
                    leg,
                    place_at: None,
                    last_packet: None,
                    accepted: 0,
                    started: now,
                    beep_due: None,
                });
                self.count += 1;
            }
            Command::Hangup(port) => {
                if let Some(key) = self.key(port) {
                    self.end(key, Ended::HungUp);
                }
            }
            Command::Digit(port, digit) => {
                if let Some(key) = self.key(port) {
                    if let Some(live) = self.live[key].as_mut() {
                        let status = live.session.recorder.digit(digit).ok();
                        if let Some(Status::Stopped(_)) = status {
                            self.end(key, Ended::Stopped);
                        }
                    }
                }
            }
            Command::Pause(port) | Command::Resume(port) => {
                let pause = matches!(command, Command::Pause(_));
                let Some(key) = self.key(port) else {
                    return;
                };
                // What arrived before the request is recorded before the pause takes effect
                // (or left out after the resume): release the windows (both legs') first.
                let partner = self.partner(key);
                for k in std::iter::once(key).chain(partner) {
                    if let Some(live) = self.live[k].as_mut() {
                        let (stream, mut sink, counters) = live.parts(&self.totals);
                        stream.finish(&mut sink, counters);
                    }
                }
                if let Some(live) = self.live[key].as_mut() {
                    let session = &mut *live.session;
                    // A two-leg call's pause covers both legs (the core's).
                    let status = if pause {
                        session.recorder.pause()
                    } else {
                        session.recorder.resume()
                    };
                    for k in std::iter::once(key).chain(partner) {
                        if let Some(live) = self.live[k].as_ref() {
                            live.session.shared.paused.store(pause, Ordering::Relaxed);
                        }
                    }
                    if let Status::Stopped(_) = status {
                        self.end(key, Ended::Stopped);
                    }
                }
            }
            Command::Shutdown => self.end_all(),
        }
    }

    /// The slot of an RTP port in this thread's block.
    fn slot_of(&self, port: u16) -> Option<usize> {
        let offset = usize::from(port).checked_sub(usize::from(self.first_port))?;
        Some(offset / 2).filter(|&k| offset % 2 == 0 && k < self.live.len())
    }

    /// The slot of a live session's RTP port.
    fn key(&self, port: u16) -> Option<usize> {
        let key = self.slot_of(port)?;
        self.live[key].as_ref().map(|_| key)
    }

    /// The live slot of the other leg of `key`'s call (the same recording).
    fn partner(&self, key: usize) -> Option<usize> {
        let live = self.live[key].as_ref()?;
        let partner = live.leg.as_ref()?.partner;
        let other = self.live[partner].as_ref()?;
        (other.session.record_id == live.session.record_id).then_some(partner)
    }

    /// Ends sessions that went quiet, or that another thread stopped (abort); releases what
    /// windows owe and moves quiet legs on.
    fn sweep(&mut self, now: Instant) {
        if self.count == 0 {
            return;
        }
        for key in 0..self.live.len() {
            let Some(live) = self.live[key].as_ref() else {
                continue;
            };
            // A call ends for inactivity when every leg is quiet: one-way audio is a call.
            let quiet = live.quiet(now, &self.timeouts)
                && self
                    .partner(key)
                    .and_then(|p| self.live[p].as_ref())
                    .is_none_or(|p| p.quiet(now, &self.timeouts));
            let Some(live) = self.live[key].as_mut() else {
                continue;
            };
            if quiet {
                self.end(key, Ended::Inactive);
            } else if let Status::Stopped(_) = live.session.recorder.status() {
                self.end(key, Ended::Stopped);
            } else {
                // A gap's silence the recorder's ring could not take at once goes on flowing
                // as the writer drains it, packets or not; a quiet leg is moved on.
                live.release(now, &self.totals);
                let status = live.session.recorder.status();
                live.session
                    .shared
                    .phase
                    .store(Phase::from_status(status) as u8, Ordering::Relaxed);
                if let Status::Stopped(_) = status {
                    self.end(key, Ended::Stopped);
                }
            }
        }
    }

    fn end_all(&mut self) {
        for key in 0..self.live.len() {
            if self.live[key].is_some() {
                self.end(key, Ended::Shutdown);
            }
        }
    }

    /// Ends a session, and the other leg of its call with it: both windows are released before
    /// either leg hangs up, so the recording ends where the furthest leg got.
    fn end(&mut self, key: usize, why: Ended) {
        let partner = self.partner(key);
        for k in std::iter::once(key).chain(partner) {
            if let Some(live) = self.live[k].as_mut() {
                let (stream, mut sink, counters) = live.parts(&self.totals);
                stream.finish(&mut sink, counters);
            }
        }
        self.end_one(key, why);
        if let Some(p) = partner {
            self.end_one(p, why);
        }
    }

    fn end_one(&mut self, key: usize, why: Ended) {
        let Some(mut live) = self.live[key].take() else {
            return;
        };
        self.count -= 1;
        if live.beep_due.is_some() {
            self.beeping.retain(|&k| k != key);
        }
        let session = &mut *live.session;
        match why {
            // A stop the recorder already made keeps its reason; dropping it below changes nothing.
            Ended::Stopped => {}
            Ended::Inactive | Ended::HungUp => {
                session.recorder.hangup();
            }
            // Dropping a recording recorder stops it with `other` (DESIGN §2).
            Ended::Shutdown => {}
        }
        session
            .shared
            .phase
            .store(Phase::Stopped as u8, Ordering::Relaxed);
        for socket in [&session.socket, &session.rtcp] {
            if let Err(e) = self.poller.delete(socket) {
                tracing::error!(record_id = %session.record_id, error = %e, "cannot stop polling the RTP socket");
            }
        }
        tracing::info!(record_id = %session.record_id, port = session.port, reason = ?why, "RTP session ended");
        let freed = Freed {
            port: session.port,
            at: Instant::now(),
            source: session.stream.source(),
        };
        drop(live);
        let _ = self.freed.send(freed);
    }
}
