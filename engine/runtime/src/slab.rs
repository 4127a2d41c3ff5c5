//! A generational slab: the storage behind connection slots.
//!
//! Values live in one `Vec`; freed slots go on a LIFO free list, so the slot freed last is the
//! next one reused (its memory is still hot in cache). Every slot carries a generation that is
//! bumped when the slot is freed, and every [`Key`] carries the generation it was issued with,
//! so a stale key (one whose value was removed, even if the slot was reused since) is rejected
//! by [`Slab::get`], [`Slab::remove`] and friends instead of reaching the new occupant.
//!
//! A key packs into a `u64` below `1 << 56` ([`Key::to_u64`]), so it can ride in an io_uring
//! `user_data` next to an 8-bit op tag in the top byte.
//!
//! What it does not do: it is not thread-safe (one slab per core), it never shrinks its `Vec`,
//! and generations are 24 bits wide and wrap, so a key that is kept across exactly a multiple
//! of 2^24 (16 777 216) reuses of its slot would be accepted again. It uses no `unsafe`.

/// Number of bits of a [`Key`]'s generation; generations wrap modulo `1 << GENERATION_BITS`.
pub const GENERATION_BITS: u32 = 24;

/// Every [`Key::to_u64`] value is below `1 << KEY_BITS`; the bits above are free for a tag.
pub const KEY_BITS: u32 = 32 + GENERATION_BITS;

const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// The generation that follows `g`, wrapping within [`GENERATION_BITS`].
fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1) & GENERATION_MASK
}

/// A key: index + generation, so a stale key never reaches a reused slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The slot index in the slab.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The generation of the slot this key was issued for (below `1 << GENERATION_BITS`).
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// Packs the key as `(generation << 32) | index`; the result is always below `1 << KEY_BITS`
    /// (`1 << 56`), leaving the top 8 bits free.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation & GENERATION_MASK) << 32) | u64::from(self.index)
    }

    /// Unpacks a value made by [`Key::to_u64`]. Bits at and above [`KEY_BITS`] are ignored, so a
    /// `user_data` that still carries its tag byte decodes to the same key. Any `u64` decodes to
    /// some key; a key that was never issued is simply not found by the slab.
    pub fn from_u64(v: u64) -> Key {
        Key {
            index: v as u32,
            generation: ((v >> 32) as u32) & GENERATION_MASK,
        }
    }
}

#[derive(Debug, Clone)]
enum Entry<T> {
    /// A live value with the generation of the key that was issued for it.
    Occupied { generation: u32, value: T },
    /// A free slot; `generation` is the one the next occupant will get.
    Vacant {
        generation: u32,
        next_free: Option<u32>,
    },
}

