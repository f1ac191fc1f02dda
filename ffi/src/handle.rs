//! Handles that are checked without reading freed memory (DESIGN §8).
//!
//! A C handle is not a pointer to the object: it is a slot index plus the slot's generation,
//! packed into a pointer-sized value that is never dereferenced. Every object lives in a slot
//! of a per-type [`Table`]; the slots themselves are never freed (a table only grows, in
//! chunks), so looking a handle up always reads live memory. Freeing an object bumps its slot's
//! generation, so its old handle, and every copy of it, stops matching — even after the slot is
//! reused by a new object. A double free, a use after free, or a handle from another type
//! becomes `CALLREC_RESULT_INVALID_HANDLE` instead of undefined behaviour.
//!
//! Why this rather than rustls-ffi's "misuse is undefined behaviour": a telephony host frees a
//! recorder on its control thread while a stale copy of the handle may sit in a media thread's
//! call table; with plain pointers a reused address would push caller A's audio into caller B's
//! file. The cost is one atomic compare-and-swap per call, which is lock-free and real-time safe.
//!
//! Each slot has one atomic state word: the generation (high 32 bits), a live bit, and a count
//! of current borrowers. A shared borrow (engine, abort handle, event) adds one; an exclusive
//! borrow (recorder: one thread at a time) takes the whole count, so two threads using one
//! recorder at once get `CALLREC_RESULT_BUSY` rather than a data race. Freeing clears the live
//! bit; the object is dropped by whoever leaves the slot last (the freeing call, or the borrower
//! still inside a call), and only then is the slot's generation bumped and the slot reused.
//!
//! Written here because no crate provides generation-checked handles whose lookup is lock-free
//! and whose storage is never released (slotmap and friends need `&mut` to remove).

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

/// Slots per chunk.
const CHUNK: usize = 1024;
/// Chunks per table: at most `CHUNK * CHUNKS` (1,048,576) live objects of one type.
const CHUNKS: usize = 1024;

const LIVE: u64 = 1 << 31;
const EXCLUSIVE: u64 = 1 << 30;
const COUNT: u64 = (1 << 31) - 1;

// A handle is `generation << 32 | (index + 1)`: it needs 64-bit pointers.
const _: () = assert!(
    usize::BITS == 64,
    "callrec's C handles need 64-bit pointers"
);

/// Why a handle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandleError {
    /// Not a handle of this type, or its object was freed.
    Invalid,
    /// The object is in use by another thread (exclusive handles only).
    Busy,
    /// The table is full.
    Full,
}

struct Slot<T> {
    state: AtomicU64,
    value: UnsafeCell<Option<Box<T>>>,
}

struct FreeList {
    free: Vec<u32>,
    next: u32,
}

/// A table of objects of one type, addressed by generation-checked handles.
pub(crate) struct Table<T> {
    chunks: [AtomicPtr<Slot<T>>; CHUNKS],
    free: Mutex<FreeList>,
    // Sync and Send bounds are on the methods that need them.
    _type: PhantomData<fn() -> T>,
}

fn unpack(handle: usize) -> Option<(usize, u32)> {
    let index = (handle & 0xffff_ffff).checked_sub(1)?;
    Some((index, (handle >> 32) as u32))
}

fn generation(state: u64) -> u32 {
    (state >> 32) as u32
}

impl<T> Table<T> {
    /// An empty table (no memory until the first insert).
    pub(crate) const fn new() -> Self {
        Table {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            free: Mutex::new(FreeList {
                free: Vec::new(),
                next: 0,
            }),
            _type: PhantomData,
        }
    }

    fn slot(&self, index: usize) -> Option<&Slot<T>> {
        let chunk = self.chunks.get(index / CHUNK)?.load(Ordering::Acquire);
        if chunk.is_null() {
            return None;
        }
        // SAFETY: a non-NULL chunk pointer came from a leaked `Box<[Slot<T>]>` of CHUNK slots
        // (see `insert`) that is never freed, and `index % CHUNK` is in bounds.
        Some(unsafe { &*chunk.add(index % CHUNK) })
    }

