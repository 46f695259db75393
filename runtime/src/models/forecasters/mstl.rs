//! MSTL with an ETS trend: the series less one additive seasonal component per period
//! (iterated moving-average decomposition, as MSTL iterates STL), forecast by exponential
//! smoothing with a damped additive trend (ETS(A,Ad,N)), the components added back at the
//! forecast rows' phases.
//!
//! Our own rather than `augurs-mstl` + `augurs-ets`: `auto` re-runs every member from 80
//! validation origins per series, and 100,000 series must fit in a minute on one core. Here the
//! decomposition is computed once per fit (and again on the history at forecast time), and the
//! smoothing state at an origin is two dot products with weights cached per parameter set.

use serde::Serialize;

/// Smoothing constants of the level (α) tried, the best by one-step squared error.
const LEVEL_CONSTANTS: [f64; 7] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0];
/// Trend constant (β) and damping (φ) pairs tried with the chosen α, next to no trend.
const TREND_CONSTANTS: [(f64, f64); 4] = [(0.01, 0.9), (0.05, 0.9), (0.01, 0.95), (0.05, 0.95)];
/// Weights below this share of the first are dropped from the smoothing state's dot products.
const REACH_TOLERANCE: f64 = 1e-7;

/// ETS(A,Ad,N) parameters: level and trend smoothing constants and the damping factor (β = 0:
/// no trend, simple exponential smoothing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EtsParams {
    /// Level smoothing constant α.
    pub alpha: f64,
    /// Trend smoothing constant β (0: no trend).
    pub beta: f64,
    /// Damping factor φ of the trend.
    pub phi: f64,
}

impl EtsParams {
    /// The transition `s' = A s + c d` of the state (level, trend).
    fn transition(self) -> ([[f64; 2]; 2], [f64; 2]) {
        let EtsParams { alpha: a, beta: b, phi } = self;
        ([[1.0 - a, (1.0 - a) * phi], [-b, phi * (1.0 - b)]], [a, b])
    }

    /// Level and trend after running over `d`, started at level `d[0]` and no trend, and the sum
    /// of squared one-step errors.
    fn run(self, d: &[f64]) -> (f64, f64, f64) {
        let (mut level, mut trend, mut sse) = (d[0], 0.0, 0.0);
        for &v in &d[1..] {
            let f = level + self.phi * trend;
            let e = v - f;
            sse += e * e;
            level = f + self.alpha * e;
            trend = self.phi * trend + self.beta * e;
        }
        (level, trend, sse)
    }

    /// The best parameters for `d` by one-step squared error: α first without a trend, then the
    /// damped trends with that α (each grid's runs in one pass, side by side).
    fn fit(d: &[f64]) -> Self {
        let no_trend = LEVEL_CONSTANTS.map(|alpha| EtsParams { alpha, beta: 0.0, phi: 1.0 });
        let (i, sse) = best_of(&no_trend, d);
        let alpha = no_trend[i].alpha;
        let trended = TREND_CONSTANTS.map(|(beta, phi)| EtsParams { alpha, beta, phi });
        let (j, trend_sse) = best_of(&trended, d);
        // A trend must earn its keep: 0.5 % less error than none.
        if trend_sse < 0.995 * sse { trended[j] } else { no_trend[i] }
    }
}

/// The parameters of `grid` with the least one-step squared error over `d` (index, error); the
/// recursions run in one pass over `d`.
fn best_of<const K: usize>(grid: &[EtsParams; K], d: &[f64]) -> (usize, f64) {
    let (mut level, mut trend, mut sse) = ([d[0]; K], [0.0; K], [0.0; K]);
    for &v in &d[1..] {
        for k in 0..K {
            let p = grid[k];
            let f = level[k] + p.phi * trend[k];
            let e = v - f;
            sse[k] += e * e;
            level[k] = f + p.alpha * e;
            trend[k] = p.phi * trend[k] + p.beta * e;
        }
    }
    sse.iter().enumerate().fold((0, f64::INFINITY), |best, (k, s)| if *s < best.1 { (k, *s) } else { best })
}

/// The state (level, trend) at the end of `d` as dot products: `s_n = Σ_j A^j c d[n−1−j] +
/// A^(m−1) (d[n−m], 0)` over the last `m` rows, the weights `A^j c` cached.
#[derive(Debug, Clone, PartialEq)]
struct StateWeights {
    level: Vec<f64>,
    trend: Vec<f64>,
    /// First column of `A^(m−1)` (the start row's share of level and trend).
    start: [f64; 2],
}

