//! The two-sample Kolmogorov–Smirnov test: could two samples of latencies
//! come from one distribution? Its statistic D is the largest gap between
//! the two empirical distribution functions, so it notices any kind of
//! difference — a shift of the median, a longer tail, a second mode — not
//! only a difference of means.
//!
//! The p-value is the asymptotic one (Kolmogorov's distribution) with
//! Stephens' small-sample correction, as in Numerical Recipes' `kstwo`:
//! good for samples of a few dozen and more, which is what the bench and the
//! login timing test take.
//!
//! It compares the two samples as wholes, so it assumes each sample's values
//! are independent draws; for samples taken in pairs under a load that
//! varies over time, see also [`crate::sign::SignTest`].

/// The outcome of one two-sample test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsTest {
    /// sup |F₁(x) − F₂(x)|, between 0 and 1.
    pub d: f64,
    /// The approximate probability of a D at least this large if both
    /// samples came from one distribution.
    pub p_value: f64,
}

impl KsTest {
    /// Tests two samples (in any order). `None` if either is empty.
    pub fn two_sample(a: &[u32], b: &[u32]) -> Option<KsTest> {
        if a.is_empty() || b.is_empty() {
            return None;
        }
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort_unstable();
        b.sort_unstable();
        let d = statistic(&a, &b);
        let ne = effective_size(a.len(), b.len());
        let sqrt_ne = ne.sqrt();
        let lambda = (sqrt_ne + 0.12 + 0.11 / sqrt_ne) * d;
        Some(KsTest {
            d,
            p_value: kolmogorov_q(lambda),
        })
    }
}

/// n·m ÷ (n + m): the sample size the asymptotic distribution sees.
fn effective_size(n: usize, m: usize) -> f64 {
    let (n, m) = (n as f64, m as f64);
    n * m / (n + m)
}

/// D of two sorted samples. Equal values are stepped over together, in
/// both samples at once: latencies in whole microseconds do tie, and a gap
/// measured between two ties of one value would be no gap at all.
fn statistic(a: &[u32], b: &[u32]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    // Past the end of one sample its function is 1; the other's only
    // climbs towards 1 from where it is, so the gap there is already counted.
    d
}

/// Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2j²λ²}: the probability that
/// Kolmogorov's statistic exceeds λ. For small λ the series converges
/// too slowly to sum, and Q is 1 to many decimals there anyway.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    const RELATIVE_TO_TERM: f64 = 0.001;
    const RELATIVE_TO_SUM: f64 = 1.0e-8;
    if lambda < 0.2 {
        return 1.0;
    }
    let a2 = -2.0 * lambda * lambda;
    let mut sign = 2.0;
    let mut sum = 0.0;
    let mut previous: f64 = 0.0;
    for j in 1..=100 {
        let j = f64::from(j);
        let term = sign * (a2 * j * j).exp();
        sum += term;
        if term.abs() <= RELATIVE_TO_TERM * previous || term.abs() <= RELATIVE_TO_SUM * sum {
            return sum.clamp(0.0, 1.0);
        }
        sign = -sign;
        previous = term.abs();
    }
    1.0
}

/// The D above which two samples of `n` and `m` differ at significance
/// `alpha` (the asymptotic c(α)·√((n+m)/(n·m)), c(α) = √(−ln(α/2)/2)).
pub fn critical_d(alpha: f64, n: usize, m: usize) -> f64 {
    let c = (-(alpha / 2.0).ln() / 2.0).sqrt();
    c / effective_size(n, m).sqrt()
}

