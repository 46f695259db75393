//! Multivariate Gaussian distance plus change magnitude, each smoothed and normalized.
//!
//! Reference: the training split when one was learned, else the first `fit_after_rows` rows,
//! refitted every `refit_every_rows` on the last `history_rows` (past rows only). On the
//! reference: per-metric mean and std (floored at `min_std`), the covariance of the
//! standardized rows plus `ridge` · I (Cholesky). Per row:
//! - `d²` = squared Mahalanobis distance of the standardized row;
//! - `Δ` = mean over metrics of |x_t − x_{t−1}| / std of that change on the reference;
//!
//! Both as trailing means over `smooth_rows` rows, divided by their median on the reference
//! (so 1 means "typical"), summed (the change view weighted by `change_weight`), and mapped to
//! [0, 1] by `1 - e^{-s / scale}`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::window::{ReferenceRows, column_mean_std, trailing_mean};
use super::{DetectorError, StreamingDetector};

/// Settings of the Mahalanobis detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MahalanobisConfig {
    /// Added to the covariance diagonal (standardized units).
    pub ridge: f64,
    /// Floor of per-metric standard deviations.
    pub min_std: f64,
    /// Trailing mean window of the two views.
    pub smooth_rows: usize,
    /// Weight of the change view in the sum.
    pub change_weight: f64,
    /// First fit without a training split.
    pub fit_after_rows: usize,
    /// Refit period without a training split (0: never).
    pub refit_every_rows: usize,
    /// Rows kept for refits.
    pub history_rows: usize,
    /// Scale of the [0, 1] mapping.
    pub scale: f64,
}

impl Default for MahalanobisConfig {
    fn default() -> Self {
        Self {
            ridge: 1.0,
            min_std: 1e-3,
            smooth_rows: 60,
            change_weight: 3.0,
            fit_after_rows: 300,
            refit_every_rows: 1000,
            history_rows: 20_000,
            scale: 10.0,
        }
    }
}

impl MahalanobisConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<Mahalanobis, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        super::check_ranges(&[
            ("ridge", self.ridge, super::POSITIVE, 1e12),
            ("min_std", self.min_std, 0.0, 1e12),
            ("change_weight", self.change_weight, 0.0, 1e6),
            ("scale", self.scale, super::POSITIVE, 1e12),
        ])?;
        if self.smooth_rows == 0 {
            return bad("smooth_rows", "0".into(), "at least 1");
        }
        if self.fit_after_rows < 3 {
            return bad("fit_after_rows", self.fit_after_rows.to_string(), "at least 3");
        }
        Ok(Mahalanobis {
            cfg: self.clone(),
            n: n_metrics,
            reference: ReferenceRows::default(),
            model: None,
            last: None,
            d_window: VecDeque::new(),
            c_window: VecDeque::new(),
            contrib: vec![0.0; n_metrics],
        })
    }
}

