//! Per-token rate limiting of the write path: a token bucket per token, refilled continuously.
//! A request over the rate is refused at once (429 with `Retry-After`), before any work.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Token buckets by key (a token id). `rate` requests per second, bursts up to `rate`.
pub struct RateLimiter {
    rate: f64,
    buckets: DashMap<String, Bucket>,
}

struct Bucket {
    available: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// `rate` requests per second per key; 0 means unlimited.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            buckets: DashMap::new(),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    /// Takes one request from `key`'s bucket; otherwise how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.is_unlimited() {
            return Ok(());
        }
        let mut bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            available: self.rate,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.available = (bucket.available + elapsed * self.rate).min(self.rate);
        bucket.refilled = now;
        if bucket.available >= 1.0 {
            bucket.available -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.available) / self.rate,
            ))
        }
    }

    /// Forgets a key (its token was revoked).
    pub fn forget(&self, key: &str) {
        self.buckets.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_then_refills() {
        let limiter = RateLimiter::new(5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
        let wait = limiter.check_at("a", t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(limiter.check_at("b", t0).is_ok());
        // After 200 ms one more request fits.
        assert!(
            limiter
                .check_at("a", t0 + Duration::from_millis(200))
                .is_ok()
        );
        assert!(
            limiter
                .check_at("a", t0 + Duration::from_millis(200))
                .is_err()
        );
        assert!(RateLimiter::new(0).check("x").is_ok());
    }
}
