//! LSTM forecaster serving: the served model's shape and inputs, the burn module (inference on the ndarray
//! backend, no autodiff), the input scaler, the bundle the workbench exports and the
//! predictive-scaling recommendation.
//!
//! Architecture (the reference's defaults): `lookback_window` steps of the target metric plus any
//! extra input metrics → LSTM 128 → dropout 0.2 → LSTM 64 → dropout 0.2 → a dense layer applied
//! per step that emits the next `forecast_horizon` values. Gates are fused (one `[d_in, 4H]` input
//! matrix and one `[H, 4H]` recurrent matrix per layer, gate order i, f, g, o as in PyTorch), so
//! a step is one matrix product plus element-wise work.
//!
//! The reference wires the dense output of input step i to horizon step i (Keras
//! `TimeDistributed(Dense(1))` on a 180-in/180-out sequence), which makes the forecast for t+1 blind to the last 179
//! inputs. Here the dense layer maps every step's hidden state to the whole horizon and the
//! forecast is read at the last step, after the model has seen the full lookback. Training can
//! supervise every step or only the last ones (`loss_steps`).

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Bundle format version; bumped on incompatible changes.
pub const FORECASTER_FORMAT: u32 = 1;

/// The served model's shape and inputs: what a bundle needs to forecast. Keys are snake_case;
/// the reference's upper-case names are accepted too. The training settings (epochs, dropout,
/// the optimizer, early stopping, …) live with the training, in the workbench
/// (`workbench::lstm::LstmTraining`, which flattens this struct into one TOML table); a bundle
/// records them beside this, in [`ForecasterMeta::training`]. Unknown keys are ignored here so
/// bundles written before the split (training keys in `config`) still load; the workbench's
/// training config refuses them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LstmConfig {
    /// Input steps.
    #[serde(alias = "LOOKBACK_WINDOW")]
    pub lookback_window: usize,
    /// Forecast steps.
    #[serde(alias = "FORECAST_HORIZON")]
    pub forecast_horizon: usize,
    /// Hidden units per stacked LSTM layer.
    #[serde(alias = "LSTM_UNITS")]
    pub lstm_units: Vec<usize>,
    /// The metric to forecast.
    #[serde(alias = "TARGET_METRIC")]
    pub target_metric: String,
    /// Extra input metrics (inputs only; the target is always input 0).
    #[serde(alias = "INPUT_METRICS")]
    pub input_metrics: Vec<String>,
    /// Normalise every window by its own mean and standard deviation per input (reversible
    /// instance normalisation): the model forecasts the deviation from the window's level, so
    /// a zero output is the moving-average forecast and level shifts between training and
    /// serving do not push inputs out of range.
    pub window_norm: bool,
}

impl Default for LstmConfig {
    fn default() -> Self {
        Self {
            lookback_window: 180,
            forecast_horizon: 180,
            lstm_units: vec![128, 64],
            target_metric: "cpu_usage".into(),
            input_metrics: Vec::new(),
            window_norm: true,
        }
    }
}

impl LstmConfig {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), ForecastError> {
        for (key, v) in [("lookback_window", self.lookback_window), ("forecast_horizon", self.forecast_horizon)] {
            if v == 0 {
                return Err(ForecastError::Config(format!("{key} must be at least 1")));
            }
        }
        if self.lstm_units.is_empty() || self.lstm_units.contains(&0) {
            return Err(ForecastError::Config("lstm_units must list at least one layer of at least 1 unit".into()));
        }
        Ok(())
    }

    /// Names of every input, target first.
    pub fn inputs(&self) -> Vec<String> {
        std::iter::once(self.target_metric.clone()).chain(self.input_metrics.iter().cloned()).collect()
    }
}

/// Errors loading or running a forecaster.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// Reading or writing a file.
    #[error("{0}")]
    Io(String),
    /// A bad configuration.
    #[error("invalid forecaster config: {0}")]
    Config(String),
    /// A bundle that cannot be used.
    #[error("invalid forecaster bundle {path}: {message}")]
    Bundle {
        /// The bundle directory or file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An input window of the wrong shape or with non-finite values.
    #[error("bad input window: {0}")]
    Input(String),
}

