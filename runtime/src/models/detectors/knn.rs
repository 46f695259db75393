//! Nearest-neighbour distance to the reference, on levels and on levels + volatility, plus
//! change and volatility-rise views — the multivariate detector for machines with a training
//! split (SMD).
//!
//! Reference: the training split when one was learned, else the first `fit_after_rows` rows,
//! refitted every `refit_every_rows` on the last `history_rows` (past rows only). Rows are
//! standardized by the reference's per-metric mean and std (floored at `min_std`) and clipped to
//! ± `clip_z`, so a metric that was constant in the reference and moves later (SMD machine-1-7's
//! 10th metric: std 0.001 in train, a jump of 1.0 in test, z = 1,000) cannot outweigh the
//! others. Per row t:
//! - volatility `v_t` = ln(std of each standardized metric over the last `volatility_rows` rows
//!   + `volatility_floor`), standardized by its mean and std on the reference;
//! - `level` = mean distance to the `k` nearest of `sample_rows` evenly spaced reference rows
//!   (standardized values); `joint` = the same on [values, v_t];
//! - `change` = mean over metrics of |z_t − z_{t−1}|;
//! - `volatility` = mean over metrics of max(v_t, 0) (metrics getting noisier, not quieter).
//!
//! `level`, `joint` and `change` are trailing means over `smooth_rows` rows. Each view is
//! calibrated on the reference as (x − median) / (q99 − median), so 0 is typical and 1 is the
//! reference's 1 % tail whatever the metric; the weighted sum `s` maps to [0, 1] by
//! `1 − e^{−max(s, 0) / scale}`. Every view uses rows ≤ t only.

use std::collections::VecDeque;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::window::{ReferenceRows, column_mean_std, trailing_mean};
use super::{DetectorError, StreamingDetector};

/// Settings of the nearest-neighbour detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnnConfig {
    /// Neighbours averaged.
    pub k: usize,
    /// Reference rows searched (evenly spaced over the reference).
    pub sample_rows: usize,
    /// Trailing mean window of the level, joint and change views.
    pub smooth_rows: usize,
    /// Rows of the rolling standard deviation (volatility).
    pub volatility_rows: usize,
    /// Added to the rolling std before the logarithm (standardized units).
    pub volatility_floor: f64,
    /// Weight of the level view.
    pub level_weight: f64,
    /// Weight of the joint (level + volatility) view.
    pub joint_weight: f64,
    /// Weight of the change view.
    pub change_weight: f64,
    /// Weight of the volatility-rise view.
    pub volatility_weight: f64,
    /// Floor of per-metric standard deviations.
    pub min_std: f64,
    /// Standardized values (and volatilities) are clipped to ± this, so one metric that was
    /// constant in the reference and moves later cannot outweigh all the others (0: no clip).
    pub clip_z: f64,
    /// First fit without a training split.
    pub fit_after_rows: usize,
    /// Refit period without a training split (0: never).
    pub refit_every_rows: usize,
    /// Rows kept for refits.
    pub history_rows: usize,
    /// Scale of the [0, 1] mapping.
    pub scale: f64,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 5,
            sample_rows: 5000,
            smooth_rows: 60,
            volatility_rows: 60,
            volatility_floor: 0.01,
            level_weight: 1.0,
            joint_weight: 1.0,
            change_weight: 1.0,
            volatility_weight: 2.0,
            min_std: 1e-3,
            clip_z: 10.0,
            fit_after_rows: 300,
            refit_every_rows: 1000,
            history_rows: 20_000,
            scale: 5.0,
        }
    }
}

