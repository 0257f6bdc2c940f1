//! A token bucket that paces outgoing payload bytes on metered links (`rate_limit`).

use std::time::Duration;

/// A token bucket for `rate` bytes per second, with one second of burst.
pub(super) struct RateBucket {
    rate: Option<u64>,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateBucket {
    /// A bucket for `rate` bytes per second; `None` or 0 never waits.
    pub(super) fn new(rate: Option<u64>) -> Self {
        RateBucket {
            rate,
            tokens: rate.unwrap_or(0) as f64,
            last: tokio::time::Instant::now(),
        }
    }

    /// Takes `bytes` from the bucket, waiting until they are available.
    pub(super) async fn take(&mut self, bytes: usize) {
        let Some(rate) = self.rate.filter(|r| *r > 0) else {
            return;
        };
        let rate = rate as f64;
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_paces_bytes_per_second() {
        let mut bucket = RateBucket::new(Some(1_000));
        let started = tokio::time::Instant::now();
        // One second of burst is free, then 3,000 more bytes take three seconds.
        for _ in 0..4 {
            bucket.take(1_000).await;
        }
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(2_900), "{waited:?}");
        assert!(waited <= Duration::from_millis(3_200), "{waited:?}");
        let mut unlimited = RateBucket::new(None);
        let before = tokio::time::Instant::now();
        unlimited.take(1 << 30).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
