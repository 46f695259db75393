use rand::{Rng, SeedableRng, seq::index::sample};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Contamination, IForestError, IsolationForestParams, MaxFeatures, MaxSamples};

/// Euler–Mascheroni constant, as scikit-learn uses it.
const EULER_GAMMA: f64 = 0.577_215_664_9;

/// c(n): average path length of an unsuccessful BST search among n points.
/// c(n) = 2(ln(n-1) + γ) - 2(n-1)/n for n > 2, c(2) = 1, c(n ≤ 1) = 0.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// One tree as a complete binary tree of depth `depth`: internal node `i` has children
/// `2i+1` (x ≤ threshold) and `2i+2`; a leaf reached before the depth limit is extended with
/// pass-through nodes (threshold `f64::MAX`, every leaf below holding the leaf's value, so the
/// direction taken does not matter) and every row takes exactly `depth` steps, branch-free.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    /// Internal nodes, interleaved so one step reads one cache line.
    nodes: Vec<Node>,
    /// Path length (depth + c(leaf size)) of each of the 2^depth leaves.
    leaf: Vec<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Node {
    /// f32 like scikit-learn's trees (`DTYPE = np.float32`): 8-byte nodes, half the traffic.
    threshold: f32,
    feature: u32,
}

/// A fitted Isolation Forest. Only this type scores; see [`IsolationForestParams::fit`].
/// A deserialized model must pass [`IsolationForest::check_version`] before scoring.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "UncheckedForest")]
pub struct IsolationForest {
    format_version: u32,
    params: IsolationForestParams,
    n_features: usize,
    max_samples: usize,
    depth: u32,
    threshold: f64,
    trees: Vec<Tree>,
}

/// The serialized shape, checked before it becomes an [`IsolationForest`].
#[derive(Deserialize)]
struct UncheckedForest {
    format_version: u32,
    params: IsolationForestParams,
    n_features: usize,
    max_samples: usize,
    depth: u32,
    threshold: f64,
    trees: Vec<Tree>,
}

impl TryFrom<UncheckedForest> for IsolationForest {
    type Error = IForestError;

    fn try_from(u: UncheckedForest) -> Result<Self, IForestError> {
        let model = IsolationForest {
            format_version: u.format_version,
            params: u.params,
            n_features: u.n_features,
            max_samples: u.max_samples,
            depth: u.depth,
            threshold: u.threshold,
            trees: u.trees,
        };
        model.check_version()?;
        Ok(model)
    }
}

const FORMAT_VERSION: u32 = 2;
/// Rows scored together, tree by tree: 256 rows × 47 f32 features (47 KB) stay in L1/L2 while
/// each tree's nodes are read once per block (32 → 256 rows: 2.1 → 2.9 M rows/s).
const BLOCK: usize = 256;
/// Threshold of pass-through nodes (finite so models serialize to JSON).
const PASS: f32 = f32::MAX;

fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Builder<'a> {
    data: &'a [f64],
    nf: usize,
    depth: u32,
    features: Vec<usize>,
    rng: ChaCha8Rng,
    tree: Tree,
}

impl Builder<'_> {
    fn leaf(&mut self, node: usize, level: u32, size: usize) {
        let value = f64::from(level) + average_path_length(size);
        // Pass-through: every internal node below goes left; all leaves below get the value.
        let (mut lo, mut hi) = (node, node);
        let mut l = level;
        while l < self.depth {
            for i in lo..=hi {
                self.tree.nodes[i] = Node { threshold: PASS, feature: 0 };
            }
            lo = 2 * lo + 1;
            hi = 2 * hi + 2;
            l += 1;
        }
        let first_leaf = (1usize << self.depth) - 1;
        for i in lo..=hi {
            self.tree.leaf[i - first_leaf] = value;
        }
    }

    fn build(&mut self, node: usize, level: u32, rows: &mut [usize]) {
        if level >= self.depth || rows.len() <= 1 {
            self.leaf(node, level, rows.len());
            return;
        }
        // Draw features without replacement until one is not constant on these rows
        // (scikit-learn's random splitter skips constant features the same way).
        let mut candidates = self.features.clone();
        while !candidates.is_empty() {
            let f = candidates.swap_remove(self.rng.random_range(0..candidates.len()));
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for &r in rows.iter() {
                // Trees split and score in f32, as scikit-learn's do.
                let x = self.data[r * self.nf + f] as f32;
                lo = lo.min(x);
                hi = hi.max(x);
            }
            if hi > lo {
                let mut t = (f64::from(lo) + self.rng.random::<f64>() * f64::from(hi - lo)) as f32;
                if t >= hi {
                    t = lo;
                }
                self.tree.nodes[node] = Node { threshold: t, feature: f as u32 };
                let mut split = 0;
                for i in 0..rows.len() {
                    if self.data[rows[i] * self.nf + f] as f32 <= t {
                        rows.swap(i, split);
                        split += 1;
                    }
                }
                let (left, right) = rows.split_at_mut(split);
                self.build(2 * node + 1, level + 1, left);
                self.build(2 * node + 2, level + 1, right);
                return;
            }
        }
        self.leaf(node, level, rows.len());
    }
}

