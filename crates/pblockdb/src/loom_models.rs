//! Loom model of pblockdb's slot seqlock, run by `cargo xtask loom` (a `--cfg loom` build): a
//! writer rewriting a slot twice and a reader copying it, both through the crate's own kernel
//! (`seqlock.rs`) with loom's atomics, in the order `commit.rs` (`write_slot`) and
//! `snapshot.rs` (`version_at`, `lookup`) call it. pmap's byte copies (relaxed atomic loads and
//! stores) are modelled as relaxed loads and stores of the slot's words. The history entries'
//! seqlock (`history.rs`) is the same kernel.

use std::sync::atomic::Ordering;

use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;
use pmap::word::Load64;

use crate::seqlock::Seqlock;

/// A slot: its meta word (the version, odd while a writer is inside) and two words of bytes.
struct Slot {
    meta: AtomicU64,
    bytes: [AtomicU64; 2],
}

/// The bytes of the slot's image at an even `version`: distinct for every version.
fn bytes_of(version: u64) -> [u64; 2] {
    [10 * version + 1, 10 * version + 2]
}

impl Slot {
    /// A slot holding the image of version 0, no writer inside.
    fn at_version_zero() -> Slot {
        Slot {
            meta: AtomicU64::new(0),
            bytes: [
                AtomicU64::new(bytes_of(0)[0]),
                AtomicU64::new(bytes_of(0)[1]),
            ],
        }
    }

    /// `commit::write_slot` of the image of `version` (even): the odd version before it first.
    fn write(&self, version: u64) {
        Seqlock::begin_write(&self.meta, version - 1);
        for (word, value) in self.bytes.iter().zip(bytes_of(version)) {
            word.store(value, Ordering::Relaxed);
        }
        Seqlock::end_write(&self.meta, version);
    }

    /// `snapshot::version_at`'s seqlock read: the version and the copy, when the copy is whole
    /// (`None` for a slot a writer is inside, which the crate reads past through the history,
    /// or a copy a writer entered during).
    fn read(&self) -> Option<(u64, [u64; 2])> {
        let meta = Seqlock::begin_read(&self.meta);
        if meta % 2 == 1 {
            return None;
        }
        let copy = [
            Load64::load(&self.bytes[0], Ordering::Relaxed),
            Load64::load(&self.bytes[1], Ordering::Relaxed),
        ];
        Seqlock::unchanged(&self.meta, meta).then_some((meta, copy))
    }
}

/// A writer rewriting a slot twice (versions 2 and 4) and a reader copying it twice: every copy
/// the reader accepts is exactly the image of the version it read, never a mix of two, and
/// versions never go back (docs/pblockdb-format.md, "Slots").
#[test]
fn slot_seqlock_never_returns_a_torn_image() {
    loom::model(|| {
        let slot = Arc::new(Slot::at_version_zero());
        let writer = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                slot.write(2);
                slot.write(4);
            })
        };
        let reader = thread::spawn(move || {
            let mut last = 0;
            for _ in 0..2 {
                if let Some((version, copy)) = slot.read() {
                    assert_eq!(copy, bytes_of(version), "a torn image of version {version}");
                    assert!(version >= last, "version {version} after {last}");
                    last = version;
                }
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
}

/// `snapshot::scan_unchanged` against a commit: the writer moves the history head past the
/// snapshot (release) and then rewrites the slot through the seqlock; the reader, having seen
/// the head at the snapshot, copies the slot's words with no seqlock round, fences (acquire)
/// and loads the head again. Whenever the head still holds the snapshot, the copy is the
/// snapshot's image (docs/pblockdb-format.md, "Snapshots": iteration's shortcut).
#[test]
fn chunk_copied_while_the_head_stays_is_the_snapshots_image() {
    loom::model(|| {
        let slot = Arc::new(Slot::at_version_zero());
        let head = Arc::new(AtomicU64::new(0));
        let writer = {
            let (slot, head) = (Arc::clone(&slot), Arc::clone(&head));
            thread::spawn(move || {
                head.store(1, Ordering::Release);
                slot.write(2);
            })
        };
        let reader = thread::spawn(move || {
            if Load64::load(&*head, Ordering::Acquire) != 0 {
                return;
            }
            let copy = [
                Load64::load(&slot.bytes[0], Ordering::Relaxed),
                Load64::load(&slot.bytes[1], Ordering::Relaxed),
            ];
            loom::sync::atomic::fence(Ordering::Acquire);
            if Load64::load(&*head, Ordering::Relaxed) == 0 {
                assert_eq!(
                    copy,
                    bytes_of(0),
                    "a copy taken while the head stayed is torn"
                );
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
}
