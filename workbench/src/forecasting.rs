//! Evaluation of the statistical forecasters (`experiment forecast evaluate`): fit `auto` on
//! the first part of a series (its weights and intervals come from validation inside that part
//! only), then forecast from origins over the rest, next to every family member and the three
//! naive baselines of `experiment lstm evaluate` (last value, the value one day earlier, the
//! mean of the last 180 rows). Reports MAE, RMSE, sMAPE, MAE at horizons, interval coverage and
//! spike prediction per model.

use std::collections::BTreeMap;

use runtime::models::forecasters::{ForecasterError, ForecasterParams, HorizonBucket, Method};
use serde::Serialize;

use crate::lstm::ForecastSeries;
use crate::lstm::eval::{Acc, SpikeCounter, SpikeScore, forecast_origins, spike_threshold};
use crate::tracking::TrackedFile;

/// Names of the three naive baselines (as in `experiment lstm evaluate`).
pub const BASELINES: [&str; 3] = ["baseline_last_value", "baseline_seasonal_naive", "baseline_moving_average"];

/// The protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalProtocol {
    /// Forecast steps.
    pub horizon: usize,
    /// Fraction of rows `auto` is fitted on.
    pub train_fraction: f64,
    /// Most origins (evenly spaced over the rest).
    pub max_origins: usize,
    /// Window of the moving-average baseline (the LSTM's lookback).
    pub baseline_window: usize,
    /// Period of the seasonal-naive baseline in steps (default: one day).
    pub season_steps: Option<usize>,
    /// Refit `auto` on the whole history before every `refit_every`-th origin, as the runtime
    /// refits at each prediction on the history it reads (0: fit once, on the first part).
    pub refit_every: usize,
    /// Where rows go missing, count steps in cells of time
    /// ([`ForecastSeries::target_on_grid`]); `false`: in rows, as on a regular series.
    pub time_grid: bool,
}

impl Default for EvalProtocol {
    fn default() -> Self {
        Self {
            horizon: 180,
            train_fraction: 0.7,
            max_origins: 400,
            baseline_window: 180,
            season_steps: None,
            refit_every: 0,
            time_grid: true,
        }
    }
}

/// One JSON line per series.
#[derive(Debug, Clone, Serialize)]
pub struct StatForecastReport {
    /// Input name.
    pub series: String,
    /// Target column.
    pub column: String,
    /// Rows.
    pub rows: usize,
    /// Steps `auto` was fitted on (rows, or cells of the time grid).
    pub train_rows: usize,
    /// Where rows go missing, the cells of time the steps are
    /// ([`ForecastSeries::target_on_grid`]); absent on a regular series, whose steps are rows.
    pub grid_cells: Option<usize>,
    /// Cells of that grid that hold no row (filled with the previous cell's value, not scored).
    pub grid_empty_cells: usize,
    /// The time a row stands for, seconds ([`ForecastSeries::interval_secs`]).
    pub interval_secs: f64,
    /// Forecast origins evaluated.
    pub origins: usize,
    /// Horizon, steps.
    pub horizon: usize,
    /// The seasonal period `auto` found (rows), if any.
    pub period: Option<usize>,
    /// `auto`'s members and weights per horizon bucket.
    pub buckets: Vec<HorizonBucket>,
    /// MAE per model.
    pub mae: BTreeMap<String, f64>,
    /// RMSE per model.
    pub rmse: BTreeMap<String, f64>,
    /// sMAPE (percent) per model.
    pub smape: BTreeMap<String, f64>,
    /// MAE at horizons 1, 30 and 180 (those within the horizon), per model.
    pub mae_at: BTreeMap<String, BTreeMap<String, f64>>,
    /// The baseline with the lowest MAE, chosen after the fact.
    pub best_baseline: String,
    /// MAE(auto) / MAE(best baseline): ≤ 1 is at least as good.
    pub auto_vs_best_baseline: f64,
    /// Share of actual values inside `auto`'s 80 % and 95 % intervals.
    pub coverage: BTreeMap<String, f64>,
    /// Spike threshold: the 95th percentile of the fitted part.
    pub spike_threshold: f64,
    /// Spike prediction per model (point forecast crossing the threshold within the horizon),
    /// plus `auto_upper_80` / `auto_upper_95` (the interval's upper bound crossing it) and
    /// `auto_probability` (P(crossing within the horizon) from the future paths at least
    /// `crossing_probability`: how predictive scaling decides by default), and `actual` (the
    /// actual values as the forecast: precision and recall 1, the mean lead the data allows when
    /// every crossing is caught).
    pub spike: BTreeMap<String, SpikeScore>,
    /// Non-finite input values forward-filled.
    pub filled: usize,
}