/// One LSTM layer with fused gates (order i, f, g, o).
#[derive(Module, Debug)]
pub struct LstmLayer {
    /// Input weights `[d_in, 4H]`.
    pub w_ih: Param<Tensor<2>>,
    /// Recurrent weights `[H, 4H]`.
    pub w_hh: Param<Tensor<2>>,
    /// Bias `[4H]`.
    pub bias: Param<Tensor<1>>,
}

/// The stacked LSTM with its per-step dense head.
#[derive(Module, Debug)]
pub struct LstmForecaster {
    /// LSTM layers, bottom first.
    pub layers: Vec<LstmLayer>,
    /// Head weights `[H_last, horizon]`.
    pub head_w: Param<Tensor<2>>,
    /// Head bias `[horizon]`.
    pub head_b: Param<Tensor<1>>,
}

/// Plain weights in row-major order, the exchange format between burn and the training kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmWeights {
    /// Per layer: (w_ih `[d_in*4H]`, w_hh `[H*4H]`, bias `[4H]`, d_in, H).
    pub layers: Vec<LayerWeights>,
    /// `[H_last * horizon]`.
    pub head_w: Vec<f32>,
    /// `[horizon]`.
    pub head_b: Vec<f32>,
    /// Forecast steps.
    pub horizon: usize,
}

/// One layer's plain weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Input size.
    pub d_in: usize,
    /// Hidden size.
    pub hidden: usize,
    /// `[d_in * 4H]` row-major.
    pub w_ih: Vec<f32>,
    /// `[H * 4H]` row-major.
    pub w_hh: Vec<f32>,
    /// `[4H]`.
    pub bias: Vec<f32>,
}