    /// Stores `value` and returns its handle. Control thread: locks and may allocate.
    pub(crate) fn insert(&self, value: T) -> Result<usize, HandleError>
    where
        T: Send,
    {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let index = match free.free.pop() {
            Some(i) => i as usize,
            None => {
                let i = free.next as usize;
                if i >= CHUNK * CHUNKS {
                    return Err(HandleError::Full);
                }
                if i.is_multiple_of(CHUNK) {
                    let chunk: Box<[Slot<T>]> = (0..CHUNK)
                        .map(|_| Slot {
                            state: AtomicU64::new(0),
                            value: UnsafeCell::new(None),
                        })
                        .collect();
                    // Leaked on purpose: slots are never freed, so a stale handle never reads
                    // freed memory.
                    let ptr = Box::leak(chunk).as_mut_ptr();
                    self.chunks[i / CHUNK].store(ptr, Ordering::Release);
                }
                free.next += 1;
                i
            }
        };
        let slot = self.slot(index).ok_or(HandleError::Invalid)?;
        let state = slot.state.load(Ordering::Acquire);
        // SAFETY: the slot is on no one's hands: it is not live and has no borrowers (it was
        // free), and we hold the free-list lock, so no other insert can pick it.
        unsafe { *slot.value.get() = Some(Box::new(value)) };
        slot.state
            .store(u64::from(generation(state)) << 32 | LIVE, Ordering::Release);
        Ok((generation(state) as usize) << 32 | (index + 1))
    }

    fn acquire(&self, handle: usize, amount: u64) -> Result<&Slot<T>, HandleError> {
        let (index, gen) = unpack(handle).ok_or(HandleError::Invalid)?;
        let slot = self.slot(index).ok_or(HandleError::Invalid)?;
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if generation(state) != gen || state & LIVE == 0 {
                return Err(HandleError::Invalid);
            }
            let count = state & COUNT;
            let free_for_it = if amount == EXCLUSIVE {
                count == 0
            } else {
                count & EXCLUSIVE == 0 && count < EXCLUSIVE - 1
            };
            if !free_for_it {
                return Err(HandleError::Busy);
            }
            match slot.state.compare_exchange_weak(
                state,
                state + amount,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(slot),
                Err(now) => state = now,
            }
        }
    }

    /// Ends a borrow of `amount`; the last one out of a freed slot drops the object.
    fn release(&self, slot: &Slot<T>, index: usize, amount: u64) {
        let before = slot.state.fetch_sub(amount, Ordering::AcqRel);
        if before & LIVE == 0 && before & COUNT == amount {
            self.reclaim(slot, index, before - amount);
        }
    }

    /// Drops the object of a freed slot nobody borrows, and makes the slot reusable.
    fn reclaim(&self, slot: &Slot<T>, index: usize, state: u64) {
        // SAFETY: the slot is not live and has no borrowers, and only this call (the last one
        // out) reaches here for it, so nothing else touches the value.
        let value = unsafe { (*slot.value.get()).take() };
        drop(value);
        let next = u64::from(generation(state).wrapping_add(1)) << 32;
        slot.state.store(next, Ordering::Release);
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.free.push(index as u32);
    }

    /// Borrows the object shared (any number of threads at once).
    pub(crate) fn shared(&self, handle: usize) -> Result<Shared<'_, T>, HandleError>
    where
        T: Sync,
    {
        let slot = self.acquire(handle, 1)?;
        Ok(Shared {
            table: self,
            slot,
            index: unpack(handle).map_or(0, |(i, _)| i),
        })
    }

    /// Borrows the object exclusively (one thread at a time). Lock-free: real-time safe.
    pub(crate) fn exclusive(&self, handle: usize) -> Result<Exclusive<'_, T>, HandleError>
    where
        T: Send,
    {
        let slot = self.acquire(handle, EXCLUSIVE)?;
        Ok(Exclusive {
            table: self,
            slot,
            index: unpack(handle).map_or(0, |(i, _)| i),
        })
    }

    /// Frees the object behind `handle`: at once, or when the last call still using it returns.
    /// A second free (or a stale handle) is `Invalid` and has no effect.
    pub(crate) fn remove(&self, handle: usize) -> Result<(), HandleError> {
        let (index, gen) = unpack(handle).ok_or(HandleError::Invalid)?;
        let slot = self.slot(index).ok_or(HandleError::Invalid)?;
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if generation(state) != gen || state & LIVE == 0 {
                return Err(HandleError::Invalid);
            }
            match slot.state.compare_exchange_weak(
                state,
                state & !LIVE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state & COUNT == 0 {
            self.reclaim(slot, index, state & !LIVE);
        }
        Ok(())
    }
}