impl KnnConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<Knn, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        if self.k == 0 {
            return bad("k", "0".into(), "at least 1");
        }
        if self.sample_rows <= self.k {
            return bad("sample_rows", self.sample_rows.to_string(), "must exceed k");
        }
        if self.smooth_rows == 0 {
            return bad("smooth_rows", "0".into(), "at least 1");
        }
        if self.volatility_rows < 2 {
            return bad("volatility_rows", self.volatility_rows.to_string(), "at least 2");
        }
        super::check_ranges(&[
            ("volatility_floor", self.volatility_floor, super::POSITIVE, 1e12),
            ("level_weight", self.level_weight, 0.0, 1e6),
            ("joint_weight", self.joint_weight, 0.0, 1e6),
            ("change_weight", self.change_weight, 0.0, 1e6),
            ("volatility_weight", self.volatility_weight, 0.0, 1e6),
            ("min_std", self.min_std, 0.0, 1e12),
            ("clip_z", self.clip_z, 0.0, 1e12),
            ("scale", self.scale, super::POSITIVE, 1e12),
        ])?;
        if self.fit_after_rows <= self.k + 1 {
            return bad("fit_after_rows", self.fit_after_rows.to_string(), "must exceed k + 1");
        }
        Ok(Knn {
            cfg: self.clone(),
            n: n_metrics,
            reference: ReferenceRows::default(),
            model: None,
            recent: VecDeque::new(),
            windows: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            contrib: vec![0.0; n_metrics],
        })
    }
}

/// ln(std + `floor`) of each metric over the rows of `window` (standardized rows).
fn log_rolling_std<'a>(window: impl ExactSizeIterator<Item = &'a Vec<f64>> + Clone, n: usize, floor: f64) -> Vec<f64> {
    let m = window.len() as f64;
    (0..n)
        .map(|j| {
            let (mut s, mut s2) = (0.0, 0.0);
            for r in window.clone() {
                s += r[j];
                s2 += r[j] * r[j];
            }
            let mean = s / m;
            ((s2 / m - mean * mean).max(0.0).sqrt() + floor).ln()
        })
        .collect()
}

/// Mean absolute change between two standardized rows.
fn mean_abs_change(z: &[f64], prev: &[f64]) -> f64 {
    z.iter().zip(prev).map(|(a, b)| (a - b).abs()).sum::<f64>() / z.len() as f64
}

#[derive(Debug, Clone)]
struct Fitted {
    mean: Vec<f64>,
    std: Vec<f64>,
    v_mean: Vec<f64>,
    v_std: Vec<f64>,
    /// Sampled reference rows, standardized values (n per row).
    level: Vec<f64>,
    /// The same rows, [values, volatility] (2n per row).
    joint: Vec<f64>,
    /// (median, q99 − median) of level, joint, change, volatility on the reference.
    calib: [(f64, f64); 4],
}

fn calibration(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_unstable_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let med = q(0.5);
    (med, (q(0.99) - med).max(1e-9))
}

/// Mean distance to the k nearest rows of `sample` (row length `dim`), skipping sample row `skip`.
fn knn_distance(sample: &[f64], dim: usize, x: &[f64], k: usize, skip: Option<usize>) -> f64 {
    let mut best = vec![f64::INFINITY; k];
    for (i, r) in sample.chunks_exact(dim).enumerate() {
        if Some(i) == skip {
            continue;
        }
        let mut d2 = 0.0;
        for (a, b) in r.iter().zip(x) {
            d2 += (a - b) * (a - b);
        }
        if d2 < best[k - 1] {
            let pos = best.partition_point(|b| *b <= d2);
            best.insert(pos, d2);
            best.pop();
        }
    }
    best.iter().map(|d| d.sqrt()).sum::<f64>() / k as f64
}