impl StateWeights {
    fn new(p: EtsParams, max_rows: usize) -> Self {
        let (a, c) = p.transition();
        let (mut level, mut trend) = (Vec::new(), Vec::new());
        let mut v = c;
        // Column of A^j applied to (1, 0): the start row's share.
        let mut start = [1.0, 0.0];
        let first = c[0].abs().max(c[1].abs()).max(1e-12);
        while level.len() + 1 < max_rows.max(1) {
            level.push(v[0]);
            trend.push(v[1]);
            v = [a[0][0] * v[0] + a[0][1] * v[1], a[1][0] * v[0] + a[1][1] * v[1]];
            start = [a[0][0] * start[0] + a[0][1] * start[1], a[1][0] * start[0] + a[1][1] * start[1]];
            if v[0].abs().max(v[1].abs()) < REACH_TOLERANCE * first && start[0].abs().max(start[1].abs()) < REACH_TOLERANCE {
                break;
            }
        }
        Self { level, trend, start }
    }

    /// Rows the state reads (the weighted ones and the start row).
    fn rows(&self) -> usize {
        self.level.len() + 1
    }

    /// Level and trend at the end of `d` (at least [`StateWeights::rows`] long). The sums run in
    /// four interleaved lanes each (independent chains the processor overlaps: validation reads
    /// the state at every origin).
    fn state(&self, d: &[f64]) -> (f64, f64) {
        let n = d.len();
        let m = self.rows();
        // Weight j reads row n − 1 − j: the weighted rows read backwards.
        let recent = &d[n - self.level.len()..];
        let (mut level, mut trend) = ([0.0f64; 4], [0.0f64; 4]);
        let rows = recent.rchunks_exact(4);
        let tail_rows = rows.remainder();
        let (wl, wt) = (self.level.chunks_exact(4), self.trend.chunks_exact(4));
        let (tail_l, tail_t) = (wl.remainder(), wt.remainder());
        for ((r, l), t) in rows.zip(wl).zip(wt) {
            for lane in 0..4 {
                level[lane] += l[lane] * r[3 - lane];
                trend[lane] += t[lane] * r[3 - lane];
            }
        }
        // The remaining weights read the oldest rows, newest first.
        let (mut tl, mut tt) = (0.0, 0.0);
        for ((l, t), v) in tail_l.iter().zip(tail_t).zip(tail_rows.iter().rev()) {
            tl += l * v;
            tt += t * v;
        }
        let start = d[n - m];
        (
            self.start[0] * start + ((level[0] + level[1]) + (level[2] + level[3])) + tl,
            self.start[1] * start + ((trend[0] + trend[1]) + (trend[2] + trend[3])) + tt,
        )
    }
}

/// A fitted MSTL: the seasonal profiles (profile `k` at row `i` is `profiles[k][i % periods[k]]`,
/// rows counted from the start of the history), the ETS parameters of the adjusted series, and
/// the deseasonalised rows of the history that forecasts read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MstlFit {
    periods: Vec<usize>,
    profiles: Vec<Vec<f64>>,
    params: EtsParams,
    weights: StateWeights,
    /// `fit_rows`: the decomposition reads at least these (see [`decomposition_rows`]).
    rows: usize,
    /// Rows `offset..` of the history less its seasonal components.
    adjusted: Vec<f64>,
    /// The history's row of `adjusted[0]`.
    offset: usize,
}

impl MstlFit {
    /// Decompose `y` at `periods` (those that fit twice in the rows read) and fit the ETS
    /// parameters on the last `fit_rows` rows of the adjusted series.
    pub(super) fn fit(y: &[f64], periods: &[usize], fit_rows: usize) -> Option<Self> {
        if y.len() < 3 {
            return None;
        }
        let (periods, profiles) = decompose(y, periods, decomposition_rows(y.len(), periods, fit_rows));
        let offset = y.len().saturating_sub(fit_rows);
        let adjusted = adjust(y, offset, &periods, &profiles);
        let params = EtsParams::fit(&adjusted);
        let weights = StateWeights::new(params, fit_rows);
        Some(Self { periods, profiles, params, weights, rows: fit_rows, adjusted, offset })
    }

    /// The same profiles and parameters over a longer history `y` (which starts where the
    /// fitted one did): the validation origins after the fitted part read it.
    pub(super) fn with_history(&self, y: &[f64]) -> Self {
        // Origins after the fitted history read at most the state's rows before them.
        let offset = self.adjusted.len().saturating_sub(self.weights.rows()) + self.offset;
        Self { adjusted: adjust(y, offset, &self.periods, &self.profiles), offset, ..self.clone() }
    }

    /// The same parameters, the decomposition done again on `y` (the history forecast from).
    pub(super) fn refresh(&self, y: &[f64]) -> Option<Self> {
        if y.len() < 3 {
            return None;
        }
        let (periods, profiles) = decompose(y, &self.periods, decomposition_rows(y.len(), &self.periods, self.rows));
        let offset = y.len().saturating_sub(self.weights.rows());
        let adjusted = adjust(y, offset, &periods, &profiles);
        Some(Self { periods, profiles, adjusted, offset, ..self.clone() })
    }