#[derive(Debug, Clone)]
struct Fitted {
    mean: Vec<f64>,
    std: Vec<f64>,
    /// Lower-triangular Cholesky factor, row-major n × n.
    chol: Vec<f64>,
    change_std: Vec<f64>,
    d_median: f64,
    c_median: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 1.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

impl Fitted {
    fn fit(rows: &[Vec<f64>], n: usize, cfg: &MahalanobisConfig) -> Self {
        let m = rows.len() as f64;
        let (mean, std) = column_mean_std(rows, n, cfg.min_std);
        let mut cov = vec![0.0; n * n];
        let mut z = vec![0.0; n];
        for r in rows {
            for j in 0..n {
                z[j] = (r[j] - mean[j]) / std[j];
            }
            for a in 0..n {
                for b in 0..=a {
                    cov[a * n + b] += z[a] * z[b];
                }
            }
        }
        for a in 0..n {
            for b in 0..=a {
                cov[a * n + b] /= m;
            }
            cov[a * n + a] += cfg.ridge;
        }
        // Cholesky (lower); the ridge keeps it positive definite.
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut s = cov[i * n + j];
                for k in 0..j {
                    s -= l[i * n + k] * l[j * n + k];
                }
                l[i * n + j] = if i == j { s.max(1e-12).sqrt() } else { s / l[j * n + j] };
            }
        }
        let mut change_std = vec![0.0; n];
        for w in rows.windows(2) {
            for j in 0..n {
                change_std[j] += ((w[1][j] - w[0][j]) / std[j]).powi(2);
            }
        }
        change_std.iter_mut().for_each(|s| *s = (*s / (m - 1.0).max(1.0)).sqrt().max(1e-2));
        let mut f = Self { mean, std, chol: l, change_std, d_median: 1.0, c_median: 1.0 };
        let d: Vec<f64> = rows.iter().map(|r| f.distance(r)).collect();
        let c: Vec<f64> = std::iter::once(0.0).chain(rows.windows(2).map(|w| f.change(&w[1], &w[0]))).collect();
        f.d_median = median(trailing_mean(&d, cfg.smooth_rows)).max(1e-9);
        f.c_median = median(trailing_mean(&c, cfg.smooth_rows)).max(1e-9);
        f
    }

    fn distance(&self, row: &[f64]) -> f64 {
        let n = self.mean.len();
        let mut y = vec![0.0; n];
        let mut d2 = 0.0;
        for i in 0..n {
            let zi = if row[i].is_finite() { (row[i] - self.mean[i]) / self.std[i] } else { 0.0 };
            let mut s = zi;
            s -= self.chol[i * n..i * n + i].iter().zip(&y[..i]).map(|(l, yk)| l * yk).sum::<f64>();
            y[i] = s / self.chol[i * n + i];
            d2 += y[i] * y[i];
        }
        d2
    }

    fn change(&self, row: &[f64], prev: &[f64]) -> f64 {
        let n = self.mean.len();
        let mut s = 0.0;
        for j in 0..n {
            if row[j].is_finite() && prev[j].is_finite() {
                s += ((row[j] - prev[j]) / self.std[j]).abs() / self.change_std[j];
            }
        }
        s / n as f64
    }
}

/// The running detector.
#[derive(Debug)]
pub(super) struct Mahalanobis {
    cfg: MahalanobisConfig,
    n: usize,
    reference: ReferenceRows,
    model: Option<Fitted>,
    last: Option<Vec<f64>>,
    d_window: VecDeque<f64>,
    c_window: VecDeque<f64>,
    contrib: Vec<f64>,
}

impl StreamingDetector for Mahalanobis {
    fn push(&mut self, _timestamp_ms: i64, values: &[f64]) -> f64 {
        if let Some(train) = self.reference.take_training(3) {
            self.model = Some(Fitted::fit(&train, self.n, &self.cfg));
            self.last = train.last().cloned();
        }
        let mut score = 0.0;
        if let Some(f) = &self.model {
            for (j, c) in self.contrib.iter_mut().enumerate() {
                *c = if values[j].is_finite() { ((values[j] - f.mean[j]) / f.std[j]).abs() } else { 0.0 };
            }
            let d = f.distance(values);
            let c = self.last.as_ref().map_or(0.0, |p| f.change(values, p));
            for (w, x) in [(&mut self.d_window, d), (&mut self.c_window, c)] {
                w.push_back(x);
                if w.len() > self.cfg.smooth_rows {
                    w.pop_front();
                }
            }
            let dm = self.d_window.iter().sum::<f64>() / self.d_window.len() as f64;
            let cm = self.c_window.iter().sum::<f64>() / self.c_window.len() as f64;
            let s = dm / f.d_median + self.cfg.change_weight * cm / f.c_median;
            score = 1.0 - (-s / self.cfg.scale).exp();
        }
        self.last = Some(values.to_vec());
        let c = &self.cfg;
        if let Some(rows) = self.reference.observe(values, c.history_rows, c.fit_after_rows, c.refit_every_rows, 3) {
            self.model = Some(Fitted::fit(&rows, self.n, c));
        }
        score
    }

    fn learn(&mut self, _timestamp_ms: i64, values: &[f64]) {
        self.reference.learn(values);
    }

    fn contributions(&self) -> Vec<f64> {
        self.contrib.clone()
    }
}
