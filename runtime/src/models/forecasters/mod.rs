//! Statistical forecasters for predictive scaling: seasonal naive, moving average and median,
//! seasonal mean, the level-adjusted seasonal median, SES, Theta, MSTL with an ETS trend, the
//! seasonal period found from the data, and `auto`, which weighs the members by rolling-origin
//! validation on the history it is fitted on and gives conformal prediction intervals from the
//! validation residuals of each horizon step. The long windows (mean, median) restart after a
//! level shift; the seasonal median moves each past period by the change of level since.
//!
//! An unfitted [`ForecasterParams`] and a [`FittedForecaster`] are different types: only the
//! fitted one forecasts. Fitting reads only the history it is given (no look-ahead); a fitted
//! forecaster then forecasts from any later history (the members are re-run on it, the weights
//! and the interval widths stay). No polars, no autodiff: fits per series in the runtime.
//!
//! ```
//! use runtime::models::forecasters::ForecasterParams;
//! // Ten days of a daily pattern at 5-minute steps.
//! let y: Vec<f64> = (0..2880).map(|i| if (i % 288) / 12 >= 9 && (i % 288) / 12 < 17 { 80.0 } else { 20.0 }).collect();
//! let fitted = ForecasterParams::default().fit(&y, 300.0, 36).unwrap();
//! assert_eq!(fitted.period(), Some(288));
//! let f = fitted.forecast(&y);
//! assert!((f.point[0] - 20.0).abs() < 1.0);
//! assert!(f.upper_95[0] >= f.point[0] && f.lower_95[0] <= f.point[0]);
//! ```

mod methods;
mod mstl;

use serde::{Deserialize, Serialize};

pub use methods::Method;
use methods::{Hints, MethodSettings, forecast, forecast_into, settled_windows, smoothing_constant};
pub use mstl::EtsParams;
use mstl::MstlFit;

/// Invalid forecaster settings or a history too short to fit.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ForecasterError {
    /// A setting out of range.
    #[error("invalid forecaster setting `{field}` = {value}: {reason}")]
    Setting {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Not enough history.
    #[error("{rows} rows of history cannot fit a {horizon}-step forecaster: at least {needed} needed")]
    TooShort {
        /// Rows given.
        rows: usize,
        /// Horizon asked.
        horizon: usize,
        /// Rows needed.
        needed: usize,
    },
}

/// Settings of the statistical forecasters and of `auto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecasterParams {
    /// Candidate seasonal periods in seconds (a day and a week); a period is used when the
    /// history holds at least two of it and its autocorrelation is at least `min_autocorrelation`
    /// (`median_min_autocorrelation` for the seasonal median).
    pub period_candidates_secs: Vec<f64>,
    /// Smallest autocorrelation at the period's lag for the methods that trust the seasonal
    /// profile as it was (seasonal naive, seasonal mean, MSTL's decomposition).
    pub min_autocorrelation: f64,
    /// Smallest autocorrelation at the period's lag for the seasonal median, which moves each
    /// past period by the change of level since and is robust to spikes: it is tried on weaker
    /// evidence (−1: at every candidate period that fits twice) and validation decides.
    pub median_min_autocorrelation: f64,
    /// Window of the moving average, rows.
    pub moving_average_rows: usize,
    /// Window of the long moving average, rows.
    pub long_average_rows: usize,
    /// Periods the seasonal mean averages (at most as many as the history holds): 10, so on
    /// a noisy daily pattern the profile is averaged over the last ten days (chosen leave one
    /// series out against 3).
    pub seasons: usize,
    /// Periods the seasonal median takes its median over.
    pub median_seasons: usize,
    /// Share of the period over which the seasonal median reads a level (the median of those
    /// rows now and one period back, at least twice `moving_average_rows`; 0: just that):
    /// 1/16, an hour and a half of a daily cycle — 90 rows at one minute (24 at 5 minutes, where
    /// twice the moving average's window is longer).
    pub median_level_share: f64,
    /// Most recent rows the smoothing methods (SES, Theta) are fitted on: 4032, two weeks at 5
    /// minutes (chosen leave one series out against 1000: the smoothing constant from a few
    /// days follows their noise).
    pub fit_rows: usize,
    /// Validation origins over the last part of the history (`auto`'s weights and intervals).
    pub validation_origins: usize,
    /// Fraction of the history (its most recent part) the validation origins spread over.
    pub validation_span: f64,
    /// Symmetric intervals from absolute residuals (else the residuals' own quantiles).
    pub symmetric_intervals: bool,
    /// Members `auto` combines per horizon bucket (the best by validation MAE; weights by
    /// `weight_step` / `weight_shrink`).
    pub combine: usize,
    /// Horizon buckets grow by this factor (1, 4, 16, … steps); each has its own members and
    /// weights (0 or 1: one bucket for the whole horizon).
    pub bucket_growth: usize,
    /// Restrict `auto` to one method (None: choose among all but those of `exclude`).
    pub method: Option<Method>,
    /// Methods `auto` leaves out of its candidates (still reported per method by the
    /// evaluation; `method`, when set, is the one candidate whatever this holds). By default
    /// the 12-row moving average and Theta: the first follows what SES and the moving median
    /// follow better, the second forecasts nearly what SES does (the same smoothing constant
    /// plus half a slope), and as candidates they mostly fitted validation noise and crowded
    /// out members that differ (chosen leave one series out against none and against the
    /// moving average alone).
    pub exclude: Vec<Method>,
    /// Spacing of the weight grid searched for the least validation MAE of the combination
    /// (0: 1 / MAE weights).
    pub weight_step: f64,
    /// How far the searched weights are pulled back to the 1 / MAE weights (0: not at all, 1:
    /// the 1 / MAE weights).
    pub weight_shrink: f64,
    /// Rows of the local scale the interval widths follow (mean absolute one-step change over
    /// the last rows before the origin): validation residuals are divided by the scale at their
    /// origin, and the widths are those quantiles times the scale at the forecast, so they
    /// widen when the series grows restless and narrow when it calms (0: fixed widths).
    pub interval_scale_rows: usize,
    /// How far the widths follow the local scale: residuals are divided by the scale to this
    /// power (0: fixed widths, 1: proportional to the scale).
    pub interval_scale_power: f64,
    /// A crossing is likely when at least this share of the future paths (the point forecast
    /// plus each validation origin's residual path) reaches the threshold within the horizon
    /// ([`FuturePaths::first_likely_crossing`]; the `probability` band of predictive scaling).
    pub crossing_probability: f64,
    /// Check that choosing by validation carries over on this series: the members and weights
    /// chosen on the earlier half of the validation origins are scored on the later half
    /// against SES alone, and where SES does better `auto` is SES (every bucket). A series
    /// whose validation part changes its behaviour, where the chosen mix does not carry from one
    /// half to the next, gets the forecaster that assumes least (chosen leave one series out
    /// against no check; docs/results.md).
    pub transfer_check: bool,
    /// A level never seen before: where the median of the last `novel_level_rows` rows lies
    /// outside the range of the whole history before the long window (all but the last
    /// `long_average_rows` rows), by more than three robust scales of those rows (a plateau,
    /// not a turbulent burst), the members that forecast the level since the last shift (the
    /// moving median and the long mean) forecast that median at once instead of waiting for the
    /// level-shift test's short window to turn. A jump to where the series has never been is a
    /// new regime, not a spike among the old ones (0: off; chosen leave one series out against
    /// 0, 3, 12 and 24, docs/results.md). At forecast time only: validation scores the members
    /// as they are.
    pub novel_level_rows: usize,
}

impl Default for ForecasterParams {
    fn default() -> Self {
        Self {
            period_candidates_secs: vec![86_400.0, 7.0 * 86_400.0],
            min_autocorrelation: 0.3,
            median_min_autocorrelation: -1.0,
            moving_average_rows: 12,
            long_average_rows: 180,
            seasons: 10,
            median_seasons: 5,
            median_level_share: 1.0 / 16.0,
            fit_rows: 4032,
            validation_origins: 80,
            validation_span: 0.6,
            symmetric_intervals: true,
            combine: 3,
            bucket_growth: 4,
            method: None,
            exclude: vec![Method::MovingAverage, Method::Theta],
            weight_step: 0.1,
            weight_shrink: 0.0,
            interval_scale_rows: 48,
            interval_scale_power: 1.0,
            crossing_probability: 0.4,
            transfer_check: true,
            novel_level_rows: 6,
        }
    }
}

