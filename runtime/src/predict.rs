//! Predictive scaling with either forecaster: the LSTM bundle (`experiment lstm train`) or the
//! statistical `auto` forecaster ([`crate::models::forecasters`]), which needs no training job:
//! it is fitted per server, at every prediction, on the history the runtime reads anyway.
//!
//! The decision reads the forecast's uncertainty, not only the point forecast: with `band =
//! "probability"` (the default for `auto`) a server needs capacity when P(crossing the
//! threshold within the horizon) is at least `crossing_probability` (0.4), that probability
//! being the share of `auto`'s future paths (the point forecast plus each validation origin's
//! residual path, at today's scale) that reach the threshold; the first step where the share is
//! reached is the time to the crossing. A crossing that is likely but not the single most likely
//! path still scales. On the 33 shared series that decision catches 89 % of the spikes with
//! 87 % precision (the 95 % interval's upper bound, `upper_95`: 82 % / 83 %; the point forecast:
//! 24 % / 96 %; docs/results.md).
//!
//! ```
//! use runtime::predict::{Band, StatisticalForecast};
//! // A week of 5-minute rows with a daily peak at 90 from 12:00 to 14:00.
//! let y: Vec<f64> = (0..2016).map(|i| if (144..168).contains(&(i % 288)) { 90.0 } else { 40.0 }).collect();
//! let cfg = StatisticalForecast { horizon_minutes: 60.0, ..Default::default() };
//! // From 11:15 on the last day the peak is 45 minutes ahead.
//! let p = cfg.predict(&y[..2016 - 288 + 135]).unwrap();
//! assert_eq!(p.band, Band::Probability);
//! let advice = p.advice(40.0, cfg.interval_secs, 80.0, 10.0);
//! assert_eq!(advice.recommendation, runtime::forecast::Recommendation::ScaleSoon);
//! assert!(advice.crossing_probability.unwrap() >= 0.4);
//! assert!(advice.minutes_to_crossing.unwrap() > 10.0);
//! ```

use serde::{Deserialize, Serialize};

use crate::forecast::{ForecastError, Forecaster};
use crate::models::forecasters::{Forecast, ForecasterParams, FuturePaths};

/// Which forecaster `[forecast]` (or `runtime forecast --model`) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ForecastModel {
    /// The LSTM bundle of `[forecast] bundle` (the default when a bundle is given).
    Lstm,
    /// The statistical `auto` forecaster, fitted per server from the history read (the default
    /// without a bundle).
    #[default]
    Auto,
    /// The forecaster promoted to the model registry (`[model] registry`): model
    /// `[forecast] registry_model` at `[forecast] alias`, reloaded when the alias moves, the
    /// last good one kept when a new one does not load.
    Registry,
}

impl ForecastModel {
    /// The forecaster to run: `chosen` when set, else the LSTM when a bundle is given, else
    /// `auto` (fitted per server from the history read: it beats the naive baselines on most
    /// series, which the LSTM does not; docs/results.md). `[forecast]` and `runtime forecast`
    /// both decide by it.
    pub fn resolve(chosen: Option<Self>, bundle_given: bool) -> Self {
        chosen.unwrap_or(if bundle_given { Self::Lstm } else { Self::Auto })
    }
}

/// The forecast a scaling decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// The point forecast.
    Point,
    /// The upper bound of the 80 % interval (the 90th percentile).
    Upper80,
    /// The upper bound of the 95 % interval (the 97.5th percentile).
    Upper95,
    /// P(crossing the threshold within the horizon): the share of `auto`'s future paths (the
    /// point forecast plus each validation origin's residual path, at today's scale) that reach
    /// it, against `crossing_probability` (0.4); the first step where that share is reached is
    /// the time to the crossing. Where there are no paths (the LSTM), the point forecast.
    #[default]
    Probability,
}

impl Band {
    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Point => "point",
            Self::Upper80 => "upper_80",
            Self::Upper95 => "upper_95",
            Self::Probability => "probability",
        }
    }
}

/// `[forecast.auto]`: the statistical forecaster (used with `[forecast] model = "auto"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatisticalForecast {
    /// The metric forecast.
    pub metric: String,
    /// Rows are the mean of the samples in each bucket of this many seconds.
    pub interval_secs: f64,
    /// How far ahead, minutes (the reference: 30–45).
    pub horizon_minutes: f64,
    /// History read and fitted on, hours (a week lets the daily cycle be found).
    pub history_hours: f64,
    /// The forecast the decision reads.
    pub band: Band,
    /// The forecaster's own settings.
    pub params: ForecasterParams,
}

