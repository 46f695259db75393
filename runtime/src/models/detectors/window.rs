//! Shared pieces of the detectors: a sorted sliding window for ranks, and the fit schedule.

use std::collections::VecDeque;

/// The last `cap` values, kept in arrival order (for eviction) and sorted (for ranks).
#[derive(Debug, Clone)]
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
        if self.ring.len() == self.cap {
            if let Some(old) = self.ring.pop_front() {
                let i = self.sorted.partition_point(|v| *v < old);
                self.sorted.remove(i);
            }
        }
        self.ring.push_back(x);
        let i = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(i, x);
    }
}

/// When a detector without a training split (re)fits: first after `fit_after_rows` rows, then
/// every `refit_every_rows` (0: never again).
pub fn fit_due(rows: usize, fit_after_rows: usize, refit_every_rows: usize) -> bool {
    rows == fit_after_rows || (refit_every_rows > 0 && rows > fit_after_rows && (rows - fit_after_rows) % refit_every_rows == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ranks_and_evicts() {
        let mut w = SortedWindow::new(3);
        for x in [5.0, 1.0, 3.0, 4.0] {
            w.insert(x);
        }
        assert_eq!(w.sorted(), &[1.0, 3.0, 4.0], "5 was evicted first");
        assert_eq!((w.count_ge(3.0), w.count_le(3.0)), (2, 2));
        assert!(fit_due(500, 500, 1000) && fit_due(1500, 500, 1000) && !fit_due(1000, 500, 1000) && !fit_due(1500, 500, 0));
    }
}
