//! `lstm_residual`: the forecast-residual detector. A small LSTM forecasts the first column one
//! step ahead from the previous `lookback_window` rows; the residual (actual − forecast) is
//! calibrated to [0, 1] by the tail ensemble's two-sided empirical tail probability against the
//! residual's own history, and — with `include_values` — combined (max) with the tail
//! ensemble's score of the raw values, an ensemble of two calibrated scores.
//!
//! Causal: the model is fitted on past rows only — the training split when one is learned,
//! else the first `fit_after_rows` rows — and refitted every `refit_every_rows` on the last
//! `history_rows`. Before the first fit only the raw-value view scores.

use runtime::forecast::{LstmConfig, LstmWeights, Scaler};

use crate::lstm::LstmTraining;
use runtime::models::detectors::{DetectorConfig, DetectorError, StreamingDetector, TailEnsembleConfig};
use serde::{Deserialize, Serialize};

use crate::lstm::{ForecastSeries, kernel};

/// Settings of `kind = "lstm_residual"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstmResidualConfig {
    /// Rows before the first fit (without a training split).
    pub fit_after_rows: usize,
    /// Refit period in rows (0: never).
    pub refit_every_rows: usize,
    /// Rows kept for (re)fits.
    pub history_rows: usize,
    /// Input steps.
    pub lookback_window: usize,
    /// LSTM layers.
    pub lstm_units: Vec<usize>,
    /// Epochs per fit (early stopping on the latest 20 %).
    pub epochs: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Supervised final steps per window.
    pub loss_steps: usize,
    /// Windows per epoch, at most.
    pub max_train_windows: usize,
    /// Also score the raw values (max of the two calibrated scores).
    pub include_values: bool,
    /// Tail-ensemble settings of the calibration.
    pub tail: TailEnsembleConfig,
    /// Seed.
    pub seed: u64,
}

impl Default for LstmResidualConfig {
    fn default() -> Self {
        Self {
            fit_after_rows: 400,
            refit_every_rows: 2000,
            history_rows: 5000,
            lookback_window: 32,
            lstm_units: vec![32, 16],
            epochs: 20,
            learning_rate: 3e-3,
            loss_steps: 16,
            max_train_windows: 2000,
            include_values: true,
            // value + mean views, as the tail ensemble's default (NAB standard 56.5 vs 54.6 with value only).
            tail: TailEnsembleConfig::default(),
            seed: 42,
        }
    }
}

impl LstmResidualConfig {
    fn lstm(&self) -> LstmTraining {
        LstmTraining {
            model: LstmConfig {
                lookback_window: self.lookback_window,
                forecast_horizon: 1,
                lstm_units: self.lstm_units.clone(),
                target_metric: "value".into(),
                ..LstmConfig::default()
            },
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            patience: 3,
            loss_steps: self.loss_steps,
            max_train_windows: self.max_train_windows,
            seed: self.seed,
            ..LstmTraining::default()
        }
    }

    /// Builds the detector for `n_metrics` columns.
    pub fn build(&self, n_metrics: usize) -> Result<LstmResidual, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        if let Err(e) = self.lstm().validate() {
            return bad("lstm", format!("{:?}", self.lstm_units), &e.to_string());
        }
        if self.fit_after_rows < 2 * self.lookback_window + 8 {
            return bad("fit_after_rows", self.fit_after_rows.to_string(), "at least 2 × lookback_window + 8");
        }
        let width = 1 + if self.include_values { n_metrics } else { 0 };
        let tail = DetectorConfig::TailEnsemble(self.tail.clone()).build(width)?;
        Ok(LstmResidual {
            cfg: self.clone(),
            lstm: self.lstm(),
            history: Vec::new(),
            times: Vec::new(),
            model: None,
            since_fit: 0,
            tail,
            row: Vec::new(),
        })
    }
}

/// The running detector.
#[derive(Debug)]
pub struct LstmResidual {
    cfg: LstmResidualConfig,
    lstm: LstmTraining,
    history: Vec<f64>,
    times: Vec<i64>,
    model: Option<(LstmWeights, Scaler, Vec<f32>)>,
    since_fit: usize,
    tail: Box<dyn StreamingDetector>,
    row: Vec<f64>,
}