impl IsolationForestParams {
    /// Fit on `data`, row-major with `n_features` columns. Non-finite values are refused.
    pub fn fit(&self, data: &[f64], n_features: usize) -> Result<IsolationForest, IForestError> {
        self.validate()?;
        if n_features == 0 || data.is_empty() || !data.len().is_multiple_of(n_features) {
            return Err(IForestError::InvalidData(format!("{} values do not form rows of {n_features} features", data.len())));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(IForestError::InvalidData(format!("row {} feature {} is {}", i / n_features, i % n_features, data[i])));
        }
        let n = data.len() / n_features;
        let psi = match self.max_samples {
            MaxSamples::Auto => n.min(256),
            MaxSamples::Count(c) => c.min(n),
            MaxSamples::Fraction(f) => ((f * n as f64) as usize).max(1),
        };
        let n_feat = match self.max_features {
            MaxFeatures::Count(c) => c.min(n_features),
            MaxFeatures::Fraction(f) => ((f * n_features as f64) as usize).clamp(1, n_features),
        };
        let depth = (psi.max(2) as f64).log2().ceil() as u32;
        let internal = (1usize << depth) - 1;
        let trees: Vec<Tree> = (0..self.n_estimators)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, t as u64));
                let mut rows: Vec<usize> =
                    if self.bootstrap { (0..psi).map(|_| rng.random_range(0..n)).collect() } else { sample(&mut rng, n, psi).into_vec() };
                let features =
                    if n_feat == n_features { (0..n_features).collect() } else { sample(&mut rng, n_features, n_feat).into_vec() };
                let mut b = Builder {
                    data,
                    nf: n_features,
                    depth,
                    features,
                    rng,
                    tree: Tree { nodes: vec![Node { threshold: PASS, feature: 0 }; internal], leaf: vec![0.0; internal + 1] },
                };
                b.build(0, 0, &mut rows);
                b.tree
            })
            .collect();
        let mut model = IsolationForest {
            format_version: FORMAT_VERSION,
            params: self.clone(),
            n_features,
            max_samples: psi,
            depth,
            threshold: 0.5,
            trees,
        };
        if let Contamination::Fraction(c) = self.contamination {
            let mut scores = model.score_samples(data);
            scores.sort_by(f64::total_cmp);
            model.threshold = percentile_linear(&scores, 1.0 - c);
        }
        Ok(model)
    }
}

