//! Reconnect delays: exponential from a small base, capped, with jitter so that many clients
//! dropped by one server restart do not all come back in the same millisecond.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Failed attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let raw = self.base.saturating_mul(1 << exp).min(self.cap);
        // 75%..100% of the delay.
        let jitter = 0.75 + fastrand::f64() * 0.25;
        raw.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = backoff.next_delay();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(75));
        for _ in 0..10 {
            assert!(backoff.next_delay() <= Duration::from_secs(2));
        }
        assert!(backoff.next_delay() >= Duration::from_millis(1500));
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
