//! The two-sided sign test for paired samples: in pairs (aᵢ, bᵢ) measured
//! together, is a as often the larger as b is? If both come from one
//! distribution and each pair's order of measurement is balanced, the number
//! of pairs with aᵢ > bᵢ among those that differ is Binomial(n, ½).
//!
//! Unlike the two-sample tests it uses the pairing: a slow patch of the
//! machine (another process, a frequency change) slows both members of the
//! pairs measured in it, and the sign of each pair's difference doesn't see
//! it. So it keeps its power, and its false-alarm rate, under a load that
//! varies over time, where a test of the two samples as wholes sees only
//! two wide, overlapping distributions. It needs no assumption about the
//! latencies' distribution; ties (equal values) are left out, as usual.
//!
//! The p-value is exact (the binomial sum), not the normal approximation.

/// The outcome of one paired test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignTest {
    /// Pairs whose first value is the larger.
    pub first_larger: usize,
    /// Pairs whose second value is the larger.
    pub second_larger: usize,
    /// Pairs with equal values: not counted.
    pub ties: usize,
    /// The exact two-sided probability of a split at least this uneven if
    /// either value of a pair were as likely as the other to be the larger.
    pub p_value: f64,
}

impl SignTest {
    /// Tests the pairs (`a[i]`, `b[i]`). `None` if the two have different
    /// lengths or none.
    pub fn paired(a: &[u32], b: &[u32]) -> Option<SignTest> {
        if a.len() != b.len() || a.is_empty() {
            return None;
        }
        let (mut first_larger, mut second_larger, mut ties) = (0, 0, 0);
        for (x, y) in a.iter().zip(b) {
            match x.cmp(y) {
                std::cmp::Ordering::Greater => first_larger += 1,
                std::cmp::Ordering::Less => second_larger += 1,
                std::cmp::Ordering::Equal => ties += 1,
            }
        }
        Some(SignTest {
            first_larger,
            second_larger,
            ties,
            p_value: two_sided_p(first_larger as u64, second_larger as u64),
        })
    }

    /// Pairs that differ: the trials of the binomial.
    pub fn untied(&self) -> usize {
        self.first_larger + self.second_larger
    }
}

/// 2·P(X ≤ min(k, n − k)) for X ~ Binomial(n, ½), n = `k + l`, at most 1.
fn two_sided_p(k: u64, l: u64) -> f64 {
    let n = k + l;
    if n == 0 {
        return 1.0;
    }
    (2.0 * binomial_half_cdf(k.min(l), n)).min(1.0)
}

/// P(X ≤ k) for X ~ Binomial(n, ½), summed exactly in logarithms (no
/// overflow of the binomial coefficients, and no underflow of the 2⁻ⁿ
/// before the terms that matter are added).
pub fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    // ln C(n, i) for i = 0..=k, each from the one before.
    let mut ln_choose = 0.0_f64;
    let mut terms = Vec::with_capacity(k as usize + 1);
    terms.push(ln_choose);
    for i in 0..k {
        ln_choose += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        terms.push(ln_choose);
    }
    // Σ exp(tᵢ) = exp(max) · Σ exp(tᵢ − max).
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    let ln_p = max + sum.ln() - n as f64 * std::f64::consts::LN_2;
    ln_p.exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn binomial_cdf_at_known_points() {
        // Σ C(10, i) for i ≤ 2 = 1 + 10 + 45 = 56, over 2¹⁰.
        assert!(close(binomial_half_cdf(2, 10), 56.0 / 1024.0, 1e-15));
        assert!(close(binomial_half_cdf(0, 10), 1.0 / 1024.0, 1e-15));
        // 1 + 20 + 190 + 1140 + 4845 + 15504 = 21700, over 2²⁰.
        assert!(close(
            binomial_half_cdf(5, 20),
            21_700.0 / 1_048_576.0,
            1e-15
        ));
        assert_eq!(binomial_half_cdf(10, 10), 1.0);
        // Symmetric: for even n, P(X ≤ n/2) = ½ + ½·P(X = n/2) and
        // P(X ≤ n/2 − 1) = ½ − ½·P(X = n/2).
        let half = binomial_half_cdf(500, 1000);
        let below = binomial_half_cdf(499, 1000);
        assert!(close(half + below, 1.0, 1e-12), "{half} + {below}");
        // P(X = 500) = C(1000, 500) / 2¹⁰⁰⁰ ≈ 0.025225.
        assert!(close(half - below, 0.025_225, 1e-6), "{}", half - below);
        // Far in the tail: tiny, not NaN or 0 from an overflow.
        let tail = binomial_half_cdf(100, 1000);
        assert!(tail > 0.0 && tail < 1e-80, "{tail}");
    }

    #[test]
    fn p_value_of_known_splits() {
        // 0 of 10 the other way: 2 · 2⁻¹⁰.
        let a = [2; 10];
        let b = [1; 10];
        let test = SignTest::paired(&a, &b).unwrap();
        assert_eq!(
            (test.first_larger, test.second_larger, test.ties),
            (10, 0, 0)
        );
        assert!(close(test.p_value, 2.0 / 1024.0, 1e-15));
        // 2 against 8: 2 · 56 / 1024.
        let a = [1, 1, 5, 5, 5, 5, 5, 5, 5, 5];
        let b = [2, 2, 4, 4, 4, 4, 4, 4, 4, 4];
        let test = SignTest::paired(&a, &b).unwrap();
        assert!(close(test.p_value, 0.109_375, 1e-15));
        // The same split the other way round: the same p.
        assert_eq!(SignTest::paired(&b, &a).unwrap().p_value, test.p_value);
        // An even split can't be more even: p = 1 (capped).
        let test = SignTest::paired(&[1, 2], &[2, 1]).unwrap();
        assert_eq!(test.p_value, 1.0);
    }

    #[test]
    fn ties_are_left_out() {
        // 3 ties, then 5 of 5 one way: 2 · 2⁻⁵.
        let test = SignTest::paired(&[7, 7, 7, 2, 2, 2, 2, 2], &[7, 7, 7, 1, 1, 1, 1, 1]).unwrap();
        assert_eq!(test.ties, 3);
        assert_eq!(test.untied(), 5);
        assert!(close(test.p_value, 2.0 / 32.0, 1e-15));
        // Nothing but ties: nothing against the hypothesis.
        assert_eq!(SignTest::paired(&[3, 3], &[3, 3]).unwrap().p_value, 1.0);
    }

    #[test]
    fn needs_pairs() {
        assert_eq!(SignTest::paired(&[], &[]), None);
        assert_eq!(SignTest::paired(&[1, 2], &[1]), None);
    }
}