/// A forecast with its conformal intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Point forecast per step.
    pub point: Vec<f64>,
    /// Lower and upper bounds of the 80 % interval per step.
    pub lower_80: Vec<f64>,
    /// Upper bound of the 80 % interval.
    pub upper_80: Vec<f64>,
    /// Lower bound of the 95 % interval.
    pub lower_95: Vec<f64>,
    /// Upper bound of the 95 % interval.
    pub upper_95: Vec<f64>,
}

/// Where the series may go after a forecast: one path per validation origin (the point forecast
/// plus that origin's residual path at today's scale), so "P(crossing within the horizon)" is a
/// share of paths — a crossing anywhere in the horizon is one event, not one per step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FuturePaths {
    horizon: usize,
    /// Path-major, `horizon` values each.
    values: Vec<f64>,
    /// The share of paths that makes a crossing likely (`crossing_probability`).
    decide_at: f64,
}

impl FuturePaths {
    /// P(the series reaches `threshold` at or before step k), for every step k of the horizon.
    pub fn crossing_probability(&self, threshold: f64) -> Vec<f64> {
        let h = self.horizon;
        let mut first = vec![0usize; h + 1];
        for path in self.values.chunks_exact(h.max(1)) {
            first[path.iter().position(|v| *v >= threshold).unwrap_or(h)] += 1;
        }
        let n = (self.values.len() / h.max(1)).max(1) as f64;
        let mut reached = 0;
        first[..h]
            .iter()
            .map(|c| {
                reached += c;
                reached as f64 / n
            })
            .collect()
    }

    /// The first step (0-based) by which a crossing of `threshold` is likely (its probability
    /// at least `crossing_probability`), if any within the horizon.
    pub fn first_likely_crossing(&self, threshold: f64) -> Option<usize> {
        self.likely_crossing(threshold).0
    }

    /// [`FuturePaths::first_likely_crossing`] and P(crossing within the horizon), from one pass
    /// over the paths.
    pub fn likely_crossing(&self, threshold: f64) -> (Option<usize>, f64) {
        let p = self.crossing_probability(threshold);
        (p.iter().position(|v| *v >= self.decide_at), p.last().copied().unwrap_or(0.0))
    }
}

/// A member of the combination: a method, its period and its weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// The method.
    pub method: Method,
    /// Its seasonal period (rows), for the seasonal methods.
    pub period: Option<usize>,
    /// Its weight (the weights sum to 1).
    pub weight: f64,
    /// Its validation MAE.
    pub validation_mae: f64,
    /// Its smoothing constant (SES, Theta), fitted on the history before the
    /// first validation origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// MSTL's ETS parameters (level and trend smoothing, damping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ets: Option<EtsParams>,
}

/// Steps `[first_step, last_step]` of the horizon (0-based) and the members combined there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HorizonBucket {
    /// First step (0 = one step ahead).
    pub first_step: usize,
    /// Last step.
    pub last_step: usize,
    /// Members and weights.
    pub members: Vec<Member>,
}

/// A fitted forecaster: the period, the weighted members and the residual quantiles per step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedForecaster {
    period: Option<usize>,
    horizon: usize,
    settings: MethodSettings,
    buckets: Vec<HorizonBucket>,
    /// Per step: residual (actual − forecast) quantiles at 2.5, 10, 90 and 97.5 %, in units of
    /// the local scale (`scale`).
    quantiles: Vec<[f64; 4]>,
    /// Rows and power of the local scale the widths follow, and the least scale (a tenth of the
    /// mean over the validation origins: a flat stretch keeps a width).
    scale: (usize, f64, f64),
    /// The combination's residual path from every validation origin (origin-major, `horizon`
    /// each, in units of the local scale): where the paths of the future may go.
    #[serde(skip)]
    paths: Vec<f64>,
    /// The share of paths that makes a crossing likely.
    crossing_probability: f64,
    /// The fitted smoothing constant of every smoothing candidate (method, period).
    alphas: Vec<(MethodKey, f64)>,
    /// MSTL's decomposition and ETS parameters, fitted on the history before the first
    /// validation origin (decomposed again on the history at each forecast).
    #[serde(skip)]
    mstl: Option<MstlFit>,
}

impl ForecasterParams {
    /// Check every setting (also done by [`ForecasterParams::fit`]).
    pub fn validate(&self) -> Result<(), ForecasterError> {
        let bad = |field: &'static str, value: String, reason: &str| Err(ForecasterError::Setting { field, value, reason: reason.into() });
        if self.period_candidates_secs.iter().any(|p| !(p.is_finite() && *p > 0.0)) {
            return bad("period_candidates_secs", format!("{:?}", self.period_candidates_secs), "positive, finite seconds");
        }
        if !(self.validation_span.is_finite() && self.validation_span > 0.0 && self.validation_span < 1.0) {
            return bad("validation_span", self.validation_span.to_string(), "in (0, 1)");
        }
        if !(self.weight_step.is_finite() && (0.0..1.0).contains(&self.weight_step)) {
            return bad("weight_step", self.weight_step.to_string(), "in [0, 1) (0: 1 / MAE weights)");
        }
        if !(self.weight_shrink.is_finite() && (0.0..=1.0).contains(&self.weight_shrink)) {
            return bad("weight_shrink", self.weight_shrink.to_string(), "in [0, 1]");
        }
        if !(self.median_level_share.is_finite() && (0.0..=1.0).contains(&self.median_level_share)) {
            return bad("median_level_share", self.median_level_share.to_string(), "in [0, 1]");
        }
        if !(self.interval_scale_power.is_finite() && (0.0..=1.0).contains(&self.interval_scale_power)) {
            return bad("interval_scale_power", self.interval_scale_power.to_string(), "in [0, 1]");
        }
        if !(self.crossing_probability.is_finite() && self.crossing_probability > 0.0 && self.crossing_probability <= 1.0) {
            return bad("crossing_probability", self.crossing_probability.to_string(), "in (0, 1]");
        }
        if self.novel_level_rows > self.long_average_rows {
            return bad("novel_level_rows", self.novel_level_rows.to_string(), "at most long_average_rows (0: off)");
        }
        if self.method.is_none() && Method::ALL.iter().all(|m| self.exclude.contains(m)) {
            return bad("exclude", format!("{:?}", self.exclude), "leaves no method to choose from");
        }
        for (field, v) in
            [("min_autocorrelation", self.min_autocorrelation), ("median_min_autocorrelation", self.median_min_autocorrelation)]
        {
            if !(v.is_finite() && (-1.0..=1.0).contains(&v)) {
                return bad(field, v.to_string(), "in [-1, 1]");
            }
        }
        for (field, v, lo) in [
            ("moving_average_rows", self.moving_average_rows, 1),
            ("long_average_rows", self.long_average_rows, 1),
            ("seasons", self.seasons, 1),
            ("median_seasons", self.median_seasons, 1),
            ("fit_rows", self.fit_rows, 3),
            ("validation_origins", self.validation_origins, 5),
            ("combine", self.combine, 1),
        ] {
            if v < lo {
                return bad(field, v.to_string(), &format!("at least {lo}"));
            }
        }
        Ok(())
    }

    fn settings(&self) -> MethodSettings {
        MethodSettings {
            window: self.moving_average_rows,
            long_window: self.long_average_rows,
            seasons: self.seasons,
            fit_rows: self.fit_rows,
            median_seasons: self.median_seasons,
            median_level_share: self.median_level_share,
            novel_level_rows: self.novel_level_rows,
        }
    }

    /// The candidate periods (rows) that fit twice in `y` and whose autocorrelation over the
    /// last `8 × fit_rows` rows is at least `min_autocorrelation`, with that autocorrelation.
    fn seasonal_periods(&self, y: &[f64], interval_secs: f64) -> Vec<(usize, f64)> {
        self.periods_with_autocorrelation(y, interval_secs).into_iter().filter(|(_, r)| *r >= self.min_autocorrelation).collect()
    }

    /// Every candidate period (rows) that fits twice in `y`, with its autocorrelation over the
    /// last `8 × fit_rows` rows.
    fn periods_with_autocorrelation(&self, y: &[f64], interval_secs: f64) -> Vec<(usize, f64)> {
        let tail = &y[y.len().saturating_sub(8 * self.fit_rows)..];
        self.period_candidates_secs
            .iter()
            .map(|secs| (secs / interval_secs.max(1e-9)).round() as usize)
            .filter(|p| *p >= 2 && 2 * p <= y.len())
            .map(|p| (p, autocorrelation(tail, p)))
            .collect()
    }

