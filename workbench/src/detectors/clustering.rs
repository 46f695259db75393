//! Clustering detectors on linfa-clustering, fitted on a reference set of standardized rows
//! (the training split when one is learned, else the first `fit_after_rows` rows, refitted
//! every `refit_every_rows` on the last `history_rows`; past rows only):
//!
//! - `kmeans`: distance to the nearest centroid;
//! - `gmm`: negative log-likelihood under a Gaussian mixture (full covariances);
//! - `dbscan`: distance to the nearest core (non-noise) point of DBSCAN run on the reference;
//!   beyond `eps` a row is noise, i.e. anomalous. `eps` is the `eps_quantile` of the reference's
//!   `min_points`-nearest-neighbour distances.
//!
//! Raw scores become [0, 1] by their rank among the reference's own raw scores (beyond the
//! reference's maximum they keep rising towards 1), so 0.99 means "above 99 % of normal".

use linfa::prelude::*;
use linfa_clustering::{Dbscan, GaussianMixtureModel, KMeans};
use ndarray::{Array1, Array2, Axis};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use runtime::models::detectors::{DetectorError, StreamingDetector};
use serde::{Deserialize, Serialize};

/// Which clustering model, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClusterConfig {
    /// KMeans distance.
    Kmeans {
        /// Clusters.
        #[serde(default = "default_clusters")]
        n_clusters: usize,
        /// Reference handling.
        #[serde(default, flatten)]
        reference: Reference,
    },
    /// Gaussian mixture negative log-likelihood.
    Gmm {
        /// Components.
        #[serde(default = "default_clusters")]
        n_clusters: usize,
        /// Reference handling.
        #[serde(default, flatten)]
        reference: Reference,
    },
    /// DBSCAN noise distance.
    Dbscan {
        /// Neighbours for a core point.
        #[serde(default = "default_min_points")]
        min_points: usize,
        /// Quantile of k-NN distances used as eps.
        #[serde(default = "default_eps_quantile")]
        eps_quantile: f64,
        /// Reference handling.
        #[serde(default, flatten)]
        reference: Reference,
    },
}

fn default_clusters() -> usize {
    8
}
fn default_min_points() -> usize {
    5
}
fn default_eps_quantile() -> f64 {
    0.95
}

/// How the reference set is formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reference {
    /// First fit without a training split.
    pub fit_after_rows: usize,
    /// Refit period without a training split (0: never).
    pub refit_every_rows: usize,
    /// Rows kept for refits.
    pub history_rows: usize,
    /// Rows sampled (evenly) from the reference for fitting.
    pub max_fit_rows: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for Reference {
    fn default() -> Self {
        Self { fit_after_rows: 500, refit_every_rows: 2000, history_rows: 10_000, max_fit_rows: 3000, seed: 0 }
    }
}

impl ClusterConfig {
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kmeans { .. } => "kmeans",
            Self::Gmm { .. } => "gmm",
            Self::Dbscan { .. } => "dbscan",
        }
    }

    fn reference(&self) -> &Reference {
        match self {
            Self::Kmeans { reference, .. } | Self::Gmm { reference, .. } | Self::Dbscan { reference, .. } => reference,
        }
    }

    pub(crate) fn build(&self, n_metrics: usize) -> Result<ClusterDetector, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        match self {
            Self::Kmeans { n_clusters: 0, .. } | Self::Gmm { n_clusters: 0, .. } => return bad("n_clusters", "0".into(), "at least 1"),
            Self::Dbscan { min_points, .. } if *min_points < 2 => return bad("min_points", min_points.to_string(), "at least 2"),
            Self::Dbscan { eps_quantile, .. } if !(*eps_quantile > 0.0 && *eps_quantile <= 1.0) => {
                return bad("eps_quantile", eps_quantile.to_string(), "in (0, 1]");
            }
            _ => {}
        }
        if self.reference().fit_after_rows < 10 {
            return bad("fit_after_rows", self.reference().fit_after_rows.to_string(), "at least 10");
        }
        Ok(ClusterDetector {
            cfg: self.clone(),
            n: n_metrics,
            reference: Default::default(),
            fitted: None,
            failed_fits: 0,
            fits: 0,
            last_error: String::new(),
        })
    }
}

#[derive(Debug)]
enum Model {
    Centroids(Array2<f64>),
    Mixture { weights: Vec<f64>, means: Array2<f64>, chol_prec: Vec<Array2<f64>>, log_det_prec: Vec<f64> },
    Core(Array2<f64>),
}

#[derive(Debug)]
struct Fitted {
    mean: Vec<f64>,
    std: Vec<f64>,
    model: Model,
    /// Sorted raw scores of the reference.
    reference: Vec<f64>,
}