impl Default for StatisticalForecast {
    fn default() -> Self {
        Self {
            metric: "cpu_usage".into(),
            interval_secs: 300.0,
            horizon_minutes: 45.0,
            history_hours: 7.0 * 24.0,
            band: Band::Probability,
            params: ForecasterParams::default(),
        }
    }
}

/// A forecast and the band the decision reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Point forecast and intervals (the LSTM has none: its bounds equal the point).
    pub forecast: Forecast,
    /// The band decided on.
    pub band: Band,
    /// `auto`'s future paths (the `probability` band reads them; none for the LSTM).
    #[serde(skip)]
    pub paths: Option<FuturePaths>,
}

impl Prediction {
    /// The values the decision reads (the `probability` band: the 80 % interval's upper bound,
    /// which sizes the scale-up; the crossing is [`Prediction::first_crossing`]).
    pub fn decision(&self) -> &[f64] {
        match self.band {
            Band::Point => &self.forecast.point,
            Band::Upper80 | Band::Probability => &self.forecast.upper_80,
            Band::Upper95 => &self.forecast.upper_95,
        }
    }

    /// The first step (0-based) where the decision sees `threshold` crossed: the band's first
    /// value at or above it, or for the `probability` band the first step by which the share of
    /// paths that reached it is `crossing_probability` (no paths: the point forecast).
    pub fn first_crossing(&self, threshold: f64) -> Option<usize> {
        match (self.band, &self.paths) {
            (Band::Probability, Some(paths)) => paths.first_likely_crossing(threshold),
            (Band::Probability, None) => self.forecast.point.iter().position(|v| *v >= threshold),
            _ => self.decision().iter().position(|v| *v >= threshold),
        }
    }

    /// The scaling advice on this prediction ([`crate::forecast::scaling_advice_at`]): with the
    /// `probability` band, also P(crossing within the horizon).
    pub fn advice(&self, current: f64, interval_secs: f64, threshold: f64, now_minutes: f64) -> crate::forecast::ScalingAdvice {
        let (first, probability) = match (self.band, &self.paths) {
            (Band::Probability, Some(paths)) => {
                let (first, p) = paths.likely_crossing(threshold);
                (first, Some(p))
            }
            _ => (self.first_crossing(threshold), None),
        };
        let mut advice = crate::forecast::scaling_advice_at(current, self.decision(), first, interval_secs, threshold, now_minutes);
        advice.crossing_probability = probability;
        advice
    }
}

impl StatisticalForecast {
    /// Give the settings that `stored` (the JSON this forecaster was read from: a bundle's
    /// `forecaster.json`, a tracked run's `forecaster`) was written without the values it was
    /// evaluated with rather than today's defaults: `median_level_share` 0 (the seasonal
    /// median's level over twice the moving average's window, before the setting existed).
    pub fn keep_stored(&mut self, stored: &serde_json::Value) {
        if stored.get("params").and_then(|p| p.get("median_level_share")).is_none() {
            self.params.median_level_share = 0.0;
        }
    }

    /// Check every setting.
    pub fn validate(&self) -> Result<(), ForecastError> {
        let bad = |field: &str, v: f64, why: &str| Err(ForecastError::Config(format!("[forecast.auto] {field} = {v}: {why}")));
        if self.metric.trim().is_empty() {
            return Err(ForecastError::Config("[forecast.auto] metric is empty".into()));
        }
        if !(self.interval_secs.is_finite() && self.interval_secs >= 1.0) {
            return bad("interval_secs", self.interval_secs, "at least 1");
        }
        if !(self.horizon_minutes.is_finite() && self.horizon_minutes * 60.0 >= self.interval_secs) {
            return bad("horizon_minutes", self.horizon_minutes, "at least one interval");
        }
        if !(self.history_hours.is_finite() && self.history_hours > 0.0) || self.history_rows() < self.min_rows() {
            return bad("history_hours", self.history_hours, &format!("must hold at least {} rows", self.min_rows()));
        }
        self.params.validate().map_err(|e| ForecastError::Config(e.to_string()))
    }

    /// Forecast steps.
    pub fn horizon(&self) -> usize {
        ((self.horizon_minutes * 60.0 / self.interval_secs).round() as usize).max(1)
    }

    /// Rows of history read.
    pub fn history_rows(&self) -> usize {
        (self.history_hours * 3600.0 / self.interval_secs).round() as usize
    }

    /// Fewest rows a fit needs.
    pub fn min_rows(&self) -> usize {
        self.horizon() + self.params.validation_origins + 10
    }

