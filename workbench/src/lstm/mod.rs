//! LSTM forecasting: data windows, training (fused kernel or burn-autodiff, burn's Adam either
//! way), early stopping on a time-ordered validation split, evaluation against baselines, and
//! export as a bundle the slim runtime serves ([`runtime::forecast`]).

pub mod cmd;
pub mod config;
pub mod eval;
pub mod kernel;

pub use config::{Engine, LstmTraining};

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use runtime::forecast::{ForecastError, ForecasterMeta, LstmConfig, LstmForecaster, LstmWeights, Scaler};

use kernel::{Batch, Shape};

/// A regularly sampled multivariate series: inputs in columns, target first.
#[derive(Clone, Debug)]
pub struct ForecastSeries {
    /// Where it came from (file, server).
    pub name: String,
    /// Column names (target first).
    pub columns: Vec<String>,
    /// Timestamps (ms), one per row.
    pub timestamps_ms: Vec<i64>,
    /// Row-major values, `columns.len()` per row, all finite.
    pub values: Vec<f64>,
    /// The time one row stands for, seconds: the median interval between rows, or, when rows
    /// go missing (a typical day, the median of the row counts of the series' whole days, holds
    /// under 95 % of what that interval fills), a day over that count. Periods in rows (a day
    /// back, the seasonal methods' period) come from it: on a series with frequent gaps the
    /// median interval would make a day many more rows than a day holds.
    pub interval_secs: f64,
    /// Non-finite values replaced by the previous value of their column (or the first finite
    /// one at the start): the documented repair, counted.
    pub filled: usize,
}

impl ForecastSeries {
    /// Builds a series from rows, forward-filling non-finite values (counted). Fails when a
    /// column has no finite value at all.
    pub fn new(name: &str, columns: Vec<String>, timestamps_ms: Vec<i64>, rows: &[Vec<f64>]) -> Result<Self, ForecastError> {
        let d = columns.len();
        let mut values = Vec::with_capacity(rows.len() * d);
        let mut filled = 0;
        for (j, col) in columns.iter().enumerate() {
            if !rows.iter().any(|r| r.get(j).is_some_and(|v| v.is_finite())) {
                return Err(ForecastError::Input(format!("{name}: column `{col}` has no finite value")));
            }
        }
        let mut last: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).find(|v| v.is_finite()).unwrap_or(0.0)).collect();
        for r in rows {
            for (j, l) in last.iter_mut().enumerate() {
                let v = r.get(j).copied().unwrap_or(f64::NAN);
                if v.is_finite() {
                    *l = v;
                } else {
                    filled += 1;
                }
                values.push(*l);
            }
        }
        let interval_secs = row_interval_secs(&timestamps_ms);
        Ok(Self { name: name.into(), columns, timestamps_ms, values, interval_secs, filled })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Target column (column 0).
    pub fn target(&self) -> Vec<f64> {
        self.values.iter().step_by(self.columns.len()).copied().collect()
    }

    /// The target as the statistical forecasters see it: one value per row on a regular series;
    /// where rows go missing (a row stands for more than the median interval,
    /// [`ForecastSeries::interval_secs`]), one value per `interval_secs` cell of time, as the
    /// runtime buckets live samples (`runtime::predict::bucketed`): the mean of the rows in the
    /// cell, or the previous cell's value where it holds none, with which cells hold rows. So a
    /// day back is a day back in time wherever the rows went missing, not on average. Rows that
    /// come in bursts (under half the cells would hold any) stay rows.
    pub fn target_on_grid(&self) -> (Vec<f64>, Option<Vec<bool>>) {
        let y = self.target();
        let cell_ms = (self.interval_secs * 1000.0).round() as i64;
        if median_step_ms(&self.timestamps_ms).is_none_or(|median| cell_ms <= median) {
            return (y, None);
        }
        let points = self.timestamps_ms.iter().copied().zip(y.iter().copied());
        let Some((values, observed)) = runtime::predict::bucket_rows(points, cell_ms, usize::MAX) else { return (y, None) };
        // Rows that come in bursts with long absences (most cells empty) stay rows: on a grid
        // the forecasters would mostly see filled values.
        if 2 * observed.iter().filter(|v| **v).count() < observed.len() {
            return (y, None);
        }
        (values, Some(observed))
    }
}

