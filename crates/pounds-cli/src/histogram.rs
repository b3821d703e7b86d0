//! A small log-linear latency histogram: 16 sub-buckets per power of two (about 6% resolution),
//! cheap to record into and to merge across threads and processes.

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 64 * SUB;

#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn bucket(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros();
    let mantissa = (value >> (magnitude - SUB_BITS)) as usize & (SUB - 1);
    (magnitude - SUB_BITS + 1) as usize * SUB + mantissa
}

/// The smallest value that falls in bucket `index`.
fn lower_bound(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let magnitude = (index / SUB) as u32 + SUB_BITS - 1;
    let mantissa = (index % SUB) as u64;
    (1u64 << magnitude) | (mantissa << (magnitude - SUB_BITS))
}

impl Histogram {
    pub(crate) fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0 to 1.0): the lower bound of the bucket it falls in.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64 * q).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return lower_bound(index).min(self.max);
            }
        }
        self.max
    }

    /// One line of `index:count` pairs for the non-empty buckets, then `max`, for handing a
    /// histogram from a child process to its parent.
    pub(crate) fn encode(&self) -> String {
        let mut line = format!("max:{}", self.max);
        for (index, &count) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            line.push_str(&format!(" {index}:{count}"));
        }
        line
    }

    pub(crate) fn decode(line: &str) -> Option<Histogram> {
        let mut histogram = Histogram::default();
        for pair in line.split_whitespace() {
            let (key, value) = pair.split_once(':')?;
            let value: u64 = value.parse().ok()?;
            if key == "max" {
                histogram.max = value;
            } else {
                let index: usize = key.parse().ok()?;
                *histogram.counts.get_mut(index)? += value;
                histogram.total += value;
            }
        }
        Some(histogram)
    }
}

/// A duration in nanoseconds, in the unit that reads best.
pub(crate) fn nanos(value: u64) -> String {
    match value {
        0..1_000 => format!("{value} ns"),
        1_000..1_000_000 => format!("{:.1} µs", value as f64 / 1e3),
        _ => format!("{:.2} ms", value as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for value in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let index = bucket(value);
            assert!(index >= last, "bucket order broke at {value}");
            assert!(lower_bound(index) <= value, "lower bound above {value}");
            last = index;
        }
    }

    #[test]
    fn quantiles_are_within_resolution() {
        let mut h = Histogram::default();
        for value in 1..=10_000u64 {
            h.record(value);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.07, "p50 {p50}");
        let p100 = h.quantile(1.0);
        assert!((9_000..=10_000).contains(&p100), "p100 {p100}");
        assert_eq!(h.max(), 10_000);
    }

    #[test]
    fn encode_decode_round_trips_and_merges() {
        let mut a = Histogram::default();
        for value in [3, 40, 500, 6000, 70_000] {
            a.record(value);
        }
        let b = Histogram::decode(&a.encode()).unwrap();
        assert_eq!(b.count(), 5);
        assert_eq!(b.max(), 70_000);
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.count(), 10);
        assert_eq!(merged.quantile(0.5), a.quantile(0.5));
        assert!(Histogram::decode("max:1 junk").is_none());
        assert!(Histogram::decode("99999:1").is_none());
    }
}