    /// Fit `auto` on `history` (oldest first, one row per interval) and forecast from its end.
    pub fn predict(&self, history: &[f64]) -> Result<Prediction, ForecastError> {
        self.predict_observed(history, None)
    }

    /// [`StatisticalForecast::predict`] where `observed[i]` false marks a filled row (a bucket
    /// without samples): history, but not scored in validation
    /// ([`ForecasterParams::fit_observed`]).
    pub fn predict_observed(&self, history: &[f64], observed: Option<&[bool]>) -> Result<Prediction, ForecastError> {
        let fitted = self
            .params
            .fit_observed(history, observed, self.interval_secs, self.horizon())
            .map_err(|e| ForecastError::Input(e.to_string()))?;
        let forecast = fitted.forecast(history);
        let paths = (self.band == Band::Probability).then(|| fitted.paths(history, &forecast.point));
        Ok(Prediction { forecast, band: self.band, paths })
    }
}

/// The forecaster predictive scaling runs.
#[derive(Debug)]
pub enum Predictor {
    /// An LSTM bundle.
    Lstm(Box<Forecaster>),
    /// The statistical forecaster.
    Auto(Box<StatisticalForecast>),
}

impl Predictor {
    /// The forecaster `[forecast]` asks for ([`crate::monitor::config::ForecastConfig::model`];
    /// `None`: the registry's, which the monitor loads).
    pub fn from_config(cfg: &crate::monitor::config::ForecastConfig) -> Result<Option<Self>, ForecastError> {
        match cfg.model() {
            ForecastModel::Auto => {
                cfg.auto.validate()?;
                Ok(Some(Self::Auto(Box::new(cfg.auto.clone()))))
            }
            // Loaded from the registry by the monitor (`Monitor::refresh_forecaster`).
            ForecastModel::Registry => Ok(None),
            ForecastModel::Lstm => match cfg.bundle_dir() {
                None => Err(ForecastError::Config("[forecast] model = \"lstm\" needs a bundle (or FORECASTER_BUNDLE)".into())),
                Some(dir) => Ok(Some(Self::Lstm(Box::new(Forecaster::load_dir(std::path::Path::new(dir))?)))),
            },
        }
    }

    /// The metric forecast.
    pub fn target_metric(&self) -> &str {
        match self {
            Self::Lstm(f) => &f.meta.config.target_metric,
            Self::Auto(s) => &s.metric,
        }
    }

    /// The metrics read (target first).
    pub fn inputs(&self) -> Vec<String> {
        match self {
            Self::Lstm(f) => f.meta.config.inputs(),
            Self::Auto(s) => vec![s.metric.clone()],
        }
    }

    /// Row spacing, seconds.
    pub fn interval_secs(&self) -> f64 {
        match self {
            Self::Lstm(f) => f.meta.interval_secs,
            Self::Auto(s) => s.interval_secs,
        }
    }

    /// Rows of history a forecast reads.
    pub fn history_rows(&self) -> usize {
        match self {
            Self::Lstm(f) => f.meta.config.lookback_window,
            Self::Auto(s) => s.history_rows(),
        }
    }

    /// Milliseconds of samples to read for one forecast ending now (the LSTM's window is rows
    /// of raw samples: read generously around it).
    pub fn read_span_ms(&self) -> i64 {
        let interval_ms = self.interval_ms();
        match self {
            Self::Lstm(_) => (self.history_rows() as f64 * self.interval_secs() * 2000.0) as i64 + 60_000,
            Self::Auto(_) => self.history_rows() as i64 * interval_ms + interval_ms,
        }
    }

    /// Row spacing, milliseconds (at least 1).
    pub fn interval_ms(&self) -> i64 {
        (self.interval_secs() * 1000.0).round().max(1.0) as i64
    }

    /// The latest window of `server` in `samples` that [`Predictor::predict`] reads.
    pub fn window(&self, samples: &[crate::MetricSample], server: &str) -> Result<Window, ForecastError> {
        match self {
            Self::Lstm(_) => crate::forecast::latest_window(samples, server, &self.inputs(), self.history_rows())
                .map(|(values, at_ms, filled)| Window { values, at_ms, filled, observed: None }),
            Self::Auto(s) => bucketed(samples, server, &s.metric, self.interval_ms(), self.history_rows())
                .map(|(values, at_ms, observed)| Window {
                    values,
                    at_ms,
                    filled: observed.iter().filter(|o| !**o).count(),
                    observed: Some(observed),
                })
                .ok_or_else(|| ForecastError::Input(format!("server `{server}`: no `{}` samples", s.metric))),
        }
    }

