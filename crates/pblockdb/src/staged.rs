//! A write transaction's staged changes: each key's new value (or its deletion) and where the
//! writer's probe found the key, in flat buffers under an open-addressed index, so staging a
//! change allocates nothing once the buffers are warm.
//!
//! The probe is what makes a commit cheap: a put already has to probe the table to answer
//! "did it replace a value?", and under the writer lock nothing but this transaction's own
//! commit moves a slot, so the commit can start from where that probe ended instead of probing
//! again. It checks each such slot before it relies on it (see `commit::plan`).

use crate::commit::Found;

/// `value_len` of a staged deletion.
const DELETED: u32 = u32::MAX;

/// One staged change; its key and value bytes are at its index in [`Staged::data`].
#[derive(Clone, Copy, Debug)]
struct Head {
    hash: u64,
    key_len: u32,
    value_len: u32,
    probe: Found,
}

/// One change as the commit sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Change<'a> {
    pub key: &'a [u8],
    pub hash: u64,
    /// The new value, or `None` for a deletion.
    pub value: Option<&'a [u8]>,
    /// Where the probe at staging ended, in the table of [`Staged::generation`].
    pub probe: Found,
}

/// The changes of one level of a write transaction.
#[derive(Clone, Debug)]
pub(crate) struct Staged {
    key_size: usize,
    value_size: usize,
    /// The generation of the table the staged probes looked at.
    generation: u64,
    heads: Vec<Head>,
    /// `heads.len()` runs of `key_size + value_size` bytes.
    data: Vec<u8>,
    /// Open addressing over `heads`: 0 is empty, `i + 1` names `heads[i]`. Its length is a power
    /// of two at least twice `heads.len()` (or zero while nothing is staged).
    index: Vec<u32>,
}

impl Staged {
    /// No changes, for keys and values up to the given sizes, probed in table `generation`.
    pub(crate) fn new(key_size: usize, value_size: usize, generation: u64) -> Self {
        Staged {
            key_size,
            value_size,
            generation,
            heads: Vec::new(),
            data: Vec::new(),
            index: Vec::new(),
        }
    }

    /// Forgets every change, keeping the buffers (a writer's next transaction stages into them
    /// without allocating), for probes in table `generation`. Buffers a large transaction grew
    /// are let go instead, so a handle does not keep a peak's memory.
    pub(crate) fn reset(&mut self, generation: u64) {
        /// Changes whose buffers a reset keeps.
        const KEPT_CHANGES: usize = 256;
        self.generation = generation;
        if self.heads.capacity() > KEPT_CHANGES {
            *self = Staged::new(self.key_size, self.value_size, generation);
            return;
        }
        self.heads.clear();
        self.data.clear();
        self.index.fill(0);
    }

