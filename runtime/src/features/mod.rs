//! Features: one [`FeatureSpec`] and its streaming twin [`StreamingFeatures`].
//!
//! The workbench computes the same columns in batch with polars (`workbench::features`); the two
//! agree to 1e-9 (tested in `workbench`).
//!
//! ```
//! use runtime::features::{FeatureSpec, StreamingFeatures};
//! let spec = FeatureSpec::for_metrics(&["cpu_usage"]);
//! let mut stream = StreamingFeatures::new(spec.clone()).unwrap();
//! let mut row = vec![0.0; stream.width()];
//! stream.push("web-01", 1_700_000_000_000, &[42.0], &mut row).unwrap();
//! assert_eq!(row[0], 42.0);
//! assert_eq!(spec.column_names()[0], "cpu_usage");
//! ```

mod spec;
mod streaming;

pub use spec::{FeatureColumn, FeatureKind, FeatureSpec, hour_and_weekday, is_business_hours};
pub use streaming::StreamingFeatures;

/// Errors of the feature module.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A spec file could not be read.
    #[error("cannot read feature spec {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A spec file is not valid TOML for a [`FeatureSpec`].
    #[error("invalid feature spec {origin}: {message}")]
    Toml {
        /// Where the text came from.
        origin: String,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A field has a value outside its domain.
    #[error("invalid feature spec: field `{field}` = {value}: {reason}")]
    InvalidSpec {
        /// The field.
        field: String,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A row with the wrong number of metric values.
    #[error("server {server}: expected {expected} metric values, got {got}")]
    Width {
        /// The server.
        server: String,
        /// The spec's metric count.
        expected: usize,
        /// What was passed.
        got: usize,
    },
    /// A NaN or infinite value; clean the data first (see `workbench::clean`).
    #[error("server {server} at {timestamp_ms} ms: metric `{metric}` is not finite ({value})")]
    NotFinite {
        /// The server.
        server: String,
        /// The row's timestamp.
        timestamp_ms: i64,
        /// The metric.
        metric: String,
        /// The value.
        value: f64,
    },
    /// A row at or before the previous row's timestamp (duplicate or backwards).
    #[error("server {server}: sample at {timestamp_ms} ms is not after the previous one at {previous_ms} ms")]
    OutOfOrder {
        /// The server.
        server: String,
        /// The rejected row's timestamp.
        timestamp_ms: i64,
        /// The last accepted timestamp.
        previous_ms: i64,
    },
}