impl LstmWeights {
    /// Zero weights of the given shape.
    pub fn zeros(d_in: usize, units: &[usize], horizon: usize) -> Self {
        let mut layers = Vec::new();
        let mut d = d_in;
        for &h in units {
            layers.push(LayerWeights {
                d_in: d,
                hidden: h,
                w_ih: vec![0.0; d * 4 * h],
                w_hh: vec![0.0; h * 4 * h],
                bias: vec![0.0; 4 * h],
            });
            d = h;
        }
        Self { layers, head_w: vec![0.0; d * horizon], head_b: vec![0.0; horizon], horizon }
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.layers.iter().map(|l| l.w_ih.len() + l.w_hh.len() + l.bias.len()).sum::<usize>() + self.head_w.len() + self.head_b.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor data")
}

impl LstmForecaster {
    /// Builds the module from plain weights on `device`.
    pub fn from_weights(w: &LstmWeights, device: &Device) -> Self {
        let t2 = |v: &[f32], r: usize, c: usize| Param::from_tensor(Tensor::<2>::from_data(TensorData::new(v.to_vec(), [r, c]), device));
        let t1 = |v: &[f32]| Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device));
        let layers = w
            .layers
            .iter()
            .map(|l| LstmLayer { w_ih: t2(&l.w_ih, l.d_in, 4 * l.hidden), w_hh: t2(&l.w_hh, l.hidden, 4 * l.hidden), bias: t1(&l.bias) })
            .collect();
        let last = w.layers.last().map_or(0, |l| l.hidden);
        Self { layers, head_w: t2(&w.head_w, last, w.horizon), head_b: t1(&w.head_b) }
    }

    /// Copies the weights out.
    pub fn weights(&self) -> LstmWeights {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let [d_in, four_h] = l.w_ih.val().dims();
                LayerWeights {
                    d_in,
                    hidden: four_h / 4,
                    w_ih: to_vec(l.w_ih.val()),
                    w_hh: to_vec(l.w_hh.val()),
                    bias: to_vec(l.bias.val()),
                }
            })
            .collect();
        let [_, horizon] = self.head_w.val().dims();
        LstmWeights { layers, head_w: to_vec(self.head_w.val()), head_b: to_vec(self.head_b.val()), horizon }
    }

    /// Hidden states of the top layer for every step, `[B, T, H]`, with `dropout` applied after
    /// each layer when given (training with burn-autodiff).
    pub fn hidden_states(&self, x: Tensor<3>, dropout: Option<&burn::nn::Dropout>) -> Tensor<3> {
        let mut x = x;
        for layer in &self.layers {
            let [b, t, d] = x.dims();
            let w_hh = layer.w_hh.val();
            let four_h = w_hh.dims()[1];
            let h_size = four_h / 4;
            let proj = x.reshape([b * t, d]).matmul(layer.w_ih.val()).add(layer.bias.val().unsqueeze::<2>()).reshape([b, t, four_h]);
            let device = proj.device();
            let mut h = Tensor::<2>::zeros([b, h_size], &device);
            let mut c = Tensor::<2>::zeros([b, h_size], &device);
            let mut outs = Vec::with_capacity(t);
            for step in 0..t {
                let gates = proj.clone().narrow(1, step, 1).reshape([b, four_h]) + h.matmul(w_hh.clone());
                let i = sigmoid(gates.clone().narrow(1, 0, h_size));
                let f = sigmoid(gates.clone().narrow(1, h_size, h_size));
                let g = gates.clone().narrow(1, 2 * h_size, h_size).tanh();
                let o = sigmoid(gates.narrow(1, 3 * h_size, h_size));
                c = f * c + i * g;
                h = o * c.clone().tanh();
                outs.push(h.clone());
            }
            x = Tensor::stack::<3>(outs, 1);
            if let Some(d) = dropout {
                x = d.forward(x);
            }
        }
        x
    }

    /// Per-step forecasts `[B, T, horizon]` (training).
    pub fn forward_all(&self, x: Tensor<3>, dropout: Option<&burn::nn::Dropout>) -> Tensor<3> {
        let hs = self.hidden_states(x, dropout);
        let [b, t, h] = hs.dims();
        let horizon = self.head_w.val().dims()[1];
        hs.reshape([b * t, h]).matmul(self.head_w.val()).add(self.head_b.val().unsqueeze::<2>()).reshape([b, t, horizon])
    }

    /// The forecast `[B, horizon]` read at the last step (scaled units).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let hs = self.hidden_states(x, None);
        let [b, t, h] = hs.dims();
        let last = hs.narrow(1, t - 1, 1).reshape([b, h]);
        last.matmul(self.head_w.val()).add(self.head_b.val().unsqueeze::<2>())
    }
}

/// Standardisation per input column, fitted on training rows only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Mean per input.
    pub mean: Vec<f64>,
    /// Standard deviation per input (1 where the column is constant).
    pub std: Vec<f64>,
}

impl Scaler {
    /// Fits on `rows` (row-major, `d` columns), skipping non-finite values.
    pub fn fit(rows: &[f64], d: usize) -> Self {
        let mut mean = vec![0.0; d];
        let mut std = vec![1.0; d];
        for j in 0..d {
            let col: Vec<f64> = rows.iter().skip(j).step_by(d).copied().filter(|v| v.is_finite()).collect();
            if col.is_empty() {
                continue;
            }
            let m = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / col.len() as f64;
            mean[j] = m;
            std[j] = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
        }
        Self { mean, std }
    }

    /// Scales column `j`.
    pub fn scale(&self, j: usize, v: f64) -> f64 {
        (v - self.mean[j]) / self.std[j]
    }

    /// Unscales a target (column 0) value.
    pub fn unscale_target(&self, v: f64) -> f64 {
        v * self.std[0] + self.mean[0]
    }
}

/// Smallest per-window standard deviation used by window normalisation, in globally scaled
/// units (flat windows would otherwise blow small changes up).
pub const WINDOW_STD_FLOOR: f32 = 0.1;

