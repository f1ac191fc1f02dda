//! An asymmetric pair of memory barriers: a [`light`] one that costs the real-time side nothing
//! but a compiler fence, and a [`heavy`] one the writer pays for instead (Linux's
//! `membarrier(2)`, which makes every running thread of the process execute a full barrier).
//! Together they order like two `SeqCst` fences, which is what the session's stop handshake
//! needs (see [`crate::session`]).
//!
//! Why: a push's first store must be ordered before its next load (a Dekker pair with the
//! writer). A `SeqCst` store on x86 is a locked instruction that waits for the store buffer
//! to drain, and it holds the previous push's ring writes, each waiting for its cache line to
//! come back from the writer's core: ~50 ns of every recording push went there.
//!
//! Written by hand (a syscall through `libc`, already a dependency): std has no asymmetric
//! fence, and the `membarrier` crate is unmaintained since 2023 and brings `lazy_static` and
//! `windows-sys` for three lines of this. Where `membarrier(2)` is missing (not Linux, an old
//! kernel, a seccomp profile that refuses it) both sides use `SeqCst` fences: correct, slower.

use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};
use std::sync::Once;

/// True once the process is registered for private expedited `membarrier(2)`; never goes
/// back (a registration lasts for the life of the address space).
static EXPEDITED: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

/// Chooses the barriers, once per process. Must run before any thread uses [`light`] for the
/// first time (a session calls it when it is made, before its recorder exists), so every
/// light barrier sees the final choice.
pub(crate) fn init() {
    INIT.call_once(|| EXPEDITED.store(register(), Ordering::Relaxed));
}

/// The real-time side's barrier: a compiler fence (no instruction) when [`heavy`] is the
/// system call, else a full fence.
#[inline(always)]
pub(crate) fn light() {
    if EXPEDITED.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The slow side's barrier: when it returns, every other thread of the process has executed
/// a full barrier since it began (or a [`light`] barrier of theirs is ordered after it). False
/// if the system call failed, which its documentation rules out once registered: the caller
/// must then assume nothing about the other side.
pub(crate) fn heavy() -> bool {
    if !EXPEDITED.load(Ordering::Relaxed) {
        fence(Ordering::SeqCst);
        return true;
    }
    imp::private_expedited()
}

#[cfg(target_os = "linux")]
fn register() -> bool {
    let supported = imp::query();
    supported & imp::PRIVATE_EXPEDITED != 0
        && supported & imp::REGISTER_PRIVATE_EXPEDITED != 0
        && imp::register_private_expedited()
}

#[cfg(not(target_os = "linux"))]
fn register() -> bool {
    false
}

#[cfg(target_os = "linux")]
mod imp {
    // The commands of `linux/membarrier.h` (the `libc` crate does not define them).
    const QUERY: libc::c_int = 0;
    pub(super) const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    pub(super) const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        let flags: libc::c_int = 0;
        let cpu: libc::c_int = 0;
        // SAFETY: membarrier(2) takes three integers and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd as libc::c_int, flags, cpu) }
    }

    /// The commands this kernel supports, as a bit set (0 when it has no membarrier(2)).
    pub(super) fn query() -> libc::c_long {
        membarrier(QUERY as libc::c_long).max(0)
    }

    pub(super) fn register_private_expedited() -> bool {
        membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// The barrier. A process forked after registering may have to register again (the
    /// registration belongs to the address space), so a refusal registers and tries once more.
    pub(super) fn private_expedited() -> bool {
        membarrier(PRIVATE_EXPEDITED) == 0
            || (register_private_expedited() && membarrier(PRIVATE_EXPEDITED) == 0)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn private_expedited() -> bool {
        unreachable!("EXPEDITED is only set on Linux")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    #[test]
    fn the_heavy_barrier_works_once_chosen() {
        init();
        assert!(heavy());
        #[cfg(target_os = "linux")]
        eprintln!(
            "expedited membarrier: {}",
            EXPEDITED.load(Ordering::Relaxed)
        );
    }

    /// The store-buffering litmus test the session's handshake is: a light-side thread stores
    /// `a` then loads `b`, a heavy-side thread stores `b` then loads `a`; both loading the old
    /// value would mean the pair does not order like two SeqCst fences. The two threads meet
    /// before every round so their stores race. With compiler fences on both sides instead,
    /// x86 shows the reordering in some hundreds of the rounds.
    #[test]
    fn light_and_heavy_forbid_store_buffering() {
        init();
        let (light_side, heavy_side) = store_buffering(light, || assert!(heavy()));
        let both_missed = (0..ROUNDS as usize)
            .filter(|&r| !light_side[r] && !heavy_side[r])
            .count();
        assert_eq!(
            both_missed, 0,
            "rounds where neither side saw the other's store"
        );
    }

    const ROUNDS: u32 = 20_000;

    /// Runs the litmus test with the given barriers; per round, whether each side saw the
    /// other's store.
    fn store_buffering(light_barrier: fn(), heavy_barrier: fn()) -> (Vec<bool>, Vec<bool>) {
        let a = Arc::new(AtomicU32::new(0));
        let b = Arc::new(AtomicU32::new(0));
        let arrived = Arc::new(AtomicU32::new(0));
        let side = |mine: Arc<AtomicU32>, theirs: Arc<AtomicU32>, barrier: fn()| {
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut saw = Vec::with_capacity(ROUNDS as usize);
                for r in 1..=ROUNDS {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    let mut spins = 0u32;
                    while arrived.load(Ordering::Acquire) < 2 * r {
                        // On a busy machine the other side may not be running: let it.
                        spins += 1;
                        if spins.is_multiple_of(1024) {
                            std::thread::yield_now();
                        }
                        std::hint::spin_loop();
                    }
                    mine.store(r, Ordering::Relaxed);
                    barrier();
                    saw.push(theirs.load(Ordering::Relaxed) >= r);
                }
                saw
            })
        };
        let light_side = side(a.clone(), b.clone(), light_barrier);
        let heavy_side = side(b, a, heavy_barrier);
        (
            light_side.join().expect("light side"),
            heavy_side.join().expect("heavy side"),
        )
    }

    /// The litmus test can fail: without the barriers it sees the reordering (x86 allows it).
    /// On a busy machine the two sides may seldom run at once, so it gets a few tries.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn without_barriers_store_buffering_shows() {
        let no_barrier: fn() = || compiler_fence(Ordering::SeqCst);
        let raced = (0..10).any(|_| {
            let (light_side, heavy_side) = store_buffering(no_barrier, no_barrier);
            (0..ROUNDS as usize).any(|r| !light_side[r] && !heavy_side[r])
        });
        assert!(raced, "the litmus test never raced");
    }
}
