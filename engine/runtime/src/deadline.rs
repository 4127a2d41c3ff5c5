//! Coarse per-connection deadlines ([`crate::ConnCtx::set_deadline`]), one per connection.
//!
//! The timeouts nearly every connection has (a handshake or request-head deadline, a keep-alive
//! idle limit) do not need a timer each: a timer-wheel entry is 56 bytes, and the wheel keeps
//! the storage of its busiest moment, so 10k connections that open at once leave 560 KB behind.
//! Here a deadline is 4 bytes in a dense array indexed by connection slot: the sweep tick at or
//! after which it fires (0 for none). One wheel timer, set for the earliest deadline, runs a
//! sweep that scans the array; a sweep happens at most once a tick, and not at all while no
//! deadline is armed. A scan reads 4 bytes a slot (400 KB at 100k connections, tens of
//! microseconds).
//!
//! Firing rule: a deadline is rounded up to the tick grid (`start + k * tick`) and fires at the
//! first sweep at or after that instant: never early, at most one tick (plus the wheel's own
//! tick) late.
//!
//! Ticks are stored as `u32` relative to a base that moves forward (and the stored values
//! down) once the current tick is 2^31 ticks past it, so the array never wraps however long
//! the core runs.

use std::time::{Duration, Instant};

/// The base is moved once the current tick is this far past it.
const REBASE_AFTER: u64 = 1 << 31;

/// The deadline array of one core.
#[derive(Debug)]
pub(crate) struct Deadlines {
    start: Instant,
    tick_ns: u64,
    /// Ticks since `start` that stored value 0 stands for (stored values are `tick - base`).
    base: u64,
    /// Per connection slot: the tick (relative to `base`) at which its deadline fires; 0: none.
    at: Vec<u32>,
    armed: usize,
    /// The tick (relative to `base`) the sweep is set for, while one is.
    sweep: Option<u32>,
}

/// What the caller must do with the sweep timer after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Nothing: the timer set (or not set) already suits.
    Keep,
    /// Set it (cancelling the one set before, if any) for this instant.
    At(Instant),
    /// Cancel it: no deadline is armed.
    Cancel,
}

impl Deadlines {
    pub(crate) fn new(start: Instant, tick: Duration) -> Self {
        Deadlines {
            start,
            tick_ns: (tick.as_nanos() as u64).max(1),
            base: 0,
            at: Vec::new(),
            armed: 0,
            sweep: None,
        }
    }