    /// A short label for notifications.
    pub fn label(&self) -> String {
        match self {
            Self::Lstm(f) => format!("forecaster {} ({})", f.meta.config.target_metric, f.meta.weights_sha256.get(..12).unwrap_or("")),
            Self::Auto(s) => format!("forecaster {} (auto, {})", s.metric, s.band.name()),
        }
    }

    /// Forecast from a row-major `window` of [`Self::inputs`] (the LSTM reads its lookback; `auto`
    /// fits on the target column), `observed` marking the rows that hold samples (`auto` does not
    /// score filled rows in validation; the LSTM reads them as they are).
    pub fn predict(&self, window: &[f64], observed: Option<&[bool]>) -> Result<Prediction, ForecastError> {
        match self {
            Self::Lstm(f) => {
                let point = f.forecast(window)?;
                let forecast =
                    Forecast { lower_80: point.clone(), upper_80: point.clone(), lower_95: point.clone(), upper_95: point.clone(), point };
                Ok(Prediction { forecast, band: Band::Point, paths: None })
            }
            Self::Auto(s) => s.predict_observed(window, observed),
        }
    }
}

/// One server's latest window ([`Predictor::window`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Row-major [`Predictor::inputs`], oldest first.
    pub values: Vec<f64>,
    /// The newest sample's time, milliseconds.
    pub at_ms: i64,
    /// Rows filled (a bucket or step without samples).
    pub filled: usize,
    /// Which rows hold samples (`auto`'s buckets; `None` for the LSTM's window).
    pub observed: Option<Vec<bool>>,
}

/// One server's forecast and the scaling decision on it ([`Predictor::advise`]).
#[derive(Debug, Clone)]
pub struct Advised {
    /// The newest sample's time, milliseconds.
    pub at_ms: i64,
    /// Gaps filled in the window read.
    pub filled: usize,
    /// The target metric's history the forecast read (oldest first).
    pub history: Vec<f64>,
    /// The forecast and the band decided on.
    pub prediction: Prediction,
    /// The level that needs capacity.
    pub threshold: f64,
    /// The recommendation.
    pub advice: crate::forecast::ScalingAdvice,
}

impl Predictor {
    /// The whole forecast → advice step for one server, as `runtime forecast`, `runtime once
    /// --predict` and the daemon take it: its latest window in `samples`, the forecast, the
    /// threshold (`threshold`, else [`crate::forecast::default_threshold`] of the history) and
    /// the scaling advice on the decided band (SCALE_NOW within `now_minutes`).
    pub fn advise(
        &self,
        samples: &[crate::MetricSample],
        server: &str,
        threshold: Option<f64>,
        now_minutes: f64,
    ) -> Result<Advised, ForecastError> {
        let Window { values: window, at_ms, filled, observed } = self.window(samples, server)?;
        let prediction = self.predict(&window, observed.as_deref())?;
        let history: Vec<f64> = window.iter().step_by(self.inputs().len().max(1)).copied().collect();
        let current = history.last().copied().unwrap_or(f64::NAN);
        let threshold = threshold.unwrap_or_else(|| crate::forecast::default_threshold(self.target_metric(), &history));
        let advice = prediction.advice(current, self.interval_secs(), threshold, now_minutes);
        Ok(Advised { at_ms, filled, history, prediction, threshold, advice })
    }
}

/// Samples of `metric` for `server` as one row per `interval_ms` bucket ([`bucket_rows`]), at
/// most `rows` rows. Returns the rows, the newest sample's timestamp and which rows hold
/// samples, or `None` when there are no samples.
pub fn bucketed(
    samples: &[crate::MetricSample],
    server: &str,
    metric: &str,
    interval_ms: i64,
    rows: usize,
) -> Option<(Vec<f64>, i64, Vec<bool>)> {
    let mut newest = i64::MIN;
    let points = samples.iter().filter(|s| s.server == server && s.metric == metric && s.value.is_finite()).map(|s| {
        newest = newest.max(s.timestamp_ms);
        (s.timestamp_ms, s.value)
    });
    let (out, observed) = bucket_rows(points, interval_ms, rows)?;
    Some((out, newest, observed))
}