/// Fit on the first part of `series`, evaluate over the rest (see the module docs).
pub fn evaluate(series: &ForecastSeries, params: &ForecasterParams, p: &EvalProtocol) -> Result<StatForecastReport, ForecasterError> {
    let FirstPart { y, observed, n_train, mut fitted, threshold } = first_part(series, params, p)?;
    let n = y.len();
    let hz = p.horizon;
    let season = p.season_steps.unwrap_or_else(|| (86_400.0 / series.interval_secs).round() as usize).max(1);
    let lo = n_train.max(p.baseline_window).max(season);
    if n < lo + hz {
        return Err(ForecasterError::TooShort { rows: n, horizon: hz, needed: lo + hz });
    }
    let origins = forecast_origins(lo, n, hz, p.max_origins);
    let horizons: Vec<usize> = [1usize, 30, 180].into_iter().filter(|h| *h <= hz).collect();
    let mut all: BTreeMap<String, Acc> = BTreeMap::new();
    let mut at: BTreeMap<(usize, String), Acc> = BTreeMap::new();
    let mut spikes: BTreeMap<String, SpikeCounter> = BTreeMap::new();
    let (mut in80, mut in95, mut count) = (0usize, 0usize, 0usize);
    for (i, &o) in origins.iter().enumerate() {
        if p.refit_every > 0 && i % p.refit_every == 0 {
            fitted = params.fit_observed(&y[..o], observed.as_ref().map(|v| &v[..o]), series.interval_secs, hz)?;
        }
        let history = &y[..o];
        let actual = actual_values(&y, observed.as_deref(), o..o + hz);
        let actual = actual.as_slice();
        let last = y[o - 1];
        let auto = fitted.forecast(history);
        for (k, a) in actual.iter().enumerate().filter(|(_, a)| a.is_finite()) {
            in80 += usize::from(*a >= auto.lower_80[k] && *a <= auto.upper_80[k]);
            in95 += usize::from(*a >= auto.lower_95[k] && *a <= auto.upper_95[k]);
            count += 1;
        }
        let ma = y[o - p.baseline_window.min(o)..o].iter().sum::<f64>() / p.baseline_window.min(o) as f64;
        let mut preds: Vec<(String, Vec<f64>)> = vec![
            ("auto".into(), auto.point.clone()),
            (BASELINES[0].into(), vec![last; hz]),
            (BASELINES[1].into(), (0..hz).map(|k| y[o + k - season * (k / season + 1)]).collect()),
            (BASELINES[2].into(), vec![ma; hz]),
        ];
        for m in Method::ALL {
            if let Some(f) = fitted.forecast_with(m, history) {
                preds.push((m.name().into(), f));
            }
        }
        for (name, f) in &preds {
            let acc = all.entry(name.clone()).or_default();
            actual.iter().zip(f).filter(|(a, _)| a.is_finite()).for_each(|(a, b)| acc.add(*a, *b));
            for &h in horizons.iter().filter(|h| actual[*h - 1].is_finite()) {
                at.entry((h, name.clone())).or_default().add(actual[h - 1], f[h - 1]);
            }
            spikes.entry(name.clone()).or_default().add(last, f, actual, threshold);
        }
        // The actual values as the forecast: every crossing caught, at every origin before it
        // (the mean lead of perfect foresight, next to which the forecasters' leads are read).
        spikes.entry("actual".into()).or_default().add(last, actual, actual, threshold);
        spikes.entry("auto_upper_80".into()).or_default().add(last, &auto.upper_80, actual, threshold);
        spikes.entry("auto_upper_95".into()).or_default().add(last, &auto.upper_95, actual, threshold);
        // The probability band: crossing where the share of future paths reaching the
        // threshold within the horizon is at least `crossing_probability`.
        let likely = fitted.paths(history, &auto.point).first_likely_crossing(threshold).is_some();
        spikes.entry("auto_probability".into()).or_default().add_decided(last, likely, actual, threshold);
    }
    let mae: BTreeMap<String, f64> = all.iter().map(|(k, a)| (k.clone(), a.mae())).collect();
    let (best_baseline, best) =
        BASELINES.iter().map(|b| (b.to_string(), mae[*b])).min_by(|a, b| a.1.total_cmp(&b.1)).expect("three baselines");
    Ok(StatForecastReport {
        series: series.name.clone(),
        column: series.columns[0].clone(),
        rows: series.len(),
        train_rows: n_train,
        grid_cells: observed.as_ref().map(Vec::len),
        grid_empty_cells: observed.as_ref().map_or(0, |o| o.iter().filter(|v| !**v).count()),
        interval_secs: series.interval_secs,
        origins: origins.len(),
        horizon: hz,
        period: fitted.period(),
        buckets: fitted.buckets().to_vec(),
        auto_vs_best_baseline: ratio_to_best(mae["auto"], best, &y[n_train..]),
        best_baseline,
        rmse: all.iter().map(|(k, a)| (k.clone(), a.rmse())).collect(),
        smape: all.iter().map(|(k, a)| (k.clone(), a.smape())).collect(),
        mae_at: horizons
            .iter()
            .map(|h| (h.to_string(), at.iter().filter(|((hh, _), _)| hh == h).map(|((_, m), a)| (m.clone(), a.mae())).collect()))
            .collect(),
        mae,
        coverage: BTreeMap::from([
            ("80".to_string(), in80 as f64 / count.max(1) as f64),
            ("95".to_string(), in95 as f64 / count.max(1) as f64),
        ]),
        spike_threshold: threshold,
        spike: spikes.into_iter().map(|(k, s)| (k, s.score(series.interval_secs))).collect(),
        filled: series.filled,
    })
}