impl Fitted {
    fn fit(rows: &[Vec<f64>], n: usize, cfg: &KnnConfig) -> Self {
        let (mean, std) = column_mean_std(rows, n, cfg.min_std);
        let z: Vec<Vec<f64>> = rows.iter().map(|r| standardize(r, &mean, &std, cfg.clip_z)).collect();
        let vol: Vec<Vec<f64>> = (0..z.len())
            .map(|i| log_rolling_std(z[(i + 1).saturating_sub(cfg.volatility_rows)..=i].iter(), n, cfg.volatility_floor))
            .collect();
        let change: Vec<f64> = (0..z.len()).map(|i| if i == 0 { 0.0 } else { mean_abs_change(&z[i], &z[i - 1]) }).collect();
        let (v_mean, v_std) = column_mean_std(&vol, n, cfg.min_std);
        let vz: Vec<Vec<f64>> = vol.iter().map(|v| standardize(v, &v_mean, &v_std, cfg.clip_z)).collect();
        // Evenly spaced sample of the reference.
        let take = cfg.sample_rows.min(rows.len());
        let picks: Vec<usize> = (0..take).map(|i| i * rows.len() / take).collect();
        let mut level = Vec::with_capacity(take * n);
        let mut joint = Vec::with_capacity(take * 2 * n);
        for &i in &picks {
            level.extend_from_slice(&z[i]);
            joint.extend_from_slice(&z[i]);
            joint.extend_from_slice(&vz[i]);
        }
        let k = cfg.k.min(take.saturating_sub(1)).max(1);
        // Leave-one-out distances of every reference row (a sampled row skips itself).
        let sample_of: Vec<Option<usize>> = {
            let mut s = vec![None; rows.len()];
            for (si, &i) in picks.iter().enumerate() {
                s[i] = Some(si);
            }
            s
        };
        let (d_level, d_joint): (Vec<f64>, Vec<f64>) = (0..rows.len())
            .into_par_iter()
            .map(|i| {
                let jr: Vec<f64> = z[i].iter().chain(&vz[i]).copied().collect();
                (knn_distance(&level, n, &z[i], k, sample_of[i]), knn_distance(&joint, 2 * n, &jr, k, sample_of[i]))
            })
            .unzip();
        let w = cfg.smooth_rows;
        let vol_view: Vec<f64> = vz.iter().map(|v| volatility_view(v)).collect();
        let calib = [
            calibration(trailing_mean(&d_level, w)),
            calibration(trailing_mean(&d_joint, w)),
            calibration(trailing_mean(&change, w)),
            calibration(vol_view),
        ];
        Self { mean, std, v_mean, v_std, level, joint, calib }
    }
}

fn standardize(x: &[f64], mean: &[f64], std: &[f64], clip: f64) -> Vec<f64> {
    let clip = if clip > 0.0 { clip } else { f64::INFINITY };
    x.iter().zip(mean).zip(std).map(|((x, mu), sd)| ((x - mu) / sd).clamp(-clip, clip)).collect()
}

fn volatility_view(vz: &[f64]) -> f64 {
    vz.iter().map(|v| v.max(0.0)).sum::<f64>() / vz.len() as f64
}

/// The running detector.
#[derive(Debug)]
pub(super) struct Knn {
    cfg: KnnConfig,
    n: usize,
    reference: ReferenceRows,
    model: Option<Fitted>,
    /// Raw rows feeding the volatility and change views (the last `volatility_rows`).
    recent: VecDeque<Vec<f64>>,
    /// Trailing windows of the level, joint and change views.
    windows: [VecDeque<f64>; 3],
    contrib: Vec<f64>,
}

/// Score the newest of `recent` (raw rows, the last `volatility_rows`) under `f`, updating the
/// trailing windows of the level, joint and change views and the per-metric contributions.
fn score_row(f: &Fitted, cfg: &KnnConfig, recent: &VecDeque<Vec<f64>>, windows: &mut [VecDeque<f64>; 3], contrib: &mut [f64]) -> f64 {
    let n = contrib.len();
    // Standardize the raw recent rows under the current model, so a refit never mixes two
    // standardizations.
    let zs: Vec<Vec<f64>> = recent.iter().map(|r| standardize(r, &f.mean, &f.std, cfg.clip_z)).collect();
    let Some(z) = zs.last() else { return 0.0 };
    let v = log_rolling_std(zs.iter(), n, cfg.volatility_floor);
    let change = if zs.len() > 1 { mean_abs_change(z, &zs[zs.len() - 2]) } else { 0.0 };
    let vz = standardize(&v, &f.v_mean, &f.v_std, cfg.clip_z);
    let take = f.level.len() / n;
    let k = cfg.k.min(take.saturating_sub(1)).max(1);
    let jr: Vec<f64> = z.iter().chain(&vz).copied().collect();
    let raw = [knn_distance(&f.level, n, z, k, None), knn_distance(&f.joint, 2 * n, &jr, k, None), change];
    let mut views = [0.0; 4];
    for (i, x) in raw.into_iter().enumerate() {
        let w = &mut windows[i];
        w.push_back(x);
        if w.len() > cfg.smooth_rows {
            w.pop_front();
        }
        views[i] = w.iter().sum::<f64>() / w.len() as f64;
    }
    views[3] = volatility_view(&vz);
    let weights = [cfg.level_weight, cfg.joint_weight, cfg.change_weight, cfg.volatility_weight];
    let s: f64 = views.iter().zip(&f.calib).zip(weights).map(|((x, (med, spread)), w)| w * (x - med) / spread).sum();
    for j in 0..n {
        contrib[j] = z[j].abs() + vz[j].max(0.0);
    }
    1.0 - (-s.max(0.0) / cfg.scale).exp()
}

