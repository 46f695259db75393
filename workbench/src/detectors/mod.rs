//! Workbench-side detectors: clustering detectors on linfa-clustering ([`clustering`]), and
//! [`AnyDetector`], the config that names either one of them or a runtime detector.
//!
//! ```
//! use workbench::detectors::AnyDetector;
//! assert_eq!(AnyDetector::from_toml_str("kind = \"kmeans\"\nn_clusters = 4", "x").unwrap().name(), "kmeans");
//! assert_eq!(AnyDetector::from_toml_str("kind = \"mahalanobis\"", "x").unwrap().name(), "mahalanobis");
//! let err = AnyDetector::from_toml_str("kind = \"mahalanobis\"\nridg = 1.0", "det.toml").unwrap_err().to_string();
//! assert!(err.contains("det.toml") && err.contains("ridg"));
//! let err = AnyDetector::from_toml_str("kind = \"mahalanobi\"", "det.toml").unwrap_err().to_string();
//! assert!(err.contains("unknown detector kind `mahalanobi`") && err.contains("lstm_residual"), "{err}");
//! // JSON (a tracked trial) reads the same way, tagged by `kind`.
//! let d: AnyDetector = serde_json::from_str(r#"{"kind": "lstm_residual", "epochs": 3}"#).unwrap();
//! assert_eq!(d.name(), "lstm_residual");
//! assert_eq!(serde_json::from_str::<AnyDetector>(&serde_json::to_string(&d).unwrap()).unwrap(), d);
//! ```

pub mod clustering;
pub mod forecast;
pub mod linfa_iforest;

use runtime::models::detectors::{DetectorConfig, DetectorError, StreamingDetector};
use serde::{Deserialize, Serialize};

pub use clustering::ClusterConfig;
pub use forecast::LstmResidualConfig;

/// A detector of the runtime (`tail_ensemble`, `mahalanobis`, …) or of the workbench
/// (`kmeans`, `gmm`, `dbscan`, `lstm_residual`), chosen by `kind` (TOML or JSON: `kind` plus
/// the detector's settings). An unknown kind is refused naming [`AnyDetector::KINDS`].
#[derive(Debug, Clone, PartialEq)]
pub enum AnyDetector {
    /// Clustering detectors (workbench only: they need linfa).
    Cluster(ClusterConfig),
    /// The LSTM forecast-residual detector (workbench only: it trains).
    Forecast(LstmResidualConfig),
    /// Streaming detectors the runtime can serve.
    Runtime(DetectorConfig),
}

/// The workbench-only kinds besides clustering, tagged by `kind` as the others are.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ForecastKind {
    LstmResidual(LstmResidualConfig),
}

/// The kinds of [`ClusterConfig`].
const CLUSTER_KINDS: [&str; 3] = ["kmeans", "gmm", "dbscan"];

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

impl Serialize for AnyDetector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Cluster(c) => c.serialize(s),
            Self::Forecast(c) => ForecastKind::LstmResidual(c.clone()).serialize(s),
            Self::Runtime(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AnyDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        let kind = value.get("kind").and_then(toml::Value::as_str).ok_or_else(|| serde::de::Error::custom(missing_kind()))?;
        let parsed = match Self::family(kind).map_err(serde::de::Error::custom)? {
            Family::Cluster => value.try_into().map(Self::Cluster),
            Family::Forecast => value.try_into().map(|ForecastKind::LstmResidual(c)| Self::Forecast(c)),
            Family::Runtime => value.try_into().map(Self::Runtime),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// A detector config that cannot be read: where it came from and why (a TOML error names the
/// key and its line; an unknown kind lists the kinds).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct DetectorConfigError {
    /// File (or flag) the config came from.
    pub origin: String,
    /// Why it was refused.
    pub reason: String,
}

enum Family {
    Cluster,
    Forecast,
    Runtime,
}

fn missing_kind() -> String {
    format!("missing `kind` (one of {})", AnyDetector::KINDS.join(", "))
}

impl AnyDetector {
    /// Every detector kind, the runtime's first ([`DetectorConfig::KINDS`]).
    pub const KINDS: [&'static str; 13] = {
        let r = DetectorConfig::KINDS;
        [r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], CLUSTER_KINDS[0], CLUSTER_KINDS[1], CLUSTER_KINDS[2], "lstm_residual"]
    };

    fn family(kind: &str) -> Result<Family, String> {
        if CLUSTER_KINDS.contains(&kind) {
            Ok(Family::Cluster)
        } else if kind == "lstm_residual" {
            Ok(Family::Forecast)
        } else if DetectorConfig::KINDS.contains(&kind) {
            Ok(Family::Runtime)
        } else {
            Err(format!("unknown detector kind `{kind}`: expected one of {}", Self::KINDS.join(", ")))
        }
    }

    /// `kind` with its default settings; an unknown kind is refused naming the choices.
    pub fn default_for(kind: &str) -> Result<Self, DetectorConfigError> {
        Self::from_toml_str(&format!("kind = \"{kind}\""), "kind")
    }

    /// Parse a detector TOML: `kind` picks the detector, every other key is its setting.
    /// Errors name `origin` and the bad key (with its line).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, DetectorConfigError> {
        let err = |reason: String| DetectorConfigError { origin: origin.to_string(), reason };
        let table: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let kind = table.get("kind").and_then(|k| k.as_str()).ok_or_else(|| err(missing_kind()))?;
        let parsed = match Self::family(kind).map_err(err)? {
            Family::Cluster => toml::from_str::<ClusterConfig>(text).map(Self::Cluster),
            Family::Forecast => toml::from_str::<ForecastKind>(text).map(|ForecastKind::LstmResidual(c)| Self::Forecast(c)),
            Family::Runtime => toml::from_str::<DetectorConfig>(text).map(Self::Runtime),
        };
        parsed.map_err(|e| err(e.to_string()))
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
