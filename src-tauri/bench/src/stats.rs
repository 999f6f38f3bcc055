//! Order statistics over repeated runs. Pure functions, no clock.

/// The `p`-th percentile (0–100) by linear interpolation between the two nearest ranks (the
/// "type 7" definition spreadsheets and numpy use). `None` for no samples; NaNs sort last.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let frac = rank - low as f64;
    Some(sorted[low] + (sorted[high] - sorted[low]) * frac)
}

pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// Rounds for the report: figures are not more precise than the machine they ran on.
pub fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_odd_count_is_the_middle_sample() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn extreme_percentiles_are_the_minimum_and_maximum() {
        let s = [7.0, 2.0, 9.0, 4.0];
        assert_eq!(percentile(&s, 0.0), Some(2.0));
        assert_eq!(percentile(&s, 100.0), Some(9.0));
        assert_eq!(percentile(&s, 250.0), Some(9.0));
    }

    #[test]
    fn p99_of_twenty_samples_interpolates_between_the_top_two() {
        let s: Vec<f64> = (1..=20).map(f64::from).collect();
        let p99 = percentile(&s, 99.0).unwrap();
        assert!((p99 - 19.81).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn no_samples_have_no_percentile() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        assert_eq!(percentile(&[42.0], 99.0), Some(42.0));
    }

    #[test]
    fn rounding_keeps_the_asked_decimals() {
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(round(1.235, 0), 1.0);
    }
}