    /// Nanoseconds from the start to `t` (0 before it), capped at `u64::MAX` (584 years): the
    /// tick arithmetic below then divides in 64 bits, where a 128-bit division would be a
    /// library call on every deadline set.
    fn since_start_ns(&self, t: Instant) -> u64 {
        let ns = t.saturating_duration_since(self.start).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The tick `t` falls in (rounded down).
    fn tick_floor(&self, t: Instant) -> u64 {
        self.since_start_ns(t) / self.tick_ns
    }

    /// The first tick at or after `t` (rounded up).
    fn tick_ceil(&self, t: Instant) -> u64 {
        self.since_start_ns(t).div_ceil(self.tick_ns)
    }

    fn instant_of(&self, rel: u32) -> Instant {
        let ns = (self.base + rel as u64).saturating_mul(self.tick_ns);
        self.start + Duration::from_nanos(ns)
    }

    /// Deadlines armed now.
    #[cfg(test)]
    fn armed(&self) -> usize {
        self.armed
    }

    /// Bytes of the per-slot array.
    pub(crate) fn table_bytes(&self) -> usize {
        self.at.capacity() * std::mem::size_of::<u32>()
    }

    /// The deadline of slot `index`, if one is armed (rounded up to the tick grid).
    pub(crate) fn get(&self, index: u32) -> Option<Instant> {
        match self.at.get(index as usize) {
            Some(&v) if v != 0 => Some(self.instant_of(v)),
            _ => None,
        }
    }

    /// Arm (or move) the deadline of slot `index` to `when`.
    pub(crate) fn set(&mut self, index: u32, when: Instant) -> Sweep {
        let i = index as usize;
        if self.at.len() <= i {
            self.at.resize(i + 1, 0);
        }
        let rel = self
            .tick_ceil(when)
            .saturating_sub(self.base)
            .clamp(1, u32::MAX as u64) as u32;
        if self.at[i] == 0 {
            self.armed += 1;
        }
        self.at[i] = rel;
        match self.sweep {
            Some(s) if s <= rel => Sweep::Keep,
            _ => {
                self.sweep = Some(rel);
                Sweep::At(self.instant_of(rel))
            }
        }
    }

    /// Disarm the deadline of slot `index` (nothing if none is armed).
    pub(crate) fn clear(&mut self, index: u32) -> Sweep {
        match self.at.get_mut(index as usize) {
            Some(v) if *v != 0 => {
                *v = 0;
                self.armed -= 1;
                if self.armed == 0 {
                    self.sweep = None;
                    Sweep::Cancel
                } else {
                    // The sweep may now find nothing due; it then sets itself for the next.
                    Sweep::Keep
                }
            }
            _ => Sweep::Keep,
        }
    }

    /// The sweep timer fired at `now`: disarm every deadline due and push its slot index to
    /// `due`. Returns when the next sweep is to run, if any deadline is left.
    pub(crate) fn sweep(&mut self, now: Instant, due: &mut Vec<u32>) -> Option<Instant> {
        let now_tick = self.tick_floor(now);
        if now_tick.saturating_sub(self.base) >= REBASE_AFTER {
            self.rebase(now_tick);
        }
        let now_rel = (now_tick - self.base) as u32;
        let mut next = u32::MAX;
        let mut fired = 0;
        for (i, v) in self.at.iter_mut().enumerate() {
            let d = *v;
            if d == 0 {
                continue;
            }
            if d <= now_rel {
                *v = 0;
                fired += 1;
                due.push(i as u32);
            } else {
                next = next.min(d);
            }
        }
        self.armed -= fired;
        if self.armed == 0 {
            self.sweep = None;
            return None;
        }
        self.sweep = Some(next);
        Some(self.instant_of(next))
    }

    /// Move the base up to just below `now_tick`; deadlines already due stay due (value 1).
    fn rebase(&mut self, now_tick: u64) {
        let shift = now_tick - 1 - self.base;
        for v in self.at.iter_mut().filter(|v| **v != 0) {
            *v = (*v as u64).saturating_sub(shift).max(1) as u32;
        }
        self.sweep = self
            .sweep
            .map(|s| (s as u64).saturating_sub(shift).max(1) as u32);
        self.base += shift;
    }

    /// Bytes of storage held (for tests and the memory notes).
    #[cfg(test)]
    fn capacity_bytes(&self) -> usize {
        self.at.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn sweep_at(d: &mut Deadlines, now: Instant) -> (Vec<u32>, Option<Instant>) {
        let mut due = Vec::new();
        let next = d.sweep(now, &mut due);
        due.sort_unstable();
        (due, next)
    }

    #[test]
    fn fires_never_early_and_within_one_tick() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, 100 * MS);
        // 250 ms rounds up to the 300 ms tick; the sweep is set there.
        assert_eq!(d.set(3, t0 + 250 * MS), Sweep::At(t0 + 300 * MS));
        assert_eq!(d.get(3), Some(t0 + 300 * MS));
        assert_eq!(d.armed(), 1);
        // A sweep before it (however it came about) fires nothing and keeps the next sweep.
        assert_eq!(
            sweep_at(&mut d, t0 + 299 * MS),
            (vec![], Some(t0 + 300 * MS))
        );
        assert_eq!(sweep_at(&mut d, t0 + 300 * MS), (vec![3], None));
        assert_eq!(d.armed(), 0);
        assert_eq!(d.get(3), None);
        // A deadline on the grid fires on it.
        assert_eq!(d.set(0, t0 + 500 * MS), Sweep::At(t0 + 500 * MS));
        assert_eq!(sweep_at(&mut d, t0 + 500 * MS), (vec![0], None));
    }