/// Per-input (mean, std) of one globally scaled window `[T, d]` (row-major).
pub fn window_stats(x: &[f32], d: usize) -> Vec<(f32, f32)> {
    let t = x.len() / d;
    (0..d)
        .map(|j| {
            let mean = x.iter().skip(j).step_by(d).sum::<f32>() / t as f32;
            let var = x.iter().skip(j).step_by(d).map(|v| (v - mean) * (v - mean)).sum::<f32>() / t as f32;
            (mean, var.sqrt().max(WINDOW_STD_FLOOR))
        })
        .collect()
}

/// Normalises a globally scaled window in place with its own statistics; returns them.
pub fn normalize_window(x: &mut [f32], d: usize) -> Vec<(f32, f32)> {
    let stats = window_stats(x, d);
    for (i, v) in x.iter_mut().enumerate() {
        let (m, s) = stats[i % d];
        *v = (*v - m) / s;
    }
    stats
}

/// Adds `skip[h] · last` to each output step (no-op when `skip` is empty).
pub fn apply_skip(out: &mut [f32], skip: &[f32], last: f32) {
    for (o, s) in out.iter_mut().zip(skip) {
        *o += s * last;
    }
}

/// What a bundle records besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecasterMeta {
    /// [`FORECASTER_FORMAT`].
    pub format: u32,
    /// The served model's shape and inputs.
    pub config: LstmConfig,
    /// The training settings, as the workbench recorded them (informational: serving does not
    /// read them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    /// Input scaler.
    pub scaler: Scaler,
    /// Server the model was trained for (informational).
    pub server: String,
    /// Sampling interval of the training data, seconds.
    pub interval_secs: f64,
    /// Final validation loss (scaled MSE).
    pub val_loss: Option<f64>,
    /// Epochs run.
    pub epochs_run: usize,
    /// Per-horizon weight of the network's output, fitted on validation windows and folded
    /// into the head (empty: none).
    #[serde(default)]
    pub shrinkage: Vec<f32>,
    /// Per-horizon weight of the last input value of the target (model input units) added to
    /// the output: the last-value share of the validation-fitted combination (empty: none).
    #[serde(default)]
    pub skip: Vec<f32>,
    /// sha256 of `weights.bpk`.
    pub weights_sha256: String,
}

/// A trained forecaster ready to serve: module, scaler and metadata.
#[derive(Debug)]
pub struct Forecaster {
    /// Metadata.
    pub meta: ForecasterMeta,
    /// The burn module (on the ndarray backend when loaded by the runtime).
    pub model: LstmForecaster,
    device: Device,
}

/// File names inside a bundle directory.
pub const META_FILE: &str = "forecaster.json";
/// Weights file (burn module record).
pub const WEIGHTS_FILE: &str = "weights.bpk";

impl Forecaster {
    /// The device the runtime serves on: burn's ndarray backend without autodiff.
    #[allow(deprecated, reason = "the issue asks for ndarray; burn 0.22 suggests flex as its successor")]
    pub fn serving_device() -> Device {
        Device::ndarray()
    }

    /// Wraps a module.
    pub fn new(meta: ForecasterMeta, model: LstmForecaster, device: Device) -> Self {
        Self { meta, model, device }
    }

    /// Writes `forecaster.json` + `weights.bpk` into `dir` (created if needed).
    pub fn save_dir(meta: &ForecasterMeta, weights: &LstmWeights, dir: &Path) -> Result<ForecasterMeta, ForecastError> {
        let io = |e: std::io::Error| ForecastError::Io(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let module = LstmForecaster::from_weights(weights, &Self::serving_device());
        let bytes = module
            .into_record()
            .into_bytes()
            .map_err(|e| ForecastError::Bundle { path: dir.display().to_string(), message: format!("encoding weights: {e:?}") })?;
        let mut meta = meta.clone();
        meta.format = FORECASTER_FORMAT;
        meta.weights_sha256 = crate::registry::sha256_hex(&bytes);
        let write = |name: &str, data: &[u8]| -> Result<(), ForecastError> {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, data).map_err(io)?;
            std::fs::rename(&tmp, dir.join(name)).map_err(io)
        };
        write(WEIGHTS_FILE, &bytes)?;
        write(META_FILE, serde_json::to_string_pretty(&meta).expect("meta serializes").as_bytes())?;
        Ok(meta)
    }

