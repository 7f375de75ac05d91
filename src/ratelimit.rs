//! A token bucket shared by every connection of one direction, so
//! `--upload-limit 10M` caps the whole process, not each socket.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` in bytes per second. The burst is a tenth of a second's worth
    /// (at least 64 KiB) so short bursts stay smooth without overshooting.
    pub fn new(rate: u64) -> RateLimiter {
        let rate = rate.max(1) as f64;
        let burst = (rate / 10.0).max(64.0 * 1024.0);
        RateLimiter {
            rate,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// Takes `n` bytes' worth of tokens, sleeping when the bucket is in
    /// debt. The lock is held only for the arithmetic, never while sleeping.
    /// `before_sleep` runs only when there will be a wait.
    pub fn take(&self, n: usize, before_sleep: impl FnOnce()) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            before_sleep();
            std::thread::sleep(wait);
        }
    }

    fn reserve(&self, n: usize, now: Instant) -> Duration {
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }
}

/// Takes from the limiter if there is one; see `RateLimiter::take`.
pub fn throttle(
    limit: &Option<std::sync::Arc<RateLimiter>>,
    n: usize,
    before_sleep: impl FnOnce(),
) {
    if let Some(l) = limit {
        l.take(n, before_sleep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_turns_into_waiting_time() {
        let l = RateLimiter::new(1 << 20);
        let t0 = Instant::now();
        // The first burst is free.
        assert_eq!(l.reserve(100 << 10, t0), Duration::ZERO);
        // The next 1 MiB costs about a second, minus what is left.
        let w = l.reserve(1 << 20, t0);
        assert!(
            w > Duration::from_millis(900) && w < Duration::from_millis(1100),
            "{w:?}"
        );
        // Time passing pays the debt back.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(l.reserve(1000, later), Duration::ZERO);
    }

    #[test]
    fn long_run_rate_is_the_limit() {
        let l = RateLimiter::new(1000 * 4096);
        let t0 = Instant::now();
        let mut total_wait = Duration::ZERO;
        for _ in 0..2000 {
            total_wait = l.reserve(4096, t0);
        }
        // 2000 blocks at 1000 blocks/s: about 2 s, less the burst.
        let s = total_wait.as_secs_f64();
        assert!((1.8..2.1).contains(&s), "{s}");
    }
}