/// Timed values `(ms, value)` as one row per `interval_ms` bucket of time (bucket `t div
/// interval_ms`; the mean of the finite values in it), ending with the newest bucket that holds
/// one, at most `rows` rows; a bucket without values takes the previous row's value. Returns
/// the rows and which of them hold values, or `None` when no value is finite. How the runtime
/// reads live samples for `auto`, and how the workbench evaluates a series whose rows go missing.
pub fn bucket_rows(points: impl IntoIterator<Item = (i64, f64)>, interval_ms: i64, rows: usize) -> Option<(Vec<f64>, Vec<bool>)> {
    let mut buckets: std::collections::BTreeMap<i64, (f64, usize)> = std::collections::BTreeMap::new();
    for (t, v) in points.into_iter().filter(|(_, v)| v.is_finite()) {
        let e = buckets.entry(t.div_euclid(interval_ms)).or_insert((0.0, 0));
        e.0 += v;
        e.1 += 1;
    }
    let (&last, _) = buckets.last_key_value()?;
    let span = i64::try_from(rows).unwrap_or(i64::MAX);
    let first = buckets.keys().next().copied().unwrap_or(last).max(last.saturating_sub(span).saturating_add(1));
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    let mut observed = Vec::with_capacity(out.capacity());
    let mut prev = buckets.range(..first).next_back().map_or(f64::NAN, |(_, (sum, n))| sum / *n as f64);
    for b in first..=last {
        let held = buckets.get(&b);
        if let Some((sum, n)) = held {
            prev = sum / *n as f64;
        }
        if prev.is_finite() {
            out.push(prev);
            observed.push(held.is_some());
        }
    }
    Some((out, observed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetricSample;

    #[test]
    fn samples_become_one_row_per_bucket_with_gaps_filled() {
        let s = |t: i64, v: f64| MetricSample { server: "a".into(), metric: "cpu_usage".into(), timestamp_ms: t, value: v };
        let samples = vec![s(0, 1.0), s(10_000, 3.0), s(60_000, 5.0), s(180_000, 7.0), s(190_000, f64::NAN)];
        let (rows, newest, observed) = bucketed(&samples, "a", "cpu_usage", 60_000, 10).unwrap();
        assert_eq!(rows, vec![2.0, 5.0, 5.0, 7.0]);
        assert_eq!((newest, observed), (180_000, vec![true, true, false, true]));
        assert_eq!(bucketed(&samples, "a", "cpu_usage", 60_000, 2).unwrap().0, vec![5.0, 7.0]);
        assert!(bucketed(&samples, "b", "cpu_usage", 60_000, 10).is_none());
    }

    #[test]
    fn settings_out_of_range_are_named() {
        for (cfg, field) in [
            (StatisticalForecast { interval_secs: f64::NAN, ..Default::default() }, "interval_secs"),
            (StatisticalForecast { horizon_minutes: 0.0, ..Default::default() }, "horizon_minutes"),
            (StatisticalForecast { history_hours: 1.0, ..Default::default() }, "history_hours"),
            (StatisticalForecast { metric: " ".into(), ..Default::default() }, "metric"),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        StatisticalForecast::default().validate().unwrap();
    }

    #[test]
    fn the_band_decides_where_the_point_forecast_would_not() {
        // Noisy level at 60 with one row in 20 at 85: the point forecast stays near 60, the
        // 97.5th percentile reaches a threshold of 75.
        let y: Vec<f64> = (0..2016)
            .map(|i| {
                let x = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
                60.0 + 10.0 * (x - 0.5) + if i % 20 == 0 { 25.0 } else { 0.0 }
            })
            .collect();
        let cfg = StatisticalForecast { metric: "cpu_usage".into(), horizon_minutes: 60.0, ..Default::default() };
        let p = cfg.predict(&y).unwrap();
        let point = crate::forecast::scaling_advice(60.0, &p.forecast.point, 300.0, 75.0, 10.0);
        let band = crate::forecast::scaling_advice(60.0, &p.forecast.upper_95, 300.0, 75.0, 10.0);
        assert_eq!(point.recommendation, crate::forecast::Recommendation::None);
        assert_ne!(band.recommendation, crate::forecast::Recommendation::None, "{:?}", p.forecast.upper_95);
        // One row in 20 at 85: over 12 steps most paths reach 75 (1 − 0.95¹² ≈ 46 %, and the
        // noise adds), so the crossing is likely; at a threshold of 100 none reach it.
        let likely = p.advice(60.0, 300.0, 75.0, 10.0);
        assert_ne!(likely.recommendation, crate::forecast::Recommendation::None, "{likely:?}");
        assert!(likely.crossing_probability.unwrap() >= 0.4, "{likely:?}");
        let never = p.advice(60.0, 300.0, 100.0, 10.0);
        assert_eq!((never.recommendation, never.crossing_probability), (crate::forecast::Recommendation::None, Some(0.0)), "{never:?}");
    }
}