/// numpy's default (linear) percentile of sorted values, q in [0, 1].
fn percentile_linear(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl IsolationForest {
    /// Features per row.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Rows drawn per tree (ψ).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// The parameters it was fitted with.
    pub fn params(&self) -> &IsolationForestParams {
        &self.params
    }

    /// Decision threshold on the score (a row is anomalous when its score is above it).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Refuse a deserialized model of another format version.
    /// (Deserialization runs this too: the scoring loop relies on complete trees and in-range
    /// feature indices.)
    pub fn check_version(&self) -> Result<(), IForestError> {
        if self.format_version != FORMAT_VERSION {
            return Err(IForestError::Version { found: self.format_version, expected: FORMAT_VERSION });
        }
        let internal = (1usize << self.depth.min(30)) - 1;
        let consistent = self.depth <= 30
            && self.trees.iter().all(|t| {
                t.nodes.len() == internal && t.leaf.len() == internal + 1 && t.nodes.iter().all(|n| (n.feature as usize) < self.n_features)
            });
        if consistent {
            Ok(())
        } else {
            Err(IForestError::InvalidData("model trees are inconsistent with its depth or feature count".into()))
        }
    }

    /// Mean path length of every row of one block into `acc` (sum over trees).
    fn block_path_sums(&self, block: &[f32], rows: usize, acc: &mut [f64; BLOCK]) {
        let nf = self.n_features;
        let first_leaf = (1usize << self.depth) - 1;
        let mut idx = [0usize; BLOCK];
        for tree in &self.trees {
            idx[..rows].fill(0);
            for _ in 0..self.depth {
                for (r, slot) in idx.iter_mut().enumerate().take(rows) {
                    let i = *slot;
                    debug_assert!(i < tree.nodes.len());
                    // SAFETY: the tree is complete with `depth` levels of internal nodes, so at
                    // level l < depth, i < 2^depth - 1 = nodes.len(); `feature < n_features` by
                    // construction (checked in `check_version` for loaded models) and
                    // r < rows, so r * nf + feature < block.len().
                    let node = unsafe { *tree.nodes.get_unchecked(i) };
                    debug_assert!((node.feature as usize) < nf && r * nf + (node.feature as usize) < block.len());
                    let x = unsafe { *block.get_unchecked(r * nf + node.feature as usize) };
                    *slot = 2 * i + 1 + usize::from(x > node.threshold);
                }
            }
            for r in 0..rows {
                acc[r] += tree.leaf[idx[r] - first_leaf];
            }
        }
    }

    /// Anomaly scores in [0, 1] of row-major `data` into `out` (one per row), in parallel.
    pub fn score_into(&self, data: &[f64], out: &mut [f64]) {
        let nf = self.n_features;
        assert_eq!(data.len(), out.len() * nf, "data must hold out.len() rows of n_features values");
        let norm = average_path_length(self.max_samples) * self.trees.len() as f64;
        let chunk_rows = 4096;
        out.par_chunks_mut(chunk_rows).enumerate().for_each(|(c, out_chunk)| {
            let base = c * chunk_rows;
            let mut block32 = vec![0f32; BLOCK * nf];
            for (b, out_block) in out_chunk.chunks_mut(BLOCK).enumerate() {
                let start = base + b * BLOCK;
                let rows = out_block.len();
                for (dst, src) in block32.iter_mut().zip(&data[start * nf..(start + rows) * nf]) {
                    *dst = *src as f32;
                }
                let mut acc = [0.0; BLOCK];
                self.block_path_sums(&block32[..rows * nf], rows, &mut acc);
                for (o, h) in out_block.iter_mut().zip(acc) {
                    *o = if norm > 0.0 { (-h / norm).exp2() } else { 0.5 };
                }
            }
        });
    }

    /// Anomaly scores in [0, 1] (higher = more anomalous).
    pub fn score_samples(&self, data: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; data.len() / self.n_features.max(1)];
        self.score_into(data, &mut out);
        out
    }

    /// Score of one row.
    pub fn score_row(&self, row: &[f64]) -> f64 {
        let mut out = [0.0];
        self.score_into(row, &mut out);
        out[0]
    }

    /// `true` where the score is above the threshold.
    pub fn predict(&self, data: &[f64]) -> Vec<bool> {
        self.score_samples(data).into_iter().map(|s| s > self.threshold).collect()
    }

    /// Which features isolated this row: for every tree where the row's path is shorter than
    /// the average c(ψ), the real splits on its path share the shortfall. Normalized to sum 1
    /// (all zeros when no tree isolates it early).
    pub fn attribution(&self, row: &[f64]) -> Vec<f64> {
        let mut weights = vec![0.0; self.n_features];
        let c = average_path_length(self.max_samples);
        let first_leaf = (1usize << self.depth) - 1;
        let mut path = Vec::with_capacity(self.depth as usize);
        for tree in &self.trees {
            path.clear();
            let mut i = 0;
            for _ in 0..self.depth {
                let node = tree.nodes[i];
                if node.threshold != PASS {
                    path.push(node.feature as usize);
                }
                i = 2 * i + 1 + usize::from(row[node.feature as usize] as f32 > node.threshold);
            }
            let h = tree.leaf[i - first_leaf];
            if h < c && !path.is_empty() {
                let share = (c - h) / path.len() as f64;
                for &f in &path {
                    weights[f] += share;
                }
            }
        }
        let total: f64 = weights.iter().sum();
        if total > 0.0 {
            weights.iter_mut().for_each(|w| *w /= total);
        }
        weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_of_n_matches_scikit_learn() {
        // sklearn.ensemble._iforest._average_path_length([1, 2, 3, 256, 1000])
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        assert!((average_path_length(3) - 1.207_392_357_586_464).abs() < 1e-12);
        assert!((average_path_length(256) - 10.244_770_920_116_851).abs() < 1e-9);
        assert!((average_path_length(1000) - 12.969_940_887_242_088).abs() < 1e-9);
    }

    fn blob(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * 3).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn outliers_score_high_and_seed_is_deterministic() {
        let mut data = blob(1000, 1);
        data.extend([8.0, 8.0, 8.0]);
        let p = IsolationForestParams::default().seed(3);
        let m = p.fit(&data, 3).unwrap();
        let s = m.score_samples(&data);
        assert!(s[1000] > 0.65, "outlier score {}", s[1000]);
        let inlier_mean = s[..1000].iter().sum::<f64>() / 1000.0;
        assert!(inlier_mean < 0.55 && s[1000] - inlier_mean > 0.15, "{inlier_mean}");
        assert_eq!(s, p.fit(&data, 3).unwrap().score_samples(&data));
        assert_ne!(s, p.clone().seed(4).fit(&data, 3).unwrap().score_samples(&data));
        let a = m.attribution(&[0.0, 9.0, 0.0]);
        assert!(a[1] > 0.5 && a[1] > a[0] && a[1] > a[2], "{a:?}");
    }

    #[test]
    fn contamination_sets_threshold_at_the_quantile() {
        let data = blob(2000, 2);
        let m = IsolationForestParams::default().contamination(Contamination::Fraction(0.05)).fit(&data, 3).unwrap();
        let flagged = m.predict(&data).iter().filter(|x| **x).count();
        assert!((95..=105).contains(&flagged), "{flagged}");
    }

    #[test]
    fn block_and_single_row_scores_agree_and_serde_round_trips() {
        let data = blob(300, 5);
        let m = IsolationForestParams::default().fit(&data, 3).unwrap();
        let all = m.score_samples(&data);
        for r in [0, 63, 64, 299] {
            assert_eq!(all[r], m.score_row(&data[r * 3..r * 3 + 3]));
        }
        let json = serde_json::to_string(&m).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.score_samples(&data), all);
        // A tampered model (feature index out of range) is refused at load, before any scoring.
        let bad = json.replacen("\"feature\":0", "\"feature\":99", 1);
        assert_ne!(bad, json);
        let err = serde_json::from_str::<IsolationForest>(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("inconsistent"), "tampered model loaded: {err:?}");
        let old = json.replacen("\"format_version\":2", "\"format_version\":7", 1);
        let err = serde_json::from_str::<IsolationForest>(&old).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("version 7"), "{err:?}");
    }

    #[test]
    fn bad_params_and_data_are_named() {
        let e = IsolationForestParams::default().n_estimators(0).fit(&[1.0], 1).unwrap_err();
        assert!(e.to_string().contains("n_estimators"));
        let e = IsolationForestParams::default().contamination(Contamination::Fraction(0.7)).validate().unwrap_err();
        assert!(e.to_string().contains("contamination") && e.to_string().contains("0.7"));
        let e = IsolationForestParams::default().fit(&[1.0, f64::NAN], 1).unwrap_err();
        assert!(e.to_string().contains("row 1"));
        // Constant data: every tree is a single leaf, all scores equal.
        let m = IsolationForestParams::default().fit(&[2.0; 50], 1).unwrap();
        let s = m.score_samples(&[2.0; 50]);
        assert!(s.iter().all(|x| *x == s[0]));
    }
}
