//! A hierarchical timing wheel, one per core.
//!
//! Time is measured in ticks (1 ms by default) since the `start` instant given at construction;
//! the wheel never reads the clock, the caller passes `now` in. Six levels of 64 slots: level
//! `L` slot `s` holds timers whose tick has digit `s` in base 64 at position `L` and whose higher
//! digits equal the wheel's current tick. Insert and cancel are O(1) (intrusive doubly-linked
//! slot lists over an internal generational slab, no per-timer allocation); when the wheel
//! reaches a slot of level `L > 0` its timers cascade down to finer levels. A `u64` occupancy
//! bitmap per level makes [`TimerWheel::next_expiration`] a handful of bit operations.
//!
//! Firing rule: a deadline is rounded UP to the tick grid (`start + k * tick`), and a timer fires
//! at the first [`TimerWheel::poll_expired`] whose `now` is at or past that rounded instant. So
//! a timer never fires early and at most one tick late. Deadlines already passed fire on the
//! next poll. Order among timers due in the same poll is not part of the contract: timers that
//! waited in the wheel come out by tick (ties in any order), timers inserted already due come
//! out ahead of them in insertion order, and after a single jump longer than the wheel span
//! everything due comes out in any order.
//!
//! The wheel spans 64^6 = 2^36 ticks (about 2.18 years at 1 ms, not thousands of years).
//! Timers beyond the span are not fired early: they park in the top level and are re-cascaded
//! each time the top level comes round. Tick counts saturate at 2^62 (146 million years at 1 ms,
//! 146 years at 1 ns): a deadline that far out never fires.
//!
//! What it does not do: it is not thread-safe (one wheel per core), it does not read or sleep on
//! a clock, it does not run callbacks (the caller pops values and acts on them), it never
//! shrinks its storage, and a time that goes backwards is ignored (the wheel never rewinds).
//! It uses no `unsafe`.

use std::time::{Duration, Instant};

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = (SLOTS as u64) - 1;
/// Lists 0..384 are wheel slots (`level * 64 + slot`); list 384 holds expired timers.
const EXPIRED: usize = LEVELS * SLOTS;
const NUM_LISTS: usize = EXPIRED + 1;
const NIL: u32 = u32::MAX;
/// Ticks are clamped below this; `now` never reaches it, so clamped timers never fire.
const MAX_TICK: u64 = 1 << 62;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Number of ticks the wheel covers in one turn of its top level: 64^6 = 2^36.
pub const WHEEL_SPAN_TICKS: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);

/// Key of a pending timer: slab index + generation, so a key of a fired or cancelled timer
/// never reaches a timer that later reuses the slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

#[derive(Debug)]
struct Node<T> {
    value: T,
    /// The deadline in ticks, rounded up, clamped to `MAX_TICK` (the deadline itself is not
    /// kept: 16 bytes a timer, and a connection often has one or two).
    when: u64,
    prev: u32,
    next: u32,
    /// Which list the node is on (`EXPIRED` or `level * 64 + slot`).
    list: u16,
}

#[derive(Debug)]
enum Entry<T> {
    Occupied {
        generation: u32,
        node: Node<T>,
    },
    /// `generation` is the one the next occupant will get.
    Vacant {
        generation: u32,
        next_free: u32,
    },
}

/// A hierarchical timing wheel of values `T` keyed by [`TimerKey`].
#[derive(Debug)]
pub struct TimerWheel<T> {
    start: Instant,
    /// Tick length in nanoseconds, at least 1.
    tick_ns: u128,
    /// The wheel's current tick: every slot up to it has been processed.
    elapsed: u64,
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
    heads: [u32; NUM_LISTS],
    tails: [u32; NUM_LISTS],
    /// Bit `s` of `occupied[l]` is set iff list `l * 64 + s` is non-empty.
    occupied: [u64; LEVELS],
    /// A lower bound on the ticks of the expired list (exact unless a member was cancelled).
    expired_min: u64,
}

/// The level a timer due at `when` belongs to when the wheel is at `elapsed` (`when > elapsed`):
/// the base-64 digit of the highest bit where they differ, capped at the top level.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    ((significant / SLOT_BITS) as usize).min(LEVELS - 1)
}

impl<T> TimerWheel<T> {
    /// A wheel with a 1 ms tick whose tick 0 is `start`.
    pub fn new(start: Instant) -> Self {
        Self::with_tick(start, Duration::from_millis(1))
    }