    /// The ETS parameters.
    pub(super) fn params(&self) -> EtsParams {
        self.params
    }

    /// The periods decomposed.
    #[cfg(test)]
    pub(super) fn periods(&self) -> &[usize] {
        &self.periods
    }

    /// The forecast from the first `n` rows of the fitted history (n ≥ 3) into `out` (its
    /// length is the horizon); false when there is none.
    pub(super) fn forecast_into(&self, n: usize, out: &mut [f64]) -> bool {
        if n < 3 || n < self.offset || n - self.offset > self.adjusted.len() {
            return false;
        }
        let d = &self.adjusted[..n - self.offset];
        let (level, trend) = if d.len() >= self.weights.rows() {
            self.weights.state(d)
        } else if self.offset > 0 {
            return false;
        } else {
            let (l, t, _) = self.params.run(d);
            (l, t)
        };
        // The seasons of each step first (summed in the periods' order, each period's phase
        // counted along the steps: no division per step), then the level and damped trend.
        out.fill(0.0);
        for (p, prof) in self.periods.iter().zip(&self.profiles) {
            for (o, phase) in out.iter_mut().zip((n % p..*p).chain((0..*p).cycle())) {
                *o += prof[phase];
            }
        }
        let (mut damped, mut factor) = (0.0, 1.0);
        for o in out.iter_mut() {
            factor *= self.params.phi;
            damped += factor;
            // (Addition commutes: the step's seasons added last, as a sum written out adds them.)
            *o += level + trend * damped;
        }
        true
    }

    /// The `h`-step forecast from the first `n` rows of the fitted history (n ≥ 3).
    #[cfg(test)]
    fn forecast(&self, n: usize, h: usize) -> Option<Vec<f64>> {
        let mut out = vec![0.0; h];
        self.forecast_into(n, &mut out).then_some(out)
    }
}

/// Rows the decomposition reads: at least `fit_rows`, three of the longest period (when the
/// history holds them), at most the history.
fn decomposition_rows(n: usize, periods: &[usize], fit_rows: usize) -> usize {
    let longest = periods.iter().copied().filter(|p| 2 * p <= n).max().unwrap_or(0);
    fit_rows.max(3 * longest).min(n)
}

/// Seasonal profiles of the last `rows` rows of `y` at the periods that fit twice in them
/// (ascending), each anchored at row 0 of `y`: two passes, each period's profile taken from the
/// series less the other profiles and less its centred moving average over one period.
fn decompose(y: &[f64], periods: &[usize], rows: usize) -> (Vec<usize>, Vec<Vec<f64>>) {
    let n = y.len();
    let start = n - rows.min(n);
    let seg = &y[start..];
    let mut ps: Vec<usize> = periods.iter().copied().filter(|p| *p >= 2 && 2 * p <= seg.len()).collect();
    ps.sort_unstable();
    ps.dedup();
    let mut profiles: Vec<Vec<f64>> = ps.iter().map(|p| vec![0.0; *p]).collect();
    let mut x = vec![0.0; seg.len()];
    for _pass in 0..2 {
        for k in 0..ps.len() {
            // The series less the other components. Phases are counted along the rows (a
            // division per row was a tenth of a fit).
            let mut phases: Vec<usize> = ps.iter().map(|p| start % p).collect();
            for (xi, v) in x.iter_mut().zip(seg) {
                let mut others = 0.0;
                for (j, ((p, prof), phase)) in ps.iter().zip(&profiles).zip(&mut phases).enumerate() {
                    if j != k {
                        others += prof[*phase];
                    }
                    *phase = if *phase + 1 == *p { 0 } else { *phase + 1 };
                }
                *xi = v - others;
            }
            let trend = centred_moving_average(&x, ps[k]);
            let p = ps[k];
            let (mut sum, mut count) = (vec![0.0; p], vec![0usize; p]);
            let mut phase = start % p;
            for (xi, t) in x.iter().zip(&trend) {
                sum[phase] += xi - t;
                count[phase] += 1;
                phase = if phase + 1 == p { 0 } else { phase + 1 };
            }
            let mut prof: Vec<f64> = sum.iter().zip(&count).map(|(s, c)| s / (*c).max(1) as f64).collect();
            let mean = prof.iter().sum::<f64>() / p as f64;
            prof.iter_mut().for_each(|v| *v -= mean);
            profiles[k] = prof;
        }
    }
    (ps, profiles)
}

