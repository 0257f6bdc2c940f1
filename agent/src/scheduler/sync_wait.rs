//! Cron triggers wait for a synchronised wall clock: on a board without an RTC the clock is
//! wrong from boot until NTP syncs, and a cron job run then runs at the wrong moment. The wait
//! is bounded, so a device that never reaches a time server still runs its jobs (on the clock
//! it has, and says so). Interval and sensor triggers run on the monotonic clock and never wait.

use std::time::Duration;

use outpost_hal::Clock;
use tokio::sync::watch;

/// How cron triggers wait for a synchronised clock (agent.toml `[clock]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncWait {
    /// Longest wait before a cron trigger runs on an unsynchronised clock.
    pub max: Duration,
    /// How often the clock is asked while waiting (only until it syncs, then never again).
    pub poll: Duration,
}

impl SyncWait {
    /// Waits up to `max`, asking every 2 s.
    pub fn up_to(max: Duration) -> SyncWait {
        SyncWait {
            max,
            poll: Duration::from_secs(2),
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The clock was synchronised from the start.
    AlreadySynced,
    /// It synchronised after about this long.
    Synced(Duration),
    /// It did not synchronise within the bound.
    TimedOut,
    /// Shutdown came first.
    Stopped,
}

/// Waits until `clock` is synchronised, `wait.max` has passed, or `stop` turns true.
pub async fn wait_for_sync(
    clock: &dyn Clock,
    wait: SyncWait,
    stop: &mut watch::Receiver<bool>,
) -> Waited {
    if clock.synced() {
        return Waited::AlreadySynced;
    }
    let started = tokio::time::Instant::now();
    loop {
        let waited = started.elapsed();
        if waited >= wait.max {
            return Waited::TimedOut;
        }
        let nap = wait.poll.min(wait.max - waited);
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Waited::Stopped,
        }
        if clock.synced() {
            return Waited::Synced(started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use outpost_hal::ManualClock;

    use super::*;

    const WAIT: SyncWait = SyncWait {
        max: Duration::from_secs(60),
        poll: Duration::from_secs(2),
    };

    #[tokio::test(start_paused = true)]
    async fn a_synced_clock_does_not_wait() {
        let (_stop, mut stopped) = watch::channel(false);
        let clock = ManualClock::new(1_000);
        assert_eq!(
            wait_for_sync(&clock, WAIT, &mut stopped).await,
            Waited::AlreadySynced
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_when_the_clock_syncs() {
        let (_stop, mut stopped) = watch::channel(false);
        let clock = Arc::new(ManualClock::unsynced(0));
        let syncer = {
            let clock = clock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(7)).await;
                clock.sync_to(1_795_463_238_000);
            })
        };
        let waited = wait_for_sync(&*clock, WAIT, &mut stopped).await;
        syncer.await.expect("syncer");
        assert_eq!(waited, Waited::Synced(Duration::from_secs(8)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded_and_stops_on_shutdown() {
        let (stop, mut stopped) = watch::channel(false);
        let clock = ManualClock::unsynced(0);
        let started = tokio::time::Instant::now();
        assert_eq!(
            wait_for_sync(&clock, WAIT, &mut stopped).await,
            Waited::TimedOut
        );
        assert_eq!(started.elapsed(), WAIT.max);
        stop.send_replace(true);
        assert_eq!(
            wait_for_sync(&clock, WAIT, &mut stopped).await,
            Waited::Stopped
        );
    }
}