    /// The generation of the table the staged probes refer to.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn len(&self) -> usize {
        self.heads.len()
    }

    fn stride(&self) -> usize {
        self.key_size + self.value_size
    }

    fn change(&self, i: usize) -> Change<'_> {
        let head = self.heads[i];
        let run = &self.data[i * self.stride()..(i + 1) * self.stride()];
        let (key, value) = run.split_at(self.key_size);
        Change {
            key: &key[..head.key_len as usize],
            hash: head.hash,
            value: (head.value_len != DELETED).then(|| &value[..head.value_len as usize]),
            probe: head.probe,
        }
    }

    /// Where `key` (hashed to `hash`) is in `heads`, or the empty index position it would take.
    fn position(&self, key: &[u8], hash: u64) -> Result<usize, usize> {
        let mask = self.index.len() - 1;
        // The low bits choose the table slot; use the high ones here so the two probes differ.
        let mut at = (hash >> 32) as usize & mask;
        loop {
            match self.index[at] {
                0 => return Err(at),
                named => {
                    let i = named as usize - 1;
                    if self.heads[i].hash == hash && self.change(i).key == key {
                        return Ok(i);
                    }
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// The staged change of `key`, if any.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> Option<Change<'_>> {
        if self.heads.is_empty() {
            return None;
        }
        self.position(key, hash).ok().map(|i| self.change(i))
    }

    /// Stages `value` (`None`: a deletion) for `key`, replacing what was staged for it. The
    /// caller has checked both sizes.
    pub(crate) fn set(&mut self, key: &[u8], hash: u64, value: Option<&[u8]>, probe: Found) {
        if self.index.len() < (self.heads.len() + 1) * 2 {
            self.grow_index();
        }
        let i = match self.position(key, hash) {
            Ok(i) => i,
            Err(at) => {
                let i = self.heads.len();
                // At most `u32::MAX - 1` changes: a transaction that large would not fit the
                // history ring (`format::MAX_HISTORY`) anyway, and its commit says so.
                self.index[at] = u32::try_from(i + 1).unwrap_or(u32::MAX);
                self.heads.push(Head {
                    hash,
                    key_len: key.len() as u32,
                    value_len: DELETED,
                    probe,
                });
                let stride = self.stride();
                self.data.resize(self.data.len() + stride, 0);
                self.data[i * stride..i * stride + key.len()].copy_from_slice(key);
                i
            }
        };
        let stride = self.stride();
        let run = &mut self.data[i * stride..(i + 1) * stride];
        let head = &mut self.heads[i];
        head.probe = probe;
        match value {
            Some(value) => {
                run[self.key_size..self.key_size + value.len()].copy_from_slice(value);
                head.value_len = value.len() as u32;
            }
            None => head.value_len = DELETED,
        }
    }

    fn grow_index(&mut self) {
        let len = (self.index.len() * 2).max(16);
        self.index.clear();
        self.index.resize(len, 0);
        let mask = len - 1;
        for (i, head) in self.heads.iter().enumerate() {
            let mut at = (head.hash >> 32) as usize & mask;
            while self.index[at] != 0 {
                at = (at + 1) & mask;
            }
            self.index[at] = i as u32 + 1;
        }
    }

    /// The `i`th change in the order the keys were first staged, if there are that many.
    pub(crate) fn change_at(&self, i: usize) -> Option<Change<'_>> {
        (i < self.heads.len()).then(|| self.change(i))
    }

    /// Every staged change, in the order the keys were first staged.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Change<'_>> {
        (0..self.heads.len()).map(|i| self.change(i))
    }

    /// Stages every change of `child` over this level's (a nested transaction committing).
    pub(crate) fn absorb(&mut self, child: &Staged) {
        for change in child.iter() {
            self.set(change.key, change.hash, change.value, change.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: &[u8]) -> u64 {
        crate::format::hash_key(key)
    }

    #[test]
    fn keys_that_differ_only_in_length_or_zeros_are_distinct() {
        let mut staged = Staged::new(4, 4, 1);
        for key in [&b""[..], b"\0", b"a", b"a\0", b"\0a"] {
            staged.set(key, hash(key), Some(key), Found::Full);
        }
        assert_eq!(staged.len(), 5);
        for key in [&b""[..], b"\0", b"a", b"a\0", b"\0a"] {
            let change = staged.get(key, hash(key)).map(|c| (c.key, c.value));
            assert_eq!(change, Some((key, Some(key))));
        }
    }

    #[test]
    fn a_key_staged_again_keeps_its_place_and_takes_the_new_value() {
        let mut staged = Staged::new(8, 8, 1);
        for i in 0u64..1000 {
            let key = i.to_le_bytes();
            staged.set(&key, hash(&key), Some(b"first"), Found::Full);
        }
        for i in (0u64..1000).step_by(3) {
            let key = i.to_le_bytes();
            staged.set(&key, hash(&key), None, Found::Existing(i));
        }
        assert_eq!(staged.len(), 1000);
        for (i, change) in staged.iter().enumerate() {
            assert_eq!(change.key, (i as u64).to_le_bytes());
            if i % 3 == 0 {
                assert_eq!(change.value, None);
                assert_eq!(change.probe, Found::Existing(i as u64));
            } else {
                assert_eq!(change.value, Some(&b"first"[..]));
            }
        }
        // A value shorter than the one it replaces keeps only its own length.
        staged.set(
            &1u64.to_le_bytes(),
            hash(&1u64.to_le_bytes()),
            Some(b"x"),
            Found::Full,
        );
        let again = staged.get(&1u64.to_le_bytes(), hash(&1u64.to_le_bytes()));
        assert_eq!(again.and_then(|c| c.value), Some(&b"x"[..]));
    }

    #[test]
    fn absorbing_a_child_overrides_the_parent() {
        let mut parent = Staged::new(4, 4, 1);
        let mut child = Staged::new(4, 4, 1);
        parent.set(b"a", hash(b"a"), Some(b"1"), Found::Full);
        parent.set(b"b", hash(b"b"), Some(b"1"), Found::Full);
        child.set(b"b", hash(b"b"), None, Found::Full);
        child.set(b"c", hash(b"c"), Some(b"2"), Found::Full);
        parent.absorb(&child);
        let seen: Vec<_> = parent.iter().map(|c| (c.key, c.value)).collect();
        assert_eq!(
            seen,
            vec![
                (&b"a"[..], Some(&b"1"[..])),
                (&b"b"[..], None),
                (&b"c"[..], Some(&b"2"[..]))
            ]
        );
    }
}