    /// The seasonal period (rows) of `y`: of the candidate periods that qualify, the one with the highest
    /// autocorrelation.
    pub fn detect_period(&self, y: &[f64], interval_secs: f64) -> Option<usize> {
        self.seasonal_periods(y, interval_secs).into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(p, _)| p)
    }

    /// SES alone (its index among the `scored` candidates) where the choice made on the earlier
    /// validation origins does not carry over to the later ones (`transfer_check`).
    fn transfer_fallback(&self, scored: &[Scored], validation: (&[usize], &[f64], usize), bounds: &[(usize, usize)]) -> Option<usize> {
        let grid = (self.weight_step, self.weight_shrink);
        scored.iter().position(|c| c.0 == Method::Ses).filter(|&ses| {
            self.transfer_check && self.method.is_none() && !carries_over(scored, ses, validation, bounds, self.combine, grid)
        })
    }

    /// Fit on `y` (oldest first, sampled every `interval_secs`) for `horizon`-step forecasts:
    /// score every method (the seasonal ones at every candidate period that fits twice in `y`)
    /// from `validation_origins` origins over the last `validation_span` of `y`; per horizon
    /// bucket combine the best `combine` of them with the weights of least validation MAE
    /// (shrunk towards 1 / MAE) — SES alone where that choice does not carry over from the
    /// earlier origins to the later ones (`transfer_check`) — and take the combination's
    /// residual quantiles per step for the intervals.
    pub fn fit(&self, y: &[f64], interval_secs: f64, horizon: usize) -> Result<FittedForecaster, ForecasterError> {
        self.fit_observed(y, None, interval_secs, horizon)
    }

    /// [`ForecasterParams::fit`] where some rows were filled, not observed (`observed[i]` false:
    /// a cell of time without samples, given the previous value): they stay history, but no
    /// validation error, weight or interval is taken at them (a filled value repeats the last
    /// one, and scoring it would favour the methods that repeat it).
    pub fn fit_observed(
        &self,
        y: &[f64],
        observed: Option<&[bool]>,
        interval_secs: f64,
        horizon: usize,
    ) -> Result<FittedForecaster, ForecasterError> {
        self.validate()?;
        if horizon == 0 {
            return Err(ForecasterError::Setting { field: "horizon", value: "0".into(), reason: "at least 1".into() });
        }
        let needed = horizon + self.validation_origins.max(1) + 10;
        if y.len() < needed || y.iter().any(|v| !v.is_finite()) {
            return Err(ForecasterError::TooShort { rows: y.len(), horizon, needed });
        }
        // The values validation scores: NaN where a row was filled (`y` itself when none was).
        let target: std::borrow::Cow<[f64]> = match observed {
            Some(o) if o.len() != y.len() => {
                return Err(ForecasterError::Setting {
                    field: "observed",
                    value: o.len().to_string(),
                    reason: format!("one flag per row ({})", y.len()),
                });
            }
            Some(o) => y.iter().zip(o).map(|(v, seen)| if *seen { *v } else { f64::NAN }).collect(),
            None => y.into(),
        };
        let s = self.settings();
        let last = y.len() - horizon;
        let first = ((y.len() as f64 * (1.0 - self.validation_span)) as usize).min(last.saturating_sub(self.validation_origins)).max(10);
        let step = ((last - first) / self.validation_origins).max(1);
        let origins: Vec<usize> = (first..=last).step_by(step).take(self.validation_origins).collect();
        if !origins.iter().any(|&o| target[o..o + horizon].iter().any(|v| !v.is_nan())) {
            let rows = target.iter().filter(|v| !v.is_nan()).count();
            return Err(ForecasterError::TooShort { rows, horizon, needed });
        }
        // Periods with a clear autocorrelation for the methods that trust the profile; weaker
        // ones too for the seasonal median (validation decides).
        let with_r = self.periods_with_autocorrelation(&y[..first], interval_secs);
        let periods: Vec<usize> = with_r.iter().filter(|(_, r)| *r >= self.min_autocorrelation).map(|(p, _)| *p).collect();
        let median_periods: Vec<usize> = with_r.iter().filter(|(_, r)| *r >= self.median_min_autocorrelation).map(|(p, _)| *p).collect();
        let mut candidates: Vec<(Method, Option<usize>)> = Vec::new();
        // MSTL: decomposed and fitted once, on the history before the first origin.
        let mstl = MstlFit::fit(&y[..first], &periods, self.fit_rows).map(|m| m.with_history(y));
        for m in Method::ALL.into_iter().filter(|m| self.method.map_or(!self.exclude.contains(m), |only| only == *m)) {
            match m {
                Method::SeasonalMedian => candidates.extend(median_periods.iter().map(|p| (m, Some(*p)))),
                _ if m.seasonal() => candidates.extend(periods.iter().map(|p| (m, Some(*p)))),
                _ => candidates.push((m, None)),
            }
        }
        let (scored, alphas) = score_candidates((y, &target), &candidates, &origins, first, horizon, (s, mstl.as_ref()));
        if scored.is_empty() {
            return Err(ForecasterError::TooShort { rows: y.len(), horizon, needed });
        }
        // Per horizon bucket (steps 1, 2–4, 5–16, 17–64, 65–…: near steps favour recent values,
        // far ones the level and the season), the best `combine` by that bucket's validation
        // MAE, weighted by 1 / MAE.
        let bounds = bucket_bounds(horizon, self.bucket_growth);
        let fallback = self.transfer_fallback(&scored, (&origins, &target, horizon), &bounds);
        let mut residuals: Vec<Vec<f64>> = vec![Vec::with_capacity(origins.len()); horizon];
        let mut buckets = Vec::with_capacity(bounds.len());
        for &(first_step, last_step) in &bounds {
            let validation = (origins.as_slice(), &*target, horizon);
            let (ranked, weights) = match fallback {
                Some(ses) => (vec![(ses, bucket_mae(&scored[ses], validation, (first_step, last_step)))], vec![1.0]),
                None => choose_members(&scored, validation, (first_step, last_step), self.combine, (self.weight_step, self.weight_shrink)),
            };
            let members: Vec<Member> = ranked
                .iter()
                .zip(&weights)
                .map(|(&(ci, mae), &weight)| Member {
                    method: scored[ci].0,
                    period: scored[ci].1,
                    weight,
                    validation_mae: mae,
                    alpha: alphas.iter().find(|(k, _)| *k == (scored[ci].0, scored[ci].1)).map(|(_, a)| *a),
                    ets: (scored[ci].0 == Method::Mstl).then(|| mstl.as_ref().map(MstlFit::params)).flatten(),
                })
                .collect();
            for (oi, &o) in origins.iter().enumerate() {
                for k in first_step..=last_step {
                    let combined: f64 = ranked.iter().zip(&weights).map(|(&(ci, _), w)| w * scored[ci].3[oi * horizon + k]).sum();
                    residuals[k].push(target[o + k] - combined);
                }
            }
            buckets.push(HorizonBucket { first_step, last_step, members });
        }
        let period = buckets.iter().rev().flat_map(|b| &b.members).find_map(|m| m.period).or_else(|| self.detect_period(y, interval_secs));
        // Residuals in units of the local scale at their origin.
        let scale = if self.interval_scale_rows > 0 && self.interval_scale_power > 0.0 {
            let scales: Vec<f64> = origins.iter().map(|&o| local_scale(&y[..o], self.interval_scale_rows)).collect();
            let floor = 0.1 * scales.iter().sum::<f64>() / scales.len() as f64;
            let scale = (self.interval_scale_rows, self.interval_scale_power, floor);
            let factors: Vec<f64> = scales.iter().map(|sc| scale_factor(*sc, scale)).collect();
            residuals.iter_mut().for_each(|r| r.iter_mut().zip(&factors).for_each(|(v, f)| *v /= f));
            scale
        } else {
            (0, 0.0, 0.0)
        };
        let paths = residual_paths(&residuals, origins.len());
        Ok(FittedForecaster {
            period,
            horizon,
            settings: s,
            buckets,
            quantiles: step_quantiles(&residuals, self.symmetric_intervals),
            scale,
            paths,
            crossing_probability: self.crossing_probability,
            alphas,
            mstl,
        })
    }
}

