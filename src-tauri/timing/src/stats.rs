//! A bounded series of recent measurements and its robust typical value.

use std::collections::VecDeque;

/// Measurements kept per series; older ones are dropped.
pub const KEPT: usize = 16;
/// Each older measurement weighs this much of the next newer one, so a workflow that got faster
/// (a model now cached, a new GPU) is believed within a few runs.
const DECAY: f64 = 0.8;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series(VecDeque<f64>);

impl Series {
    /// Adds a measurement; not-finite or negative ones are ignored.
    pub fn push(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        if self.0.len() == KEPT {
            self.0.pop_front();
        }
        self.0.push_back(v);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The median weighted toward recent measurements: one outlier (a cold start loading
    /// models, a run slowed by another program) moves it only when it is the newest of two.
    pub fn typical(&self) -> Option<f64> {
        let n = self.0.len();
        let mut weighted: Vec<(f64, f64)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, v)| (*v, DECAY.powi((n - 1 - i) as i32)))
            .collect();
        if weighted.is_empty() {
            return None;
        }
        weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = weighted.iter().map(|(_, w)| w).sum::<f64>() / 2.0;
        let mut acc = 0.0;
        for (i, (v, w)) in weighted.iter().enumerate() {
            acc += w;
            if (acc - half).abs() < 1e-12 {
                // Exactly on a boundary: between this and the next, like an even median.
                return Some(weighted.get(i + 1).map_or(*v, |(next, _)| (v + next) / 2.0));
            }
            if acc > half {
                return Some(*v);
            }
        }
        weighted.last().map(|(v, _)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(v: &[f64]) -> Series {
        let mut s = Series::default();
        for x in v {
            s.push(*x);
        }
        s
    }

    #[test]
    fn one_measurement_is_its_own_typical_value() {
        assert_eq!(series(&[]).typical(), None);
        assert_eq!(series(&[1200.0]).typical(), Some(1200.0));
    }

    #[test]
    fn a_cold_first_run_stops_counting_once_warm_runs_follow() {
        // Loading the checkpoint made the first run three times longer.
        assert_eq!(series(&[30_000.0, 10_000.0]).typical(), Some(10_000.0));
        assert_eq!(
            series(&[30_000.0, 10_000.0, 10_400.0, 9_800.0]).typical(),
            Some(10_000.0)
        );
    }

    #[test]
    fn one_outlier_among_steady_runs_does_not_move_it() {
        let s = series(&[10_000.0, 10_100.0, 9_900.0, 10_050.0, 45_000.0]);
        let t = s.typical().unwrap();
        assert!((9_900.0..=10_100.0).contains(&t), "{t}");
    }

    #[test]
    fn a_lasting_change_is_believed_within_a_few_runs() {
        let mut s = series(&[10_000.0; 10]);
        for _ in 0..3 {
            s.push(5_000.0);
        }
        assert_eq!(s.typical(), Some(5_000.0), "faster now: three runs say so");
    }

    #[test]
    fn it_keeps_a_bounded_number_and_ignores_nonsense() {
        let mut s = series(&[1.0; 40]);
        s.push(f64::NAN);
        s.push(-5.0);
        s.push(f64::INFINITY);
        assert_eq!(s.len(), KEPT);
        assert_eq!(s.typical(), Some(1.0));
    }
}
