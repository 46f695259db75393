/// Errors of the Isolation Forest.
#[derive(Debug, thiserror::Error)]
pub enum IForestError {
    /// A hyperparameter outside its domain.
    #[error("invalid Isolation Forest parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        /// Parameter name (scikit-learn's).
        name: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Training data unusable.
    #[error("invalid training data: {0}")]
    InvalidData(String),
    /// A serialized model of another format version.
    #[error("Isolation Forest model format version {found}, this build reads version {expected}")]
    Version {
        /// In the file.
        found: u32,
        /// Supported.
        expected: u32,
    },
}
