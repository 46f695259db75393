//! Streaming (online, causal) anomaly detectors: the score of row t depends only on rows ≤ t,
//! never on how many rows follow, so truncating a stream never changes an earlier score.
//!
//! ```
//! use runtime::models::detectors::{DetectorConfig, StreamingDetector};
//! let mut det = DetectorConfig::default().build(1).unwrap();
//! let scores: Vec<f64> = (0..400).map(|i| det.push(i * 300_000, &[if i == 350 { 50.0 } else { (i % 7) as f64 }])).collect();
//! assert!(scores[350] > scores[349]);
//! ```

mod context;
mod ensemble;
mod ewma;
mod fleet;
mod iforest_features;
mod knn;
mod mahalanobis;
mod robust_z;
mod tail;
mod window;

pub use context::ContextTailConfig;
pub use ensemble::{Combine, EnsembleConfig};
pub use ewma::EwmaConfig;
pub use fleet::FleetConfig;
pub use iforest_features::IForestFeaturesConfig;
pub use knn::KnnConfig;
pub use mahalanobis::MahalanobisConfig;
pub use robust_z::RobustZConfig;
pub use tail::TailEnsembleConfig;
pub use window::{ReferenceRows, fit_due};

use serde::{Deserialize, Serialize};

/// A detector scoring one row at a time.
pub trait StreamingDetector: Send + std::fmt::Debug {
    /// Score the row (`values` in metric order) at `timestamp_ms`, then learn from it. In [0, 1].
    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64;

    /// Learn from rows known to be normal (a training split) without scoring them.
    fn learn(&mut self, timestamp_ms: i64, values: &[f64]) {
        let _ = self.push(timestamp_ms, values);
    }

    /// Per-metric contribution to the last pushed row's score (larger = more responsible),
    /// for the alert's primary issue; empty when the detector cannot tell.
    fn contributions(&self) -> Vec<f64> {
        Vec::new()
    }

    /// What went wrong so far without stopping the stream (e.g. a fit that failed, so rows
    /// scored 0 until one succeeded), for the caller to show; empty when nothing did.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Everything the detector has learned, to carry over a restart ([`Self::load_state`]);
    /// `None` where this detector does not keep its state (the runtime then re-learns it from
    /// the history it re-reads).
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Continue from a [`Self::save_state`] of a detector built from the same settings.
    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        let _ = state;
        Err("this detector does not keep its state across restarts".into())
    }
}

/// [`StreamingDetector::save_state`] of a detector that is plain data (MessagePack: compact,
/// and NaN survives it).
pub(crate) fn save_state<T: Serialize>(detector: &T) -> Option<Vec<u8>> {
    rmp_serde::to_vec_named(detector).ok()
}

/// [`StreamingDetector::load_state`] of a detector that is plain data: the whole state replaced.
pub(crate) fn load_state<T: serde::de::DeserializeOwned>(detector: &mut T, state: &[u8]) -> Result<(), String> {
    *detector = rmp_serde::from_slice(state).map_err(|e| format!("detector state: {e}"))?;
    Ok(())
}

/// Which detector, with its settings (TOML: `kind = "context_tail"` plus its fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectorConfig {
    /// The previous default: calibrated tail probabilities of value and mean, see
    /// [`TailEnsembleConfig`].
    TailEnsemble(TailEnsembleConfig),
    /// The reference method: Isolation Forest on rolling/lag/rate features, see [`IForestFeaturesConfig`].
    IforestFeatures(IForestFeaturesConfig),
    /// Multivariate robust z-scores against a training split, see [`RobustZConfig`].
    RobustZ(RobustZConfig),
    /// Smoothed Mahalanobis distance plus change magnitude, see [`MahalanobisConfig`].
    Mahalanobis(MahalanobisConfig),
    /// Nearest-neighbour distance on levels and volatility plus change, see [`KnnConfig`].
    Knn(KnnConfig),
    /// Calibrated members combined by mean or max, see [`EnsembleConfig`].
    Ensemble(EnsembleConfig),
    /// EWMA z-scores with O(1) memory per series, see [`EwmaConfig`].
    Ewma(EwmaConfig),
    /// Tail surprise of value, level and same-time-on-past-days with persistence, the range rule
    /// and a refractory period: the univariate default, see [`ContextTailConfig`].
    ContextTail(ContextTailConfig),
    /// Per-metric baselines, level / sustained / flatline views and a daily context, a few KB
    /// per server: the fleet default for multi-metric server data, see [`FleetConfig`].
    Fleet(FleetConfig),
}

