//! Figures of one sample: percentiles, the median, the mean.

/// Nearest-rank percentile of sorted values: the smallest value that at
/// least `p` percent of the values are less than or equal to. `None` for
/// no values.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    debug_assert!(sorted.is_sorted(), "percentile of unsorted values");
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of sorted values: the middle one, or the mean of the two
/// middle ones. `None` for no values.
pub fn median(sorted: &[u32]) -> Option<f64> {
    debug_assert!(sorted.is_sorted(), "median of unsorted values");
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(f64::from(sorted[n / 2])),
        _ => Some((f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0),
    }
}

/// The arithmetic mean, in any order. `None` for no values.
pub fn mean(values: &[u32]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64)
}

/// The median of the pairs' differences `second[i] − first[i]`: how much
/// slower the second of a pair typically is than the first (negative:
/// faster). `None` if the two have different lengths or none.
pub fn median_difference(first: &[u32], second: &[u32]) -> Option<f64> {
    if first.len() != second.len() || first.is_empty() {
        return None;
    }
    let mut differences: Vec<i64> = first
        .iter()
        .zip(second)
        .map(|(&a, &b)| i64::from(b) - i64::from(a))
        .collect();
    differences.sort_unstable();
    let n = differences.len();
    Some(if n % 2 == 1 {
        differences[n / 2] as f64
    } else {
        (differences[n / 2 - 1] + differences[n / 2]) as f64 / 2.0
    })
}

/// A sorted copy.
pub fn sorted(values: &[u32]) -> Vec<u32> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 90.0), Some(90));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 100.0), Some(100));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // 10 values: p99 is the largest, p50 the 5th.
        let ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&ten, 99.0), Some(10));
        assert_eq!(percentile(&ten, 50.0), Some(5));
    }

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&sorted(&[30, 10, 20, 50, 40])), Some(30.0));
        assert_eq!(median(&sorted(&[4, 1, 3, 2])), Some(2.5));
        assert_eq!(median(&[7]), Some(7.0));
        assert_eq!(median(&[]), None);
        // No overflow on the largest values.
        assert_eq!(median(&[u32::MAX, u32::MAX]), Some(f64::from(u32::MAX)));
    }

    #[test]
    fn median_of_the_pairs_differences() {
        // Differences 5, −1, 10: median 5 (not the difference of the
        // medians, 3 − 2).
        assert_eq!(median_difference(&[1, 3, 2], &[6, 2, 12]), Some(5.0));
        assert_eq!(median_difference(&[6, 2, 12], &[1, 3, 2]), Some(-5.0));
        assert_eq!(
            median_difference(&[0, 0], &[1, u32::MAX]),
            Some(2_147_483_648.0)
        );
        assert_eq!(median_difference(&[1], &[]), None);
        assert_eq!(median_difference(&[], &[]), None);
    }

    #[test]
    fn mean_in_any_order() {
        assert_eq!(mean(&[30, 10, 20, 50, 40]), Some(30.0));
        assert_eq!(mean(&[1, 2]), Some(1.5));
        assert_eq!(mean(&[]), None);
    }
}