/// Whether the members and weights chosen per bucket on the earlier half of the validation
/// origins do at least as well on the later half as SES (`scored[ses]`) alone.
fn carries_over(
    scored: &[Scored],
    ses: usize,
    (origins, target, horizon): (&[usize], &[f64], usize),
    bounds: &[(usize, usize)],
    combine: usize,
    grid: (f64, f64),
) -> bool {
    let half = origins.len() / 2;
    let earlier: Vec<Scored> = scored.iter().map(|(m, p, e, preds)| (*m, *p, *e, preds[..half * horizon].to_vec())).collect();
    let (mut chosen_err, mut ses_err) = (0.0, 0.0);
    for &(first_step, last_step) in bounds {
        let (ranked, weights) = choose_members(&earlier, (&origins[..half], target, horizon), (first_step, last_step), combine, grid);
        for (oi, &o) in origins.iter().enumerate().skip(half) {
            for k in first_step..=last_step {
                let actual = target[o + k];
                if actual.is_nan() {
                    continue;
                }
                let combined: f64 = ranked.iter().zip(&weights).map(|(&(ci, _), w)| w * scored[ci].3[oi * horizon + k]).sum();
                chosen_err += (combined - actual).abs();
                ses_err += (scored[ses].3[oi * horizon + k] - actual).abs();
            }
        }
    }
    chosen_err <= ses_err
}

/// The residual path of every origin (origin-major) from the per-step `residuals`: a path goes on
/// from its last scored step through the filled ones (NaN).
fn residual_paths(residuals: &[Vec<f64>], origins: usize) -> Vec<f64> {
    (0..origins)
        .flat_map(|oi| {
            residuals.iter().scan(0.0, move |held, r| {
                if r[oi].is_finite() {
                    *held = r[oi];
                }
                Some(*held)
            })
        })
        .collect()
}

/// Every candidate's forecasts from every origin and its validation MAE, and the smoothing
/// constants fitted (once each, on the history before the first origin `first`; MSTL's with its
/// decomposition, given).
fn score_candidates(
    (y, target): (&[f64], &[f64]),
    candidates: &[MethodKey],
    origins: &[usize],
    first: usize,
    horizon: usize,
    (s, mstl): (MethodSettings, Option<&MstlFit>),
) -> (Vec<Scored>, Vec<(MethodKey, f64)>) {
    let mut scored: Vec<Scored> = Vec::new();
    let mut alphas: Vec<(MethodKey, f64)> = Vec::new();
    // The level-shift window of every origin's history, shared by the long mean and median.
    let settled = settled_windows(y, origins, s.window, s.long_window);
    // Theta's sums at every origin from prefix sums of y and t·y (O(1) per origin).
    let (mut p0, mut p1) = (vec![0.0; y.len() + 1], vec![0.0; y.len() + 1]);
    for (i, v) in y.iter().enumerate() {
        p0[i + 1] = p0[i] + v;
        p1[i + 1] = p1[i] + i as f64 * v;
    }
    let theta_sums: Vec<(f64, f64)> = origins
        .iter()
        .map(|&o| {
            let a = o.saturating_sub(s.fit_rows);
            let sy = p0[o] - p0[a];
            (p1[o] - p1[a] - a as f64 * sy, sy)
        })
        .collect();
    // SES and Theta share one smoothing constant.
    let mut ses_alpha: Option<Option<f64>> = None;
    for &(m, period) in candidates {
        // Smoothing constants are fitted once, on the history before the first origin.
        let alpha = match m {
            Method::Ses | Method::Theta => *ses_alpha.get_or_insert_with(|| smoothing_constant(m, &y[..first], s)),
            _ => smoothing_constant(m, &y[..first], s),
        };
        if let Some(a) = alpha {
            alphas.push(((m, period), a));
        }
        // Every origin's forecast in one buffer (origin-major), none dropped.
        let mut preds = vec![0.0; origins.len() * horizon];
        let complete =
            origins.iter().zip(settled.iter().zip(&theta_sums)).zip(preds.chunks_exact_mut(horizon)).all(|((&o, (&w, &sums)), out)| {
                forecast_into(m, &y[..o], out, period, s, Hints { alpha, settled: Some(w), theta_sums: Some(sums), mstl })
            });
        if complete {
            let (err, count) = origins.iter().zip(preds.chunks_exact(horizon)).fold((0.0, 0usize), |(err, count), (&o, p)| {
                let (e, c) = abs_errors(p.iter().copied().zip(target[o..o + horizon].iter().copied()));
                (err + e, count + c)
            });
            scored.push((m, period, err / count as f64, preds));
        }
    }
    (scored, alphas)
}

/// Σ |forecast − actual| over `(forecast, actual)` pairs and their count, a filled row (actual
/// NaN) left out.
fn abs_errors(pairs: impl Iterator<Item = (f64, f64)>) -> (f64, usize) {
    pairs.filter(|(_, a)| !a.is_nan()).fold((0.0, 0), |(e, n), (f, a)| (e + (f - a).abs(), n + 1))
}

/// A candidate's validation MAE over steps `[first_step, last_step]` (filled rows left out;
/// infinite where none was observed).
fn bucket_mae(c: &Scored, (origins, y, horizon): (&[usize], &[f64], usize), (first_step, last_step): (usize, usize)) -> f64 {
    let (err, count) = origins.iter().enumerate().fold((0.0, 0usize), |(err, count), (oi, &o)| {
        let (e, n) = abs_errors((first_step..=last_step).map(|k| (c.3[oi * horizon + k], y[o + k])));
        (err + e, count + n)
    });
    if count > 0 { err / count as f64 } else { f64::INFINITY }
}

/// The best `combine` candidates over steps `[first_step, last_step]` by their validation MAE,
/// with their weights ([`combination_weights`]).
fn choose_members(
    scored: &[Scored],
    (origins, y, horizon): (&[usize], &[f64], usize),
    (first_step, last_step): (usize, usize),
    combine: usize,
    grid: (f64, f64),
) -> (Vec<(usize, f64)>, Vec<f64>) {
    let mut ranked: Vec<(usize, f64)> =
        scored.iter().enumerate().map(|(ci, c)| (ci, bucket_mae(c, (origins, y, horizon), (first_step, last_step)))).collect();
    // Errors equal to nine digits of the largest are ties (members that forecast the same
    // constant on a flat stretch differ only by rounding); ties go to the better member over
    // the whole horizon, then to the member a single outlier moves least (`Method::tie_rank`).
    let digits = |v: f64, top: f64| {
        if !v.is_finite() {
            i64::MAX
        } else if top > 0.0 {
            (v / top * 1e9).round() as i64
        } else {
            0
        }
    };
    let top = ranked.iter().map(|r| r.1).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let top_all = scored.iter().map(|c| c.2).filter(|v| v.is_finite()).fold(0.0, f64::max);
    ranked.sort_by_key(|&(ci, mae)| (digits(mae, top), digits(scored[ci].2, top_all), scored[ci].0.tie_rank(), scored[ci].0));
    // A member that forecasts what a better-ranked one does (the last value and the moving
    // median on a flat stretch; MSTL without a period or a trend and SES at the same constant,
    // equal to six digits: MSTL's state weights stop at 1e-7 of the first) adds nothing: the
    // next one takes its place.
    let bucket = |ci: usize| in_bucket(&scored[ci].3, horizon, (first_step, last_step));
    let same = |a: usize, b: usize| bucket(a).zip(bucket(b)).all(|(x, y)| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()));
    let mut kept: Vec<(usize, f64)> = Vec::with_capacity(combine);
    for r in ranked {
        if kept.len() == combine {
            break;
        }
        if !kept.iter().any(|k| same(k.0, r.0)) {
            kept.push(r);
        }
    }
    let ranked = kept;
    let weights = combination_weights(&ranked, scored, (origins, y, horizon), (first_step, last_step), grid);
    (ranked, weights)
}