/// What [`evaluate`] and [`last_origin_chart`] share: the target by steps of the protocol (where
/// rows go missing, cells of time: [`ForecastSeries::target_on_grid`]) with which steps hold rows
/// (`None`: all), the steps of the first part, `auto` fitted on them (filled cells are history but
/// not scored) and the spike threshold (the 95th percentile of the observed steps among them).
struct FirstPart {
    y: Vec<f64>,
    observed: Option<Vec<bool>>,
    n_train: usize,
    fitted: runtime::models::forecasters::FittedForecaster,
    threshold: f64,
}

fn first_part(series: &ForecastSeries, params: &ForecasterParams, p: &EvalProtocol) -> Result<FirstPart, ForecasterError> {
    let (y, observed) = if p.time_grid { series.target_on_grid() } else { (series.target(), None) };
    let n_train = train_steps(observed.as_deref(), y.len(), p.train_fraction).min(y.len());
    let fitted = params.fit_observed(&y[..n_train], observed.as_ref().map(|o| &o[..n_train]), series.interval_secs, p.horizon)?;
    let threshold =
        spike_threshold(&actual_values(&y, observed.as_deref(), 0..n_train).into_iter().filter(|v| !v.is_nan()).collect::<Vec<_>>());
    Ok(FirstPart { y, observed, n_train, fitted, threshold })
}

