//! Robust z-scores: per metric, how many robust standard deviations (1.4826 · MAD) the value
//! is from the median of a reference set; the row's surprise is the mean of the `top_k`
//! largest z (several metrics deviating together is what server incidents look like). The
//! reference set is the training split when one was learned, else the last `history_rows`
//! rows, re-summarized every `refresh_rows` (past rows only). Columns that are constant in
//! the reference get a floor spread of `min_spread` times their scale, so a constant column
//! that moves is loud but not infinite.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{DetectorError, StreamingDetector};

/// Settings of the robust z detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RobustZConfig {
    /// Largest z values averaged per row.
    pub top_k: usize,
    /// Rolling reference size without a training split.
    pub history_rows: usize,
    /// Rows between re-summaries of the rolling reference.
    pub refresh_rows: usize,
    /// Rows before the first score without a training split.
    pub warmup_rows: usize,
    /// Floor of the spread, relative to max(1, |median|)… as a fraction.
    pub min_spread: f64,
    /// z scale of the [0, 1] mapping `1 - e^{-z / scale}`.
    pub scale: f64,
}

impl Default for RobustZConfig {
    fn default() -> Self {
        Self { top_k: 3, history_rows: 5000, refresh_rows: 100, warmup_rows: 100, min_spread: 0.01, scale: 10.0 }
    }
}

impl RobustZConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<RobustZ, DetectorError> {
        if self.top_k == 0 {
            return Err(DetectorError { field: "top_k".into(), value: "0".into(), reason: "at least 1".into() });
        }
        super::check_ranges(&[("min_spread", self.min_spread, 0.0, 1e12), ("scale", self.scale, super::POSITIVE, 1e12)])?;
        Ok(RobustZ {
            cfg: self.clone(),
            n: n_metrics,
            train: vec![Vec::new(); n_metrics],
            ring: VecDeque::new(),
            center: Vec::new(),
            spread: Vec::new(),
            frozen: false,
            since_refresh: 0,
            z: vec![0.0; n_metrics],
            contrib: vec![0.0; n_metrics],
        })
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

/// The running detector.
#[derive(Debug)]
pub(super) struct RobustZ {
    cfg: RobustZConfig,
    n: usize,
    train: Vec<Vec<f64>>,
    ring: VecDeque<Vec<f64>>,
    center: Vec<f64>,
    spread: Vec<f64>,
    frozen: bool,
    since_refresh: usize,
    z: Vec<f64>,
    contrib: Vec<f64>,
}

impl RobustZ {
    fn summarize(&mut self, columns: Vec<Vec<f64>>) {
        self.center.clear();
        self.spread.clear();
        for mut col in columns {
            let med = median(&mut col);
            let mut dev: Vec<f64> = col.iter().map(|x| (x - med).abs()).collect();
            let mad = median(&mut dev) * 1.4826;
            let (lo, hi) = col.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
            let range = if hi > lo { hi - lo } else { 0.0 };
            let floor = self.cfg.min_spread * range.max(med.abs()).max(1e-3);
            self.center.push(med);
            self.spread.push(mad.max(floor));
        }
    }
}

impl StreamingDetector for RobustZ {
    fn push(&mut self, _timestamp_ms: i64, values: &[f64]) -> f64 {
        if !self.frozen && !self.train.iter().all(Vec::is_empty) {
            let train = std::mem::take(&mut self.train);
            self.summarize(train);
            self.frozen = true;
        }
        let mut score = 0.0;
        if !self.center.is_empty() {
            for (j, &x) in values.iter().enumerate().take(self.n) {
                self.z[j] = if x.is_finite() { (x - self.center[j]).abs() / self.spread[j] } else { 0.0 };
            }
            self.contrib.copy_from_slice(&self.z);
            let k = self.cfg.top_k.min(self.n);
            self.z.select_nth_unstable_by(self.n - k, f64::total_cmp);
            let top = self.z[self.n - k..].iter().sum::<f64>() / k as f64;
            score = 1.0 - (-top / self.cfg.scale).exp();
        }
        if !self.frozen {
            self.ring.push_back(values.to_vec());
            if self.ring.len() > self.cfg.history_rows {
                self.ring.pop_front();
            }
            self.since_refresh += 1;
            if self.ring.len() >= self.cfg.warmup_rows && (self.center.is_empty() || self.since_refresh >= self.cfg.refresh_rows) {
                let cols = (0..self.n).map(|j| self.ring.iter().map(|r| r[j]).filter(|x| x.is_finite()).collect()).collect();
                self.summarize(cols);
                self.since_refresh = 0;
            }
        }
        score
    }

    fn contributions(&self) -> Vec<f64> {
        self.contrib.clone()
    }

    fn learn(&mut self, _timestamp_ms: i64, values: &[f64]) {
        for (col, x) in self.train.iter_mut().zip(values) {
            if x.is_finite() {
                col.push(*x);
            }
        }
    }
}