    /// Loads a bundle directory onto the serving device, verifying format, checksum and shapes.
    pub fn load_dir(dir: &Path) -> Result<Self, ForecastError> {
        let bad = |m: String| ForecastError::Bundle { path: dir.display().to_string(), message: m };
        let meta_text = std::fs::read(dir.join(META_FILE)).map_err(|e| bad(format!("{META_FILE}: {e}")))?;
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).map_err(|e| bad(format!("{WEIGHTS_FILE}: {e}")))?;
        Self::from_bytes(&meta_text, bytes, &dir.display().to_string())
    }

    /// A bundle's `forecaster.json` and `weights.bpk` as bytes (from a folder or a registry
    /// version named `what`), verified as [`Forecaster::load_dir`] verifies them.
    pub fn from_bytes(meta_text: &[u8], bytes: Vec<u8>, what: &str) -> Result<Self, ForecastError> {
        let bad = |m: String| ForecastError::Bundle { path: what.to_string(), message: m };
        let meta: ForecasterMeta = serde_json::from_slice(meta_text).map_err(|e| bad(format!("{META_FILE}: {e}")))?;
        if meta.format != FORECASTER_FORMAT {
            return Err(bad(format!("format {} (this runtime reads {FORECASTER_FORMAT})", meta.format)));
        }
        meta.config.validate().map_err(|e| bad(format!("{META_FILE}: config: {e}")))?;
        let d = meta.config.inputs().len();
        if !meta.skip.is_empty() && meta.skip.len() != meta.config.forecast_horizon {
            return Err(bad(format!("{META_FILE}: skip has {} values, horizon is {}", meta.skip.len(), meta.config.forecast_horizon)));
        }
        if meta.scaler.mean.len() != d || meta.scaler.std.len() != d {
            return Err(bad(format!("{META_FILE}: scaler has {} columns, config has {d} inputs", meta.scaler.mean.len())));
        }
        let sha = crate::registry::sha256_hex(&bytes);
        if sha != meta.weights_sha256 {
            return Err(bad(format!("{WEIGHTS_FILE}: sha256 {sha} does not match {META_FILE} ({})", meta.weights_sha256)));
        }
        let device = Self::serving_device();
        let shape = LstmWeights::zeros(d, &meta.config.lstm_units, meta.config.forecast_horizon);
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| bad(format!("{WEIGHTS_FILE}: {e:?}")))?;
        let model =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| LstmForecaster::from_weights(&shape, &device).load_record(record)))
                .map_err(|_| bad(format!("{WEIGHTS_FILE}: weights do not fit the configured architecture")))?;
        let loaded = model.weights();
        if loaded.len() != shape.len()
            || loaded.layers.iter().zip(&shape.layers).any(|(a, b)| a.w_ih.len() != b.w_ih.len() || a.w_hh.len() != b.w_hh.len())
        {
            return Err(bad(format!("{WEIGHTS_FILE}: weights do not fit the configured architecture")));
        }
        if loaded.layers.iter().any(|l| l.w_ih.iter().chain(&l.w_hh).chain(&l.bias).any(|v| !v.is_finite())) {
            return Err(bad(format!("{WEIGHTS_FILE}: non-finite weights")));
        }
        Ok(Self { meta, model, device })
    }

    /// Forecasts the next `forecast_horizon` target values (original units) from the last
    /// `lookback_window` rows of `window` (row-major, one column per input, target first).
    pub fn forecast(&self, window: &[f64]) -> Result<Vec<f64>, ForecastError> {
        let out = self.forecast_batch(&[window])?;
        Ok(out.into_iter().next().unwrap_or_default())
    }

    /// Batched [`Self::forecast`].
    pub fn forecast_batch(&self, windows: &[&[f64]]) -> Result<Vec<Vec<f64>>, ForecastError> {
        let cfg = &self.meta.config;
        let d = cfg.inputs().len();
        let t = cfg.lookback_window;
        let mut data = Vec::with_capacity(windows.len() * t * d);
        let mut target_stats = Vec::with_capacity(windows.len());
        for (k, w) in windows.iter().enumerate() {
            if w.len() < t * d || w.len() % d != 0 {
                return Err(ForecastError::Input(format!("window {k} has {} values; need {t} rows × {d} inputs", w.len())));
            }
            let tail = &w[w.len() - t * d..];
            for (i, v) in tail.iter().enumerate() {
                if !v.is_finite() {
                    return Err(ForecastError::Input(format!("window {k} row {} input {} is not finite", i / d, cfg.inputs()[i % d])));
                }
                data.push(self.meta.scaler.scale(i % d, *v) as f32);
            }
            let start = data.len() - t * d;
            target_stats.push(if cfg.window_norm { normalize_window(&mut data[start..], d)[0] } else { (0.0, 1.0) });
        }
        let last: Vec<f32> = (0..windows.len()).map(|k| data[(k * t + t - 1) * d]).collect();
        let x = Tensor::<3>::from_data(TensorData::new(data, [windows.len(), t, d]), &self.device);
        let mut y = to_vec(self.model.forward(x));
        for (k, l) in last.iter().enumerate() {
            apply_skip(&mut y[k * cfg.forecast_horizon..(k + 1) * cfg.forecast_horizon], &self.meta.skip, *l);
        }
        let hz = cfg.forecast_horizon;
        Ok(y.chunks(hz)
            .zip(target_stats)
            .map(|(c, (m, sd))| c.iter().map(|v| self.meta.scaler.unscale_target((*v * sd + m) as f64)).collect())
            .collect())
    }
}