/// Rows `offset..` of `y` less its seasonal components (profiles anchored at row 0).
fn adjust(y: &[f64], offset: usize, periods: &[usize], profiles: &[Vec<f64>]) -> Vec<f64> {
    let mut out = y[offset..].to_vec();
    for (p, prof) in periods.iter().zip(profiles) {
        let mut phase = offset % p;
        for v in &mut out {
            *v -= prof[phase];
            phase = if phase + 1 == *p { 0 } else { phase + 1 };
        }
    }
    out
}

/// Centred moving average of `x` over `p` rows (a 2 × p average for even `p`), the rows within
/// half a period of either end held at the nearest full average.
fn centred_moving_average(x: &[f64], p: usize) -> Vec<f64> {
    let n = x.len();
    let mut prefix = vec![0.0; n + 1];
    for (i, v) in x.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    let half = p / 2;
    let mut out = vec![0.0; n];
    if n < p + 1 {
        let mean = prefix[n] / n.max(1) as f64;
        out.iter_mut().for_each(|v| *v = mean);
        return out;
    }
    for (i, o) in out.iter_mut().enumerate().take(n - half).skip(half) {
        *o = if p % 2 == 1 {
            (prefix[i + half + 1] - prefix[i - half]) / p as f64
        } else {
            // Rows i − p/2 and i + p/2 at half weight, the p − 1 between at full weight.
            (prefix[i + half] - prefix[i - half + 1] + 0.5 * (x[i - half] + x[i + half])) / p as f64
        };
    }
    let (first, last) = (out[half], out[n - half - 1]);
    out[..half].iter_mut().for_each(|v| *v = first);
    out[n - half..].iter_mut().for_each(|v| *v = last);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_as_dot_products_is_the_recursion() {
        let d: Vec<f64> = (0..1500).map(|i| ((i * 37) % 101) as f64 + i as f64 * 0.05).collect();
        for alpha in LEVEL_CONSTANTS {
            for &(beta, phi) in TREND_CONSTANTS.iter().chain(&[(0.0, 1.0)]) {
                let p = EtsParams { alpha, beta, phi };
                let w = StateWeights::new(p, 1000);
                let tail = &d[d.len() - w.rows()..];
                let (l, t, _) = p.run(tail);
                let (l2, t2) = w.state(&d);
                assert!(
                    (l - l2).abs() < 1e-6 * l.abs().max(1.0) && (t - t2).abs() < 1e-6 * l.abs().max(1.0),
                    "{p:?}: {l} {t} vs {l2} {t2}"
                );
            }
        }
    }

    #[test]
    fn two_seasons_and_a_trend_are_decomposed_and_forecast() {
        // A daily (24) and a weekly (168) pattern on a slow upward trend, no noise.
        let f = |i: usize| {
            let day = [0.0, 0.0, 0.0, 5.0, 9.0, 5.0][(i % 24) / 4];
            let week = if (i % 168) >= 120 { -4.0 } else { 1.0 };
            20.0 + 0.01 * i as f64 + day + week
        };
        let y: Vec<f64> = (0..168 * 4).map(f).collect();
        let fit = MstlFit::fit(&y, &[24, 168], 400).unwrap();
        assert_eq!(fit.periods(), &[24, 168]);
        let fc = fit.forecast(y.len(), 48).unwrap();
        let n = y.len();
        let mae = fc.iter().enumerate().map(|(k, v)| (v - f(n + k)).abs()).sum::<f64>() / 48.0;
        // Seasonal naive at the week is off by the week's trend (1.68); one period alone misses the other.
        let weekly_naive = (0..48).map(|k| (y[n - 168 + k] - f(n + k)).abs()).sum::<f64>() / 48.0;
        let daily_naive = (0..48).map(|k| (y[n - 24 + k % 24] - f(n + k)).abs()).sum::<f64>() / 48.0;
        assert!(mae < 0.5 * weekly_naive && mae < 0.5 * daily_naive, "MAE {mae} vs {weekly_naive} / {daily_naive}: {fc:?}");
        // A period that does not fit twice is left out: plain ETS.
        let short = MstlFit::fit(&y[..300], &[24, 168], 400).unwrap();
        assert_eq!(short.periods(), &[24]);
    }

    #[test]
    fn a_linear_trend_is_followed_and_noise_has_none() {
        let line: Vec<f64> = (0..600).map(|i| 3.0 * i as f64).collect();
        let fit = MstlFit::fit(&line, &[], 500).unwrap();
        assert!(fit.params().beta > 0.0, "{:?}", fit.params());
        let fc = fit.forecast(line.len(), 5).unwrap();
        assert!(fc[4] > fc[0] && (fc[0] - 1800.0).abs() < 10.0, "{fc:?}");
        let noise: Vec<f64> = (0..600).map(|i| ((i * 7919) % 13) as f64).collect();
        assert_eq!(MstlFit::fit(&noise, &[], 500).unwrap().params().beta, 0.0);
    }
}
