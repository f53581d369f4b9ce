//! Latency samples and their summary (nearest-rank percentiles, like the peers' scripts).

use serde::{Deserialize, Serialize};

/// Latency samples in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    us: Vec<u64>,
}

/// Percentiles of a set of samples, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples {
            us: Vec::with_capacity(n),
        }
    }

    pub fn push_us(&mut self, us: u64) {
        self.us.push(us);
    }

    pub fn push(&mut self, d: std::time::Duration) {
        self.us
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.us.extend(other.us);
    }

    pub fn len(&self) -> usize {
        self.us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.us.is_empty()
    }

    pub fn summary(&self) -> Summary {
        if self.us.is_empty() {
            return Summary::default();
        }
        let mut s = self.us.clone();
        s.sort_unstable();
        let pct = |p: f64| {
            let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
            s[rank.clamp(1, s.len()) - 1] as f64 / 1000.0
        };
        let sum: u128 = s.iter().map(|&v| u128::from(v)).sum();
        Summary {
            n: s.len(),
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: s[s.len() - 1] as f64 / 1000.0,
            mean_ms: (sum as f64 / s.len() as f64) / 1000.0,
        }
    }
}

/// The median of some values (0 for none).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if !v.len().is_multiple_of(2) {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for v in 1..=100 {
            s.push_us(v * 1000);
        }
        let sum = s.summary();
        assert_eq!(sum.n, 100);
        assert_eq!(sum.p50_ms, 50.0);
        assert_eq!(sum.p99_ms, 99.0);
        assert_eq!(sum.max_ms, 100.0);
        assert_eq!(Samples::default().summary(), Summary::default());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