/// What predictive scaling recommends (JSON and text: `SCALE_NOW`, `SCALE_SOON`, `NONE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Recommendation {
    /// The forecast crosses the threshold within `now_minutes` (or the metric already has).
    ScaleNow,
    /// It crosses later within the horizon.
    ScaleSoon,
    /// It does not cross.
    None,
}

impl Recommendation {
    /// The alert severity it is routed with: SCALE_NOW HIGH, SCALE_SOON MEDIUM, NONE no alert.
    pub fn severity(self) -> Option<crate::decisions::Severity> {
        match self {
            Self::ScaleNow => Some(crate::decisions::Severity::High),
            Self::ScaleSoon => Some(crate::decisions::Severity::Medium),
            Self::None => None,
        }
    }
}

impl std::fmt::Display for Recommendation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ScaleNow => "SCALE_NOW",
            Self::ScaleSoon => "SCALE_SOON",
            Self::None => "NONE",
        })
    }
}

/// Predictive-scaling recommendation (the reference README's block).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingAdvice {
    /// Latest observed value.
    pub current: f64,
    /// Highest forecast value.
    pub predicted_peak: f64,
    /// Minutes until the forecast peak.
    pub minutes_to_peak: f64,
    /// SCALE_NOW, SCALE_SOON or NONE.
    pub recommendation: Recommendation,
    /// Suggested capacity increase, percent (0 for NONE).
    pub scale_up_percent: u32,
    /// Threshold the recommendation is judged against.
    pub threshold: f64,
    /// Minutes until the first likely crossing of the threshold (none within the horizon: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_to_crossing: Option<f64>,
    /// P(crossing within the horizon), where the decision read the future paths (the
    /// `probability` band).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing_probability: Option<f64>,
}

/// SCALE_NOW when the forecast crosses `threshold` within `now_minutes`, SCALE_SOON when it
/// crosses later within the horizon, NONE otherwise. The scale-up brings the peak back to
/// `target_utilisation` of the threshold, rounded up to 10 %.
pub fn scaling_advice(current: f64, forecast: &[f64], interval_secs: f64, threshold: f64, now_minutes: f64) -> ScalingAdvice {
    let first = forecast.iter().position(|v| *v >= threshold);
    scaling_advice_at(current, forecast, first, interval_secs, threshold, now_minutes)
}

