use serde::{Deserialize, Serialize};

use super::IForestError;

/// Rows drawn per tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxSamples {
    /// min(256, n).
    Auto,
    /// min(count, n).
    Count(usize),
    /// fraction × n, in (0, 1].
    Fraction(f64),
}

/// Features drawn per tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    /// min(count, n_features).
    Count(usize),
    /// max(1, fraction × n_features), fraction in (0, 1].
    Fraction(f64),
}

/// How the decision threshold is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contamination {
    /// Threshold 0.5 on the score (scikit-learn `offset_ = -0.5`).
    Auto,
    /// Expected fraction of anomalies in (0, 0.5]: threshold at that quantile of training scores.
    Fraction(f64),
}

/// Unfitted Isolation Forest: hyperparameters with scikit-learn's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IsolationForestParams {
    /// Trees (scikit-learn `n_estimators`, default 100).
    pub n_estimators: usize,
    /// Rows per tree (default `auto`).
    pub max_samples: MaxSamples,
    /// Threshold rule (default `auto`).
    pub contamination: Contamination,
    /// Features per tree (default all).
    pub max_features: MaxFeatures,
    /// Draw rows with replacement.
    pub bootstrap: bool,
    /// Seed of every random step.
    pub seed: u64,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            contamination: Contamination::Auto,
            max_features: MaxFeatures::Fraction(1.0),
            bootstrap: false,
            seed: 0,
        }
    }
}

impl IsolationForestParams {
    /// Set `n_estimators`.
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.n_estimators = n;
        self
    }
    /// Set `max_samples`.
    pub fn max_samples(mut self, m: MaxSamples) -> Self {
        self.max_samples = m;
        self
    }
    /// Set `contamination`.
    pub fn contamination(mut self, c: Contamination) -> Self {
        self.contamination = c;
        self
    }
    /// Set `max_features`.
    pub fn max_features(mut self, m: MaxFeatures) -> Self {
        self.max_features = m;
        self
    }
    /// Set `bootstrap`.
    pub fn bootstrap(mut self, b: bool) -> Self {
        self.bootstrap = b;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }

    /// Check every parameter; the error names it.
    pub fn validate(&self) -> Result<(), IForestError> {
        let bad = |name, value: String, reason| Err(IForestError::InvalidParam { name, value, reason });
        if self.n_estimators == 0 {
            return bad("n_estimators", "0".into(), "must be at least 1");
        }
        match self.max_samples {
            MaxSamples::Count(0) => return bad("max_samples", "0".into(), "must be at least 1"),
            MaxSamples::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad("max_samples", f.to_string(), "a fraction must be in (0, 1]");
            }
            _ => {}
        }
        match self.max_features {
            MaxFeatures::Count(0) => return bad("max_features", "0".into(), "must be at least 1"),
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad("max_features", f.to_string(), "a fraction must be in (0, 1]");
            }
            _ => {}
        }
        if let Contamination::Fraction(c) = self.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return bad("contamination", c.to_string(), "must be in (0, 0.5] or auto");
        }
        Ok(())
    }
}