/// The median of the positive steps between consecutive timestamps (ms), if any.
fn median_step_ms(timestamps_ms: &[i64]) -> Option<i64> {
    let mut steps: Vec<i64> = timestamps_ms.windows(2).map(|w| w[1] - w[0]).filter(|s| *s > 0).collect();
    steps.sort_unstable();
    steps.get(steps.len() / 2).copied()
}

/// [`ForecastSeries::interval_secs`] of these timestamps (ms; 60 s when there are fewer than two).
fn row_interval_secs(timestamps_ms: &[i64]) -> f64 {
    const DAY_MS: i64 = 86_400_000;
    let Some(median) = median_step_ms(timestamps_ms) else { return 60.0 };
    let mut sorted = timestamps_ms.to_vec();
    sorted.sort_unstable();
    let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
    let days = (last - first) / DAY_MS;
    let at = |t: i64| sorted.partition_point(|x| *x < t);
    let mut counts: Vec<usize> = (0..days).map(|k| at(first + (k + 1) * DAY_MS) - at(first + k * DAY_MS)).collect();
    counts.sort_unstable();
    let typical = match counts.len() {
        0 => return median as f64 / 1000.0,
        n if n % 2 == 1 => counts[n / 2] as f64,
        n => (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0,
    };
    if typical >= 1.0 && typical < 0.95 * DAY_MS as f64 / median as f64 { 86_400.0 / typical } else { median as f64 / 1000.0 }
}

/// Scaled data and the window geometry shared by training and evaluation.
struct Windows {
    scaled: Vec<f32>,
    d: usize,
    t: usize,
    s: usize,
    hz: usize,
    norm: bool,
}

impl Windows {
    fn new(series: &ForecastSeries, scaler: &Scaler, cfg: &LstmTraining) -> Self {
        let d = series.columns.len();
        let scaled = series.values.iter().enumerate().map(|(i, v)| scaler.scale(i % d, *v) as f32).collect();
        Self {
            scaled,
            d,
            t: cfg.model.lookback_window,
            s: cfg.supervised_steps(),
            hz: cfg.model.forecast_horizon,
            norm: cfg.model.window_norm,
        }
    }

    /// Fills `x` `[B, T, d]` and `y` `[B, S, hz]` for windows starting at `starts`.
    fn batch(&self, starts: &[usize], x: &mut Vec<f32>, y: &mut Vec<f32>) {
        let (d, t, s, hz) = (self.d, self.t, self.s, self.hz);
        x.clear();
        y.clear();
        for &st in starts {
            let at = x.len();
            x.extend_from_slice(&self.scaled[st * d..(st + t) * d]);
            // Targets use the statistics of the whole lookback, as served (the forecast is read
            // at the last step); earlier supervised steps share them.
            let (m, sd) = if self.norm { runtime::forecast::normalize_window(&mut x[at..], d)[0] } else { (0.0, 1.0) };
            for k in 0..s {
                let step = t - s + k;
                y.extend((0..hz).map(|h| (self.scaled[(st + step + 1 + h) * d] - m) / sd));
            }
        }
    }
}

/// Per-horizon combination fitted on validation windows in window-normalised space (where the
/// moving-average forecast is 0 and the last-value forecast is the last input `l`):
/// `forecast_h = a_h·lstm_h + b_h·l`, least squares with `a_h ∈ [0, 1]` and `b_h ∈ [0, 1]`. A
/// horizon the network cannot predict is pulled back toward the window mean (`a → 0`) and, on
/// series that move like a random walk, toward the last value (`b → 1`).
fn combination(pred: &[f32], last: &[f32], target: &[f32], hz: usize) -> (Vec<f32>, Vec<f32>) {
    let mut a_out = Vec::with_capacity(hz);
    let mut b_out = Vec::with_capacity(hz);
    for h in 0..hz {
        let (mut pp, mut pl, mut ll, mut py, mut ly) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (i, l) in last.iter().enumerate() {
            let (p, y, l) = (pred[i * hz + h] as f64, target[i * hz + h] as f64, *l as f64);
            pp += p * p;
            pl += p * l;
            ll += l * l;
            py += p * y;
            ly += l * y;
        }
        let det = pp * ll - pl * pl;
        let (mut a, mut b) =
            if det.abs() > 1e-9 * (pp * ll).max(1e-12) { ((py * ll - ly * pl) / det, (ly * pp - py * pl) / det) } else { (1.0, 0.0) };
        // Clamp one coordinate, then refit the other given it (one pass of coordinate descent).
        if !(0.0..=1.0).contains(&a) {
            a = a.clamp(0.0, 1.0);
            b = if ll > 0.0 { (ly - a * pl) / ll } else { 0.0 };
        }
        if !(0.0..=1.0).contains(&b) {
            b = b.clamp(0.0, 1.0);
            a = if pp > 0.0 { ((py - b * pl) / pp).clamp(0.0, 1.0) } else { 0.0 };
        }
        a_out.push(a as f32);
        b_out.push(b as f32);
    }
    (a_out, b_out)
}

/// Folds the shrinkage into the head (column h of `head_w` and `head_b[h]` scaled by alpha_h).
fn apply_shrinkage(w: &mut LstmWeights, alpha: &[f32]) {
    let hz = w.horizon;
    for (i, v) in w.head_w.iter_mut().enumerate() {
        *v *= alpha[i % hz];
    }
    for (v, a) in w.head_b.iter_mut().zip(alpha) {
        *v *= a;
    }
}

/// Result of training.
#[derive(Debug)]
pub struct TrainedLstm {
    /// Best weights (lowest validation loss; the last ones without validation).
    pub weights: LstmWeights,
    /// Metadata for the bundle (checksum filled in on save).
    pub meta: ForecasterMeta,
    /// (epoch, train loss, validation loss) per epoch.
    pub history: Vec<(usize, f64, Option<f64>)>,
    /// Training windows seen per second (forward + backward + update), the whole run.
    pub samples_per_s: f64,
    /// Wall time.
    pub seconds: f64,
}

/// Window starts (each needs `T + hz` rows) over rows `[lo, hi)`, every `stride`, evenly
/// thinned to at most `cap` (0 = no cap).
fn window_starts(lo: usize, hi: usize, t: usize, hz: usize, stride: usize, cap: usize) -> Vec<usize> {
    if hi < lo + t + hz {
        return Vec::new();
    }
    let all: Vec<usize> = (lo..=hi - t - hz).step_by(stride.max(1)).collect();
    if cap == 0 || all.len() <= cap {
        return all;
    }
    (0..cap).map(|i| all[i * all.len() / cap]).collect()
}

/// The progress bar of training (hidden unless `progress`).
fn batch_bar(progress: bool, len: u64) -> ProgressBar {
    let bar = if progress { ProgressBar::new(len) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} batches {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

/// Mean loss of `weights` over the validation windows (None without any).
fn validation_loss(w: &Windows, val_starts: &[usize], weights: &LstmWeights, shape: Shape) -> Option<f64> {
    (!val_starts.is_empty()).then(|| {
        let (mut xb, mut yb) = (Vec::new(), Vec::new());
        let mut total = 0.0;
        for chunk in val_starts.chunks(256) {
            w.batch(chunk, &mut xb, &mut yb);
            total += kernel::loss(weights, Batch { x: &xb, y: &yb, size: chunk.len() }, shape) * chunk.len() as f64;
        }
        total / val_starts.len() as f64
    })
}

/// The per-step combination of the network's output with the last input that fits the
/// validation windows best ([`combination`]): the shrinkage is applied to `best`'s head, and
/// (shrinkage, skip) returned for the bundle.
fn shrink_to_last(w: Windows, val_starts: &[usize], best: &mut LstmWeights) -> (Vec<f32>, Vec<f32>) {
    let (t, d, hz) = (w.t, w.d, w.hz);
    let last = Windows { s: 1, ..w };
    let (mut xv, mut yv) = (Vec::new(), Vec::new());
    last.batch(val_starts, &mut xv, &mut yv);
    let p = kernel::predict(best, &xv, val_starts.len(), Shape { steps: t, loss_steps: 1 });
    let last_in: Vec<f32> = (0..val_starts.len()).map(|i| xv[(i * t + t - 1) * d]).collect();
    let (alpha, beta) = combination(&p, &last_in, &yv, hz);
    apply_shrinkage(best, &alpha);
    (alpha, beta)
}

/// Trains on the first `train_rows` rows of `series` (all when `None`). The scaler is fitted on
/// those rows; the validation windows are the latest `validation_split` of them.
pub fn train(
    series: &ForecastSeries,
    cfg: &LstmTraining,
    train_rows: Option<usize>,
    server: &str,
    progress: bool,
) -> Result<TrainedLstm, ForecastError> {
    cfg.validate()?;
    let d = series.columns.len();
    let n = train_rows.unwrap_or(series.len()).min(series.len());
    let (t, hz) = (cfg.model.lookback_window, cfg.model.forecast_horizon);
    let scaler = Scaler::fit(&series.values[..n * d], d);
    let w = Windows::new(series, &scaler, cfg);
    let val_rows = ((n as f64) * cfg.validation_split).round() as usize;
    let split = n - val_rows;
    let train_starts = window_starts(0, split, t, hz, cfg.window_stride, cfg.max_train_windows);
    let val_starts =
        if val_rows > 0 { window_starts(split.saturating_sub(t), n, t, hz, cfg.window_stride.max(hz / 4).max(1), 512) } else { Vec::new() };
    if train_starts.is_empty() {
        return Err(ForecastError::Input(format!(
            "{}: {split} training rows cannot hold one window of lookback {t} + horizon {hz}",
            series.name
        )));
    }
    let mut weights = kernel::init_weights(d, &cfg.model.lstm_units, hz, cfg.seed);
    // burn's optimizer updates modules on an autodiff device; the fused engine only hands it
    // gradients, so its module never records a graph.
    let device = match cfg.engine {
        Engine::Fused => runtime::forecast::Forecaster::serving_device().autodiff(),
        Engine::Burn => burn_device().autodiff(),
    };
    let mut model = LstmForecaster::from_weights(&weights, &device);
    let mut optim = AdamConfig::new().with_epsilon(1e-7).init();
    let shape = Shape { steps: t, loss_steps: cfg.supervised_steps() };
    let batches = train_starts.len().div_ceil(cfg.batch_size);
    let bar = batch_bar(progress, (cfg.epochs * batches) as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order = train_starts.clone();
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut best: Option<(f64, LstmWeights)> = None;
    let mut since_best = 0;
    let mut history = Vec::new();
    let started = Instant::now();
    let mut seen = 0usize;
    let mut step = 0u64;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            w.batch(chunk, &mut xb, &mut yb);
            step += 1;
            let (loss, grads) = match cfg.engine {
                Engine::Fused => {
                    let dropout =
                        (cfg.dropout_rate > 0.0).then_some((cfg.dropout_rate as f32, cfg.seed.wrapping_mul(31).wrapping_add(step)));
                    kernel::loss_and_grads(&weights, Batch { x: &xb, y: &yb, size: chunk.len() }, shape, dropout)
                }
                Engine::Burn => burn_loss_and_grads(&model, &xb, &yb, chunk.len(), cfg, &device),
            };
            let gp = grads_params(&model, &grads, &device);
            model = optim.step(cfg.learning_rate, model, gp);
            weights = model.weights();
            sum += loss * chunk.len() as f64;
            seen += chunk.len();
            bar.inc(1);
        }
        let train_loss = sum / train_starts.len() as f64;
        let val_loss = validation_loss(&w, &val_starts, &weights, shape);
        history.push((epoch, train_loss, val_loss));
        bar.set_message(format!(
            "epoch {epoch}/{} loss {train_loss:.4} val_loss {}",
            cfg.epochs,
            val_loss.map_or("-".into(), |v| format!("{v:.4}"))
        ));
        let score = val_loss.unwrap_or(train_loss);
        if best.as_ref().is_none_or(|(b, _)| score < *b) {
            best = Some((score, weights.clone()));
            since_best = 0;
        } else {
            since_best += 1;
            if cfg.patience > 0 && since_best >= cfg.patience {
                break;
            }
        }
        if !score.is_finite() {
            return Err(ForecastError::Input(format!("{}: training diverged at epoch {epoch} (loss {score})", series.name)));
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let (best_loss, mut best_w) = best.expect("at least one epoch");
    let shrunk = cfg.model.window_norm && cfg.shrink && !val_starts.is_empty();
    let (shrinkage, skip) = if shrunk { shrink_to_last(w, &val_starts, &mut best_w) } else { (Vec::new(), Vec::new()) };
    let meta = ForecasterMeta {
        format: runtime::forecast::FORECASTER_FORMAT,
        config: LstmConfig { input_metrics: series.columns[1..].to_vec(), target_metric: series.columns[0].clone(), ..cfg.model.clone() },
        training: Some(cfg.training_record()),
        scaler,
        server: server.into(),
        interval_secs: series.interval_secs,
        val_loss: (!val_starts.is_empty()).then_some(best_loss),
        epochs_run: history.len(),
        shrinkage,
        skip,
        weights_sha256: String::new(),
    };
    Ok(TrainedLstm { weights: best_w, meta, history, samples_per_s: seen as f64 / seconds.max(1e-9), seconds })
}

/// The device for `engine = "burn"`: `BURN_DEVICE=wgpu` picks the GPU backend when the
/// workbench was built with the `gpu` feature; otherwise burn's ndarray CPU backend.
pub fn burn_device() -> Device {
    #[cfg(feature = "gpu")]
    if std::env::var("BURN_DEVICE").is_ok_and(|v| v == "wgpu") {
        return Device::wgpu(Default::default());
    }
    runtime::forecast::Forecaster::serving_device()
}

fn burn_loss_and_grads(model: &LstmForecaster, x: &[f32], y: &[f32], b: usize, cfg: &LstmTraining, device: &Device) -> (f64, LstmWeights) {
    let (t, s, hz) = (cfg.model.lookback_window, cfg.supervised_steps(), cfg.model.forecast_horizon);
    let d = x.len() / (b * t);
    let xt = Tensor::<3>::from_data(TensorData::new(x.to_vec(), [b, t, d]), device);
    let yt = Tensor::<3>::from_data(TensorData::new(y.to_vec(), [b, s, hz]), device);
    let dropout = burn::nn::DropoutConfig::new(cfg.dropout_rate).init();
    let pred = model.forward_all(xt, (cfg.dropout_rate > 0.0).then_some(&dropout)).narrow(1, t - s, s);
    let loss = (pred - yt).square().mean();
    let value = loss.clone().into_scalar::<f32>() as f64;
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut out = LstmWeights::zeros(d, &cfg.model.lstm_units, hz);
    let get2 = |p: &burn::module::Param<Tensor<2>>| grads.get::<2>(p.id).map(flat).unwrap_or_default();
    let get1 = |p: &burn::module::Param<Tensor<1>>| grads.get::<1>(p.id).map(flat).unwrap_or_default();
    for (o, l) in out.layers.iter_mut().zip(&model.layers) {
        o.w_ih = get2(&l.w_ih);
        o.w_hh = get2(&l.w_hh);
        o.bias = get1(&l.bias);
    }
    out.head_w = get2(&model.head_w);
    out.head_b = get1(&model.head_b);
    (value, out)
}

fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data")
}

/// Gradients as burn `GradientsParams` keyed by the module's parameter ids (on the module's
/// device without autodiff), so burn's Adam applies them.
fn grads_params(model: &LstmForecaster, g: &LstmWeights, device: &Device) -> GradientsParams {
    let inner = device.clone().without_autodiff();
    let t2 = |v: &[f32], shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), shape), &inner);
    let t1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &inner);
    let mut gp = GradientsParams::new();
    for (l, gl) in model.layers.iter().zip(&g.layers) {
        gp.register(l.w_ih.id, t2(&gl.w_ih, [gl.d_in, 4 * gl.hidden]));
        gp.register(l.w_hh.id, t2(&gl.w_hh, [gl.hidden, 4 * gl.hidden]));
        gp.register(l.bias.id, t1(&gl.bias));
    }
    let last = g.layers.last().map_or(0, |l| l.hidden);
    gp.register(model.head_w.id, t2(&g.head_w, [last, g.horizon]));
    gp.register(model.head_b.id, t1(&g.head_b));
    gp
}

