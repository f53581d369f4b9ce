//! When a transiently failed job may run again: capped exponential backoff with jitter, so that
//! many jobs failing on one outage do not retry in lockstep.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`, capped, then
    /// scaled by a random factor in [0.5, 1.0).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        for _ in 0..100 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_millis(500) && first < Duration::from_secs(1));
            let third = policy.delay(3);
            assert!(third >= Duration::from_secs(2) && third < Duration::from_secs(4));
            let late = policy.delay(30);
            assert!(late >= Duration::from_secs(5) && late < Duration::from_secs(10));
        }
    }
}
