//! A compact latency histogram: log-linear buckets, as in HdrHistogram, in 16 KiB.
//!
//! Values (microseconds) below 128 have a bucket each. Above, every power of two is split into
//! 64 equal buckets, so a bucket's width is at most 1/64 of its values: a percentile is reported
//! within 1.6% (as the bucket's highest value, so never below the truth). Recording is an index
//! computation and an increment; each worker has its own histogram and they are merged at the
//! end, so there is no sharing while measuring.

/// log2 of the buckets per power of two.
const SUB_BITS: u32 = 6;
/// Values at or above this (about 19 hours in microseconds) share the last bucket.
const CAP: u64 = (1 << 36) - 1;
const BUCKETS: usize = bucket(CAP) + 1;

/// The bucket of `v` (at most [`CAP`]).
const fn bucket(v: u64) -> usize {
    let msb = 63 - (v | 1).leading_zeros();
    let shift = msb.saturating_sub(SUB_BITS);
    // shift = 0 below 128: v itself; above, 64 buckets per power of two, contiguous.
    (shift as usize) * (1 << SUB_BITS) + (v >> shift) as usize
}

/// The lowest and highest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let sub = 1usize << SUB_BITS;
    if i < 2 * sub {
        return (i as u64, i as u64);
    }
    let shift = i / sub - 1;
    let mantissa = (i - shift * sub) as u64;
    let low = mantissa << shift;
    (low, low + (1 << shift) - 1)
}

/// Latencies in microseconds.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// Records one value.
    pub(crate) fn record(&mut self, micros: u64) {
        let v = micros.min(CAP);
        if let Some(c) = self.counts.get_mut(bucket(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// Adds another histogram's values.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The largest value, exactly.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0 < q ≤ 1): the highest value of the bucket holding the
    /// ⌈q·n⌉-th smallest value, capped by the maximum. 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // q·n is a non-negative count no larger than n, so the cast neither wraps nor truncates.
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bounds(i).1.min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        let mut last = 0;
        for v in (0..100_000u64).chain([CAP - 1, CAP]) {
            let i = bucket(v);
            assert!(i == last || i == last + 1 || v >= CAP - 1, "gap at {v}");
            last = i;
            let (low, high) = bounds(i);
            assert!(
                low <= v && v <= high,
                "{v} not in bucket {i} = {low}..={high}"
            );
            assert!(
                (high - low) * 64 <= low,
                "bucket {i} too wide: {low}..={high}"
            );
        }
        assert_eq!(bucket(127), 127);
        assert_eq!(bucket(128), 128);
        assert_eq!(bounds(128), (128, 129));
        assert_eq!(BUCKETS, bucket(CAP) + 1);
        const { assert!(BUCKETS <= 2048) };
    }

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=100_000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.max(), 100_000);
        for (q, want) in [
            (0.5, 50_000u64),
            (0.99, 99_000),
            (0.999, 99_900),
            (1.0, 100_000),
        ] {
            let got = h.quantile(q);
            assert!(
                got >= want && got <= want + want / 64,
                "q{q}: {got} vs {want}"
            );
        }
        let q = h.quantile(0.25);
        assert!((25_000..=25_000 + 25_000 / 64).contains(&q), "{q}");
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_max() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(10);
        b.record(1_000_000);
        b.record(u64::MAX);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), u64::MAX);
        assert_eq!(a.quantile(0.34), bounds(bucket(1_000_000)).1);
    }
}
