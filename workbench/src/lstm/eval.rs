//! Forecast evaluation: train on the first 70 %, forecast from origins over the last 30 %, and
//! compare with last-value, seasonal-naive (daily) and moving-average baselines at every
//! horizon step; spike prediction ("will the target cross the threshold within the horizon").

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ForecastSeries, TrainedLstm, forecast_at, to_forecaster};
use runtime::forecast::ForecastError;

use super::LstmTraining;

/// Names of the compared forecasters, in report order.
pub const MODELS: [&str; 4] = ["lstm", "last_value", "seasonal_naive", "moving_average"];

/// Error sums for one forecaster.
#[derive(Clone, Debug, Default)]
pub(crate) struct Acc {
    abs: f64,
    sq: f64,
    smape: f64,
    n: usize,
}

impl Acc {
    pub(crate) fn add(&mut self, actual: f64, pred: f64) {
        let e = actual - pred;
        self.abs += e.abs();
        self.sq += e * e;
        let den = actual.abs() + pred.abs();
        self.smape += if den > 0.0 { 200.0 * e.abs() / den } else { 0.0 };
        self.n += 1;
    }
    pub(crate) fn mae(&self) -> f64 {
        self.abs / self.n.max(1) as f64
    }
    pub(crate) fn rmse(&self) -> f64 {
        (self.sq / self.n.max(1) as f64).sqrt()
    }
    pub(crate) fn smape(&self) -> f64 {
        self.smape / self.n.max(1) as f64
    }
}

/// Spike-prediction counts for one forecaster.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SpikeScore {
    /// Origins where a crossing was forecast and happened.
    pub true_positives: usize,
    /// Forecast, did not happen.
    pub false_positives: usize,
    /// Happened, not forecast.
    pub false_negatives: usize,
    /// TP / (TP + FP).
    pub precision: Option<f64>,
    /// TP / (TP + FN).
    pub recall: Option<f64>,
    /// Mean steps from the origin to the actual crossing, over true positives.
    pub mean_lead_steps: Option<f64>,
    /// The same in minutes.
    pub mean_lead_minutes: Option<f64>,
}

/// At most `max_origins` evenly spaced forecast origins in `[lo, n − horizon]`.
pub(crate) fn forecast_origins(lo: usize, n: usize, horizon: usize, max_origins: usize) -> Vec<usize> {
    let stride = (n - horizon - lo + 1).div_ceil(max_origins.max(1)).max(1);
    (lo..=n - horizon).step_by(stride).collect()
}

/// The level spike prediction asks about: the 95th percentile of the training part.
pub(crate) fn spike_threshold(train: &[f64]) -> f64 {
    let mut sorted = train.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * 0.95) as usize]
}

/// Spike-prediction counts of one forecaster over origins (where the last value is still below
/// the threshold): a crossing forecast within the horizon vs one that happened.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpikeCounter {
    score: SpikeScore,
    lead_steps: f64,
}

impl SpikeCounter {
    /// Count one origin: `last` value before it, `forecast` and `actual` over the horizon.
    pub(crate) fn add(&mut self, last: f64, forecast: &[f64], actual: &[f64], threshold: f64) {
        self.add_decided(last, forecast.iter().any(|v| *v >= threshold), actual, threshold);
    }

    /// Count one origin where the crossing was decided otherwise (`predicted`: a crossing
    /// within the horizon was forecast).
    pub(crate) fn add_decided(&mut self, last: f64, predicted: bool, actual: &[f64], threshold: f64) {
        if last >= threshold {
            return;
        }
        match (predicted, actual.iter().position(|v| *v >= threshold)) {
            (true, Some(k)) => {
                self.score.true_positives += 1;
                self.lead_steps += (k + 1) as f64;
            }
            (true, None) => self.score.false_positives += 1,
            (false, Some(_)) => self.score.false_negatives += 1,
            (false, None) => {}
        }
    }

    /// Counts with precision, recall and mean lead.
    pub(crate) fn score(mut self, interval_secs: f64) -> SpikeScore {
        let s = &mut self.score;
        let (tp, fp, fneg) = (s.true_positives as f64, s.false_positives as f64, s.false_negatives as f64);
        s.precision = (tp + fp > 0.0).then(|| tp / (tp + fp));
        s.recall = (tp + fneg > 0.0).then(|| tp / (tp + fneg));
        s.mean_lead_steps = (tp > 0.0).then(|| self.lead_steps / tp);
        s.mean_lead_minutes = s.mean_lead_steps.map(|l| l * interval_secs / 60.0);
        self.score
    }
}

/// The evaluation report (`experiment lstm evaluate` prints it as one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct ForecastReport {
    /// Input name.
    pub series: String,
    /// Target column.
    pub column: String,
    /// Rows in the series.
    pub rows: usize,
    /// Rows used for training (70 %).
    pub train_rows: usize,
    /// The time a row stands for, seconds ([`ForecastSeries::interval_secs`]).
    pub interval_secs: f64,
    /// Seasonal period used by the seasonal-naive baseline (one day), steps.
    pub season_steps: usize,
    /// Forecast origins evaluated.
    pub origins: usize,
    /// Forecast horizon, steps.
    pub horizon: usize,
    /// MAE over every origin and horizon step, per forecaster.
    pub mae: BTreeMap<String, f64>,
    /// RMSE, same.
    pub rmse: BTreeMap<String, f64>,
    /// sMAPE (percent), same.
    pub smape: BTreeMap<String, f64>,
    /// MAE at horizons 1, 30 and 180 steps (those within the horizon).
    pub mae_at: BTreeMap<String, BTreeMap<String, f64>>,
    /// The baseline with the lowest MAE.
    pub best_baseline: String,
    /// 1 − MAE(lstm) / MAE(best baseline): ≥ 0.15 is the target.
    pub improvement_vs_best_baseline: f64,
    /// Spike threshold (95th percentile of the training target).
    pub spike_threshold: f64,
    /// Spike prediction per forecaster.
    pub spike: BTreeMap<String, SpikeScore>,
    /// Epochs run, validation loss, training time and speed.
    pub epochs_run: usize,
    /// Best validation loss (scaled MSE).
    pub val_loss: Option<f64>,
    /// Wall time of training, seconds.
    pub train_seconds: f64,
    /// Training windows per second.
    pub train_samples_per_s: f64,
    /// Non-finite input values forward-filled.
    pub filled: usize,
}

