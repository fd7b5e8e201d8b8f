//! Two paired samples compared up to a tolerated constant offset: could
//! they be one distribution, once the second is moved by some constant of
//! at most `tolerance`? Both [`KsTest`] and [`SignTest`] answer "no" to any
//! difference at all once the samples are large and quiet enough, even one
//! too small to matter; asking this instead makes "indistinguishable" mean
//! "no difference larger than the tolerance shows". (The offsets at which
//! the sign test passes at α are its 1 − α confidence interval for the
//! pairs' median difference: this asks whether that interval, narrowed by
//! KS, reaches within the tolerance.)

use crate::{KsTest, SignTest};

/// The two tests at one offset of the second sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffsetComparison {
    /// Subtracted from every value of the second sample before testing, in
    /// the samples' unit: positive when the second sample is the slower.
    pub offset: i64,
    /// The two samples as wholes, the second moved by `offset`.
    pub ks: KsTest,
    /// The pairs, the second of each moved by `offset`.
    pub sign: SignTest,
}

impl OffsetComparison {
    /// The smaller of the two p-values.
    pub fn p_value(&self) -> f64 {
        self.ks.p_value.min(self.sign.p_value)
    }

    /// Pairs (`first[i]`, `second[i]`), the second moved by offsets in
    /// `steps` even steps each side of 0 up to ±`tolerance`, smallest
    /// first: the first offset at which both tests give a p-value of at
    /// least `alpha`, or if none does, the one with the largest
    /// [`Self::p_value`]. `tolerance` 0 (or `steps` 0) is the plain tests.
    /// `None` if the two have different lengths or none.
    pub fn within(
        first: &[u32],
        second: &[u32],
        tolerance: u32,
        steps: u32,
        alpha: f64,
    ) -> Option<OffsetComparison> {
        let mut best = Self::at(first, second, 0)?;
        if best.p_value() >= alpha || tolerance == 0 {
            return Some(best);
        }
        for step in 1..=steps {
            let size = i64::from(tolerance) * i64::from(step) / i64::from(steps);
            for offset in [size, -size] {
                let candidate = Self::at(first, second, offset)?;
                if candidate.p_value() >= alpha {
                    return Some(candidate);
                }
                if candidate.p_value() > best.p_value() {
                    best = candidate;
                }
            }
        }
        Some(best)
    }

    /// Both tests with the second sample moved by `offset`.
    pub fn at(first: &[u32], second: &[u32], offset: i64) -> Option<OffsetComparison> {
        let moved: Vec<u32> = second.iter().map(|&v| shift(v, offset)).collect();
        Some(OffsetComparison {
            offset,
            ks: KsTest::two_sample(first, &moved)?,
            sign: SignTest::paired(first, &moved)?,
        })
    }
}

/// `value − offset`, kept within `u32`.
fn shift(value: u32, offset: i64) -> u32 {
    (i64::from(value) - offset).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tolerance_is_the_plain_tests() {
        let a = [10, 20, 30, 40, 50];
        let b = [12, 19, 35, 41, 58];
        let plain = OffsetComparison::within(&a, &b, 0, 10, 0.5).unwrap();
        assert_eq!(plain.offset, 0);
        assert_eq!(plain.ks, KsTest::two_sample(&a, &b).unwrap());
        assert_eq!(plain.sign, SignTest::paired(&a, &b).unwrap());
        assert_eq!(OffsetComparison::within(&a, &b, 5, 0, 0.5), Some(plain));
        assert_eq!(OffsetComparison::within(&a, &[1], 5, 10, 0.5), None);
    }

    /// 100 values spread over 0..97 above 1000, and the same plus 70.
    fn seventy_apart() -> (Vec<u32>, Vec<u32>) {
        let a: Vec<u32> = (0..100).map(|i| 1000 + i * 13 % 97).collect();
        let b = a.iter().map(|v| v + 70).collect();
        (a, b)
    }

    #[test]
    fn the_offset_found_is_the_difference() {
        let (a, b) = seventy_apart();
        assert!(OffsetComparison::at(&a, &b, 0).unwrap().p_value() < 1e-6);
        // Every pair differs by exactly 70: only there does the sign test
        // pass.
        let found = OffsetComparison::within(&a, &b, 100, 100, 0.001).unwrap();
        assert_eq!(found.offset, 70);
        assert_eq!(found.ks.d, 0.0);
        assert_eq!(found.sign.ties, 100);
        assert_eq!(found.p_value(), 1.0);
        // The other way round: −70.
        let found = OffsetComparison::within(&b, &a, 100, 100, 0.001).unwrap();
        assert_eq!(found.offset, -70);
    }

    #[test]
    fn the_smallest_passing_offset_wins() {
        // Identical samples pass at 0.
        let (a, b) = seventy_apart();
        let same = OffsetComparison::within(&a, &a, 100, 100, 0.001).unwrap();
        assert_eq!(same.offset, 0);
        // Out of reach: what is reported fails. (Every pair is still 20 or
        // more apart at ±50, so all offsets are equally far from passing
        // the sign test, and the first, 0, is kept.)
        let short = OffsetComparison::within(&a, &b, 50, 10, 0.001).unwrap();
        assert!(short.p_value() < 0.001, "{short:?}");
        assert_eq!(short.offset, 0);
    }

    #[test]
    fn values_move_within_u32() {
        assert_eq!(shift(5, 7), 0);
        assert_eq!(shift(5, -7), 12);
        assert_eq!(shift(u32::MAX, -1), u32::MAX);
    }
}