    /// A wheel with the given tick whose tick 0 is `start`. A zero tick is treated as 1 ns.
    pub fn with_tick(start: Instant, tick: Duration) -> Self {
        TimerWheel {
            start,
            tick_ns: tick.as_nanos().max(1),
            elapsed: 0,
            entries: Vec::new(),
            free_head: NIL,
            len: 0,
            heads: [NIL; NUM_LISTS],
            tails: [NIL; NUM_LISTS],
            occupied: [0; LEVELS],
            expired_min: u64::MAX,
        }
    }

    /// Schedules `value` to fire at `deadline` (rounded up to the tick). O(1). A deadline that
    /// has already passed fires on the next [`TimerWheel::poll_expired`].
    ///
    /// # Panics
    ///
    /// Only if more than `u32::MAX - 1` timers are pending at once (memory runs out first).
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let when = self.ceil_tick(deadline);
        let node = Node {
            value,
            when,
            prev: NIL,
            next: NIL,
            list: EXPIRED as u16,
        };
        let key = self.alloc(node);
        self.place(key.index);
        self.len += 1;
        key
    }

    /// Removes a pending timer and returns its value. O(1). A key of a timer that already fired
    /// or was cancelled returns `None` and changes nothing.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index as usize) {
            Some(Entry::Occupied { generation, .. }) if *generation == key.generation => {}
            _ => return None,
        }
        self.take(key.index).map(|(_, value)| value)
    }

    /// When a pending timer fires: its deadline rounded up to the tick grid (a deadline before
    /// the wheel's start counts as the start). `None` once it fired or was cancelled, or for a
    /// deadline clamped beyond the wheel's range.
    pub fn deadline(&self, key: TimerKey) -> Option<Instant> {
        match self.entries.get(key.index as usize) {
            Some(Entry::Occupied { generation, node })
                if *generation == key.generation && node.when < MAX_TICK =>
            {
                self.ticks_to_instant_checked(node.when)
            }
            _ => None,
        }
    }

    /// Earliest instant at which [`TimerWheel::poll_expired`] may return something; `None` when
    /// no timer is pending. Never later than the earliest pending deadline rounded up to the
    /// tick, and polling before it returns nothing. It may be earlier than that deadline (a slot
    /// start on a coarse level): polling then returns nothing but cascades, and the next call
    /// gives a finer answer (at most one such wake-up per level). If timers are already due it
    /// returns an instant no later than the last `now` polled. Cheap: a few bit operations.
    pub fn next_expiration(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        if self.heads[EXPIRED] != NIL {
            return Some(self.tick_to_instant(self.expired_min.min(self.elapsed)));
        }
        self.next_slot()
            .map(|(_, _, tick)| self.tick_to_instant(tick))
    }

    /// Advances the wheel to `now` and pops one timer whose rounded deadline is at or before
    /// `now`; call until it returns `None`. A `now` earlier than a previous one is treated as
    /// that previous one.
    pub fn poll_expired(&mut self, now: Instant) -> Option<(TimerKey, T)> {
        let now_tick = self.floor_tick(now);
        loop {
            let head = self.heads[EXPIRED];
            if head != NIL {
                match self.take(head) {
                    Some((generation, value)) => {
                        let key = TimerKey {
                            index: head,
                            generation,
                        };
                        return Some((key, value));
                    }
                    None => {
                        // A dangling list head: cannot happen; drop the list rather than spin.
                        self.heads[EXPIRED] = NIL;
                        self.tails[EXPIRED] = NIL;
                        continue;
                    }
                }
            }
            match self.next_slot() {
                Some((level, _, _))
                    if level == LEVELS - 1
                        && now_tick.saturating_sub(self.elapsed) >= WHEEL_SPAN_TICKS =>
                {
                    // Only the top level is occupied and `now` is a whole turn away: re-place
                    // everything against `now` at once instead of turning the wheel slot by
                    // slot (bounds the work of a huge jump by the number of timers).
                    self.elapsed = now_tick;
                    for slot in 0..SLOTS {
                        self.process(level, slot);
                    }
                }
                Some((level, slot, tick)) if tick <= now_tick => {
                    self.elapsed = self.elapsed.max(tick);
                    self.process(level, slot);
                }
                _ => {
                    self.elapsed = self.elapsed.max(now_tick);
                    return None;
                }
            }
        }
    }

    /// Number of pending timers (including those due but not yet popped).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    // ---- time conversion -------------------------------------------------------------------

    fn since_start_ns(&self, t: Instant) -> u128 {
        t.checked_duration_since(self.start)
            .map_or(0, |d| d.as_nanos())
    }

    /// Whole ticks in `ns`, rounded up or down. It divides in 64 bits where the figures fit
    /// (the first 584 years): a 128-bit division is a library call, and this runs for every
    /// timer set.
    fn ticks_in(&self, ns: u128, round_up: bool) -> u128 {
        match (u64::try_from(ns), u64::try_from(self.tick_ns)) {
            (Ok(n), Ok(t)) if round_up => u128::from(n.div_ceil(t)),
            (Ok(n), Ok(t)) => u128::from(n / t),
            _ if round_up => ns.div_ceil(self.tick_ns),
            _ => ns / self.tick_ns,
        }
    }

    /// Ticks of `deadline`, rounded up, clamped to `MAX_TICK`.
    fn ceil_tick(&self, deadline: Instant) -> u64 {
        let ticks = self.ticks_in(self.since_start_ns(deadline), true);
        ticks.min(u128::from(MAX_TICK)) as u64
    }

    /// Ticks of `now`, rounded down, clamped below `MAX_TICK`.
    fn floor_tick(&self, now: Instant) -> u64 {
        let ticks = self.ticks_in(self.since_start_ns(now), false);
        ticks.min(u128::from(MAX_TICK - 1)) as u64
    }

    fn ticks_to_instant_checked(&self, tick: u64) -> Option<Instant> {
        let ns = u128::from(tick).checked_mul(self.tick_ns)?;
        if let Ok(ns) = u64::try_from(ns) {
            return self.start.checked_add(Duration::from_nanos(ns));
        }
        let secs = u64::try_from(ns / NANOS_PER_SEC).ok()?;
        let d = Duration::new(secs, (ns % NANOS_PER_SEC) as u32);
        self.start.checked_add(d)
    }

    /// `start + tick * tick_len`; if that is not representable, an earlier instant (the
    /// previous tick, else `start`), which is still a valid lower bound for callers.
    fn tick_to_instant(&self, tick: u64) -> Instant {
        self.ticks_to_instant_checked(tick)
            .or_else(|| self.ticks_to_instant_checked(tick.saturating_sub(1)))
            .unwrap_or(self.start)
    }

    // ---- wheel -----------------------------------------------------------------------------

    /// The earliest occupied wheel slot as `(level, slot, tick at which it is processed)`.
    /// Levels are ordered: every timer on level `L` is due before any timer on level `L + 1`,
    /// so the lowest occupied level holds the earliest slot.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let current = (self.elapsed >> shift) & SLOT_MASK;
            let distance = u64::from(occupied.rotate_right(current as u32).trailing_zeros());
            let slot = (current + distance) & SLOT_MASK;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let level_start = self.elapsed & !(level_range - 1);
            let mut tick = level_start.saturating_add(slot * slot_range);
            if tick <= self.elapsed {
                // Only on the top level: a timer beyond the span sits in a slot the wheel
                // passed already, i.e. one the next turn reaches.
                tick = tick.saturating_add(level_range);
            }
            return Some((level, slot as usize, tick));
        }
        None
    }

    /// Detaches one wheel slot and re-places each of its timers against `self.elapsed`:
    /// due ones go to the expired list, the rest to a finer level (or the top level again).
    fn process(&mut self, level: usize, slot: usize) {
        let list = level * SLOTS + slot;
        let mut cur = self.heads[list];
        self.heads[list] = NIL;
        self.tails[list] = NIL;
        self.occupied[level] &= !(1u64 << slot);
        while cur != NIL {
            let next = self.node(cur).map_or(NIL, |n| n.next);
            self.place(cur);
            cur = next;
        }
    }

    /// Links the (unlinked) node `idx` into the list its tick belongs to.
    fn place(&mut self, idx: u32) {
        let Some(when) = self.node(idx).map(|n| n.when) else {
            return;
        };
        if when <= self.elapsed {
            self.expired_min = self.expired_min.min(when);
            self.link_back(idx, EXPIRED);
        } else {
            let level = level_for(self.elapsed, when);
            let slot = ((when >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize;
            self.occupied[level] |= 1u64 << slot;
            self.link_back(idx, level * SLOTS + slot);
        }
    }

    fn link_back(&mut self, idx: u32, list: usize) {
        let tail = self.tails[list];
        if let Some(node) = self.node_mut(idx) {
            node.list = list as u16;
            node.prev = tail;
            node.next = NIL;
        } else {
            return;
        }
        match self.node_mut(tail) {
            Some(t) => t.next = idx,
            None => self.heads[list] = idx,
        }
        self.tails[list] = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let Some((prev, next, list)) = self.node(idx).map(|n| (n.prev, n.next, n.list as usize))
        else {
            return;
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.heads[list] = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tails[list] = prev,
        }
        if self.heads[list] == NIL {
            if list == EXPIRED {
                self.expired_min = u64::MAX;
            } else {
                self.occupied[list / SLOTS] &= !(1u64 << (list % SLOTS));
            }
        }
    }

    // ---- slab ------------------------------------------------------------------------------

    fn node(&self, idx: u32) -> Option<&Node<T>> {
        match self.entries.get(idx as usize) {
            Some(Entry::Occupied { node, .. }) => Some(node),
            _ => None,
        }
    }

    fn node_mut(&mut self, idx: u32) -> Option<&mut Node<T>> {
        match self.entries.get_mut(idx as usize) {
            Some(Entry::Occupied { node, .. }) => Some(node),
            _ => None,
        }
    }

    fn alloc(&mut self, node: Node<T>) -> TimerKey {
        let index = self.free_head;
        if let Some(entry) = self.entries.get_mut(index as usize)
            && let Entry::Vacant {
                generation,
                next_free,
            } = *entry
        {
            self.free_head = next_free;
            *entry = Entry::Occupied { generation, node };
            return TimerKey { index, generation };
        }
        // Empty (or, impossibly, broken) free list: grow.
        self.free_head = NIL;
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("TimerWheel: more than u32::MAX - 1 pending timers");
        self.entries.push(Entry::Occupied {
            generation: 0,
            node,
        });
        TimerKey {
            index,
            generation: 0,
        }
    }

    /// Unlinks and frees the occupied entry `idx`; returns its generation and value.
    fn take(&mut self, idx: u32) -> Option<(u32, T)> {
        self.node(idx)?;
        self.unlink(idx);
        let entry = self.entries.get_mut(idx as usize)?;
        let generation = match entry {
            Entry::Occupied { generation, .. } => *generation,
            Entry::Vacant { .. } => return None,
        };
        let old = std::mem::replace(
            entry,
            Entry::Vacant {
                generation: generation.wrapping_add(1),
                next_free: self.free_head,
            },
        );
        self.free_head = idx;
        self.len -= 1;
        match old {
            Entry::Occupied { node, .. } => Some((generation, node.value)),
            Entry::Vacant { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    const MS: Duration = Duration::from_millis(1);

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
            if n == 0 { 0 } else { self.next() % n }
        }
    }

    /// Independent of the wheel: `deadline` rounded up to the `tick` grid from `t0`.
    fn rounded(t0: Instant, tick: Duration, deadline: Instant) -> Instant {
        let ns = deadline.saturating_duration_since(t0).as_nanos();
        let t = tick.as_nanos();
        let ticks = ns.div_ceil(t);
        t0 + Duration::from_nanos((ticks * t) as u64)
    }

    fn drain<T>(w: &mut TimerWheel<T>, now: Instant) -> Vec<(TimerKey, T)> {
        std::iter::from_fn(|| w.poll_expired(now)).collect()
    }

    #[test]
    fn single_timer_fires_exactly_at_its_tick_not_before() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let k = w.insert(t0 + 5 * MS, "x");
        assert_eq!(w.len(), 1);
        assert_eq!(w.deadline(k), Some(t0 + 5 * MS));
        assert_eq!(w.next_expiration(), Some(t0 + 5 * MS));
        assert!(w.poll_expired(t0 + 4 * MS).is_none());
        assert!(
            w.poll_expired(t0 + 5 * MS - Duration::from_nanos(1))
                .is_none()
        );
        assert_eq!(w.poll_expired(t0 + 5 * MS), Some((k, "x")));
        assert!(w.poll_expired(t0 + 5 * MS).is_none());
        assert!(w.is_empty());
        assert_eq!(w.next_expiration(), None);
    }

    #[test]
    fn sub_tick_deadline_rounds_up() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let k = w.insert(t0 + Duration::from_micros(2500), 1);
        assert_eq!(w.next_expiration(), Some(t0 + 3 * MS));
        assert!(w.poll_expired(t0 + Duration::from_micros(2900)).is_none());
        assert_eq!(w.poll_expired(t0 + 3 * MS), Some((k, 1)));
    }

    #[test]
    fn timer_across_levels_cascades_and_fires_on_time() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        // 64^2 + 64 + 1 ticks: starts on level 2.
        let d = t0 + 4161 * MS;
        let k = w.insert(d, ());
        assert!(w.poll_expired(d - MS).is_none());
        assert_eq!(w.poll_expired(d), Some((k, ())));
    }

    #[test]
    fn cancel_removes_and_stale_keys_return_none() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let a = w.insert(t0 + 10 * MS, 'a');
        let b = w.insert(t0 + 10 * MS, 'b');
        assert_eq!(w.cancel(a), Some('a'));
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.deadline(a), None);
        assert_eq!(w.len(), 1);
        assert_eq!(drain(&mut w, t0 + 20 * MS), vec![(b, 'b')]);
        assert!(w.is_empty());
    }

    #[test]
    fn cancel_updates_next_expiration() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let a = w.insert(t0 + 10 * MS, ());
        let b = w.insert(t0 + 50 * MS, ());
        assert_eq!(w.next_expiration(), Some(t0 + 10 * MS));
        w.cancel(a);
        assert_eq!(w.next_expiration(), Some(t0 + 50 * MS));
        w.cancel(b);
        assert_eq!(w.next_expiration(), None);
    }

    #[test]
    fn cancel_after_fire_returns_none_even_after_slot_reuse() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let a = w.insert(t0 + MS, 1);
        assert_eq!(w.poll_expired(t0 + MS), Some((a, 1)));
        assert_eq!(w.cancel(a), None);
        let b = w.insert(t0 + 5 * MS, 2);
        assert_eq!(b.index, a.index);
        assert_ne!(b, a);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.deadline(a), None);
        assert_eq!(w.deadline(b), Some(t0 + 5 * MS));
        assert_eq!(w.cancel(b), Some(2));
        assert!(w.is_empty());
    }

    #[test]
    fn cancel_of_due_but_unpolled_timer() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let a = w.insert(t0 + MS, 1);
        let b = w.insert(t0 + MS, 2);
        let c = w.insert(t0 + MS, 3);
        let (first, _) = w.poll_expired(t0 + 2 * MS).unwrap();
        let rest: Vec<TimerKey> = [a, b, c].into_iter().filter(|k| *k != first).collect();
        assert!(w.cancel(rest[0]).is_some());
        assert_eq!(drain(&mut w, t0 + 2 * MS).len(), 1);
        assert!(w.is_empty());
        assert_eq!(w.next_expiration(), None);
    }

    #[test]
    fn past_deadlines_fire_on_next_poll() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        assert!(w.poll_expired(t0 + 100 * MS).is_none());
        let a = w.insert(t0 + 10 * MS, 'a');
        let b = w.insert(t0, 'b');
        let c = w.insert(t0 + 100 * MS, 'c');
        let next = w.next_expiration().unwrap();
        assert!(next <= t0);
        let mut fired: Vec<TimerKey> = drain(&mut w, t0 + 100 * MS)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        fired.sort_by_key(|k| k.index);
        assert_eq!(fired, vec![a, b, c]);
    }

    #[test]
    fn time_going_backwards_is_ignored() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut w = TimerWheel::new(t0);
        let k = w.insert(t0 + 50 * MS, ());
        assert!(w.poll_expired(t0 + 40 * MS).is_none());
        assert!(w.poll_expired(t0 - Duration::from_secs(1)).is_none());
        assert!(w.poll_expired(t0 + 10 * MS).is_none());
        assert_eq!(w.poll_expired(t0 + 50 * MS), Some((k, ())));
    }

    #[test]
    fn zero_tick_is_one_nanosecond() {
        let t0 = Instant::now();
        let mut w = TimerWheel::with_tick(t0, Duration::ZERO);
        let k = w.insert(t0 + Duration::from_nanos(3), ());
        assert!(w.poll_expired(t0 + Duration::from_nanos(2)).is_none());
        assert_eq!(w.poll_expired(t0 + Duration::from_nanos(3)), Some((k, ())));
    }

    #[test]
    fn long_jump_fires_everything_due_in_tick_order() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let mut rng = XorShift(7);
        let three_h = Duration::from_secs(3 * 3600);
        let mut due = 0;
        for i in 0..3000u64 {
            let d = t0 + Duration::from_millis(rng.below(4 * 3600 * 1000));
            if d <= t0 + three_h {
                due += 1;
            }
            w.insert(d, (i, d));
        }
        let fired = drain(&mut w, t0 + three_h);
        assert_eq!(fired.len(), due);
        assert!(fired.windows(2).all(|p| p[0].1.1 <= p[1].1.1));
        assert!(fired.iter().all(|(_, (_, d))| *d <= t0 + three_h));
        assert_eq!(w.len(), 3000 - due);
        assert!(w.next_expiration().unwrap() > t0 + three_h);
    }

    #[test]
    fn beyond_the_wheel_span_never_fires_early() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let year = Duration::from_secs(365 * 86400);
        let span = Duration::from_millis(WHEEL_SPAN_TICKS);
        let d3 = t0 + 3 * year;
        let d1000 = t0 + 1000 * year;
        let k3 = w.insert(d3, 3);
        let k1000 = w.insert(d1000, 1000);
        assert!(w.next_expiration().unwrap() <= d3);
        assert!(w.poll_expired(t0 + span).is_none());
        assert!(w.poll_expired(d3 - MS).is_none());
        assert!(w.next_expiration().unwrap() <= d3);
        assert_eq!(w.poll_expired(d3), Some((k3, 3)));
        // A single jump of hundreds of years, just short of the deadline.
        assert!(w.poll_expired(d1000 - MS).is_none());
        assert_eq!(w.next_expiration(), Some(d1000));
        assert_eq!(w.poll_expired(d1000), Some((k1000, 1000)));
        assert!(w.is_empty());
    }

    #[test]
    fn huge_jump_past_far_timers_fires_them_all() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let year = Duration::from_secs(365 * 86400);
        for i in 1..=50u32 {
            w.insert(t0 + i * 7 * year, i);
        }
        let fired = drain(&mut w, t0 + 400 * year);
        assert_eq!(fired.len(), 50);
        assert!(w.is_empty());
    }

    #[test]
    fn far_future_clamp_never_fires() {
        let t0 = Instant::now();
        // 1 ns ticks: 2^62 ticks is about 146 years.
        let mut w = TimerWheel::with_tick(t0, Duration::from_nanos(1));
        let year = Duration::from_secs(365 * 86400);
        let k = w.insert(t0 + 200 * year, ());
        let near = w.insert(t0 + year, ());
        // Clamped: it has no firing instant, yet it stays pending (cancel finds it below).
        assert_eq!(w.deadline(k), None);
        assert_eq!(w.deadline(near), Some(t0 + year));
        assert_eq!(w.poll_expired(t0 + 300 * year), Some((near, ())));
        assert!(w.poll_expired(t0 + 300 * year).is_none());
        assert!(w.next_expiration().is_some());
        assert_eq!(w.cancel(k), Some(()));
    }

    #[test]
    fn event_loop_driven_by_next_expiration_fires_on_exact_ticks() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let mut rng = XorShift(99);
        let n = 2000u64;
        for _ in 0..n {
            let d = t0 + Duration::from_micros(rng.below(36_000_000_000));
            w.insert(d, d);
        }
        let mut wakeups = 0u64;
        let mut fired = 0u64;
        let mut last = t0;
        while let Some(at) = w.next_expiration() {
            assert!(at >= last);
            // Nothing comes out before the announced instant.
            if at > last {
                assert!(w.poll_expired(at - Duration::from_nanos(1)).is_none());
            }
            wakeups += 1;
            while let Some((_, d)) = w.poll_expired(at) {
                assert!(d <= at);
                assert_eq!(rounded(t0, MS, d), at, "fired late or early");
                fired += 1;
            }
            last = at;
        }
        assert_eq!(fired, n);
        assert!(wakeups <= n * LEVELS as u64, "{wakeups} wake-ups");
    }

    /// Thousands of random timers and cancels against an oracle, advancing in random steps.
    fn randomized_against_oracle(seed: u64, tick: Duration) {
        let mut rng = XorShift(seed);
        let t0 = Instant::now();
        let mut w = TimerWheel::with_tick(t0, tick);
        let ten_h_ns = 10 * 3600 * 1_000_000_000u64;
        // id -> (key, deadline); ordered set of (rounded deadline, id) for the pending ones.
        let mut pending: HashMap<u64, (TimerKey, Instant)> = HashMap::new();
        let mut by_due: BTreeSet<(Instant, u64)> = BTreeSet::new();
        let mut all_keys: Vec<TimerKey> = Vec::new();
        let mut now = t0;
        let total = 5000u64;
        let mut polls = 0u64;
        while (all_keys.len() as u64) < total || !pending.is_empty() {
            // Inserts: mostly future, some past, some exactly on a tick or on `now`.
            if (all_keys.len() as u64) < total {
                for _ in 0..rng.below(6) {
                    let id = all_keys.len() as u64;
                    let deadline = match rng.below(10) {
                        0 => {
                            now - Duration::from_nanos(
                                rng.below(now.duration_since(t0).as_nanos() as u64 + 1),
                            )
                        }
                        1 => now,
                        2 => now + tick * (rng.below(5000) as u32),
                        _ => now + Duration::from_nanos(rng.below(ten_h_ns)),
                    };
                    let key = w.insert(deadline, id);
                    assert_eq!(w.deadline(key), Some(rounded(t0, tick, deadline)));
                    all_keys.push(key);
                    pending.insert(id, (key, deadline));
                    by_due.insert((rounded(t0, tick, deadline), id));
                }
            }
            // Random cancels, of pending and of already fired/cancelled timers.
            for _ in 0..rng.below(3) {
                let id = rng.below(all_keys.len() as u64);
                let key = all_keys[id as usize];
                match pending.remove(&id) {
                    Some((k, d)) => {
                        assert_eq!(w.cancel(k), Some(id));
                        assert!(by_due.remove(&(rounded(t0, tick, d), id)));
                    }
                    None => assert_eq!(w.cancel(key), None),
                }
            }
            assert_eq!(w.len(), pending.len());
            // next_expiration: present iff pending, never later than the earliest due tick.
            let next = w.next_expiration();
            match by_due.first() {
                None => assert_eq!(next, None),
                Some(&(due, _)) => assert!(next.unwrap() <= due),
            }
            // Advance by a random step.
            let step = match rng.below(10) {
                0..=3 => Duration::from_nanos(rng.below(3_000_000)),
                4..=6 => Duration::from_nanos(rng.below(200_000_000)),
                7 | 8 => Duration::from_nanos(rng.below(60_000_000_000)),
                _ => Duration::from_nanos(rng.below(3_600_000_000_000)),
            };
            let target = now + step;
            if let Some(next) = next
                && target < next
            {
                // Polling before next_expiration returns nothing.
                assert!(w.poll_expired(target).is_none());
            }
            now = target;
            polls += 1;
            while let Some((key, id)) = w.poll_expired(now) {
                let (k, d) = pending.remove(&id).expect("fired twice or after cancel");
                assert_eq!(k, key);
                let due = rounded(t0, tick, d);
                assert!(d <= now && due <= now, "fired early");
                assert!(by_due.remove(&(due, id)));
                assert_eq!(w.deadline(key), None);
                assert_eq!(w.cancel(key), None);
            }
            // Everything due has fired at this first poll at or past its rounded deadline.
            if let Some(&(due, id)) = by_due.first() {
                assert!(
                    due > now,
                    "timer {id} due at {due:?} did not fire at {now:?}"
                );
            }
        }
        assert!(w.is_empty());
        assert_eq!(w.next_expiration(), None);
        assert!(polls > 100);
    }

    #[test]
    fn randomized_against_oracle_1ms() {
        randomized_against_oracle(0x2545_F491_4F6C_DD1D, MS);
        randomized_against_oracle(42, MS);
    }

    #[test]
    fn randomized_against_oracle_odd_tick() {
        randomized_against_oracle(0xC0FF_EE00_1234_5678, Duration::from_micros(7300));
    }
}