/// [`scaling_advice`] with the first crossing step (0-based) decided elsewhere (the share of
/// future paths, [`crate::models::forecasters::FuturePaths`]); `forecast` sizes the scale-up.
pub fn scaling_advice_at(
    current: f64,
    forecast: &[f64],
    first_crossing: Option<usize>,
    interval_secs: f64,
    threshold: f64,
    now_minutes: f64,
) -> ScalingAdvice {
    let (peak_i, peak) =
        forecast.iter().copied().enumerate().fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| if v > bv { (i, v) } else { (bi, bv) });
    let minutes_to_peak = (peak_i + 1) as f64 * interval_secs / 60.0;
    let first_cross = first_crossing.map(|i| (i + 1) as f64 * interval_secs / 60.0);
    let recommendation = match first_cross {
        Some(m) if m <= now_minutes || current >= threshold => Recommendation::ScaleNow,
        Some(_) => Recommendation::ScaleSoon,
        None => Recommendation::None,
    };
    let scale_up_percent = if recommendation == Recommendation::None || threshold <= 0.0 {
        0
    } else {
        let need = (peak.max(current) / (0.8 * threshold) - 1.0) * 100.0;
        ((need.max(10.0) / 10.0).ceil() * 10.0) as u32
    };
    ScalingAdvice {
        current,
        predicted_peak: peak,
        minutes_to_peak,
        recommendation,
        scale_up_percent,
        threshold,
        minutes_to_crossing: first_cross,
        crossing_probability: None,
    }
}

/// The latest `lookback` rows of `server` in `samples`: one row per timestamp with `inputs` in
/// order (target first), a missing or non-finite value repaired with the previous row's value
/// (counted; a window that starts with a gap takes the first later value). Returns the
/// row-major window, the last row's timestamp and the repair count.
pub fn latest_window(
    samples: &[crate::MetricSample],
    server: &str,
    inputs: &[String],
    lookback: usize,
) -> Result<(Vec<f64>, i64, usize), ForecastError> {
    let mut rows: std::collections::BTreeMap<i64, Vec<f64>> = std::collections::BTreeMap::new();
    for s in samples.iter().filter(|s| s.server == server) {
        if let Some(j) = inputs.iter().position(|m| *m == s.metric) {
            rows.entry(s.timestamp_ms).or_insert_with(|| vec![f64::NAN; inputs.len()])[j] = s.value;
        }
    }
    if rows.len() < lookback {
        return Err(ForecastError::Input(format!(
            "server `{server}`: {} rows of {}, the model needs {lookback}",
            rows.len(),
            inputs.join(", ")
        )));
    }
    let tail: Vec<(i64, Vec<f64>)> = rows.into_iter().rev().take(lookback).collect::<Vec<_>>().into_iter().rev().collect();
    let d = inputs.len();
    let mut filled = 0;
    let mut last: Vec<f64> = (0..d).map(|j| tail.iter().map(|(_, r)| r[j]).find(|v| v.is_finite()).unwrap_or(f64::NAN)).collect();
    if let Some(j) = last.iter().position(|v| !v.is_finite()) {
        return Err(ForecastError::Input(format!("server `{server}`: no value of `{}` in the last {lookback} rows", inputs[j])));
    }
    let mut window = Vec::with_capacity(lookback * d);
    for (_, r) in &tail {
        for j in 0..d {
            if r[j].is_finite() {
                last[j] = r[j];
            } else {
                filled += 1;
            }
            window.push(last[j]);
        }
    }
    Ok((window, tail.last().map_or(0, |(t, _)| *t), filled))
}