/// The resolving power of a sample: the smallest constant shift δ (in its
/// unit) such that the sample and a copy of it moved by δ differ at
/// significance `alpha`. A difference between two groups smaller than this
/// would likely go unseen with samples this size and this spread. `None`
/// when no shift can (samples too small).
pub fn detectable_shift(sample: &[u32], alpha: f64) -> Option<u32> {
    let differs = |delta: u32| {
        let moved: Vec<u32> = sample.iter().map(|v| v.saturating_add(delta)).collect();
        KsTest::two_sample(sample, &moved).is_some_and(|t| t.p_value < alpha)
    };
    let spread = sample.iter().max()? - sample.iter().min()?;
    // Moved past its whole spread, a sample is disjoint from itself: D = 1.
    let mut high = spread.checked_add(1)?;
    if !differs(high) {
        return None;
    }
    // D of a sample against its own shift only grows with the shift.
    let mut low = 0;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if differs(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn one_sample_against_itself_gives_no_gap() {
        let a = [5, 1, 4, 2, 3];
        let test = KsTest::two_sample(&a, &a).unwrap();
        assert_eq!(test.d, 0.0);
        assert_eq!(test.p_value, 1.0);
    }

    #[test]
    fn disjoint_samples_differ_entirely() {
        let low: Vec<u32> = (0..100).collect();
        let high: Vec<u32> = (1000..1100).collect();
        let test = KsTest::two_sample(&high, &low).unwrap();
        assert_eq!(test.d, 1.0);
        assert!(test.p_value < 1e-20, "{}", test.p_value);
    }

    #[test]
    fn ties_are_stepped_over_together() {
        // F_a: 1 → 0.25, 2 → 0.75, 3 → 1; F_b: 2 → 0.75, 4 → 1. The gap is
        // 0.25 (at 1 and at 3), not the 0.75 of a merge that takes a's 2s
        // before b's.
        let test = KsTest::two_sample(&[1, 2, 2, 3], &[2, 2, 2, 4]).unwrap();
        assert_eq!(test.d, 0.25);
    }

    #[test]
    fn unequal_sizes_and_shift() {
        // F_a after 1, 2, 3: 1/3, 2/3, 1; F_b after 2, 3, 4, 5, 6, 7:
        // steps of 1/6. Largest gap at 1 and at 2: 1/3 and 2/3 − 1/6.
        let test = KsTest::two_sample(&[1, 2, 3], &[2, 3, 4, 5, 6, 7]).unwrap();
        assert!(close(test.d, 2.0 / 3.0, 1e-12), "{}", test.d);
        assert_eq!(KsTest::two_sample(&[], &[1]), None);
    }

    #[test]
    fn kolmogorov_distribution_at_known_points() {
        // Standard tables: Q(1.3581) = 0.05, Q(1.6276) = 0.01, Q(1) = 0.27.
        assert!(close(kolmogorov_q(1.3581), 0.05, 1e-4));
        assert!(close(kolmogorov_q(1.6276), 0.01, 1e-4));
        assert!(close(kolmogorov_q(1.0), 0.269_999_7, 1e-6));
        assert_eq!(kolmogorov_q(0.0), 1.0);
        assert!(kolmogorov_q(5.0) < 1e-20);
    }

    #[test]
    fn detectable_shift_is_the_smallest_that_differs() {
        // 0..300 against itself moved by δ: D = δ/300.
        let sample: Vec<u32> = (0..300).collect();
        let delta = detectable_shift(&sample, 0.01).unwrap();
        let p = |d: u32| {
            let moved: Vec<u32> = sample.iter().map(|v| v + d).collect();
            KsTest::two_sample(&sample, &moved).unwrap().p_value
        };
        assert!(p(delta) < 0.01 && p(delta - 1) >= 0.01, "{delta}");
        assert_eq!(delta, 40); // D = 0.133 ≈ critical_d(0.01, 300, 300)
        // Two values can't tell anything at 1 %.
        assert_eq!(detectable_shift(&[1, 2], 0.01), None);
    }

    #[test]
    fn critical_d_for_two_samples_of_300() {
        // 1.6276 × √(600 / 90000)
        assert!(close(critical_d(0.01, 300, 300), 0.1329, 1e-4));
        assert!(close(critical_d(0.05, 300, 300), 0.1109, 1e-4));
    }

    #[test]
    fn p_value_includes_the_small_sample_correction() {
        // n = m = 300: ne = 150, λ = (√150 + 0.12 + 0.11/√150)·D.
        let a: Vec<u32> = (0..300).collect();
        let b: Vec<u32> = (30..330).collect(); // D = 0.1
        let test = KsTest::two_sample(&a, &b).unwrap();
        assert!(close(test.d, 0.1, 1e-12), "{}", test.d);
        let lambda = (150f64.sqrt() + 0.12 + 0.11 / 150f64.sqrt()) * 0.1;
        assert!(close(test.p_value, kolmogorov_q(lambda), 1e-12));
        assert!(close(test.p_value, 0.0934, 0.001), "{}", test.p_value);
    }
}
