//! # workbench
//!
//! The experiment half of the AIOps workbench: metric history in polars DataFrames
//! ([`frames`]: CSV, Parquet, NAB, SMD, InfluxDB, Prometheus), explicit cleaning ([`clean`]),
//! the batch twin of the runtime's feature spec ([`features`]), fleet simulation
//! ([`simulate`]) and benchmarks ([`bench`](mod@bench)). The binary `experiment` is a thin CLI over these.
//!
//! ```
//! use runtime::features::FeatureSpec;
//! use workbench::{clean, features, simulate};
//! let cfg = runtime::collector::simulate::SimConfig { servers: 2, ..Default::default() };
//! let (frame, incidents) = simulate::simulate(&cfg, 0.1, false).unwrap();
//! let (clean, report) = clean::clean(&frame, &clean::CleanConfig::default()).unwrap();
//! let feats = features::batch_features(&clean, &FeatureSpec::default()).unwrap();
//! assert_eq!(feats.width(), 2 + 47);
//! ```

pub mod bench;
pub mod charts;
pub mod clean;
pub mod detect;
pub mod detectors;
pub mod evaluation;
pub mod features;
pub mod forecast_sweep;
pub mod forecasting;
pub mod frames;
pub mod lstm;
pub mod mlflow;
pub mod notebook;
pub mod promote;
pub mod simulate;
pub mod sweep;
pub mod tracking;

// Re-exported so notebooks (evcxr) and downstream code use the exact versions the workbench's
// types come from.
pub use polars;
pub use serde_json;