    #[test]
    fn the_sweep_follows_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, 10 * MS);
        assert_eq!(d.set(1, t0 + 1000 * MS), Sweep::At(t0 + 1000 * MS));
        // Later deadlines leave the sweep alone, an earlier one moves it.
        assert_eq!(d.set(2, t0 + 2000 * MS), Sweep::Keep);
        assert_eq!(d.set(5, t0 + 500 * MS), Sweep::At(t0 + 500 * MS));
        // Moving a deadline replaces it (still one armed for slot 5).
        assert_eq!(d.set(5, t0 + 1500 * MS), Sweep::Keep);
        assert_eq!(d.armed(), 3);
        // The sweep at 500 ms finds nothing due and sets itself for the next one.
        assert_eq!(
            sweep_at(&mut d, t0 + 500 * MS),
            (vec![], Some(t0 + 1000 * MS))
        );
        assert_eq!(
            sweep_at(&mut d, t0 + 1600 * MS),
            (vec![1, 5], Some(t0 + 2000 * MS))
        );
        assert_eq!(d.clear(2), Sweep::Cancel);
        assert_eq!(d.clear(2), Sweep::Keep);
        assert_eq!(d.armed(), 0);
        assert_eq!(sweep_at(&mut d, t0 + 5000 * MS), (vec![], None));
    }

    #[test]
    fn clearing_one_of_several_keeps_the_sweep() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, MS);
        d.set(0, t0 + 10 * MS);
        d.set(1, t0 + 20 * MS);
        assert_eq!(d.clear(0), Sweep::Keep);
        assert_eq!(d.clear(7), Sweep::Keep, "a slot never armed");
        assert_eq!(sweep_at(&mut d, t0 + 10 * MS), (vec![], Some(t0 + 20 * MS)));
        assert_eq!(sweep_at(&mut d, t0 + 25 * MS), (vec![1], None));
    }

    #[test]
    fn past_deadlines_fire_at_the_next_sweep() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, 100 * MS);
        let now = t0 + 1000 * MS;
        // Already passed: stored as due, fires at the sweep it asks for.
        let Sweep::At(at) = d.set(4, t0 + 10 * MS) else {
            panic!("a sweep is set")
        };
        assert!(at <= now);
        assert_eq!(sweep_at(&mut d, now), (vec![4], None));
    }

    #[test]
    fn rebasing_keeps_order_and_due_state() {
        let t0 = Instant::now();
        let tick = Duration::from_nanos(1);
        let mut d = Deadlines::new(t0, tick);
        let far = t0 + Duration::from_nanos(REBASE_AFTER + 10);
        let due_soon = far + Duration::from_nanos(5);
        let later = far + Duration::from_nanos(1000);
        // Armed before the base moves, relative to base 0.
        d.set(0, t0 + Duration::from_nanos(3));
        d.set(1, t0 + Duration::from_nanos(REBASE_AFTER + 12));
        // The sweep far past REBASE_AFTER moves the base; slot 0 was due long ago.
        let (due, next) = sweep_at(&mut d, far);
        assert_eq!(due, vec![0]);
        assert_eq!(next, Some(t0 + Duration::from_nanos(REBASE_AFTER + 12)));
        d.set(2, due_soon);
        d.set(3, later);
        assert_eq!(d.get(3), Some(later));
        let (due, next) = sweep_at(&mut d, due_soon);
        assert_eq!(due, vec![1, 2]);
        assert_eq!(next, Some(later));
        assert_eq!(sweep_at(&mut d, later).0, vec![3]);
    }

    #[test]
    fn storage_is_four_bytes_a_slot() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, MS);
        for i in 0..10_000 {
            d.set(i, t0 + 10 * MS);
        }
        assert!(d.capacity_bytes() <= 2 * 4 * 10_000);
        let mut due = Vec::new();
        assert_eq!(d.sweep(t0 + 10 * MS, &mut due), None);
        assert_eq!(due.len(), 10_000);
    }
}