/// Weights of the `ranked` members over steps `[first_step, last_step]`: with `step` in (0, 1),
/// the point of the simplex grid of that spacing with the least validation MAE of the weighted
/// forecast, shrunk by `shrink` towards the 1 / MAE weights (for stability); else 1 / MAE
/// weights.
fn combination_weights(
    ranked: &[(usize, f64)],
    scored: &[Scored],
    (origins, y, horizon): (&[usize], &[f64], usize),
    (first_step, last_step): (usize, usize),
    (step, shrink): (f64, f64),
) -> Vec<f64> {
    let total: f64 = ranked.iter().map(|(_, mae)| 1.0 / mae.max(1e-12)).sum();
    if total.is_nan() || total <= 0.0 {
        // No row of the bucket was observed: no member is better than another.
        return vec![1.0 / ranked.len() as f64; ranked.len()];
    }
    let inverse: Vec<f64> = ranked.iter().map(|(_, mae)| 1.0 / mae.max(1e-12) / total).collect();
    let k = ranked.len();
    if k < 2 || !(step > 0.0 && step < 1.0) {
        return inverse;
    }
    let units = (1.0 / step).round() as usize;
    // With weights summing to one, the combination's error is the last member's error plus the
    // weighted differences of the others from it: `e_last + Σ w_i (f_i − f_last)`. Flat,
    // origin-major over the bucket's steps.
    let bucket = |ci: usize| in_bucket(&scored[ci].3, horizon, (first_step, last_step)).collect::<Vec<f64>>();
    let last = bucket(ranked[k - 1].0);
    // A filled row (NaN) adds zero to every combination's error.
    let actual: Vec<f64> = origins.iter().flat_map(|&o| y[o + first_step..=o + last_step].iter().copied()).collect();
    let base: Vec<f64> = actual.iter().zip(&last).map(|(a, f)| if a.is_nan() { 0.0 } else { f - a }).collect();
    let diffs: Vec<Vec<f64>> = ranked[..k - 1]
        .iter()
        .map(|&(ci, _)| bucket(ci).iter().zip(&last).zip(&actual).map(|((f, l), a)| if a.is_nan() { 0.0 } else { f - l }).collect())
        .collect();
    let mut combined = vec![0.0; base.len()];
    // Every composition of `units` into k parts; a tie keeps the earlier best, and the first
    // ranked member alone is the first candidate.
    combined.iter_mut().zip(base.iter().zip(&diffs[0])).for_each(|(c, (b, d))| *c = b + d);
    let first = abs_sum(&combined);
    let mut best = (first, (0..k).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect::<Vec<f64>>());
    let mut parts = vec![0usize; k];
    loop {
        let used: usize = parts[..k - 1].iter().sum();
        if used <= units {
            parts[k - 1] = units - used;
            let mut active = diffs.iter().zip(&parts).filter(|(_, p)| **p > 0).map(|(d, p)| (d.as_slice(), *p as f64 / units as f64));
            let err = match (active.next(), active.next(), active.next()) {
                (None, _, _) => abs_sum(&base),
                (Some(a), None, _) => abs_sum_mixed(&base, a, None),
                (Some(a), Some(b), None) => abs_sum_mixed(&base, a, Some(b)),
                (Some(a), Some(b), Some(c)) => {
                    combined.copy_from_slice(&base);
                    for (d, w) in [a, b, c].into_iter().chain(active) {
                        combined.iter_mut().zip(d).for_each(|(x, v)| *x += w * v);
                    }
                    abs_sum(&combined)
                }
            };
            if err < best.0 {
                best = (err, parts.iter().map(|p| *p as f64 / units as f64).collect());
            }
        }
        // Next composition (odometer over the first k − 1 parts).
        let mut i = 0;
        loop {
            if i == k - 1 {
                return best.1.iter().zip(&inverse).map(|(b, v)| (1.0 - shrink) * b + shrink * v).collect();
            }
            parts[i] += 1;
            if parts[..k - 1].iter().sum::<usize>() <= units {
                break;
            }
            parts[i] = 0;
            i += 1;
        }
    }
}

/// Σ |v| in four interleaved partial sums (independent chains the processor overlaps: the
/// weight search's inner loop).
fn abs_sum(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|x| x.abs()).sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x.abs();
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// [`abs_sum`] of `base + wa·a (+ wb·b)` (added in that order, as the general path does) without
/// writing the mix out. One member is the two-member sum with `wb` = 0: adding a zero changes no
/// absolute value.
fn abs_sum_mixed(base: &[f64], (a, wa): (&[f64], f64), b: Option<(&[f64], f64)>) -> f64 {
    let (b, wb) = b.unwrap_or((a, 0.0));
    let mut acc = [0.0f64; 4];
    let n4 = base.len() / 4 * 4;
    for ((x, y), z) in base[..n4].chunks_exact(4).zip(a[..n4].chunks_exact(4)).zip(b[..n4].chunks_exact(4)) {
        for j in 0..4 {
            acc[j] += (x[j] + wa * y[j] + wb * z[j]).abs();
        }
    }
    let tail: f64 = base[n4..].iter().zip(&a[n4..]).zip(&b[n4..]).map(|((x, y), z)| (x + wa * y + wb * z).abs()).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The forecasts of steps `[first_step, last_step]` from every origin, origin-major, of one
/// candidate's buffer (`horizon` values per origin).
fn in_bucket(preds: &[f64], horizon: usize, (first_step, last_step): (usize, usize)) -> impl Iterator<Item = f64> + '_ {
    preds.chunks_exact(horizon).flat_map(move |f| f[first_step..=last_step].iter().copied())
}

/// A scored candidate: method, period, validation MAE and its forecasts from every origin (one
/// buffer, `horizon` values per origin).
type Scored = (Method, Option<usize>, f64, Vec<f64>);

/// A method at a period (`None` for the non-seasonal ones).
type MethodKey = (Method, Option<usize>);

/// Horizon buckets `[first, last]` (0-based steps): 1, then growing by `growth` (0: one bucket).
fn bucket_bounds(horizon: usize, growth: usize) -> Vec<(usize, usize)> {
    if growth < 2 {
        return vec![(0, horizon - 1)];
    }
    let mut out = Vec::new();
    let (mut first, mut len) = (0, 1);
    while first < horizon {
        let last = (first + len - 1).min(horizon - 1);
        out.push((first, last));
        first = last + 1;
        len *= growth;
    }
    out
}

/// Per-step residual quantiles (2.5, 10, 90, 97.5 %), each pooled with its neighbouring steps
/// (±10 % of the step) so few origins still give stable widths.
fn step_quantiles(residuals: &[Vec<f64>], symmetric: bool) -> Vec<[f64; 4]> {
    let h = residuals.len();
    let mut pool: Vec<f64> = Vec::new();
    (0..h)
        .map(|k| {
            let reach = (k / 10).max(1);
            pool.clear();
            // Filled rows (NaN) have no residual; a step without any takes every step's.
            pool.extend(residuals[k.saturating_sub(reach)..(k + reach + 1).min(h)].iter().flatten().copied().filter(|r| !r.is_nan()));
            if pool.is_empty() {
                pool.extend(residuals.iter().flatten().copied().filter(|r| !r.is_nan()));
            }
            if symmetric {
                pool.iter_mut().for_each(|r| *r = r.abs());
                let [q80, q95] = conformal_quantiles(&mut pool, [0.80, 0.95]);
                [-q95, -q80, q80, q95]
            } else {
                conformal_quantiles(&mut pool, [0.025, 0.10, 0.90, 0.975])
            }
        })
        .collect()
}

/// The conformal quantiles of `pool` at the ascending probabilities `ps`: the value of rank
/// ⌈(n + 1) p⌉ of n (capped at the largest), each found by selection (the pool is reordered).
fn conformal_quantiles<const K: usize>(pool: &mut [f64], ps: [f64; K]) -> [f64; K] {
    let n = pool.len();
    let rank = |p: f64| (((n + 1) as f64 * p).ceil() as usize).clamp(1, n) - 1;
    let mut out = [0.0; K];
    // From the highest rank down: each selection leaves the lower ranks to its left.
    let mut end = n;
    for (q, &p) in out.iter_mut().zip(&ps).rev() {
        let r = rank(p).min(end - 1);
        let (_, v, _) = pool[..end].select_nth_unstable_by(r, f64::total_cmp);
        *q = *v;
        end = r + 1;
    }
    out
}

/// Mean absolute one-step change over the last `rows` rows of `y` (0 for fewer than two rows).
fn local_scale(y: &[f64], rows: usize) -> f64 {
    let tail = &y[y.len().saturating_sub(rows + 1)..];
    if tail.len() < 2 {
        return 0.0;
    }
    tail.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (tail.len() - 1) as f64
}

