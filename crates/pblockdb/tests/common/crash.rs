//! The power-loss simulator of the pblockdb tests (as redb's `CrashBackend`): from a file image
//! known to be on the disk and the in-order record of a handle's writes and syncs
//! (`pblockdb::testing::Recorder`), the file a power loss after any of them could leave. Every
//! byte a sync made durable is there; of the 4 KiB pages written since their last sync, any
//! subset reached the disk, each as it was after any one of its writes since (the kernel may
//! write a dirty page back at any moment, and again later). It knows no pblockdb format.

use std::collections::BTreeMap;

use pblockdb::testing::Op;
use pounds_testkit::Rng;

/// The unit the kernel writes back.
pub(crate) const PAGE: u64 = 4096;

/// Which pages written since their last sync reached the disk before the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// None: the disk holds exactly what the syncs made durable.
    None,
    /// All of them, each with every write made before the cut: the file a process death at
    /// the cut leaves (the page cache survives it).
    All,
    /// Each with probability one half, as it was after a random one of its writes since its
    /// last sync.
    Random,
}

/// The file after a power loss once the first `cut` operations of `ops` were made on a file
/// that held `base` on the disk, with the unsynced pages `kept`.
///
/// # Panics
/// If a write lies past the end of `base`: growth of the file is not simulated.
pub(crate) fn image(base: &[u8], ops: &[Op], cut: usize, kept: Kept, rng: &mut Rng) -> Vec<u8> {
    let mut disk = base.to_vec();
    // Page -> the writes (indices into `ops`) made to it since it was last made durable.
    let mut dirty: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops[..cut].iter().enumerate() {
        match op {
            Op::Write { at, bytes } => {
                let end = at + bytes.len() as u64;
                assert!(
                    end <= disk.len() as u64,
                    "a write at {at}..{end} past the file's {} bytes: growth is not simulated",
                    disk.len()
                );
                for page in at / PAGE..end.div_ceil(PAGE) {
                    dirty.entry(page).or_default().push(i);
                }
            }
            Op::Sync { start, end } => {
                let synced: Vec<u64> = dirty
                    .range(start / PAGE..end.div_ceil(PAGE))
                    .map(|(page, _)| *page)
                    .collect();
                for page in synced {
                    let writes = dirty.remove(&page).unwrap_or_default();
                    apply(&mut disk, ops, page, &writes);
                }
            }
        }
    }
    for (page, writes) in &dirty {
        let reached = match kept {
            Kept::None => 0,
            Kept::All => writes.len(),
            Kept::Random if rng.below(2) == 0 => 0,
            Kept::Random => 1 + rng.below(writes.len() as u64) as usize,
        };
        apply(&mut disk, ops, *page, &writes[..reached]);
    }
    disk
}

/// Applies, in order, the part inside `page` of each of the writes `writes` (indices into
/// `ops`).
fn apply(disk: &mut [u8], ops: &[Op], page: u64, writes: &[usize]) {
    let (lo, hi) = (page * PAGE, (page + 1) * PAGE);
    for &i in writes {
        if let Op::Write { at, bytes } = &ops[i] {
            let start = lo.max(*at);
            let end = hi.min(at + bytes.len() as u64);
            disk[start as usize..end as usize]
                .copy_from_slice(&bytes[(start - at) as usize..(end - at) as usize]);
        }
    }
}

#[test]
fn a_page_is_durable_after_its_sync_and_any_of_its_states_after_it() {
    let base = vec![0u8; 2 * PAGE as usize];
    let write = |at: u64, byte: u8| Op::Write {
        at,
        bytes: vec![byte; 2],
    };
    let ops = vec![
        write(10, 1),
        Op::Sync {
            start: 0,
            end: u64::MAX,
        },
        write(10, 2),
        write(PAGE - 1, 3),
    ];
    let mut rng = Rng::new(7);
    let none = image(&base, &ops, ops.len(), Kept::None, &mut rng);
    assert_eq!(
        (none[10], none[PAGE as usize - 1], none[PAGE as usize]),
        (1, 0, 0)
    );
    let all = image(&base, &ops, ops.len(), Kept::All, &mut rng);
    assert_eq!(
        (all[10], all[PAGE as usize - 1], all[PAGE as usize]),
        (2, 3, 3)
    );
    let before_sync = image(&base, &ops, 1, Kept::None, &mut rng);
    assert_eq!(before_sync, base);
    // Page 0 has two writes since the sync: it is seen in each of its three states, never
    // with the second write and not the first.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let random = image(&base, &ops, ops.len(), Kept::Random, &mut rng);
        seen.insert((random[10], random[PAGE as usize - 1], random[PAGE as usize]));
    }
    assert!(seen.contains(&(1, 0, 0)) && seen.contains(&(2, 0, 0)) && seen.contains(&(2, 3, 0)));
    assert!(seen.contains(&(1, 0, 3)) && seen.contains(&(2, 3, 3)));
    assert!(!seen.contains(&(1, 3, 0)), "{seen:?}");
}