/// The level that needs capacity when none is configured: 80 for percentage metrics
/// (`*_usage`, `*percent*`), else the 95th percentile of `history`.
pub fn default_threshold(metric: &str, history: &[f64]) -> f64 {
    if metric.contains("usage") || metric.contains("percent") {
        return 80.0;
    }
    let mut v: Vec<f64> = history.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * 0.95) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_accepts_reference_names_and_bundles_written_before_the_split() {
        // A bundle's `config` from before the training settings moved out: they are ignored.
        let c: LstmConfig = serde_json::from_str(
            r#"{"LOOKBACK_WINDOW": 60, "FORECAST_HORIZON": 30, "LSTM_UNITS": [16, 8], "epochs": 3, "engine": "fused"}"#,
        )
        .unwrap();
        assert_eq!((c.lookback_window, c.forecast_horizon, c.lstm_units.clone()), (60, 30, vec![16, 8]));
        let bad = LstmConfig { lstm_units: vec![4, 0], ..LstmConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("lstm_units"));
    }

    #[test]
    fn latest_window_aligns_rows_and_fills_gaps() {
        use crate::MetricSample as S;
        let inputs = vec!["cpu_usage".to_string(), "memory_usage".to_string()];
        let mut samples = Vec::new();
        for t in 0..5i64 {
            samples.push(S::new(t * 10_000, "a", "cpu_usage", t as f64));
            if t != 3 {
                samples.push(S::new(t * 10_000, "a", "memory_usage", 10.0 + t as f64));
            }
            samples.push(S::new(t * 10_000, "b", "cpu_usage", 99.0));
        }
        let (w, last, filled) = latest_window(&samples, "a", &inputs, 3).unwrap();
        assert_eq!(w, vec![2.0, 12.0, 3.0, 12.0, 4.0, 14.0]);
        assert_eq!((last, filled), (40_000, 1));
        let e = latest_window(&samples, "a", &inputs, 9).unwrap_err().to_string();
        assert!(e.contains("5 rows") && e.contains("needs 9"), "{e}");
    }

    #[test]
    fn advice_follows_the_forecast() {
        let flat = vec![50.0; 180];
        assert_eq!(scaling_advice(50.0, &flat, 10.0, 80.0, 10.0).recommendation, Recommendation::None);
        let mut late = vec![50.0; 180];
        late[150] = 92.3;
        let a = scaling_advice(65.5, &late, 10.0, 80.0, 10.0);
        assert_eq!(a.recommendation, Recommendation::ScaleSoon);
        assert!((a.minutes_to_peak - 151.0 / 6.0).abs() < 1e-9);
        assert_eq!(a.scale_up_percent, 50);
        let mut soon = vec![50.0; 180];
        soon[5] = 85.0;
        assert_eq!(scaling_advice(65.0, &soon, 10.0, 80.0, 10.0).recommendation, Recommendation::ScaleNow);
    }

    #[test]
    fn module_round_trips_weights_and_forecasts_finite_values() {
        let mut w = LstmWeights::zeros(2, &[4, 3], 5);
        let mut k = 0.0f32;
        for l in &mut w.layers {
            for v in l.w_ih.iter_mut().chain(l.w_hh.iter_mut()).chain(l.bias.iter_mut()) {
                k += 0.37;
                *v = (k.sin()) * 0.5;
            }
        }
        w.head_w.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 * 0.1).cos());
        let device = Forecaster::serving_device();
        let m = LstmForecaster::from_weights(&w, &device);
        assert_eq!(m.weights(), w);
        let x = Tensor::<3>::from_data(
            TensorData::new((0..2 * 7 * 2).map(|i| (i as f32 * 0.3).sin()).collect::<Vec<f32>>(), [2, 7, 2]),
            &device,
        );
        let y = to_vec(m.forward(x.clone()));
        assert_eq!(y.len(), 10);
        assert!(y.iter().all(|v| v.is_finite()));
        // The forecast is the per-step output at the last step.
        let all = to_vec(m.forward_all(x, None));
        for b in 0..2 {
            for k in 0..5 {
                assert!((all[(b * 7 + 6) * 5 + k] - y[b * 5 + k]).abs() < 1e-6);
            }
        }
    }
}