/// The factor residuals are divided by at a local scale `sc` (`(rows, power, floor)`; 1 when
/// the widths are fixed or the scale vanishes).
fn scale_factor(sc: f64, (rows, power, floor): (usize, f64, f64)) -> f64 {
    let v = sc.max(floor);
    if rows == 0 || power == 0.0 || v <= 0.0 { 1.0 } else { v.powf(power) }
}

/// The median of the last `rows` rows of `y` where it lies outside the range (least to
/// greatest value) of all but the last `gap` rows, which must hold at least `gap` rows, by more
/// than the rows' own spread: a level the series has not been at before, and holds (`None`:
/// none, or `rows` 0).
fn novel_level(y: &[f64], rows: usize, gap: usize) -> Option<f64> {
    let n = y.len();
    if rows == 0 || n < 2 * gap.max(rows) {
        return None;
    }
    let (lo, hi) = y[..n - gap].iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let mut last = y[n - rows..].to_vec();
    let level = methods::median(&mut last);
    let beyond = (level - hi).max(lo - level);
    // A plateau, not a burst: beyond the range by more than `SHIFT_SCALES` robust scales (1.4826 ×
    // MAD) of the rows themselves, as the level-shift test measures a shift.
    last.iter_mut().for_each(|v| *v = (*v - level).abs());
    let spread = methods::SHIFT_SCALES * 1.4826 * methods::median(&mut last);
    (beyond > 0.0 && beyond > spread).then_some(level)
}

/// Autocorrelation of `y` at `lag`.
fn autocorrelation(y: &[f64], lag: usize) -> f64 {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let var: f64 = y.iter().map(|v| (v - mean) * (v - mean)).sum();
    if var <= 0.0 || lag >= n {
        return 0.0;
    }
    (lag..n).map(|i| (y[i] - mean) * (y[i - lag] - mean)).sum::<f64>() / var
}

impl FittedForecaster {
    /// The seasonal period of the best seasonal member (rows), else the one the autocorrelation
    /// finds.
    pub fn period(&self) -> Option<usize> {
        self.period
    }

    /// The horizon buckets with their weighted members.
    pub fn buckets(&self) -> &[HorizonBucket] {
        &self.buckets
    }