impl Default for DetectorConfig {
    /// The univariate default, [`ContextTailConfig`].
    fn default() -> Self {
        Self::ContextTail(ContextTailConfig::default())
    }
}

/// Invalid detector settings.
#[derive(Debug, thiserror::Error)]
#[error("invalid detector setting `{field}` = {value}: {reason}")]
pub struct DetectorError {
    /// The field.
    pub field: String,
    /// Its value.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// Every numeric setting finite and within `[lo, hi]` (`(field, value, lo, hi)`), the first
/// that is not named in the error: NaN, infinities and out-of-range values are refused before
/// anything runs.
pub(crate) fn check_ranges(fields: &[(&str, f64, f64, f64)]) -> Result<(), DetectorError> {
    for &(field, v, lo, hi) in fields {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            let range = if lo == POSITIVE { format!("(0, {hi}]") } else { format!("[{lo}, {hi}]") };
            return Err(DetectorError { field: field.into(), value: v.to_string(), reason: format!("a finite number in {range}") });
        }
    }
    Ok(())
}

/// The smallest positive value [`check_ranges`] accepts where a setting must be positive.
pub(crate) const POSITIVE: f64 = f64::MIN_POSITIVE;

impl DetectorConfig {
    /// Every `kind` the runtime serves, the univariate and fleet defaults first (each but
    /// `ensemble`, which needs its `[[members]]`, parses from `kind = "…"` alone).
    pub const KINDS: [&'static str; 9] =
        ["context_tail", "fleet", "tail_ensemble", "mahalanobis", "knn", "robust_z", "ewma", "iforest_features", "ensemble"];

    /// `kind` with its default settings (None: not a runtime kind, or `ensemble`).
    pub fn default_for(kind: &str) -> Option<Self> {
        Self::KINDS.contains(&kind).then(|| toml::from_str(&format!("kind = \"{kind}\"")).ok()).flatten()
    }

    /// Validate and build a detector for `n_metrics` columns.
    pub fn build(&self, n_metrics: usize) -> Result<Box<dyn StreamingDetector>, DetectorError> {
        if n_metrics == 0 {
            return Err(DetectorError { field: "metrics".into(), value: "0".into(), reason: "at least one metric column".into() });
        }
        Ok(match self {
            Self::TailEnsemble(c) => Box::new(c.build(n_metrics)?),
            Self::IforestFeatures(c) => Box::new(c.build(n_metrics)?),
            Self::RobustZ(c) => Box::new(c.build(n_metrics)?),
            Self::Mahalanobis(c) => Box::new(c.build(n_metrics)?),
            Self::Knn(c) => Box::new(c.build(n_metrics)?),
            Self::Ensemble(c) => Box::new(c.build(n_metrics)?),
            Self::Ewma(c) => Box::new(c.build(n_metrics)?),
            Self::ContextTail(c) => Box::new(c.build(n_metrics)?),
            Self::Fleet(c) => Box::new(c.build(n_metrics)?),
        })
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TailEnsemble(_) => "tail_ensemble",
            Self::IforestFeatures(_) => "iforest_features",
            Self::RobustZ(_) => "robust_z",
            Self::Mahalanobis(_) => "mahalanobis",
            Self::Knn(_) => "knn",
            Self::Ensemble(_) => "ensemble",
            Self::Ewma(_) => "ewma",
            Self::ContextTail(_) => "context_tail",
            Self::Fleet(_) => "fleet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_listed_parses_with_defaults_and_names_itself() {
        let e = toml::from_str::<DetectorConfig>("kind = \"ensemble\"").unwrap_err().to_string();
        assert!(e.contains("members"), "{e}");
        for kind in DetectorConfig::KINDS.into_iter().filter(|k| *k != "ensemble") {
            let cfg = DetectorConfig::default_for(kind).unwrap_or_else(|| panic!("{kind} has no defaults"));
            assert_eq!(cfg.name(), kind);
            cfg.build(3).unwrap();
        }
        assert!(DetectorConfig::default_for("kmeans").is_none());
    }

    #[test]
    fn non_finite_negative_and_out_of_range_settings_are_refused_by_name() {
        for (toml_text, field) in [
            ("kind = \"tail_ensemble\"\nrange_weight = nan", "range_weight"),
            ("kind = \"tail_ensemble\"\nalarm_score = nan", "alarm_score"),
            ("kind = \"tail_ensemble\"\nscale_nats = inf", "scale_nats"),
            ("kind = \"context_tail\"\nrange_weight = -1.0", "range_weight"),
            ("kind = \"context_tail\"\nalarm_score = nan", "alarm_score"),
            ("kind = \"knn\"\nlevel_weight = -1.0", "level_weight"),
            ("kind = \"knn\"\nscale = nan", "scale"),
            ("kind = \"mahalanobis\"\nchange_weight = inf", "change_weight"),
            ("kind = \"robust_z\"\nmin_spread = nan", "min_spread"),
            ("kind = \"ewma\"\nscale = inf", "scale"),
            ("kind = \"fleet\"\nhalf_surprise = nan", "half_surprise"),
            ("kind = \"fleet\"\nseasonal_tolerance = -0.5", "seasonal_tolerance"),
        ] {
            let cfg: DetectorConfig = toml::from_str(toml_text).unwrap();
            let err = cfg.build(4).unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")), "{toml_text}: {err}");
        }
    }

    /// A detector saved after a day of rows and loaded into a fresh one scores the next day
    /// exactly as the one that never stopped (bit for bit), for every kind that keeps its state.
    #[test]
    fn saved_state_continues_bit_for_bit() {
        let row = |i: i64| -> [f64; 3] {
            let t = (i % 288) as f64;
            let spike = if i % 500 == 420 { 40.0 } else { 0.0 };
            [30.0 + 10.0 * (t / 288.0 * std::f64::consts::TAU).sin() + (i % 7) as f64 + spike, 50.0 + (i % 5) as f64, (i % 3) as f64]
        };
        for cfg in [
            DetectorConfig::Fleet(FleetConfig::default()),
            DetectorConfig::ContextTail(ContextTailConfig::default()),
            DetectorConfig::TailEnsemble(TailEnsembleConfig::default()),
            DetectorConfig::Ewma(EwmaConfig::default()),
        ] {
            let (mut whole, mut first) = (cfg.build(3).unwrap(), cfg.build(3).unwrap());
            for i in 0..2000 {
                let t = i * 300_000;
                assert_eq!(whole.push(t, &row(i)).to_bits(), first.push(t, &row(i)).to_bits());
            }
            let state = first.save_state().expect("keeps its state");
            let mut resumed = cfg.build(3).unwrap();
            resumed.load_state(&state).unwrap();
            for i in 2000..3000 {
                let t = i * 300_000;
                assert_eq!(whole.push(t, &row(i)).to_bits(), resumed.push(t, &row(i)).to_bits(), "{} row {i}", cfg.name());
                assert_eq!(whole.contributions(), resumed.contributions());
            }
            assert!(resumed.load_state(b"not a state").is_err());
        }
        let mut knn = DetectorConfig::Knn(KnnConfig::default()).build(3).unwrap();
        assert!(knn.save_state().is_none() && knn.load_state(&[]).is_err(), "kinds without it say so");
    }
}