/// Forecasts (original units) for windows ending just before each origin, with the served
/// burn module: `out[i]` holds `forecast_horizon` values starting at row `origins[i]`.
pub fn forecast_at(fc: &runtime::forecast::Forecaster, series: &ForecastSeries, origins: &[usize]) -> Result<Vec<Vec<f64>>, ForecastError> {
    let d = series.columns.len();
    let t = fc.meta.config.lookback_window;
    let mut out = Vec::with_capacity(origins.len());
    for chunk in origins.chunks(128) {
        let windows: Vec<&[f64]> = chunk.iter().map(|&o| &series.values[(o - t) * d..o * d]).collect();
        out.extend(fc.forecast_batch(&windows)?);
    }
    Ok(out)
}

/// The served module for trained weights (what `save_dir` + `load_dir` give, without the disk).
pub fn to_forecaster(trained: &TrainedLstm) -> runtime::forecast::Forecaster {
    let device = runtime::forecast::Forecaster::serving_device();
    runtime::forecast::Forecaster::new(trained.meta.clone(), LstmForecaster::from_weights(&trained.weights, &device), device)
}

/// Number of trainable parameters per layer, Keras-style summary lines.
pub fn summary(cfg: &LstmTraining, d_in: usize) -> Vec<(String, String, usize)> {
    let w = LstmWeights::zeros(d_in, &cfg.model.lstm_units, cfg.model.forecast_horizon);
    let t = cfg.model.lookback_window;
    let mut rows = Vec::new();
    for (i, l) in w.layers.iter().enumerate() {
        let name = if i == 0 { "lstm (LSTM)".to_string() } else { format!("lstm_{i} (LSTM)") };
        rows.push((name, format!("(None, {t}, {})", l.hidden), l.w_ih.len() + l.w_hh.len() + l.bias.len()));
        let dn = if i == 0 { "dropout (Dropout)".to_string() } else { format!("dropout_{i} (Dropout)") };
        rows.push((dn, format!("(None, {t}, {})", l.hidden), 0));
    }
    rows.push(("time_distributed (Dense)".into(), format!("(None, {t}, {})", cfg.model.forecast_horizon), w.head_w.len() + w.head_b.len()));
    rows
}

#[cfg(test)]
mod tests;