    /// Forecast `horizon` steps after `history` (which may extend the fitted history).
    pub fn forecast(&self, history: &[f64]) -> Forecast {
        let s = self.settings;
        let h = self.horizon;
        let mut runs: Vec<(MethodKey, Option<Vec<f64>>)> = Vec::new();
        let mut point = vec![history.last().copied().unwrap_or(0.0); h];
        let novel = novel_level(history, s.novel_level_rows, s.long_window);
        for b in &self.buckets {
            // The combination as the first member's forecast plus the weighted differences of
            // the others from it: members that agree give exactly their forecast.
            let (mut base, mut sum, mut weight) = (None::<usize>, vec![0.0; b.last_step + 1 - b.first_step], 0.0);
            for m in &b.members {
                let key = (m.method, m.period);
                let i = match runs.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        // Each member runs once (`runs`); MSTL decomposes the history when it does.
                        let fresh = if m.method == Method::Mstl { self.mstl_on(history) } else { None };
                        let run = match (m.method, novel) {
                            (Method::MovingMedian | Method::MovingAverageLong, Some(level)) => Some(vec![level; h]),
                            _ => forecast(
                                m.method,
                                history,
                                h,
                                m.period,
                                s,
                                Hints { alpha: m.alpha, mstl: fresh.as_ref(), ..Hints::default() },
                            ),
                        };
                        runs.push((key, run));
                        runs.len() - 1
                    }
                };
                if let Some(f) = &runs[i].1 {
                    let first = *base.get_or_insert(i);
                    let from = runs[first].1.as_deref().unwrap_or(f);
                    sum.iter_mut()
                        .zip(f[b.first_step..=b.last_step].iter().zip(&from[b.first_step..=b.last_step]))
                        .for_each(|(a, (v, v0))| *a += m.weight * (v - v0));
                    weight += m.weight;
                }
            }
            if let Some(first) = base.filter(|_| weight > 0.0) {
                let from = runs[first].1.as_deref().unwrap_or_default();
                point[b.first_step..=b.last_step]
                    .iter_mut()
                    .zip(sum.iter().zip(&from[b.first_step..=b.last_step]))
                    .for_each(|(p, (d, v0))| *p = v0 + d / weight);
            }
        }
        let f = scale_factor(local_scale(history, self.scale.0), self.scale);
        let band = |i: usize| point.iter().zip(&self.quantiles).map(|(p, q)| p + f * q[i]).collect::<Vec<f64>>();
        Forecast { lower_95: band(0), lower_80: band(1), upper_80: band(2), upper_95: band(3), point }
    }

    /// The future paths after `history` around the point forecast `point` (from
    /// [`FittedForecaster::forecast`]): each validation origin's residual path, scaled to the
    /// local scale now, added to the point forecast.
    pub fn paths(&self, history: &[f64], point: &[f64]) -> FuturePaths {
        let h = self.horizon.min(point.len()).max(1);
        let f = scale_factor(local_scale(history, self.scale.0), self.scale);
        let values = self.paths.chunks_exact(self.horizon.max(1)).flat_map(|path| (0..h).map(move |k| point[k] + f * path[k])).collect();
        FuturePaths { horizon: h, values, decide_at: self.crossing_probability }
    }

    /// Forecast from `history` with one method only, at the fitted period (for comparing the
    /// family's members).
    pub fn forecast_with(&self, method: Method, history: &[f64]) -> Option<Vec<f64>> {
        // SES and Theta share one constant, stored under whichever was a candidate (period `None`).
        let shares = |m: Method| m == method || matches!((m, method), (Method::Ses, Method::Theta) | (Method::Theta, Method::Ses));
        let alpha = self.alphas.iter().find(|((m, _), _)| shares(*m)).map(|(_, a)| *a);
        let mstl = if method == Method::Mstl { self.mstl_on(history) } else { None };
        forecast(method, history, self.horizon, self.period, self.settings, Hints { alpha, mstl: mstl.as_ref(), ..Hints::default() })
    }

    /// MSTL decomposed again on `history`, with the fitted parameters.
    fn mstl_on(&self, history: &[f64]) -> Option<MstlFit> {
        self.mstl.as_ref()?.refresh(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [0, 1) (xorshift of the row number).
    fn noise(i: usize) -> f64 {
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn daily(i: usize) -> f64 {
        let hour = (i % 288) / 12;
        let noise = noise(i) * 8.0 - 4.0;
        if (9..17).contains(&hour) { 80.0 + noise } else { 20.0 + noise }
    }

    #[test]
    fn a_daily_pattern_is_found_and_forecast_with_calibrated_intervals() {
        let y: Vec<f64> = (0..288 * 14).map(daily).collect();
        let params = ForecasterParams::default();
        let fitted = params.fit(&y[..288 * 10], 300.0, 72).unwrap();
        assert_eq!(fitted.period(), Some(288));
        let far = &fitted.buckets().last().unwrap().members;
        assert!(far[0].method.seasonal() || far[0].method == Method::Mstl, "{far:?}");
        let (mut inside80, mut inside95, mut n, mut abs_err) = (0, 0, 0, 0.0);
        for o in (288 * 10..288 * 14 - 72).step_by(37) {
            let f = fitted.forecast(&y[..o]);
            for k in 0..72 {
                let a = y[o + k];
                inside80 += usize::from(a >= f.lower_80[k] && a <= f.upper_80[k]);
                inside95 += usize::from(a >= f.lower_95[k] && a <= f.upper_95[k]);
                abs_err += (a - f.point[k]).abs();
                n += 1;
            }
        }
        let (c80, c95) = (inside80 as f64 / n as f64, inside95 as f64 / n as f64);
        assert!((0.7..=0.92).contains(&c80) && (0.88..=1.0).contains(&c95), "coverage {c80:.3} / {c95:.3}");
        assert!(abs_err / (n as f64) < 5.0, "MAE {}", abs_err / n as f64);
    }

    #[test]
    fn filled_rows_are_history_but_not_scored() {
        // The daily pulse with the rows of 60 in every 100 missing, each filled with the previous
        // value (as the runtime fills a bucket without samples).
        let n = 288 * 12;
        let observed: Vec<bool> = (0..n).map(|i| i % 100 < 40).collect();
        let mut y: Vec<f64> = Vec::with_capacity(n);
        for (i, seen) in observed.iter().enumerate() {
            y.push(if *seen || i == 0 { daily(i) } else { y[i - 1] });
        }
        let (params, horizon, train) = (ForecasterParams::default(), 72, 288 * 9);
        // Every row observed: exactly `fit`; a flag missing is refused.
        assert_eq!(params.fit_observed(&y, Some(&vec![true; n]), 300.0, horizon).unwrap(), params.fit(&y, 300.0, horizon).unwrap());
        let e = params.fit_observed(&y, Some(&observed[1..]), 300.0, horizon).unwrap_err().to_string();
        assert!(e.contains("observed"), "{e}");
        // Scored at the filled rows too, validation rewards repeating the last value through
        // every run; scored where rows were observed, as the forecast is judged, the day.
        let masked = params.fit_observed(&y[..train], Some(&observed[..train]), 300.0, horizon).unwrap();
        let plain = params.fit(&y[..train], 300.0, horizon).unwrap();
        let mae = |f: &FittedForecaster| {
            let (mut sum, mut count) = (0.0, 0);
            for o in (train..n - horizon).step_by(29) {
                let point = f.forecast(&y[..o]).point;
                for k in (0..horizon).filter(|k| observed[o + k]) {
                    sum += (y[o + k] - point[k]).abs();
                    count += 1;
                }
            }
            sum / count as f64
        };
        let (m, p) = (mae(&masked), mae(&plain));
        assert!(m < 0.75 * p, "MAE where observed: {m} (filled rows not scored) against {p}");
    }

    #[test]
    fn excluded_methods_are_never_members_unless_named_as_the_method() {
        let mut level = 0.0;
        let y: Vec<f64> = (0..3000)
            .map(|i| {
                level += noise(i) - 0.5;
                level
            })
            .collect();
        let methods = |p: &ForecasterParams| -> Vec<Method> {
            p.fit(&y, 300.0, 36).unwrap().buckets().iter().flat_map(|b| b.members.iter().map(|m| m.method)).collect()
        };
        let all = methods(&ForecasterParams { exclude: vec![], ..Default::default() });
        let first = all[0];
        let without = methods(&ForecasterParams { exclude: vec![first, Method::MovingAverage], ..Default::default() });
        assert!(!without.contains(&first) && !without.contains(&Method::MovingAverage) && !without.is_empty(), "{all:?} {without:?}");
        let only = methods(&ForecasterParams { method: Some(Method::MovingAverage), ..Default::default() });
        assert!(!only.is_empty() && only.iter().all(|m| *m == Method::MovingAverage), "{only:?}");
    }

    #[test]
    fn noise_without_a_period_has_none_and_short_history_is_refused() {
        let y: Vec<f64> = (0..3000).map(|i| noise(i) * 100.0).collect();
        let params = ForecasterParams::default();
        assert_eq!(params.detect_period(&y, 300.0), None);
        let e = params.fit(&y[..100], 300.0, 72).unwrap_err();
        assert!(matches!(e, ForecasterError::TooShort { rows: 100, .. }), "{e}");
        let bad = ForecasterParams { validation_origins: 0, ..Default::default() }.fit(&y, 300.0, 10).unwrap_err();
        assert!(bad.to_string().contains("validation_origins"), "{bad}");
        let bad = ForecasterParams { median_min_autocorrelation: f64::NAN, ..Default::default() }.validate().unwrap_err();
        assert!(bad.to_string().contains("median_min_autocorrelation"), "{bad}");
        for (p, field) in [
            (ForecasterParams { crossing_probability: 0.0, ..Default::default() }, "crossing_probability"),
            (ForecasterParams { median_level_share: f64::NAN, ..Default::default() }, "median_level_share"),
            (ForecasterParams { median_level_share: 1.5, ..Default::default() }, "median_level_share"),
            (ForecasterParams { crossing_probability: f64::NAN, ..Default::default() }, "crossing_probability"),
            (ForecasterParams { interval_scale_power: 1.5, ..Default::default() }, "interval_scale_power"),
            (ForecasterParams { exclude: Method::ALL.to_vec(), ..Default::default() }, "exclude"),
        ] {
            let bad = p.validate().unwrap_err();
            assert!(bad.to_string().contains(field), "{bad}");
        }
        // The runtime's `[forecast.auto.params]` table reads the same keys, unknown ones refused.
        let p: ForecasterParams = toml::from_str("median_min_autocorrelation = 0.1\nweight_shrink = 0.5").unwrap();
        assert_eq!((p.median_min_autocorrelation, p.weight_shrink, p.combine), (0.1, 0.5, 3));
        assert!(toml::from_str::<ForecasterParams>("seasonal_theta = true").is_err());
    }

    #[test]
    fn interval_widths_follow_the_local_scale() {
        // Noise of amplitude 10 around 50; forecast once after a calm stretch (amplitude 2)
        // and once after a restless one (amplitude 30).
        let y: Vec<f64> = (0..3000).map(|i| 50.0 + 10.0 * (noise(i) - 0.5)).collect();
        let with_tail = |amp: f64| {
            let mut h = y.clone();
            h.extend((3000..3100).map(|i| 50.0 + amp * (noise(i) - 0.5)));
            h
        };
        let (calm, restless) = (with_tail(2.0), with_tail(30.0));
        let width = |f: &Forecast| f.upper_95[5] - f.lower_95[5];
        let scaled = ForecasterParams::default().fit(&y, 300.0, 12).unwrap();
        let (w_calm, w_restless) = (width(&scaled.forecast(&calm)), width(&scaled.forecast(&restless)));
        assert!(w_restless > 5.0 * w_calm, "{w_calm} vs {w_restless}");
        // Fixed widths do not move.
        let fixed = ForecasterParams { interval_scale_rows: 0, ..Default::default() }.fit(&y, 300.0, 12).unwrap();
        assert!((width(&fixed.forecast(&calm)) - width(&fixed.forecast(&restless))).abs() < 1e-9);
    }

    #[test]
    fn crossing_probability_is_a_share_of_paths_that_grows_with_the_horizon() {
        let y: Vec<f64> = (0..288 * 9).map(daily).collect();
        let fitted = ForecasterParams::default().fit(&y, 300.0, 36).unwrap();
        // 07:00 on the last day: the 80 level starts in two hours (24 steps).
        let history = &y[..288 * 8 + 84];
        let f = fitted.forecast(history);
        let paths = fitted.paths(history, &f.point);
        let p = paths.crossing_probability(70.0);
        assert_eq!(p.len(), 36);
        assert!(p.windows(2).all(|w| w[0] <= w[1]) && p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
        assert!(p[20] < 0.4 && p[30] >= 0.9, "{p:?}");
        let first = paths.first_likely_crossing(70.0).unwrap();
        assert!((21..=27).contains(&first), "{first} {p:?}");
        // Below every path at once; above all of them never.
        assert_eq!(paths.crossing_probability(-1e9)[0], 1.0);
        assert_eq!((paths.crossing_probability(1e9)[35], paths.first_likely_crossing(1e9)), (0.0, None));
    }

    #[test]
    fn members_validation_cannot_tell_apart_go_to_the_one_a_blip_moves_least() {
        // A flat metric (a disk that never fills, an idle queue): every member is exact in
        // validation, so each bucket keeps one of them (the others forecast the same), the
        // moving median; a blip in the last row then does not become the forecast for the
        // whole horizon, as it would with the last value.
        let mut y = vec![7.0; 2000];
        let fitted = ForecasterParams::default().fit(&y, 60.0, 60).unwrap();
        for b in fitted.buckets() {
            let names: Vec<&str> = b.members.iter().map(|m| m.method.name()).collect();
            assert_eq!(names, ["moving_median"], "steps {}–{}", b.first_step, b.last_step);
        }
        *y.last_mut().unwrap() = 500.0;
        let f = fitted.forecast(&y);
        assert!(f.point.iter().all(|v| (v - 7.0).abs() < 1e-9), "{:?}", &f.point[..5]);
        // Members that differ but tie in validation are kept in their tie order.
        assert!(Method::MovingMedian.tie_rank() < Method::LastValue.tie_rank());
        let mut ranks: Vec<u8> = Method::ALL.iter().map(|m| m.tie_rank()).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), Method::ALL.len());
    }

    #[test]
    fn a_level_never_seen_before_moves_the_moving_median_at_once_and_a_burst_does_not() {
        // A CPU near 35 % for 2,000 rows (5 minutes each); then the instance saturates: eight
        // rows near 99 %, above anything before. The moving median forecasts the new level at
        // once (its level-shift test would wait for half of its 24-row short window); without
        // the rule it still forecasts the old one. A burst just as far out but turbulent (the
        // rows spread wider than they are beyond the range) is no new level: the old one stays.
        let y: Vec<f64> = (0..2000).map(|i| 35.0 + 4.0 * noise(i)).collect();
        let only_median = ForecasterParams { method: Some(Method::MovingMedian), ..ForecasterParams::default() };
        let fitted = only_median.fit(&y, 300.0, 36).unwrap();
        let mut shifted = y.clone();
        shifted.extend((0..8).map(|i| 99.0 + 0.5 * noise(5000 + i)));
        let f = fitted.forecast(&shifted);
        assert!(f.point.iter().all(|v| (v - 99.25).abs() < 0.3), "{:?}", &f.point[..3]);
        let off = ForecasterParams { novel_level_rows: 0, ..only_median.clone() }.fit(&y, 300.0, 36).unwrap();
        assert!(off.forecast(&shifted).point.iter().all(|v| (v - 37.0).abs() < 1.0));
        let mut burst = y.clone();
        burst.extend([60.0, 99.0, 140.0, 70.0, 130.0, 80.0, 120.0, 90.0]);
        assert!(fitted.forecast(&burst).point.iter().all(|v| (v - 37.0).abs() < 1.0));
        // Not before the history is twice the long window, and a setting beyond the long window is refused.
        assert_eq!(novel_level(&shifted[1650..], 6, 180), None);
        assert!(novel_level(&shifted[1630..], 6, 180).is_some());
        let e = ForecasterParams { novel_level_rows: 181, ..ForecasterParams::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("novel_level_rows"), "{e}");
    }

    #[test]
    fn where_the_choice_made_on_validation_does_not_carry_over_auto_is_ses() {
        // A daily profile on a wandering level: through the earlier validation origins the
        // level holds and the seasonal members win; from row 2,300 (the later origins) it
        // walks, and a mix chosen on the earlier origins loses to SES there. `auto` is then SES
        // in every bucket; without the check it keeps the mix.
        let mut level = 50.0;
        let y: Vec<f64> = (0..3000)
            .map(|i| {
                if i >= 2300 {
                    level += 3.0 * (noise(i + 10_007) - 0.5);
                }
                level + 0.5 * daily(i) + 2.0 * (noise(i) - 0.5)
            })
            .collect();
        let checked = ForecasterParams::default().fit(&y, 300.0, 36).unwrap();
        for b in checked.buckets() {
            let members: Vec<(&str, f64)> = b.members.iter().map(|m| (m.method.name(), m.weight)).collect();
            assert_eq!(members, [("ses", 1.0)], "steps {}–{}", b.first_step, b.last_step);
        }
        assert_eq!(checked.forecast(&y).point, checked.forecast_with(Method::Ses, &y).unwrap());
        let unchecked = ForecasterParams { transfer_check: false, ..Default::default() }.fit(&y, 300.0, 36).unwrap();
        assert!(
            unchecked
                .buckets()
                .iter()
                .any(|b| b.members[0].method != Method::Ses || b.members.iter().filter(|m| m.weight > 0.0).count() > 1)
        );
        // A series whose validation halves agree keeps its mix (the daily pattern above, level
        // held throughout).
        let steady: Vec<f64> = (0..3000).map(|i| 50.0 + 0.5 * daily(i) + 2.0 * (noise(i) - 0.5)).collect();
        let fitted = ForecasterParams::default().fit(&steady, 300.0, 36).unwrap();
        assert!(fitted.buckets().iter().all(|b| b.members[0].method != Method::Ses), "{:?}", fitted.buckets()[0].members);
    }

    #[test]
    fn one_model_computed_two_ways_is_one_member() {
        // Without a seasonal period or a trend and at the same smoothing constant, MSTL is SES:
        // its state from cached weights, SES's by recursion, equal to eight digits but not to the
        // last bit. It must not take a second place in the bucket; the next member does.
        let (origins, horizon) = ((0..40).map(|o| o * 3).collect::<Vec<usize>>(), 4);
        let y: Vec<f64> = (0..200).map(|i| 10.0 + noise(i)).collect();
        let forecasts = |shift: f64, wobble: f64| -> Vec<f64> {
            origins.iter().flat_map(|&o| (0..horizon).map(move |k| 10.5 + shift + wobble * (noise(o + k + 999) - 0.5))).collect()
        };
        let ses = forecasts(0.0, 0.0);
        let mstl: Vec<f64> = ses.iter().map(|v| v * (1.0 + 3e-8)).collect();
        let scored: Vec<Scored> =
            vec![(Method::Ses, None, 1.0, ses), (Method::Mstl, None, 1.0, mstl), (Method::MovingMedian, None, 1.0, forecasts(0.05, 0.4))];
        let (ranked, weights) = choose_members(&scored, (&origins, &y, horizon), (0, horizon - 1), 2, (0.1, 0.0));
        let methods: Vec<Method> = ranked.iter().map(|(ci, _)| scored[*ci].0).collect();
        assert_eq!(methods.len(), 2, "{methods:?}");
        assert!(
            methods.contains(&Method::MovingMedian) && !(methods.contains(&Method::Ses) && methods.contains(&Method::Mstl)),
            "{methods:?}"
        );
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{weights:?}");
    }

    #[test]
    fn the_weight_search_scores_a_mix_as_if_written_out() {
        // Every length around the four-wide chunks, one and two weighted members: bit for bit
        // what summing the written-out mix gives, so the search picks the same weights.
        for n in [0, 1, 3, 4, 5, 8, 11, 40] {
            let v = |k: usize| (0..n).map(|i| noise(i * 3 + k) - 0.5).collect::<Vec<f64>>();
            let (base, a, b) = (v(0), v(1), v(2));
            let one: Vec<f64> = base.iter().zip(&a).map(|(x, y)| x + 0.3 * y).collect();
            let two: Vec<f64> = one.iter().zip(&b).map(|(x, z)| x + 0.6 * z).collect();
            assert_eq!(abs_sum_mixed(&base, (&a, 0.3), None).to_bits(), abs_sum(&one).to_bits(), "n {n}");
            assert_eq!(abs_sum_mixed(&base, (&a, 0.3), Some((&b, 0.6))).to_bits(), abs_sum(&two).to_bits(), "n {n}");
            let plain: f64 = two.iter().map(|x| x.abs()).sum();
            assert!((abs_sum(&two) - plain).abs() <= 1e-12 * plain.max(1.0), "n {n}");
        }
    }

    #[test]
    fn single_methods_forecast_with_the_fitted_smoothing_constant() {
        let y: Vec<f64> = (0..288 * 9).map(|i| daily(i) + 60.0 * noise(3 * i + 1)).collect();
        let f = ForecasterParams::default().fit(&y, 300.0, 36).unwrap();
        assert!(f.period().is_some());
        let (_, alpha) = *f.alphas.iter().find(|((m, _), _)| *m == Method::Ses).unwrap();
        // A later history whose own constant would differ (a random walk longer than `fit_rows`).
        let mut later = y.clone();
        later.extend((0..4500).scan(50.0, |v, i| {
            *v += 10.0 * noise(i + 7) - 5.0;
            Some(*v)
        }));
        for m in [Method::Ses, Method::Theta] {
            let hints = Hints { alpha: Some(alpha), ..Hints::default() };
            let fitted = forecast(m, &later, 36, f.period(), f.settings, hints).unwrap();
            let refit = forecast(m, &later, 36, f.period(), f.settings, Hints::default()).unwrap();
            assert_ne!(fitted, refit, "{m:?}: the check needs a history whose refit constant differs");
            assert_eq!(f.forecast_with(m, &later).unwrap(), fitted, "{m:?}");
        }
    }

    #[test]
    fn fitting_reads_only_the_history_it_is_given() {
        let y: Vec<f64> = (0..288 * 9).map(daily).collect();
        let mut z = y.clone();
        z.extend((0..288).map(|_| 1e6));
        let p = ForecasterParams::default();
        assert_eq!(p.fit(&y, 300.0, 36).unwrap(), p.fit(&z[..y.len()], 300.0, 36).unwrap());
    }
}
