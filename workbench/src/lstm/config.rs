//! The LSTM's training settings: [`LstmTraining`] is the served model's shape and inputs
//! ([`runtime::forecast::LstmConfig`], flattened) plus what only training reads. One TOML
//! table (`experiment lstm train|evaluate --config`); snake_case keys, the reference's
//! upper-case names accepted; unknown keys refused naming the file.
//!
//! ```
//! use workbench::lstm::LstmTraining;
//! let c = LstmTraining::from_toml_str("LOOKBACK_WINDOW = 60\nFORECAST_HORIZON = 30\nLSTM_UNITS = [16, 8]\nEPOCHS = 3", "lstm.toml").unwrap();
//! assert_eq!((c.model.lookback_window, c.model.forecast_horizon, c.model.lstm_units.clone(), c.epochs), (60, 30, vec![16, 8], 3));
//! let e = LstmTraining::from_toml_str("lookback = 3", "lstm.toml").unwrap_err().to_string();
//! assert!(e.contains("lstm.toml") && e.contains("lookback"), "{e}");
//! let e = LstmTraining::from_toml_str("dropout_rate = 1.5", "lstm.toml").unwrap_err().to_string();
//! assert!(e.contains("dropout_rate"), "{e}");
//! ```

use std::path::Path;

use runtime::forecast::{ForecastError, LstmConfig};
use serde::{Deserialize, Serialize};

/// Which code computes training gradients (the served forward is always burn's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The workbench's fused LSTM kernel: hand-written forward and backward through time over
    /// blocked SGEMM, batch split across threads; burn's Adam applies the update.
    #[default]
    Fused,
    /// burn-autodiff over the same module (any burn device; slower on CPU).
    Burn,
}

/// The model's shape and inputs plus the training-only settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LstmTraining {
    /// What the bundle serves: lookback, horizon, layers, target and inputs, window norm.
    #[serde(flatten)]
    pub model: LstmConfig,
    /// Dropout after each LSTM layer.
    #[serde(alias = "DROPOUT_RATE")]
    pub dropout_rate: f64,
    /// Maximum epochs (early stopping usually ends sooner).
    #[serde(alias = "EPOCHS")]
    pub epochs: usize,
    /// Windows per optimizer step.
    #[serde(alias = "BATCH_SIZE")]
    pub batch_size: usize,
    /// Adam learning rate.
    #[serde(alias = "LEARNING_RATE")]
    pub learning_rate: f64,
    /// Epochs without validation improvement before stopping (0 = never stop early).
    pub patience: usize,
    /// Fraction of the training windows, the latest in time, held out for validation.
    pub validation_split: f64,
    /// How many final steps of each window are supervised (1 = only the last step, which is
    /// the one served; more steps give more training signal per window). Capped at the lookback.
    pub loss_steps: usize,
    /// Stride between training windows (1 = every window).
    pub window_stride: usize,
    /// Cap on training windows per epoch (evenly spread); 0 = no cap.
    pub max_train_windows: usize,
    /// With `window_norm`: after training, shrink each horizon step's forecast toward the
    /// window mean by the least-squares weight fitted on the validation windows (folded into
    /// the head weights, so serving is unchanged).
    pub shrink: bool,
    /// Gradient engine.
    pub engine: Engine,
    /// Seed for initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for LstmTraining {
    fn default() -> Self {
        Self {
            model: LstmConfig::default(),
            dropout_rate: 0.2,
            epochs: 50,
            batch_size: 32,
            learning_rate: 1e-3,
            patience: 5,
            validation_split: 0.2,
            loss_steps: 60,
            window_stride: 1,
            max_train_windows: 0,
            shrink: true,
            engine: Engine::Fused,
            seed: 42,
        }
    }
}

/// Every key the table accepts, lower-case (the upper-case reference names are the same keys).
fn known_keys() -> Vec<String> {
    match toml::Table::try_from(LstmTraining::default()) {
        Ok(t) => t.keys().cloned().chain(["input_metrics".to_string()]).collect(),
        Err(_) => Vec::new(),
    }
}

impl LstmTraining {
    /// Parse a TOML table; unknown keys and bad values name `origin`.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ForecastError> {
        let bad = |e: String| ForecastError::Config(format!("{origin}: {e}"));
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let known = known_keys();
        if let Some(k) = table.keys().find(|k| !known.contains(&k.to_lowercase())) {
            return Err(bad(format!("unknown key `{k}`, expected one of {}", known.join(", "))));
        }
        let config: Self = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        config.validate().map_err(|e| match e {
            ForecastError::Config(reason) => bad(reason),
            other => other,
        })?;
        Ok(config)
    }

    /// Read a TOML file ([`LstmTraining::from_toml_str`]).
    pub fn from_file(path: &Path) -> Result<Self, ForecastError> {
        let text = std::fs::read_to_string(path).map_err(|e| ForecastError::Io(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks ranges (the model's too); the message names the key.
    pub fn validate(&self) -> Result<(), ForecastError> {
        self.model.validate()?;
        self.check_training().map_err(ForecastError::Config)
    }

    fn check_training(&self) -> Result<(), String> {
        for (key, v) in [("batch_size", self.batch_size), ("window_stride", self.window_stride), ("loss_steps", self.loss_steps)] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err(format!("dropout_rate must be in [0, 1), got {}", self.dropout_rate));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(format!("learning_rate must be positive, got {}", self.learning_rate));
        }
        if !(0.0..0.9).contains(&self.validation_split) {
            return Err(format!("validation_split must be in [0, 0.9), got {}", self.validation_split));
        }
        Ok(())
    }

    /// Supervised steps per window: `loss_steps`, at most the lookback.
    pub fn supervised_steps(&self) -> usize {
        self.loss_steps.min(self.model.lookback_window)
    }

    /// The training-only settings as JSON (what a bundle records in `training`).
    pub fn training_record(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let (Some(map), Ok(serde_json::Value::Object(model))) = (v.as_object_mut(), serde_json::to_value(&self.model)) {
            map.retain(|k, _| !model.contains_key(k));
        }
        v
    }
}
