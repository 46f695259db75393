//! Shared pieces of the detectors: a sorted sliding window for ranks, and the fit schedule.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The last `cap` values, kept in arrival order (for eviction) and sorted (for ranks).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SortedWindow {
    cap: usize,
    ring: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl SortedWindow {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, ring: VecDeque::with_capacity(cap.min(1 << 16)), sorted: Vec::with_capacity(cap.min(1 << 16)) }
    }

    /// Values, ascending.
    pub(crate) fn sorted(&self) -> &[f64] {
        &self.sorted
    }

    /// How many values are ≥ x.
    pub(crate) fn count_ge(&self, x: f64) -> usize {
        self.sorted.len() - self.sorted.partition_point(|v| *v < x)
    }

    /// How many values are ≤ x.
    pub(crate) fn count_le(&self, x: f64) -> usize {
        self.sorted.partition_point(|v| *v <= x)
    }

    /// Add a value, evicting the oldest beyond `cap`.
    pub(crate) fn insert(&mut self, x: f64) {
        if self.ring.len() == self.cap
            && let Some(old) = self.ring.pop_front()
        {
            let i = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(i);
        }
        self.ring.push_back(x);
        let i = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(i, x);
    }
}

/// The refractory period of a detector's score: after a score ≥ `alarm_score`, the next `rows`
/// rows' scores are multiplied by `factor`, so one incident raises one alarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Refractory {
    rows: usize,
    factor: f64,
    alarm_score: f64,
    since_alarm: usize,
}

impl Refractory {
    pub(crate) fn new(rows: usize, factor: f64, alarm_score: f64) -> Self {
        Self { rows, factor, alarm_score, since_alarm: usize::MAX }
    }

    /// This row's score after the refractory period; an alarm outside one starts the next.
    pub(crate) fn apply(&mut self, mut score: f64) -> f64 {
        if self.since_alarm < self.rows {
            score *= self.factor;
        }
        self.since_alarm = self.since_alarm.saturating_add(1);
        if score >= self.alarm_score && self.since_alarm > self.rows {
            self.since_alarm = 0;
        }
        score
    }
}

/// When a detector without a training split (re)fits: first after `fit_after_rows` rows, then
/// every `refit_every_rows` (0: never again).
pub fn fit_due(rows: usize, fit_after_rows: usize, refit_every_rows: usize) -> bool {
    rows == fit_after_rows || (refit_every_rows > 0 && rows > fit_after_rows && (rows - fit_after_rows).is_multiple_of(refit_every_rows))
}

/// The rows a detector fits on: a training split when one was learned (fitted once, no
/// refits), else its own past rows on the [`fit_due`] schedule.
#[derive(Debug, Clone, Default)]
pub struct ReferenceRows {
    rows: usize,
    history: VecDeque<Vec<f64>>,
    train: Vec<Vec<f64>>,
    trained: bool,
}

impl ReferenceRows {
    /// Add a row of the training split (kept when every value is finite).
    pub fn learn(&mut self, values: &[f64]) {
        if values.iter().all(|v| v.is_finite()) {
            self.train.push(values.to_vec());
        }
    }

    /// The training split, once, when at least `min_rows` were learned and it was not used yet.
    pub fn take_training(&mut self, min_rows: usize) -> Option<Vec<Vec<f64>>> {
        if self.trained || self.train.len() < min_rows || self.train.is_empty() {
            return None;
        }
        self.trained = true;
        Some(std::mem::take(&mut self.train))
    }

    /// Record a scored row (kept when every value is finite, at most `history_rows`); returns
    /// the kept rows when a (re)fit is due and at least `min_rows` are kept. Nothing once a
    /// training split was used.
    pub fn observe(
        &mut self,
        values: &[f64],
        history_rows: usize,
        fit_after_rows: usize,
        refit_every_rows: usize,
        min_rows: usize,
    ) -> Option<Vec<Vec<f64>>> {
        if self.trained {
            return None;
        }
        if values.iter().all(|v| v.is_finite()) {
            self.history.push_back(values.to_vec());
            if self.history.len() > history_rows {
                self.history.pop_front();
            }
        }
        self.rows += 1;
        (fit_due(self.rows, fit_after_rows, refit_every_rows) && self.history.len() >= min_rows)
            .then(|| self.history.iter().cloned().collect())
    }
}

/// Trailing mean over `w` rows (fewer at the start).
pub(crate) fn trailing_mean(v: &[f64], w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len());
    let mut sum = 0.0;
    for i in 0..v.len() {
        sum += v[i];
        if i >= w {
            sum -= v[i - w];
        }
        out.push(sum / (i + 1).min(w) as f64);
    }
    out
}

/// Per-column mean and standard deviation (population, floored at `min_std`) of `rows`.
pub(crate) fn column_mean_std(rows: &[Vec<f64>], n: usize, min_std: f64) -> (Vec<f64>, Vec<f64>) {
    let m = rows.len().max(1) as f64;
    let mut mean = vec![0.0; n];
    for r in rows {
        mean.iter_mut().zip(r).for_each(|(a, x)| *a += x);
    }
    mean.iter_mut().for_each(|x| *x /= m);
    let mut std = vec![0.0; n];
    for r in rows {
        for j in 0..n {
            std[j] += (r[j] - mean[j]).powi(2);
        }
    }
    std.iter_mut().for_each(|s| *s = (*s / m).sqrt().max(min_std));
    (mean, std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refractory_damps_the_rows_after_an_alarm_then_lets_the_next_one_through() {
        let mut r = Refractory::new(3, 0.25, 0.5);
        let out: Vec<f64> = [0.9, 0.8, 0.8, 0.8, 0.8, 0.1].iter().map(|s| r.apply(*s)).collect();
        assert_eq!(out, vec![0.9, 0.2, 0.2, 0.2, 0.8, 0.025], "the second alarm starts a new period");
    }

    #[test]
    fn window_ranks_and_evicts() {
        let mut w = SortedWindow::new(3);
        for x in [5.0, 1.0, 3.0, 4.0] {
            w.insert(x);
        }
        assert_eq!(w.sorted(), &[1.0, 3.0, 4.0], "5 was evicted first");
        assert_eq!((w.count_ge(3.0), w.count_le(3.0)), (2, 2));
        assert!(fit_due(500, 500, 1000) && fit_due(1500, 500, 1000) && !fit_due(1000, 500, 1000) && !fit_due(1500, 500, 0));
        assert_eq!(trailing_mean(&[1.0, 3.0, 5.0, 7.0], 2), vec![1.0, 2.0, 4.0, 6.0]);
        let (mean, std) = column_mean_std(&[vec![1.0, 5.0], vec![3.0, 5.0]], 2, 1e-3);
        assert_eq!((mean, std), (vec![2.0, 5.0], vec![1.0, 1e-3]));
        let mut h = ReferenceRows::default();
        let fits: Vec<usize> = (0..6).filter_map(|i| h.observe(&[i as f64], 3, 2, 2, 2).map(|rows| rows.len())).collect();
        assert_eq!(fits, vec![2, 3, 3], "fits at rows 2, 4 and 6, history capped at 3");
        h.learn(&[1.0]);
        h.learn(&[f64::NAN]);
        assert!(h.take_training(2).is_none(), "one complete training row is too few");
        h.learn(&[2.0]);
        assert_eq!(h.take_training(2), Some(vec![vec![1.0], vec![2.0]]));
        assert!(h.take_training(1).is_none() && h.observe(&[0.0], 3, 1, 1, 0).is_none(), "trained once, never refitted");
    }
}