impl LstmResidual {
    fn forecast(&self) -> Option<f64> {
        let (w, scaler, skip) = self.model.as_ref()?;
        let t = self.cfg.lookback_window;
        if self.history.len() < t {
            return None;
        }
        let mut x: Vec<f32> = self.history[self.history.len() - t..].iter().map(|v| scaler.scale(0, *v) as f32).collect();
        let (m, sd) = runtime::forecast::normalize_window(&mut x, 1)[0];
        let mut p = kernel::predict(w, &x, 1, kernel::Shape { steps: t, loss_steps: 1 });
        runtime::forecast::apply_skip(&mut p, skip, x[t - 1]);
        Some(scaler.unscale_target((p[0] * sd + m) as f64))
    }

    fn fit(&mut self) {
        let rows: Vec<Vec<f64>> = self.history.iter().map(|v| vec![*v]).collect();
        let Ok(series) = ForecastSeries::new("lstm_residual", vec!["value".into()], self.times.clone(), &rows) else {
            return;
        };
        if let Ok(trained) = crate::lstm::train(&series, &self.lstm, None, "detector", false) {
            self.model = Some((trained.weights, trained.meta.scaler, trained.meta.skip));
        }
        self.since_fit = 0;
    }

    fn remember(&mut self, t: i64, y: f64) {
        if y.is_finite() {
            self.history.push(y);
            self.times.push(t);
        }
        if self.history.len() > self.cfg.history_rows {
            let drop = self.history.len() - self.cfg.history_rows;
            self.history.drain(..drop);
            self.times.drain(..drop);
        }
        self.since_fit += 1;
    }

    fn fit_due(&self) -> bool {
        match self.model {
            None => self.history.len() >= self.cfg.fit_after_rows,
            Some(_) => self.cfg.refit_every_rows > 0 && self.since_fit >= self.cfg.refit_every_rows,
        }
    }
}

impl StreamingDetector for LstmResidual {
    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64 {
        if self.fit_due() {
            self.fit();
        }
        let y = values.first().copied().unwrap_or(f64::NAN);
        let residual = match self.forecast() {
            Some(f) if y.is_finite() => y - f,
            _ => f64::NAN,
        };
        self.row.clear();
        self.row.push(residual);
        if self.cfg.include_values {
            self.row.extend_from_slice(values);
        }
        let score = self.tail.push(timestamp_ms, &self.row);
        self.remember(timestamp_ms, y);
        score
    }

    fn learn(&mut self, timestamp_ms: i64, values: &[f64]) {
        let y = values.first().copied().unwrap_or(f64::NAN);
        self.row.clear();
        self.row.push(f64::NAN);
        if self.cfg.include_values {
            self.row.extend_from_slice(values);
        }
        self.tail.learn(timestamp_ms, &self.row);
        self.remember(timestamp_ms, y);
    }

    fn contributions(&self) -> Vec<f64> {
        // Residual and value views both describe the first column; the others only by value.
        let c = self.tail.contributions();
        if c.is_empty() || !self.cfg.include_values {
            return c.into_iter().take(1).collect();
        }
        let mut out: Vec<f64> = c[1..].to_vec();
        out[0] = out[0].max(c[0]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_detector_is_causal_and_flags_a_break_in_the_pattern() {
        let cfg = LstmResidualConfig {
            fit_after_rows: 300,
            refit_every_rows: 0,
            epochs: 30,
            learning_rate: 1e-2,
            lstm_units: vec![8, 4],
            lookback_window: 16,
            ..Default::default()
        };
        let series: Vec<f64> = (0..600)
            .map(|i| {
                let noise = ((i * 7919) % 17) as f64 / 17.0 - 0.5;
                let base = 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 20.0).sin() + noise;
                // Rows 455-457 mirror the cycle: values stay inside the normal range but break the pattern.
                if (455..458).contains(&i) { 100.0 - base } else { base }
            })
            .collect();
        let run = |n: usize| {
            let mut d = cfg.build(1).unwrap();
            (0..n).map(|i| d.push(i as i64 * 60_000, &[series[i]])).collect::<Vec<f64>>()
        };
        let full = run(600);
        let cut = run(460);
        assert_eq!(&full[..460], &cut[..], "truncating the input changed earlier scores");
        let before = full[320..440].iter().copied().fold(0.0, f64::max);
        let during = full[455..458].iter().copied().fold(0.0, f64::max);
        assert!(during > before + 0.2, "break {during} vs normal {before}");
        assert!(cfg.clone().build(0).is_ok());
        let bad = LstmResidualConfig { fit_after_rows: 10, ..cfg };
        assert_eq!(bad.build(1).unwrap_err().field, "fit_after_rows");
    }
}