impl StreamingDetector for Knn {
    fn push(&mut self, _timestamp_ms: i64, values: &[f64]) -> f64 {
        if let Some(train) = self.reference.take_training(self.cfg.k + 2) {
            self.model = Some(Fitted::fit(&train, self.n, &self.cfg));
            self.recent = train.iter().rev().take(self.cfg.volatility_rows - 1).rev().cloned().collect();
        }
        // Missing values carry the previous row's value (or 0 in standardized units: the mean).
        let row: Vec<f64> = match (self.recent.back(), &self.model) {
            (Some(prev), _) => values.iter().zip(prev).map(|(v, p)| if v.is_finite() { *v } else { *p }).collect(),
            (None, Some(f)) => values.iter().zip(&f.mean).map(|(v, mu)| if v.is_finite() { *v } else { *mu }).collect(),
            (None, None) => values.iter().map(|v| if v.is_finite() { *v } else { 0.0 }).collect(),
        };
        self.recent.push_back(row);
        if self.recent.len() > self.cfg.volatility_rows {
            self.recent.pop_front();
        }
        let score = match &self.model {
            Some(f) => score_row(f, &self.cfg, &self.recent, &mut self.windows, &mut self.contrib),
            None => 0.0,
        };
        let c = &self.cfg;
        if let Some(rows) = self.reference.observe(values, c.history_rows, c.fit_after_rows, c.refit_every_rows, c.k + 2) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_neighbour_distance_skips_itself() {
        let sample = [0.0, 0.0, 1.0, 0.0, 0.0, 3.0];
        assert_eq!(knn_distance(&sample, 2, &[0.0, 0.0], 1, None), 0.0);
        assert_eq!(knn_distance(&sample, 2, &[0.0, 0.0], 1, Some(0)), 1.0);
        assert_eq!(knn_distance(&sample, 2, &[0.0, 0.0], 2, Some(0)), 2.0);
    }

    #[test]
    fn a_noisier_or_shifted_machine_scores_higher_than_its_training_behaviour() {
        let cfg = KnnConfig { sample_rows: 500, ..Default::default() };
        let mut det = cfg.build(3).unwrap();
        let wave = |t: usize, noise: f64| {
            let e = ((t * 7919) % 101) as f64 / 101.0 - 0.5;
            vec![(t as f64 / 30.0).sin() + 0.1 * e, (t as f64 / 30.0).cos() + noise * e, 5.0 + 0.1 * e]
        };
        for t in 0..2000 {
            det.learn(0, &wave(t, 0.1));
        }
        let normal: Vec<f64> = (2000..2600).map(|t| det.push(0, &wave(t, 0.1))).collect();
        let noisy: Vec<f64> = (2600..2700).map(|t| det.push(0, &wave(t, 3.0))).collect();
        let quiet = normal[100..].iter().sum::<f64>() / 500.0;
        assert!(normal.iter().all(|s| (0.0..=1.0).contains(s)));
        assert!(quiet < 0.3, "normal rows score low: {quiet}");
        assert!(noisy[60..].iter().all(|s| *s > 0.6), "volatility rise scores high: {:?}", &noisy[60..65]);
        let c = det.contributions();
        assert!(c[1] > c[0] && c[1] > c[2], "the noisy metric is the primary issue: {c:?}");
    }
}
