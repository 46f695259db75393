//! Workbench-side detectors: clustering detectors on linfa-clustering ([`clustering`]), and
//! [`AnyDetector`], the config that names either one of them or a runtime detector.
//!
//! ```
//! use workbench::detectors::AnyDetector;
//! assert_eq!(AnyDetector::from_toml_str("kind = \"kmeans\"\nn_clusters = 4", "x").unwrap().name(), "kmeans");
//! assert_eq!(AnyDetector::from_toml_str("kind = \"mahalanobis\"", "x").unwrap().name(), "mahalanobis");
//! let err = AnyDetector::from_toml_str("kind = \"mahalanobis\"\nridg = 1.0", "det.toml").unwrap_err();
//! assert!(err.contains("det.toml") && err.contains("ridg"));
//! ```

pub mod clustering;
pub mod forecast;
pub mod linfa_iforest;

use runtime::models::detectors::{DetectorConfig, DetectorError, StreamingDetector};
use serde::{Deserialize, Serialize};

pub use clustering::ClusterConfig;
pub use forecast::LstmResidualConfig;

/// A detector of the runtime (`tail_ensemble`, `mahalanobis`, …) or of the workbench
/// (`kmeans`, `gmm`, `dbscan`), chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyDetector {
    /// Clustering detectors (workbench only: they need linfa).
    Cluster(ClusterConfig),
    /// The LSTM forecast-residual detector (workbench only: it trains).
    Forecast(LstmResidualConfig),
    /// Streaming detectors the runtime can serve.
    Runtime(DetectorConfig),
}

impl Default for AnyDetector {
    fn default() -> Self {
        Self::Runtime(DetectorConfig::default())
    }
}

impl From<DetectorConfig> for AnyDetector {
    fn from(c: DetectorConfig) -> Self {
        Self::Runtime(c)
    }
}

impl AnyDetector {
    /// Parse a detector TOML: `kind` picks the detector, every other key is its setting.
    /// Errors name `origin` and the bad key.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        let kind = table.get("kind").and_then(|k| k.as_str()).ok_or_else(|| format!("{origin}: missing `kind`"))?;
        let parsed = if matches!(kind, "kmeans" | "gmm" | "dbscan") {
            toml::from_str::<ClusterConfig>(text).map(Self::Cluster)
        } else if kind == "lstm_residual" {
            toml::from_str::<LstmResidualConfig>(text).map(Self::Forecast)
        } else {
            toml::from_str::<DetectorConfig>(text).map(Self::Runtime)
        };
        parsed.map_err(|e| format!("{origin}: {e}"))
    }

    /// Build for `n_metrics` columns.
    pub fn build(&self, n_metrics: usize) -> Result<Box<dyn StreamingDetector>, DetectorError> {
        match self {
            Self::Cluster(c) => Ok(Box::new(c.build(n_metrics)?)),
            Self::Forecast(c) => Ok(Box::new(c.build(n_metrics)?)),
            Self::Runtime(c) => c.build(n_metrics),
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cluster(c) => c.name(),
            Self::Forecast(_) => "lstm_residual",
            Self::Runtime(c) => c.name(),
        }
    }
}
