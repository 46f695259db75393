//! Isolation Forest with scikit-learn semantics (Liu, Ting & Zhou 2008).
//!
//! `max_samples` = min(256, n) by default, depth limit ceil(log2(max_samples)), a random
//! feature and a uniform random split per node, path length plus c(leaf size), and
//! score = 2^(-E\[h\] / c(max_samples)) in [0, 1] (higher = more anomalous; scikit-learn's
//! `score_samples` is the negative of this). `contamination` sets the decision threshold from
//! the training scores (`auto`: 0.5, scikit-learn's `offset_ = -0.5`).
//!
//! ```
//! use runtime::models::iforest::IsolationForestParams;
//! let mut data: Vec<f64> = (0..500).flat_map(|i| [(i % 17) as f64, (i % 13) as f64]).collect();
//! data.extend([100.0, 100.0]);
//! let model = IsolationForestParams::default().seed(7).fit(&data, 2).unwrap();
//! let scores = model.score_samples(&data);
//! assert!(scores[500] > 0.6 && scores[500] > scores[0]);
//! ```

mod algorithm;
mod errors;
mod hyperparams;

pub use algorithm::{IsolationForest, average_path_length};
pub use errors::IForestError;
pub use hyperparams::{Contamination, IsolationForestParams, MaxFeatures, MaxSamples};