/// `y` over `steps`, NaN where a step holds no row (no error and no crossing counts it).
fn actual_values(y: &[f64], observed: Option<&[bool]>, steps: std::ops::Range<usize>) -> Vec<f64> {
    steps.map(|i| if observed.is_none_or(|o| o[i]) { y[i] } else { f64::NAN }).collect()
}

/// The steps `auto` is fitted on: the first `fraction` of `n` rows, or, on a time grid, the
/// cells up to the one that holds the last of the first `fraction` of the observed cells.
fn train_steps(observed: Option<&[bool]>, n: usize, fraction: f64) -> usize {
    let Some(observed) = observed else { return ((n as f64) * fraction).round() as usize };
    let seen = observed.iter().filter(|v| **v).count();
    let k = ((seen as f64) * fraction).round() as usize;
    observed.iter().enumerate().filter(|(_, v)| **v).nth(k.max(1) - 1).map_or(n, |(i, _)| i + 1)
}

/// MAE(auto) / MAE(best baseline), both floored at a billionth of the series' mean absolute
/// value: a tie at zero (a constant series) is 1, and a baseline that is exact where `auto` is
/// not is a loss by a large factor, not a tie.
fn ratio_to_best(auto: f64, best: f64, y: &[f64]) -> f64 {
    let scale = y.iter().map(|v| v.abs()).sum::<f64>() / y.len().max(1) as f64;
    let floor = (1e-9 * scale).max(f64::MIN_POSITIVE);
    auto.max(floor) / best.max(floor)
}

/// Chart the last origin of [`evaluate`]'s protocol: three horizons of history, `auto`'s
/// forecast with its 80 % and 95 % intervals, the actual values and the spike threshold (the
/// fitted part's 95th percentile).
pub fn last_origin_chart(
    series: &ForecastSeries,
    params: &ForecasterParams,
    p: &EvalProtocol,
    path: &std::path::Path,
) -> Result<(), ChartError> {
    let FirstPart { y, observed, n_train, fitted, threshold } = first_part(series, params, p)?;
    let (n, hz) = (y.len(), p.horizon);
    let o = n.checked_sub(hz).filter(|o| *o >= n_train).ok_or(ForecasterError::TooShort { rows: n, horizon: hz, needed: n_train + hz })?;
    let f = fitted.forecast(&y[..o]);
    // As scored: the actual values of the cells that hold rows.
    let actual = actual_values(&y, observed.as_deref(), o..o + hz);
    let band = crate::charts::Band::of(&f, Some(&actual));
    let title = format!("{} {}: auto from the last origin", series.name.rsplit('/').next().unwrap_or(&series.name), series.columns[0]);
    crate::charts::forecast_band_chart(path, &title, &y[o.saturating_sub(3 * hz)..o], &f.point, Some(band), threshold)?;
    Ok(())
}

/// A tracked forecaster run ([`train`]).
#[derive(Debug, Clone)]
pub struct TrainedForecaster {
    /// Its folder, `runs/forecasts/<name>/<id>/`.
    pub dir: std::path::PathBuf,
    /// The run id: 16 hex digits of the SHA-256 of the forecaster's settings and the input.
    pub id: String,
    /// What `forecast.json` records.
    pub run: crate::tracking::ForecastRun,
    /// The evaluation on the input ([`evaluate`]'s protocol at the forecaster's horizon).
    pub report: StatForecastReport,
    /// The figures tracked in `metrics.jsonl` (and MLflow).
    pub metrics: BTreeMap<String, f64>,
}

