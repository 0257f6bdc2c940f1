//! What refusals of fleet messages may cost. Anyone who can publish to the broker can send
//! announcements; each refusal is a durable transaction with a report, so without a bound a
//! flood of junk costs a flood of fsyncs and pushes real events out of a full outbox. The gate
//! (pure: time is passed in) de-duplicates refusals of the same message and lets through at most
//! a burst, then one per interval; the rest are only counted, and the next refusal recorded says
//! how many were left out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use outpost_bundle::Digest;

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The same message was refused recently: nothing to record or report again.
    Duplicate,
    /// Record and report it; `suppressed` refusals were left out since the last one recorded.
    Record {
        /// Refusals not recorded since the last recorded one.
        suppressed: u64,
    },
    /// Over the rate: count it only.
    Suppress,
}

/// Bounds the durable writes that refusals cost.
#[derive(Debug)]
pub struct RefusalGate {
    recent: VecDeque<Digest>,
    remember: usize,
    burst: u32,
    tokens: u32,
    every: Duration,
    refilled: Instant,
    suppressed: u64,
}

impl RefusalGate {
    /// Remembers the last `remember` refused messages; records `burst` at once, then one per
    /// `every`.
    pub fn new(remember: usize, burst: u32, every: Duration, now: Instant) -> RefusalGate {
        RefusalGate {
            recent: VecDeque::with_capacity(remember),
            remember: remember.max(1),
            burst,
            tokens: burst,
            every: every.max(Duration::from_millis(1)),
            refilled: now,
            suppressed: 0,
        }
    }

    /// The device's defaults: 1024 messages remembered, 10 refusals at once, then one a minute.
    pub fn standard(now: Instant) -> RefusalGate {
        RefusalGate::new(1024, 10, Duration::from_secs(60), now)
    }

    /// Whether the refusal of the message `key` is recorded at `now`.
    pub fn admit(&mut self, key: Digest, now: Instant) -> Admission {
        if self.recent.contains(&key) {
            return Admission::Duplicate;
        }
        if self.recent.len() == self.remember {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        self.refill(now);
        if self.tokens == 0 {
            self.suppressed += 1;
            return Admission::Suppress;
        }
        self.tokens -= 1;
        Admission::Record {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }

    /// Refusals not recorded since the last recorded one.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = (elapsed.as_nanos() / self.every.as_nanos()).min(u128::from(self.burst));
        if earned > 0 {
            self.tokens = (self.tokens + earned as u32).min(self.burst);
            self.refilled = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Digest {
        outpost_bundle::sha256(&n.to_le_bytes())
    }

    #[test]
    fn a_flood_costs_a_burst_then_one_per_interval_and_repeats_cost_nothing() {
        let start = Instant::now();
        let mut gate = RefusalGate::new(8, 3, Duration::from_secs(10), start);
        let recorded = (0..20_000)
            .filter(|n| matches!(gate.admit(key(*n), start), Admission::Record { .. }))
            .count();
        assert_eq!(recorded, 3);
        assert_eq!(gate.suppressed(), 19_997);
        assert_eq!(gate.admit(key(19_999), start), Admission::Duplicate);
        let later = start + Duration::from_secs(10);
        assert_eq!(
            gate.admit(key(50_000), later),
            Admission::Record { suppressed: 19_997 }
        );
        assert_eq!(gate.admit(key(50_001), later), Admission::Suppress);
        // Long quiet refills the burst, never more.
        let much_later = later + Duration::from_secs(3600);
        let recorded = (60_000..60_010)
            .filter(|n| matches!(gate.admit(key(*n), much_later), Admission::Record { .. }))
            .count();
        assert_eq!(recorded, 3);
    }
}