/// Trains on the first `train_fraction` of `series` and evaluates over the rest, forecasting
/// from at most `max_origins` evenly spaced origins.
pub fn evaluate(
    series: &ForecastSeries,
    cfg: &LstmTraining,
    train_fraction: f64,
    max_origins: usize,
    season_steps: Option<usize>,
) -> Result<(ForecastReport, TrainedLstm), ForecastError> {
    let n = series.len();
    let n_train = ((n as f64) * train_fraction).round() as usize;
    let trained = super::train(series, cfg, Some(n_train), &series.name, true)?;
    let report = report(series, &trained, n_train, max_origins, season_steps)?;
    Ok((report, trained))
}

/// Scores a trained model over rows `[n_train, n)`. The seasonal-naive baseline repeats the
/// value one season earlier: one day of steps unless `season_steps` is given.
pub fn report(
    series: &ForecastSeries,
    trained: &TrainedLstm,
    n_train: usize,
    max_origins: usize,
    season_steps: Option<usize>,
) -> Result<ForecastReport, ForecastError> {
    let cfg = &trained.meta.config;
    let (t, hz) = (cfg.lookback_window, cfg.forecast_horizon);
    let n = series.len();
    let y = series.target();
    let season = season_steps.unwrap_or_else(|| (86_400.0 / series.interval_secs).round() as usize).max(1);
    let lo = n_train.max(t).max(season);
    if n < lo + hz {
        return Err(ForecastError::Input(format!(
            "{}: {n} rows leave no forecast origin after {n_train} training rows (lookback {t}, horizon {hz}, season {season})",
            series.name
        )));
    }
    let origins = forecast_origins(lo, n, hz, max_origins);
    let fc = to_forecaster(trained);
    let lstm = forecast_at(&fc, series, &origins)?;
    let threshold = spike_threshold(&y[..n_train]);
    let horizons: Vec<usize> = [1usize, 30, 180].into_iter().filter(|h| *h <= hz).collect();
    let mut all: BTreeMap<&str, Acc> = MODELS.iter().map(|m| (*m, Acc::default())).collect();
    let mut at: BTreeMap<(usize, &str), Acc> = BTreeMap::new();
    let mut spikes: BTreeMap<&str, SpikeCounter> = MODELS.iter().map(|m| (*m, SpikeCounter::default())).collect();
    for (oi, &o) in origins.iter().enumerate() {
        let last = y[o - 1];
        let ma = y[o - t..o].iter().sum::<f64>() / t as f64;
        let preds: [(&str, Vec<f64>); 4] = [
            ("lstm", lstm[oi].clone()),
            ("last_value", vec![last; hz]),
            ("seasonal_naive", (0..hz).map(|k| y[o + k - season * (k / season + 1)]).collect()),
            ("moving_average", vec![ma; hz]),
        ];
        let actual = &y[o..o + hz];
        for (name, p) in &preds {
            for k in 0..hz {
                all.get_mut(name).expect("model").add(actual[k], p[k]);
            }
            for &h in &horizons {
                at.entry((h, name)).or_default().add(actual[h - 1], p[h - 1]);
            }
            spikes.get_mut(name).expect("model").add(last, p, actual, threshold);
        }
    }
    let mae: BTreeMap<String, f64> = all.iter().map(|(k, a)| (k.to_string(), a.mae())).collect();
    let (best_baseline, best_mae) =
        mae.iter().filter(|(k, _)| *k != "lstm").min_by(|a, b| a.1.total_cmp(b.1)).map(|(k, v)| (k.clone(), *v)).expect("baselines");
    let spike = spikes.into_iter().map(|(k, s)| (k.to_string(), s.score(series.interval_secs))).collect();
    Ok(ForecastReport {
        series: series.name.clone(),
        column: series.columns[0].clone(),
        rows: n,
        train_rows: n_train,
        interval_secs: series.interval_secs,
        season_steps: season,
        origins: origins.len(),
        horizon: hz,
        improvement_vs_best_baseline: if best_mae > 0.0 { 1.0 - mae["lstm"] / best_mae } else { 0.0 },
        mae,
        rmse: all.iter().map(|(k, a)| (k.to_string(), a.rmse())).collect(),
        smape: all.iter().map(|(k, a)| (k.to_string(), a.smape())).collect(),
        mae_at: horizons.iter().map(|h| (h.to_string(), MODELS.iter().map(|m| (m.to_string(), at[&(*h, *m)].mae())).collect())).collect(),
        best_baseline,
        spike_threshold: threshold,
        spike,
        epochs_run: trained.meta.epochs_run,
        val_loss: trained.meta.val_loss,
        train_seconds: trained.seconds,
        train_samples_per_s: trained.samples_per_s,
        filled: series.filled,
    })
}
