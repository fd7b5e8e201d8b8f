//! Statistics for latency samples, in whole microseconds (`u32`): the
//! figures of one sample ([`percentile`], [`median`], [`mean`]) and of
//! pairs ([`median_difference`]), and two tests of whether two samples
//! could come from one distribution — the two-sample Kolmogorov–Smirnov
//! test ([`KsTest`]), for the samples as wholes, and the sign test
//! ([`SignTest`]), for samples taken in pairs — both also up to a tolerated
//! constant offset ([`OffsetComparison`]).
//!
//! Shared by `tessera-bench` (its `timing` scenario) and Tessera's login
//! timing test (`tests/api/timing.rs`). No dependencies.

pub mod ks;
mod offset;
pub mod sign;
mod summary;

pub use ks::KsTest;
pub use offset::OffsetComparison;
pub use sign::SignTest;
pub use summary::{mean, median, median_difference, percentile, sorted};

#[cfg(test)]
mod tests {
    //! The two tests on synthetic latencies: they must tell a shifted pair
    //! of samples apart, and not two samples of one distribution.

    use super::*;

    /// SplitMix64: deterministic, so the tests give the same verdicts on
    /// every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A login-like latency: 20 ms, up to 4 ms of noise, and one in ten
        /// up to 10 ms slower still (a busy moment).
        fn latency(&mut self) -> f64 {
            let tail = if self.unit() < 0.1 {
                10_000.0 * self.unit()
            } else {
                0.0
            };
            20_000.0 + 4_000.0 * self.unit() + tail
        }
    }

    fn micros(v: f64) -> u32 {
        v.round() as u32
    }

    /// `n` pairs drawn independently; the second of each pair scaled by
    /// `factor`.
    fn independent_pairs(seed: u64, n: usize, factor: f64) -> (Vec<u32>, Vec<u32>) {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| (micros(rng.latency()), micros(rng.latency() * factor)))
            .unzip()
    }

    const ALPHA: f64 = 0.001;

    #[test]
    fn both_accept_two_samples_of_one_distribution() {
        for seed in 1..=20 {
            let (a, b) = independent_pairs(seed, 200, 1.0);
            let ks = KsTest::two_sample(&a, &b).unwrap();
            let sign = SignTest::paired(&a, &b).unwrap();
            assert!(ks.p_value >= ALPHA, "seed {seed}: {ks:?}");
            assert!(sign.p_value >= ALPHA, "seed {seed}: {sign:?}");
        }
    }

    #[test]
    fn both_reject_a_ten_percent_shift() {
        for seed in 1..=20 {
            let (a, b) = independent_pairs(seed, 200, 1.10);
            let ks = KsTest::two_sample(&a, &b).unwrap();
            let sign = SignTest::paired(&a, &b).unwrap();
            assert!(ks.p_value < ALPHA, "seed {seed}: {ks:?}");
            assert!(sign.p_value < ALPHA, "seed {seed}: {sign:?}");
            assert!(sign.second_larger > sign.first_larger, "{sign:?}");
            // And the other way round: two-sided.
            assert!(SignTest::paired(&b, &a).unwrap().p_value < ALPHA);
            assert!(KsTest::two_sample(&b, &a).unwrap().p_value < ALPHA);
        }
    }

    /// Pairs measured together under a load that varies from 1× to 4×
    /// over the run: both members of a pair slowed alike.
    fn loaded_pairs(seed: u64, n: usize, factor: f64) -> (Vec<u32>, Vec<u32>) {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let load = 1.0 + 3.0 * rng.unit();
                let a = load * (20_000.0 + 400.0 * rng.unit());
                let b = load * (20_000.0 + 400.0 * rng.unit()) * factor;
                (micros(a), micros(b))
            })
            .unzip()
    }

    #[test]
    fn the_sign_test_sees_through_a_varying_load() {
        for seed in 1..=20 {
            // 3 % slower: lost in the spread of the samples as wholes, plain
            // within each pair.
            let (a, b) = loaded_pairs(seed, 200, 1.03);
            let sign = SignTest::paired(&a, &b).unwrap();
            assert!(sign.p_value < ALPHA, "seed {seed}: {sign:?}");
            let ks = KsTest::two_sample(&a, &b).unwrap();
            assert!(ks.p_value >= ALPHA, "seed {seed}: {ks:?}");
            // No difference: the load alone makes neither test reject.
            let (a, b) = loaded_pairs(seed, 200, 1.0);
            assert!(SignTest::paired(&a, &b).unwrap().p_value >= ALPHA);
            assert!(KsTest::two_sample(&a, &b).unwrap().p_value >= ALPHA);
        }
    }

    #[test]
    fn a_tolerance_forgives_small_differences_only() {
        // 2 % of the 20 ms base latency.
        const TOLERANCE: u32 = 400;
        for seed in 1..=20 {
            // Quiet pairs, the second a constant 150 µs slower: the plain
            // sign test sees it, an offset within the tolerance explains it.
            let mut rng = Rng(seed);
            let (a, b): (Vec<u32>, Vec<u32>) = (0..200)
                .map(|_| {
                    let level = 20_000.0 + 4_000.0 * rng.unit();
                    let a = level + 200.0 * rng.unit();
                    let b = level + 200.0 * rng.unit() + 150.0;
                    (micros(a), micros(b))
                })
                .unzip();
            assert!(SignTest::paired(&a, &b).unwrap().p_value < ALPHA);
            let within = OffsetComparison::within(&a, &b, TOLERANCE, 20, ALPHA).unwrap();
            assert!(within.p_value() >= ALPHA, "seed {seed}: {within:?}");
            assert!(
                (20..=200).contains(&within.offset),
                "seed {seed}: {within:?}"
            );
            // 10 % slower is far beyond it: both tests reject at every
            // offset within it, either way round.
            let (a, b) = independent_pairs(seed, 200, 1.10);
            for (x, y) in [(&a, &b), (&b, &a)] {
                let within = OffsetComparison::within(x, y, TOLERANCE, 20, ALPHA).unwrap();
                assert!(within.ks.p_value < ALPHA, "seed {seed}: {within:?}");
                assert!(within.sign.p_value < ALPHA, "seed {seed}: {within:?}");
            }
        }
    }
}