fn sq_dist(a: &[f64], b: ndarray::ArrayView1<'_, f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Lower Cholesky factor of a symmetric positive-definite matrix (with a tiny jitter).
fn cholesky(m: &Array2<f64>) -> Array2<f64> {
    let n = m.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut s = m[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = if i == j { s.max(1e-12).sqrt() } else { s / l[[j, j]] };
        }
    }
    l
}

impl Model {
    fn raw(&self, z: &[f64]) -> f64 {
        match self {
            Model::Centroids(c) | Model::Core(c) => c.axis_iter(Axis(0)).map(|row| sq_dist(z, row)).fold(f64::INFINITY, f64::min).sqrt(),
            Model::Mixture { weights, means, chol_prec, log_det_prec } => {
                let d = z.len() as f64;
                let mut terms = Vec::with_capacity(weights.len());
                for k in 0..weights.len() {
                    // (x-μ)ᵀ P (x-μ) = ‖Lᵀ(x-μ)‖² with P = L Lᵀ.
                    let diff: Vec<f64> = z.iter().zip(means.row(k).iter()).map(|(a, b)| a - b).collect();
                    let l = &chol_prec[k];
                    let mut q = 0.0;
                    for j in 0..diff.len() {
                        let mut s = 0.0;
                        for i in j..diff.len() {
                            s += l[[i, j]] * diff[i];
                        }
                        q += s * s;
                    }
                    terms.push(weights[k].max(1e-300).ln() + 0.5 * log_det_prec[k] - 0.5 * (d * (2.0 * std::f64::consts::PI).ln() + q));
                }
                let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                -(m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln())
            }
        }
    }
}

fn fit(cfg: &ClusterConfig, rows: &[Vec<f64>], n: usize) -> Result<Fitted, String> {
    let r = cfg.reference();
    let step = (rows.len() / r.max_fit_rows.max(1)).max(1);
    let sample: Vec<&Vec<f64>> = rows.iter().step_by(step).collect();
    let m = sample.len();
    if m < 10 {
        return Err(format!("{m} usable reference rows, at least 10 needed"));
    }
    let mut mean = vec![0.0; n];
    for row in &sample {
        for j in 0..n {
            mean[j] += row[j] / m as f64;
        }
    }
    let mut std = vec![0.0; n];
    for row in &sample {
        for j in 0..n {
            std[j] += (row[j] - mean[j]).powi(2) / m as f64;
        }
    }
    std.iter_mut().for_each(|s| *s = s.sqrt().max(1e-3));
    let z = Array2::from_shape_fn((m, n), |(i, j)| (sample[i][j] - mean[j]) / std[j]);
    let rng = Xoshiro256Plus::seed_from_u64(r.seed);
    let data = DatasetBase::from(z.clone());
    let model = match cfg {
        ClusterConfig::Kmeans { n_clusters, .. } => {
            let km =
                KMeans::params_with_rng((*n_clusters).min(m), rng).max_n_iterations(100).fit(&data).map_err(|e| format!("KMeans: {e}"))?;
            Model::Centroids(km.centroids().clone())
        }
        ClusterConfig::Gmm { n_clusters, .. } => {
            // EM fails when a component collapses onto near-constant rows (SMD machine-1-7) or
            // loses all its points (flat NAB series): retry with a stronger covariance
            // regularization, then with half the components, rather than scoring nothing.
            let mut last_error = String::new();
            let components = std::iter::successors(Some((*n_clusters).min(m)), |k| (*k > 1).then_some(k / 2));
            let gmm = components
                .flat_map(|k| [1e-3, 1e-2, 1e-1, 1.0].map(|reg| (k, reg)))
                .find_map(|(k, reg)| {
                    GaussianMixtureModel::params_with_rng(k, rng.clone())
                        .reg_covariance(reg)
                        .max_n_iterations(100)
                        .fit(&data)
                        .map_err(|e| last_error = format!("Gaussian mixture (down to 1 component, regularization up to 1): {e}"))
                        .ok()
                })
                .ok_or(last_error)?;
            let k = gmm.weights().len();
            let mut chol_prec = Vec::with_capacity(k);
            let mut log_det_prec = Vec::with_capacity(k);
            for c in 0..k {
                let p = gmm.precisions().index_axis(Axis(0), c).to_owned();
                let l = cholesky(&p);
                log_det_prec.push(2.0 * l.diag().iter().map(|v| v.ln()).sum::<f64>());
                chol_prec.push(l);
            }
            Model::Mixture { weights: gmm.weights().to_vec(), means: gmm.means().clone(), chol_prec, log_det_prec }
        }
        ClusterConfig::Dbscan { min_points, eps_quantile, .. } => {
            // eps from the k-NN distance distribution of the reference.
            let mut kth: Vec<f64> = (0..m)
                .map(|i| {
                    let zi: Vec<f64> = z.row(i).to_vec();
                    let mut d: Vec<f64> = (0..m).filter(|&j| j != i).map(|j| sq_dist(&zi, z.row(j))).collect();
                    let k = (*min_points - 1).min(d.len().saturating_sub(1));
                    d.select_nth_unstable_by(k, f64::total_cmp);
                    d[k].sqrt()
                })
                .collect();
            kth.sort_by(f64::total_cmp);
            let eps = kth[((kth.len() - 1) as f64 * eps_quantile) as usize].max(1e-6);
            let labels: Array1<Option<usize>> =
                Dbscan::params(*min_points).tolerance(eps).check().map_err(|e| format!("DBSCAN: {e}"))?.transform(&z);
            let core: Vec<usize> = (0..m).filter(|&i| labels[i].is_some()).collect();
            if core.is_empty() {
                return Err(format!("DBSCAN: no core points at eps {eps:.4}"));
            }
            Model::Core(Array2::from_shape_fn((core.len(), n), |(i, j)| z[[core[i], j]]))
        }
    };
    let mut reference: Vec<f64> = (0..m).map(|i| model.raw(&z.row(i).to_vec())).filter(|v| v.is_finite()).collect();
    reference.sort_by(f64::total_cmp);
    Ok(Fitted { mean, std, model, reference })
}