/// Why a forecaster could not be trained and tracked.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Settings out of range.
    #[error(transparent)]
    Settings(#[from] runtime::forecast::ForecastError),
    /// The series cannot fit it.
    #[error(transparent)]
    Fit(#[from] ForecasterError),
    /// The run folder.
    #[error(transparent)]
    Tracking(#[from] crate::tracking::TrackingError),
}

/// `experiment forecast train`: evaluate `forecaster` on `series` (read from `input`) with
/// [`evaluate`]'s protocol at its horizon (fitted on the first part only) and track the run in
/// `runs/<name>/<id>/`: `forecast.json`, `params.json`, `metrics.jsonl` (MAE, RMSE, sMAPE, the
/// ratio to the best baseline, coverage, spike precision / recall / lead of the band it decides
/// on). `experiment promote` turns the folder into a forecaster bundle.
pub fn train(
    series: &ForecastSeries,
    input: &std::path::Path,
    forecaster: runtime::predict::StatisticalForecast,
    runs: &std::path::Path,
    name: &str,
) -> Result<TrainedForecaster, TrainError> {
    use sha2::Digest;
    forecaster.validate()?;
    let started = runtime::now_ms();
    // The horizon in rows of the series (the runtime's rule, at the series' spacing).
    let horizon = runtime::predict::StatisticalForecast { interval_secs: series.interval_secs, ..forecaster.clone() }.horizon();
    let report = evaluate(series, &forecaster.params, &EvalProtocol { horizon, ..Default::default() })?;
    let band_key = match forecaster.band {
        runtime::predict::Band::Point => "auto".to_string(),
        band => format!("auto_{}", band.name()),
    };
    let spike = &report.spike[&band_key];
    let mut metrics = BTreeMap::from([
        ("mae".to_string(), report.mae["auto"]),
        ("rmse".to_string(), report.rmse["auto"]),
        ("smape".to_string(), report.smape["auto"]),
        ("mae_best_baseline".to_string(), report.mae[&report.best_baseline]),
        ("mae_vs_best_baseline".to_string(), report.auto_vs_best_baseline),
        ("coverage_80".to_string(), report.coverage["80"]),
        ("coverage_95".to_string(), report.coverage["95"]),
    ]);
    for (key, v) in [("spike_precision", spike.precision), ("spike_recall", spike.recall), ("spike_lead_minutes", spike.mean_lead_minutes)]
    {
        if let Some(v) = v {
            metrics.insert(key.to_string(), v);
        }
    }
    let bytes = std::fs::read(input).unwrap_or_default();
    let input_sha256: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let settings = serde_json::to_string(&forecaster).unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{settings}\0{input_sha256}\0{}", series.columns[0]).as_bytes());
    let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = runs.join(name).join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| crate::tracking::TrackingError { path: dir.display().to_string(), reason: e.to_string() })?;
    let run = crate::tracking::ForecastRun {
        forecaster,
        input: input.display().to_string(),
        column: series.columns[0].clone(),
        input_sha256,
        rows: series.len() as u64,
        start_ms: series.timestamps_ms.first().copied(),
        end_ms: series.timestamps_ms.last().copied(),
        start_time: started,
        end_time: runtime::now_ms(),
        git_commit: crate::sweep::git_commit(),
    };
    run.write(&dir)?;
    crate::tracking::write_params(&dir, &forecast_params(&run.forecaster))?;
    crate::tracking::write_metrics(&dir, &metrics, run.end_time)?;
    Ok(TrainedForecaster { dir, id, run, report, metrics })
}

/// The forecaster's settings as flat `name = value` text (`params.json`, MLflow params).
pub fn forecast_params(f: &runtime::predict::StatisticalForecast) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(f) {
        for (k, v) in map {
            match v {
                serde_json::Value::Object(inner) => out.extend(inner.into_iter().map(|(ik, iv)| (format!("{k}.{ik}"), text(&iv)))),
                other => {
                    out.insert(k, text(&other));
                }
            }
        }
    }
    out
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Why a forecast chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The forecaster could not be fitted.
    #[error(transparent)]
    Fit(#[from] ForecasterError),
    /// The chart could not be written.
    #[error(transparent)]
    Draw(#[from] crate::frames::FrameError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_scored_next_to_the_baselines_and_members() {
        // A daily pulse plus xorshift noise in [0, 10).
        let noise = |i: usize| {
            let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            (x >> 11) as f64 / (1u64 << 53) as f64 * 10.0
        };
        let rows: Vec<Vec<f64>> =
            (0..288 * 12).map(|i| vec![if (i % 288) / 12 >= 9 && (i % 288) / 12 < 17 { 80.0 } else { 20.0 } + noise(i)]).collect();
        let ts: Vec<i64> = (0..rows.len() as i64).map(|i| i * 300_000).collect();
        let series = ForecastSeries::new("daily", vec!["value".into()], ts, &rows).unwrap();
        let r = evaluate(&series, &ForecasterParams::default(), &EvalProtocol { max_origins: 60, ..Default::default() }).unwrap();
        assert_eq!(r.period, Some(288));
        for m in ["auto", "baseline_last_value", "baseline_seasonal_naive", "baseline_moving_average", "seasonal_mean", "theta"] {
            assert!(r.mae.contains_key(m), "{m} in {:?}", r.mae.keys());
        }
        assert!(r.auto_vs_best_baseline < 1.0, "auto {} vs {}", r.mae["auto"], r.mae[&r.best_baseline]);
        assert!(r.coverage["95"] > 0.85, "{:?}", r.coverage);
        assert!(r.spike.contains_key("auto_upper_80") && r.spike.contains_key("auto_probability"));
        let perfect = &r.spike["actual"];
        assert!(perfect.true_positives > 0 && perfect.false_positives + perfect.false_negatives == 0, "{perfect:?}");
        let chart = std::env::temp_dir().join(format!("wb-forecast-chart-{}.svg", std::process::id()));
        last_origin_chart(&series, &ForecasterParams::default(), &EvalProtocol { max_origins: 60, ..Default::default() }, &chart).unwrap();
        let svg = std::fs::read_to_string(&chart).unwrap();
        assert!(svg.contains("95 % interval") && svg.contains("actual") && svg.contains("<polygon"), "band, actuals and legend drawn");
        std::fs::remove_file(chart).ok();
    }

    /// A pulse from 9:00 to 17:00 with noise, every 5 minutes, at the rows `kept` only.
    fn daily_pulse(kept: &[usize]) -> ForecastSeries {
        let rows: Vec<Vec<f64>> = kept
            .iter()
            .map(|i| vec![if (i % 288) / 12 >= 9 && (i % 288) / 12 < 17 { 80.0 } else { 20.0 } + ((i * 7919) % 13) as f64 * 0.5])
            .collect();
        let ts: Vec<i64> = kept.iter().map(|i| *i as i64 * 300_000).collect();
        ForecastSeries::new("gappy", vec!["value".into()], ts, &rows).unwrap()
    }

    #[test]
    fn a_series_with_rows_missing_keeps_its_daily_period() {
        // The daily pulse every 5 minutes with one row of every four missing: a day is 216
        // rows, and the period (and the baseline's day back) is read as such, not as 288.
        let kept: Vec<usize> = (0..288 * 12).filter(|i| i % 4 != 3).collect();
        let series = daily_pulse(&kept);
        let r = evaluate(&series, &ForecasterParams::default(), &EvalProtocol { max_origins: 60, ..Default::default() }).unwrap();
        assert_eq!((r.interval_secs, r.period), (400.0, Some(216)));
        assert!(r.auto_vs_best_baseline < 1.0, "auto {} vs {}", r.mae["auto"], r.mae[&r.best_baseline]);
    }

    #[test]
    fn a_series_with_rows_missing_in_runs_is_forecast_in_cells_of_time() {
        // The daily pulse every 5 minutes for 14 days with runs of rows missing (a run of 20 to
        // 90 rows after every 60 to 150 kept): counted in rows, a day back drifts by hours; in
        // cells of time it is a day back, and `auto` (and the seasonal baseline) find the day.
        let (mut kept, mut i, mut k) = (Vec::new(), 0usize, 7usize);
        while i < 288 * 14 {
            k = (k * 7919 + 13) % 1009;
            let (keep, skip) = (60 + k % 91, 20 + k % 71);
            kept.extend((i..i + keep).take_while(|j| *j < 288 * 14));
            i += keep + skip;
        }
        let series = daily_pulse(&kept);
        let r = evaluate(&series, &ForecasterParams::default(), &EvalProtocol { max_origins: 60, ..Default::default() }).unwrap();
        let day = (86_400.0 / r.interval_secs).round() as usize;
        assert!(r.grid_cells.is_some_and(|c| c > r.rows) && r.grid_empty_cells > 0, "{:?} {}", r.grid_cells, r.grid_empty_cells);
        assert_eq!(r.period, Some(day));
        assert_eq!(r.best_baseline, "baseline_seasonal_naive");
        assert!(r.auto_vs_best_baseline < 1.0, "auto {} vs {}", r.mae["auto"], r.mae[&r.best_baseline]);
        // Counted in rows (`--rows`), as before cells of time.
        let rows =
            evaluate(&series, &ForecasterParams::default(), &EvalProtocol { max_origins: 60, time_grid: false, ..Default::default() })
                .unwrap();
        assert_eq!((rows.grid_cells, rows.grid_empty_cells), (None, 0));
        assert!(rows.mae["auto"] > 2.0 * r.mae["auto"], "rows {} cells {}", rows.mae["auto"], r.mae["auto"]);
        // The pulse's edges land where they did a day before: an error near the noise's, not
        // the 19 of the same forecasters counted in rows.
        assert!(r.mae["auto"] < 8.0, "{}", r.mae["auto"]);
        // The chart of the last origin is drawn in cells too.
        let chart = std::env::temp_dir().join(format!("wb-forecast-runs-{}.svg", std::process::id()));
        last_origin_chart(&series, &ForecasterParams::default(), &EvalProtocol { max_origins: 60, ..Default::default() }, &chart).unwrap();
        let svg = std::fs::read_to_string(&chart).unwrap();
        assert!(svg.contains("actual") && svg.contains("95 % interval"), "band and actuals drawn");
        std::fs::remove_file(chart).ok();
    }

    #[test]
    fn a_baseline_exact_where_auto_is_not_is_a_loss_and_zero_against_zero_a_tie() {
        let y = [50.0, 20.0, 50.0, 20.0];
        assert_eq!(ratio_to_best(0.0, 0.0, &y), 1.0);
        assert_eq!(ratio_to_best(1e-14, 0.0, &y), 1.0, "rounding noise on an exact forecast");
        assert!(ratio_to_best(0.087, 0.0, &y) > 1e6, "seasonal naive exact on a square wave, auto not");
        assert_eq!(ratio_to_best(2.0, 4.0, &y), 0.5);
        assert_eq!(ratio_to_best(0.0, 0.0, &[0.0; 3]), 1.0, "an all-zero series");
    }

    #[test]
    fn refitting_at_the_origins_follows_a_pattern_that_starts_after_the_first_part() {
        // Flat noise for the first 30 %, then a daily pulse: fitted once, `auto` saw no season.
        let rows: Vec<Vec<f64>> = (0..288 * 20)
            .map(|i| {
                let pulse = i >= 288 * 6 && (i % 288) / 12 >= 9 && (i % 288) / 12 < 17;
                vec![20.0 + if pulse { 60.0 } else { 0.0 } + ((i * 7919) % 13) as f64 * 0.3]
            })
            .collect();
        let ts: Vec<i64> = (0..rows.len() as i64).map(|i| i * 300_000).collect();
        let series = ForecastSeries::new("late-season", vec!["value".into()], ts, &rows).unwrap();
        let once = EvalProtocol { max_origins: 40, horizon: 72, train_fraction: 0.3, ..Default::default() };
        let fit_once = evaluate(&series, &ForecasterParams::default(), &once).unwrap();
        let refit = evaluate(&series, &ForecasterParams::default(), &EvalProtocol { refit_every: 1, ..once }).unwrap();
        assert!(refit.mae["auto"] < 0.8 * fit_once.mae["auto"], "refit {} vs once {}", refit.mae["auto"], fit_once.mae["auto"]);
    }
}