/// A generational slab: `Vec` of entries plus a LIFO free list.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free_head: Option<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slab<T> {
    /// An empty slab; allocates nothing until the first insert.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty slab with room for `n` values before it reallocates.
    pub fn with_capacity(n: usize) -> Self {
        Slab {
            entries: Vec::with_capacity(n),
            free_head: None,
            len: 0,
        }
    }

    /// Stores `v` and returns its key (the key [`Slab::vacant_key`] announced). Reuses the most
    /// recently freed slot if there is one.
    ///
    /// # Panics
    ///
    /// Only if more than `u32::MAX + 1` slots would be needed (memory runs out well before).
    pub fn insert(&mut self, v: T) -> Key {
        if let Some(index) = self.free_head {
            if let Some(entry) = self.entries.get_mut(index as usize)
                && let Entry::Vacant {
                    generation,
                    next_free,
                } = *entry
            {
                self.free_head = next_free;
                *entry = Entry::Occupied {
                    generation,
                    value: v,
                };
                self.len += 1;
                return Key { index, generation };
            }
            // The free list pointed at a live or missing slot: cannot happen; drop the list
            // rather than corrupt a live entry.
            self.free_head = None;
        }
        let index = u32::try_from(self.entries.len()).expect("Slab: more than 2^32 slots");
        self.entries.push(Entry::Occupied {
            generation: 0,
            value: v,
        });
        self.len += 1;
        Key {
            index,
            generation: 0,
        }
    }

    /// The key the next [`Slab::insert`] will return (useful to build a value that knows its
    /// own key). If the slab already uses all `u32` indices the returned key is meaningless.
    pub fn vacant_key(&self) -> Key {
        if let Some(index) = self.free_head
            && let Some(Entry::Vacant { generation, .. }) = self.entries.get(index as usize)
        {
            return Key {
                index,
                generation: *generation,
            };
        }
        Key {
            index: self.entries.len() as u32,
            generation: 0,
        }
    }

    /// The value for `k`, or `None` if `k` is stale or was never issued.
    pub fn get(&self, k: Key) -> Option<&T> {
        match self.entries.get(k.index as usize) {
            Some(Entry::Occupied { generation, value }) if *generation == k.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    /// The key of the live value in slot `index`, if there is one.
    pub fn key_at(&self, index: u32) -> Option<Key> {
        match self.entries.get(index as usize) {
            Some(Entry::Occupied { generation, .. }) => Some(Key {
                index,
                generation: *generation,
            }),
            _ => None,
        }
    }

    /// The value for `k`, mutably, or `None` if `k` is stale or was never issued.
    pub fn get_mut(&mut self, k: Key) -> Option<&mut T> {
        match self.entries.get_mut(k.index as usize) {
            Some(Entry::Occupied { generation, value }) if *generation == k.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    /// The number of slots, occupied or free: every index below it may be passed to
    /// [`Slab::get_by_index_mut`].
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// Whatever currently lives at `index`, with its current key; `None` if the slot is free or
    /// out of range. For callers that only kept the index (no generation check is possible).
    pub fn get_by_index_mut(&mut self, index: u32) -> Option<(Key, &mut T)> {
        match self.entries.get_mut(index as usize) {
            Some(Entry::Occupied { generation, value }) => Some((
                Key {
                    index,
                    generation: *generation,
                },
                value,
            )),
            _ => None,
        }
    }

    /// Removes and returns the value for `k`; `None` (and no change) if `k` is stale.
    /// The slot's generation is bumped, so `k` is rejected from now on.
    pub fn remove(&mut self, k: Key) -> Option<T> {
        let entry = self.entries.get_mut(k.index as usize)?;
        match entry {
            Entry::Occupied { generation, .. } if *generation == k.generation => {}
            _ => return None,
        }
        let old = std::mem::replace(
            entry,
            Entry::Vacant {
                generation: next_generation(k.generation),
                next_free: self.free_head,
            },
        );
        self.free_head = Some(k.index);
        self.len -= 1;
        match old {
            Entry::Occupied { value, .. } => Some(value),
            Entry::Vacant { .. } => None,
        }
    }

    /// Whether `k` refers to a live value.
    pub fn contains(&self, k: Key) -> bool {
        self.get(k).is_some()
    }

    /// Bytes of the slots allocated.
    pub fn table_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry<T>>()
    }

    /// Number of live values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no live values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live values with their keys, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Occupied { generation, value } => Some((
                    Key {
                        index: i as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }

    /// Live values, mutably, with their keys, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Key, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Occupied { generation, value } => Some((
                    Key {
                        index: i as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }

    /// The keys of all live values, in index order (a snapshot, so the slab can be mutated
    /// while walking it).
    pub fn keys(&self) -> Vec<Key> {
        self.iter().map(|(k, _)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn insert_get_remove() {
        let mut s = Slab::new();
        assert!(s.is_empty());
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.get(b), Some(&"b"));
        *s.get_mut(b).unwrap() = "B";
        assert_eq!(s.remove(b), Some("B"));
        assert_eq!(s.remove(b), None);
        assert!(!s.contains(b));
        assert!(s.contains(a));
        assert_eq!(s.len(), 1);
        assert_eq!(s.remove(a), Some("a"));
        assert!(s.is_empty());
    }

    #[test]
    fn lifo_reuse_and_stale_key_rejected() {
        let mut s = Slab::with_capacity(4);
        let a = s.insert(1);
        let b = s.insert(2);
        let c = s.insert(3);
        s.remove(a);
        s.remove(c);
        // LIFO: c's slot comes back first, then a's.
        let c2 = s.insert(30);
        let a2 = s.insert(10);
        assert_eq!(c2.index(), c.index());
        assert_eq!(a2.index(), a.index());
        assert_ne!(c2, c);
        assert_eq!(c2.generation(), c.generation() + 1);
        // The stale keys never reach the new occupants.
        assert_eq!(s.get(c), None);
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert!(!s.contains(c));
        assert_eq!(s.get(c2), Some(&30));
        assert_eq!(s.get(a2), Some(&10));
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let mut s: Slab<u8> = Slab::default();
        assert_eq!(s.get(Key::from_u64(0)), None);
        assert_eq!(s.remove(Key::from_u64(u64::MAX)), None);
        assert!(s.get_by_index_mut(7).is_none());
        let k = s.insert(1);
        let wrong_gen = Key::from_u64(k.to_u64() + (1 << 32));
        assert_eq!(wrong_gen.index(), k.index());
        assert_eq!(s.get(wrong_gen), None);
        assert_eq!(s.remove(wrong_gen), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn vacant_key_predicts_insert() {
        let mut s = Slab::new();
        for i in 0..10 {
            let v = s.vacant_key();
            assert_eq!(s.insert(i), v);
        }
        let k3 = s.keys()[3];
        let k7 = s.keys()[7];
        s.remove(k3);
        s.remove(k7);
        for _ in 0..3 {
            let v = s.vacant_key();
            assert_eq!(s.insert(0), v);
        }
    }

    #[test]
    fn key_u64_roundtrip_and_tag_bits_ignored() {
        let k = Key {
            index: u32::MAX,
            generation: GENERATION_MASK,
        };
        let v = k.to_u64();
        assert!(v < 1 << KEY_BITS);
        assert_eq!(v, (u64::from(GENERATION_MASK) << 32) | u64::from(u32::MAX));
        assert_eq!(Key::from_u64(v), k);
        let tagged = v | (0xABu64 << 56);
        assert_eq!(Key::from_u64(tagged), k);
        assert_eq!(Key::from_u64(u64::MAX), k);
        let zero = Key::from_u64(0);
        assert_eq!((zero.index(), zero.generation()), (0, 0));
    }

    #[test]
    fn generation_wraps_within_24_bits() {
        let mut s = Slab::new();
        let k = s.insert(1u32);
        s.remove(k);
        // Fast-forward the slot to the last generation instead of 2^24 real cycles.
        s.entries[k.index() as usize] = Entry::Vacant {
            generation: GENERATION_MASK,
            next_free: None,
        };
        let last = s.insert(2);
        assert_eq!(last.generation(), GENERATION_MASK);
        assert!(last.to_u64() < 1 << 56);
        assert_eq!(Key::from_u64(last.to_u64()), last);
        assert_eq!(s.remove(last), Some(2));
        let wrapped = s.insert(3);
        assert_eq!(wrapped.index(), k.index());
        assert_eq!(wrapped.generation(), 0);
        assert!(wrapped.to_u64() < 1 << 56);
        assert_eq!(s.get(last), None);
        assert_eq!(s.get(wrapped), Some(&3));
        // Documented limitation: a key from exactly 2^24 generations ago aliases.
        assert_eq!(wrapped, k);
    }

    #[test]
    fn key_at_names_the_current_occupant() {
        let mut s = Slab::new();
        let a = s.insert('a');
        let b = s.insert('b');
        assert_eq!(s.key_at(a.index()), Some(a));
        assert_eq!(s.key_at(b.index()), Some(b));
        assert_eq!(s.key_at(7), None);
        s.remove(a);
        assert_eq!(s.key_at(a.index()), None);
        let c = s.insert('c');
        assert_eq!(c.index(), a.index());
        assert_eq!(s.key_at(a.index()), Some(c));
        assert_ne!(c, a);
        assert!(s.table_bytes() >= 2 * std::mem::size_of::<char>());
    }

    #[test]
    fn get_by_index_mut_and_iteration() {
        let mut s = Slab::new();
        let keys: Vec<Key> = (0..6).map(|i| s.insert(i * 10)).collect();
        s.remove(keys[1]);
        s.remove(keys[4]);
        assert_eq!(s.keys(), vec![keys[0], keys[2], keys[3], keys[5]]);
        let (k, v) = s.get_by_index_mut(keys[2].index()).unwrap();
        assert_eq!(k, keys[2]);
        *v += 1;
        assert!(s.get_by_index_mut(keys[1].index()).is_none());
        for (_, v) in s.iter_mut() {
            *v += 100;
        }
        let seen: Vec<(Key, i32)> = s.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(
            seen,
            vec![
                (keys[0], 100),
                (keys[2], 121),
                (keys[3], 130),
                (keys[5], 150)
            ]
        );
    }

    #[test]
    fn randomized_against_hashmap_oracle() {
        for seed in [0x9E37_79B9_7F4A_7C15u64, 12345, 0xDEAD_BEEF] {
            let mut rng = XorShift(seed);
            let mut slab = Slab::new();
            let mut oracle: HashMap<Key, u64> = HashMap::new();
            let mut live: Vec<Key> = Vec::new();
            let mut dead: Vec<Key> = Vec::new();
            for step in 0..20_000u64 {
                match rng.below(10) {
                    0..=4 => {
                        let expect = slab.vacant_key();
                        let k = slab.insert(step);
                        assert_eq!(k, expect);
                        assert!(k.to_u64() < 1 << 56);
                        assert!(oracle.insert(k, step).is_none(), "live key reissued");
                        live.push(k);
                    }
                    5..=7 if !live.is_empty() => {
                        let i = rng.below(live.len() as u64) as usize;
                        let k = live.swap_remove(i);
                        assert_eq!(slab.remove(k), oracle.remove(&k));
                        dead.push(k);
                    }
                    8 if !dead.is_empty() => {
                        let k = dead[rng.below(dead.len() as u64) as usize];
                        assert_eq!(slab.get(k), None);
                        assert_eq!(slab.remove(k), None);
                    }
                    _ if !live.is_empty() => {
                        let k = live[rng.below(live.len() as u64) as usize];
                        let v = slab.get_mut(k).unwrap();
                        *v ^= 1;
                        *oracle.get_mut(&k).unwrap() ^= 1;
                    }
                    _ => {}
                }
                assert_eq!(slab.len(), oracle.len());
            }
            let mut from_slab: Vec<(Key, u64)> = slab.iter().map(|(k, v)| (k, *v)).collect();
            let mut from_oracle: Vec<(Key, u64)> = oracle.into_iter().collect();
            from_slab.sort_by_key(|(k, _)| k.to_u64());
            from_oracle.sort_by_key(|(k, _)| k.to_u64());
            assert_eq!(from_slab, from_oracle);
        }
    }
}