impl Fitted {
    fn score(&self, row: &[f64]) -> f64 {
        let z: Vec<f64> =
            row.iter().zip(self.mean.iter().zip(&self.std)).map(|(x, (m, s))| if x.is_finite() { (x - m) / s } else { 0.0 }).collect();
        let raw = self.model.raw(&z);
        let n = self.reference.len();
        if n == 0 || !raw.is_finite() {
            return if raw.is_finite() { 0.0 } else { 1.0 };
        }
        let below = self.reference.partition_point(|v| *v < raw);
        if below < n {
            return below as f64 / (n as f64 + 1.0);
        }
        // Beyond the reference: approach 1 with the excess in units of the reference's spread.
        let (max, med) = (self.reference[n - 1], self.reference[n / 2]);
        let excess = (raw - max) / (max - med).max(1e-9);
        1.0 - (1.0 - n as f64 / (n as f64 + 1.0)) * (-excess).exp()
    }
}

/// The running clustering detector.
#[derive(Debug)]
pub(crate) struct ClusterDetector {
    cfg: ClusterConfig,
    n: usize,
    reference: runtime::models::detectors::ReferenceRows,
    fitted: Option<Fitted>,
    fits: usize,
    failed_fits: usize,
    last_error: String,
}

impl ClusterDetector {
    /// Fit on `rows`; a failure keeps the previous model (none: rows score 0) and is counted.
    fn refit(&mut self, rows: &[Vec<f64>]) {
        self.fits += 1;
        match fit(&self.cfg, rows, self.n) {
            Ok(f) => self.fitted = Some(f),
            Err(e) => {
                self.failed_fits += 1;
                self.last_error = e;
            }
        }
    }
}

impl StreamingDetector for ClusterDetector {
    fn push(&mut self, _timestamp_ms: i64, values: &[f64]) -> f64 {
        if let Some(train) = self.reference.take_training(1) {
            self.refit(&train);
        }
        let score = self.fitted.as_ref().map_or(0.0, |f| f.score(values));
        let r = self.cfg.reference();
        let (history_rows, fit_after_rows, refit_every_rows) = (r.history_rows, r.fit_after_rows, r.refit_every_rows);
        if let Some(rows) = self.reference.observe(values, history_rows, fit_after_rows, refit_every_rows, 0) {
            self.refit(&rows);
        }
        score
    }

    fn learn(&mut self, _timestamp_ms: i64, values: &[f64]) {
        self.reference.learn(values);
    }

    fn contributions(&self) -> Vec<f64> {
        Vec::new()
    }

    fn warnings(&self) -> Vec<String> {
        if self.failed_fits == 0 {
            return Vec::new();
        }
        vec![format!(
            "{}: {} of {} fits failed (last: {}); a failed fit keeps the previous model, rows before the first successful fit score 0",
            self.cfg.name(),
            self.failed_fits,
            self.fits,
            self.last_error
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_that_cannot_happen_is_reported_not_silent() {
        let cfg = ClusterConfig::Kmeans { n_clusters: 2, reference: Reference { fit_after_rows: 50, ..Reference::default() } };
        let mut det = cfg.build(2).unwrap();
        // Only 5 complete rows before the fit is due: too few to fit.
        for i in 0..60 {
            let v = if i % 12 == 0 { i as f64 } else { f64::NAN };
            assert_eq!(det.push(i * 60_000, &[v, 1.0]), 0.0);
        }
        let w = det.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("kmeans: 1 of 1 fits failed") && w[0].contains("5 usable reference rows"), "{}", w[0]);
        // A healthy stream has nothing to report.
        let mut ok = cfg.build(2).unwrap();
        for i in 0..60 {
            ok.push(i * 60_000, &[(i % 7) as f64, (i % 5) as f64]);
        }
        assert!(ok.warnings().is_empty());
    }
}
