//! Loom models of plog's protocols, run by `cargo xtask loom` (a `--cfg loom` build): the write
//! path (reserve, claim, copy, publish) against a reader's lap check, and the sleeper-bit wake
//! handshake. Each model calls the crate's own kernels (`claim.rs`, `protocol.rs`) with loom's
//! atomics, in the order `write.rs`, `reader.rs` and `follow.rs` call them; loom then runs every
//! interleaving (up to `LOOM_MAX_PREEMPTIONS`) and every value a relaxed or acquire load may
//! return under the memory model. pmap's byte copies (relaxed atomic loads and stores) are
//! modelled as relaxed loads and stores of the block's words.

use std::sync::atomic::Ordering;

use loom::sync::atomic::{AtomicU32, AtomicU64};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use pmap::word::{Load32, Load64, SeqCstFenced, Word32, Word64};

use crate::claim::{self, Claim, Taken};
use crate::protocol::{LapCheck, Reservation, Sleeper};

/// The ring of the models: one block, so that the second writer laps the first.
const RING_BLOCKS: u64 = 1;

/// A model word, zero at first.
trait Zero {
    fn zero() -> Self;
}

impl Zero for AtomicU64 {
    fn zero() -> Self {
        AtomicU64::new(0)
    }
}

impl Zero for AtomicU32 {
    fn zero() -> Self {
        AtomicU32::new(0)
    }
}

impl<A: Zero> Zero for SeqCstFenced<A> {
    fn zero() -> Self {
        SeqCstFenced(A::zero())
    }
}

/// One block: its claim word (zero: [`Claim::Empty`]) and two words of record bytes.
struct Block<W> {
    claim: W,
    bytes: [W; 2],
}

/// The log's words the models share: the reservation counter, the wake word and the ring.
/// `W`, `K`: plain loom words, or [`SeqCstFenced`] ones where the promise rests on SeqCst.
struct Ring<W, K> {
    counter: W,
    wake: K,
    block: Block<W>,
}

impl<W: Word64 + Zero, K: Word32 + Zero> Ring<W, K> {
    fn new() -> Self {
        Ring {
            counter: W::zero(),
            wake: K::zero(),
            block: Block {
                claim: W::zero(),
                bytes: [W::zero(), W::zero()],
            },
        }
    }

    /// `LogState::write` for a one-block record, one attempt (a refused writer would reserve
    /// again; one attempt each is what the lap needs). Returns the reservation.
    fn write(&self) -> Reservation {
        let pid = std::process::id();
        let reservation = Reservation::reserve(&self.counter, &self.wake, 1);
        let pos = reservation.pos;
        let word = &self.block.claim;
        let seen = claim::seen(word);
        if claim::take_seen(word, seen, pos, pid, &self.counter, RING_BLOCKS) != Taken::Mine {
            return reservation;
        }

        for (word, value) in self.block.bytes.iter().zip(bytes_of(pos)) {
            word.store(value, Ordering::Relaxed);
        }
        claim::publish(word, Claim::Start(pos));
        reservation
    }

    /// `LogState::read_slot` of position `pos`: the copy if the reader accepts it.
    fn read(&self, pos: u64) -> Option<[u64; 2]> {
        let commit = LapCheck::open(&self.block.claim);
        if Claim::decode(commit) != Claim::Start(pos) {
            return None;
        }
        let copy = [
            self.block.bytes[0].load(Ordering::Relaxed),
            self.block.bytes[1].load(Ordering::Relaxed),
        ];
        let counter = LapCheck::counter_after_copy(&self.counter);
        if LapCheck::lapped(counter, pos, RING_BLOCKS) {
            return None; // Torn.
        }
        if !LapCheck::unchanged(&self.block.claim, commit) {
            return None; // Torn.
        }
        Some(copy)
    }
}

/// The record bytes a writer at `pos` stores: distinct for every position, never zero.
fn bytes_of(pos: u64) -> [u64; 2] {
    [2 * pos + 1, 2 * pos + 2]
}

/// Two writers on a one-block ring (the second laps the first) and a reader of position 0:
/// whatever the interleaving, a copy the reader accepts is exactly the record of position 0,
/// never bytes of the next lap or of no record (docs/plog-format.md, "Reading").
#[test]
fn lapped_copy_is_never_accepted() {
    loom::model(|| {
        // Plain loom words: nothing here rests on SeqCst.
        let ring = Arc::new(Ring::<AtomicU64, AtomicU32>::new());
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    ring.write();
                })
            })
            .collect();
        let reader = thread::spawn(move || {
            if let Some(copy) = ring.read(0) {
                assert_eq!(copy, bytes_of(0), "the reader accepted a torn copy");
            }
        });
        reader.join().unwrap();
        for writer in writers {
            writer.join().unwrap();
        }
    });
}

/// pmap's `wait_u32`/`wake_u32` in the model: a futex, whose wait sleeps only while the word
/// holds the expected value, checked under the same lock the waker takes.
struct Futex {
    lock: Mutex<()>,
    woken: Condvar,
}

impl Futex {
    fn wait(&self, word: &impl Load32, expected: u32) {
        let mut guard = self.lock.lock().unwrap();
        while word.load(Ordering::SeqCst) == expected {
            guard = self.woken.wait(guard).unwrap();
        }
    }

    fn wake(&self) {
        let _guard = self.lock.lock().unwrap();
        self.woken.notify_all();
    }
}

/// A writer publishing one record and a follower at position 0 going to sleep: the follower
/// never sleeps through the record (no lost wake-up). Either it sees the reservation in its
/// recheck, or the writer sees the sleeper bit and wakes it; a lost wake-up is a follower
/// asleep forever, which loom reports as a deadlock (docs/plog-format.md, "Follow").
#[test]
fn sleeper_no_lost_wakeup() {
    loom::model(|| {
        // The handshake rests on SeqCst: words whose SeqCst accesses loom models as such.
        let ring = Arc::new(Ring::<SeqCstFenced<AtomicU64>, SeqCstFenced<AtomicU32>>::new());
        let futex = Arc::new(Futex {
            lock: Mutex::new(()),
            woken: Condvar::new(),
        });
        let writer = {
            let (ring, futex) = (Arc::clone(&ring), Arc::clone(&futex));
            thread::spawn(move || {
                // `LogState::write`: reserve, place, then wake if a sleeper was announced.
                let reservation = ring.write();
                if reservation.sleeper_seen() {
                    Sleeper::wake(&ring.wake);
                    futex.wake();
                }
            })
        };
        // `Follower::wait_for_next` and `Follower::sleep` at position 0.
        loop {
            if Load64::load(&ring.counter, Ordering::Acquire) > 0 {
                break; // `Reader::step` sees the reservation.
            }
            let expected = Sleeper::announce(&ring.wake);
            if Sleeper::recheck(&ring.counter) > 0 {
                continue;
            }
            futex.wait(&ring.wake, expected);
        }
        writer.join().unwrap();
    });
}