/// A shared borrow of a table's object; released when dropped.
pub(crate) struct Shared<'a, T> {
    table: &'a Table<T>,
    slot: &'a Slot<T>,
    index: usize,
}

impl<T> Deref for Shared<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a shared borrow keeps the slot's value in place (no reclaim while the count
        // is non-zero) and only shared references are handed out meanwhile.
        let value = unsafe { &*self.slot.value.get() };
        value.as_deref().expect("a live slot holds a value")
    }
}

impl<T> Drop for Shared<'_, T> {
    fn drop(&mut self) {
        self.table.release(self.slot, self.index, 1);
    }
}

/// An exclusive borrow of a table's object; released when dropped.
pub(crate) struct Exclusive<'a, T> {
    table: &'a Table<T>,
    slot: &'a Slot<T>,
    index: usize,
}

impl<T> Deref for Exclusive<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the exclusive borrow is the slot's only borrower (see `acquire`).
        let value = unsafe { &*self.slot.value.get() };
        value.as_deref().expect("a live slot holds a value")
    }
}

impl<T> DerefMut for Exclusive<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the exclusive borrow is the slot's only borrower (see `acquire`), and `&mut
        // self` makes this the only reference made through it.
        let value = unsafe { &mut *self.slot.value.get() };
        value.as_deref_mut().expect("a live slot holds a value")
    }
}

impl<T> Drop for Exclusive<'_, T> {
    fn drop(&mut self) {
        self.table.release(self.slot, self.index, EXCLUSIVE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_handle_never_matches_a_reused_slot() {
        let table: Table<u32> = Table::new();
        let a = table.insert(1).unwrap();
        assert_eq!(*table.shared(a).unwrap(), 1);
        table.remove(a).unwrap();
        let b = table.insert(2).unwrap();
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "the slot is reused");
        assert_ne!(a, b);
        assert_eq!(table.shared(a).err(), Some(HandleError::Invalid));
        assert_eq!(table.remove(a), Err(HandleError::Invalid));
        assert_eq!(*table.exclusive(b).unwrap(), 2);
        assert_eq!(table.exclusive(0).err(), Some(HandleError::Invalid));
        assert_eq!(
            table.exclusive(usize::MAX).err(),
            Some(HandleError::Invalid)
        );
    }

    #[test]
    fn exclusive_borrows_exclude_and_free_waits_for_the_last_borrower() {
        let table: Table<String> = Table::new();
        let h = table.insert("x".into()).unwrap();
        let held = table.exclusive(h).unwrap();
        assert_eq!(table.exclusive(h).err(), Some(HandleError::Busy));
        assert_eq!(table.shared(h).err(), Some(HandleError::Busy));
        table.remove(h).unwrap();
        assert_eq!(held.as_str(), "x", "the borrower still sees its object");
        assert_eq!(table.exclusive(h).err(), Some(HandleError::Invalid));
        drop(held);
        let again = table.insert("y".into()).unwrap();
        assert_eq!(again & 0xffff_ffff, h & 0xffff_ffff);
        let s1 = table.shared(again).unwrap();
        let s2 = table.shared(again).unwrap();
        assert_eq!((s1.as_str(), s2.as_str()), ("y", "y"));
    }
}
