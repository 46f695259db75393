//! Point forecasts of the statistical methods, each from a history slice (oldest first).

use serde::{Deserialize, Serialize};

/// One statistical forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The last value, repeated.
    LastValue,
    /// The value one period earlier.
    SeasonalNaive,
    /// The mean of the last `window` values.
    MovingAverage,
    /// The mean of the rows since the level last shifted, at most `long_window` (as long as a
    /// typical horizon): the long mean while the level holds, the values since a shift after one.
    MovingAverageLong,
    /// The mean of the values at the same phase over the last `seasons` periods.
    SeasonalMean,
    /// Simple exponential smoothing, smoothing constant fitted by one-step squared error.
    Ses,
    /// The Theta method: SES plus half the least-squares slope (Hyndman & Billah's form).
    Theta,
    /// Theta on the series less its additive seasonal profile, the profile added back.
    SeasonalTheta,
    /// The median of the rows since the level last shifted, at most `long_window` (the constant
    /// forecast with the least absolute error while the level holds: robust to the spikes of CPU
    /// and network series).
    MovingMedian,
    /// The median of the values at the same phase over the last `median_seasons` periods.
    SeasonalMedian,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 10] = [
        Self::LastValue,
        Self::SeasonalNaive,
        Self::MovingAverage,
        Self::MovingAverageLong,
        Self::SeasonalMean,
        Self::Ses,
        Self::Theta,
        Self::SeasonalTheta,
        Self::MovingMedian,
        Self::SeasonalMedian,
    ];

    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::LastValue => "last_value",
            Self::SeasonalNaive => "seasonal_naive",
            Self::MovingAverage => "moving_average",
            Self::MovingAverageLong => "moving_average_long",
            Self::SeasonalMean => "seasonal_mean",
            Self::Ses => "ses",
            Self::Theta => "theta",
            Self::SeasonalTheta => "seasonal_theta",
            Self::MovingMedian => "moving_median",
            Self::SeasonalMedian => "seasonal_median",
        }
    }

    /// Whether the method needs a seasonal period.
    pub fn seasonal(self) -> bool {
        matches!(self, Self::SeasonalNaive | Self::SeasonalMean | Self::SeasonalTheta | Self::SeasonalMedian)
    }
}

/// Settings shared by the methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct MethodSettings {
    /// Window of the moving average.
    pub(super) window: usize,
    /// Window of the long moving average.
    pub(super) long_window: usize,
    /// Periods averaged by the seasonal mean and the seasonal profile.
    pub(super) seasons: usize,
    /// Most recent values the smoothing methods are fitted on.
    pub(super) fit_rows: usize,
    /// Periods the seasonal median takes its median over.
    pub(super) median_seasons: usize,
}

/// The smoothing constant of SES, Theta and seasonal Theta fitted on `y` (a small grid, least
/// one-step squared error over the last `fit_rows` values, for seasonal Theta of the series less
/// its seasonal profile); `None` for the other methods or a seasonal method without a period.
pub(super) fn smoothing_constant(method: Method, y: &[f64], period: Option<usize>, s: MethodSettings) -> Option<f64> {
    let n = y.len();
    match method {
        Method::Ses | Method::Theta if n >= 2 => Some(fit_ses(&y[n.saturating_sub(s.fit_rows)..]).1),
        Method::SeasonalTheta => {
            let p = period.filter(|p| *p >= 2 && 2 * *p <= n)?;
            Some(fit_ses(&deseasonalised(y, p, s).1).1)
        }
        _ => None,
    }
}

/// The last `max(fit_rows, 2p)` values of `y` less its additive seasonal profile at period `p`,
/// and the profile (phase j is that of row `n − p + j`).
fn deseasonalised(y: &[f64], p: usize, s: MethodSettings) -> (Vec<f64>, Vec<f64>) {
    let n = y.len();
    let seasons = s.seasons.min(n / p).max(2);
    let profile = seasonal_profile(y, p, seasons);
    let adjusted = adjusted_rows(y, p, s, &profile);
    (profile, adjusted)
}

/// The last `max(fit_rows, 2p)` values of `y` less `profile` (see [`deseasonalised`]).
fn adjusted_rows(y: &[f64], p: usize, s: MethodSettings, profile: &[f64]) -> Vec<f64> {
    let n = y.len();
    // Phase of row i is (i + p − n % p) % p, so that row n − p + j has phase j; counted up from
    // the first row rather than divided per row.
    let start = n.saturating_sub(s.fit_rows.max(2 * p));
    let mut phase = (start + p - n % p) % p;
    y[start..]
        .iter()
        .map(|v| {
            let a = v - profile[phase];
            phase = if phase + 1 == p { 0 } else { phase + 1 };
            a
        })
        .collect()
}

/// What is already known about a history when forecasting from it (each `None`: computed).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Hints {
    /// The smoothing constant of the smoothing methods (fitted once, see [`smoothing_constant`]).
    pub(super) alpha: Option<f64>,
    /// The history's [`settled_window`] (shared by the long mean and median).
    pub(super) settled: Option<Settled>,
    /// Σ t·y and Σ y over Theta's rows (the last `fit_rows`, t counted from 0 at the first).
    pub(super) theta_sums: Option<(f64, f64)>,
}

/// The `h`-step point forecast of `method` from `y` (oldest first), `None` when the history is
/// too short for it (or a seasonal method has no period).
pub(super) fn forecast(method: Method, y: &[f64], h: usize, period: Option<usize>, s: MethodSettings, hints: Hints) -> Option<Vec<f64>> {
    let alpha = hints.alpha;
    let settled = || hints.settled.unwrap_or_else(|| settled_window(y, s.window, s.long_window));
    let n = y.len();
    if n == 0 || h == 0 {
        return None;
    }
    match method {
        Method::LastValue => Some(vec![y[n - 1]; h]),
        Method::MovingAverage | Method::MovingAverageLong => {
            let w = if method == Method::MovingAverage { s.window.min(n) } else { settled().rows };
            Some(vec![y[n - w..].iter().sum::<f64>() / w as f64; h])
        }
        Method::SeasonalNaive => {
            let p = period.filter(|p| *p >= 2 && *p <= n)?;
            Some((0..h).map(|k| y[n - p + k % p]).collect())
        }
        Method::SeasonalMean => {
            let p = period.filter(|p| *p >= 2 && *p <= n)?;
            let seasons = s.seasons.min(n / p).max(1);
            Some(
                (0..h)
                    .map(|k| {
                        let phase = n - p + k % p;
                        (0..seasons).map(|i| y[phase - i * p]).sum::<f64>() / seasons as f64
                    })
                    .collect(),
            )
        }
        Method::MovingMedian => Some(vec![settled().median; h]),
        Method::SeasonalMedian => {
            let p = period.filter(|p| *p >= 2 && *p <= n)?;
            let seasons = s.median_seasons.min(n / p).max(1);
            let mut buf = Vec::with_capacity(seasons);
            Some(
                (0..h)
                    .map(|k| {
                        let phase = n - p + k % p;
                        buf.clear();
                        buf.extend((0..seasons).map(|i| y[phase - i * p]));
                        median(&mut buf)
                    })
                    .collect(),
            )
        }
        Method::Ses => {
            let tail = &y[n.saturating_sub(s.fit_rows)..];
            let alpha = alpha.unwrap_or_else(|| fit_ses(tail).1);
            Some(vec![ses_level(tail, alpha); h])
        }
        Method::Theta => {
            let tail = &y[n.saturating_sub(s.fit_rows)..];
            let alpha = alpha.unwrap_or_else(|| fit_ses(tail).1);
            let sums = hints.theta_sums.unwrap_or_else(|| theta_sums(tail));
            Some(theta_from(tail.len(), ses_level(tail, alpha), sums, h, alpha))
        }
        Method::SeasonalTheta => {
            let p = period.filter(|p| *p >= 2 && 2 * *p <= n)?;
            let alpha = alpha.unwrap_or_else(|| fit_ses(&deseasonalised(y, p, s).1).1);
            let seasons = s.seasons.min(n / p).max(2);
            let profile = seasonal_profile(y, p, seasons);
            let adjusted = adjusted_rows(y, p, s, &profile);
            let base = theta_from(adjusted.len(), ses_level(&adjusted, alpha), theta_sums(&adjusted), h, alpha);
            Some(base.iter().enumerate().map(|(k, b)| b + profile[k % p]).collect())
        }
    }
}

/// The median of `v` (reordered in place; the mean of the middle two for an even count).
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    }
}

/// The rows since the level last shifted, at most `long` (and `y.len()`): of the windows `short`, 2·`short`,
/// … up to `long` rows (`short` = twice the moving average's window), the longest whose every
/// added block (the rows from the previous window's start back to its own) has a median within
/// `SHIFT_SCALES` robust scales (1.4826 × MAD of the long window) of the short window's median.
pub(super) fn settled_window(y: &[f64], short: usize, long: usize) -> Settled {
    const SHIFT_SCALES: f64 = 3.0;
    let n = y.len();
    let long = long.min(n);
    let short = (2 * short).clamp(1, long);
    let mut buf: Vec<f64> = y[n - long..].to_vec();
    let m_long = median(&mut buf);
    buf.iter_mut().for_each(|v| *v = (*v - m_long).abs());
    let band = SHIFT_SCALES * 1.4826 * median(&mut buf);
    let block_median = |from: usize, to: usize, buf: &mut Vec<f64>| {
        buf.clear();
        buf.extend_from_slice(&y[n - to..n - from]);
        median(buf)
    };
    let m_short = block_median(0, short, &mut buf);
    let mut best = short;
    while best < long {
        let w = (best * 2).min(long);
        if (block_median(best, w, &mut buf) - m_short).abs() > band {
            break;
        }
        best = w;
    }
    // The window's median: known already for the long and the short window.
    let median_of_window = if best == long {
        m_long
    } else if best == short {
        m_short
    } else {
        block_median(0, best, &mut buf)
    };
    Settled { rows: best, median: median_of_window }
}

/// A [`settled_window`]: its rows and their median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Settled {
    /// Rows since the level last shifted (at most the long window).
    pub(super) rows: usize,
    /// Their median.
    pub(super) median: f64,
}

/// SES over `y`: the final level and the smoothing constant (the one of a small grid with the
/// smallest one-step squared error).
fn fit_ses(y: &[f64]) -> (f64, f64) {
    let mut best = (f64::INFINITY, y[y.len() - 1], 1.0);
    for alpha in ALPHAS {
        let mut level = y[0];
        let mut sse = 0.0;
        for &v in &y[1..] {
            let e = v - level;
            sse += e * e;
            level += alpha * e;
        }
        if sse < best.0 {
            best = (sse, level, alpha);
        }
    }
    (best.1, best.2)
}

/// The SES level at the end of `y` for smoothing constant `alpha`, from the last rows whose
/// weight is still above 1e-9 (earlier ones cannot move it), started at the first of them:
/// the recursion `ℓ ← ℓ + α (v − ℓ)` unrolled into `(1 − α)^(m−1) y_s + Σ_k α (1 − α)^k y_(n−1−k)`,
/// a dot product with the weights of the grid's constants (no serial dependency per row).
fn ses_level(y: &[f64], alpha: f64) -> f64 {
    let n = y.len();
    let tail = &y[n.saturating_sub(ses_reach(alpha))..];
    let m = tail.len();
    let Some(w) = grid_weights(alpha) else {
        return tail[1..].iter().fold(tail[0], |level, v| level + alpha * (v - level));
    };
    // tail[m − 1 − k] has weight w[k] for k < m − 1; tail[0] the rest, (1 − α)^(m − 1).
    let mut lanes = [0.0f64; 4];
    let recent = &tail[1..];
    let weights = &w[..m - 1];
    let mut k = 0;
    while k + 4 <= recent.len() {
        for (lane, acc) in lanes.iter_mut().enumerate() {
            *acc += weights[k + lane] * recent[recent.len() - 1 - k - lane];
        }
        k += 4;
    }
    let mut level = lanes.iter().sum::<f64>();
    while k < recent.len() {
        level += weights[k] * recent[recent.len() - 1 - k];
        k += 1;
    }
    level + (1.0 - alpha).powi((m - 1) as i32) * tail[0]
}

/// The smoothing constants [`fit_ses`] chooses from.
const ALPHAS: [f64; 9] = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0];

/// `α (1 − α)^k` for k below [`ses_reach`], for each constant of [`ALPHAS`] (computed once).
fn grid_weights(alpha: f64) -> Option<&'static [f64]> {
    static TABLES: std::sync::OnceLock<Vec<Vec<f64>>> = std::sync::OnceLock::new();
    let i = ALPHAS.iter().position(|a| *a == alpha)?;
    let tables = TABLES.get_or_init(|| {
        ALPHAS.iter().map(|&a| (0..ses_reach(a)).scan(a, |w, _| Some(std::mem::replace(w, *w * (1.0 - a)))).collect()).collect()
    });
    Some(&tables[i])
}

/// Rows back from the end whose SES weight for `alpha` is still above 1e-9.
fn ses_reach(alpha: f64) -> usize {
    if alpha >= 1.0 { 1 } else { ((1e-9f64).ln() / (1.0 - alpha).ln()).ceil() as usize + 1 }
}

/// The Theta method's forecast: SES level plus half the least-squares slope, as
/// `ℓ + b/2 · (k − 1 + 1/α)` for step k = 1..h (the `(1 − α)^n` term vanishes for long series).
fn theta_from(n: usize, level: f64, (ty, sy): (f64, f64), h: usize, alpha: f64) -> Vec<f64> {
    if n < 3 {
        return vec![level; h];
    }
    // Least-squares slope on t = 0..n−1: Σ (t − t̄) y / Σ (t − t̄)², the latter n (n² − 1) / 12,
    // and Σ (t − t̄) y = Σ t y − t̄ Σ y.
    let (nf, mean_t) = (n as f64, (n as f64 - 1.0) / 2.0);
    let slope = (ty - mean_t * sy) / (nf * (nf * nf - 1.0) / 12.0);
    (1..=h).map(|k| level + slope / 2.0 * (k as f64 - 1.0 + 1.0 / alpha)).collect()
}

/// Σ t·y and Σ y over `y` (t = 0, 1, …), each in four independent lanes.
pub(super) fn theta_sums(y: &[f64]) -> (f64, f64) {
    let (mut ty, mut sy) = ([0.0f64; 4], [0.0f64; 4]);
    let mut t = [0.0, 1.0, 2.0, 3.0];
    let chunks = y.chunks_exact(4);
    let rest = chunks.remainder();
    for block in chunks {
        for lane in 0..4 {
            ty[lane] += t[lane] * block[lane];
            sy[lane] += block[lane];
            t[lane] += 4.0;
        }
    }
    let (mut ty, mut sy) = (ty.iter().sum::<f64>(), sy.iter().sum::<f64>());
    let base = (y.len() - rest.len()) as f64;
    for (i, v) in rest.iter().enumerate() {
        ty += (base + i as f64) * v;
        sy += v;
    }
    (ty, sy)
}

/// Additive seasonal profile (mean zero) of the last `seasons` periods of `y`, by phase, where
/// phase j is that of row `n − p + j`.
fn seasonal_profile(y: &[f64], p: usize, seasons: usize) -> Vec<f64> {
    let n = y.len();
    let span = &y[n - seasons * p..];
    let mean = span.iter().sum::<f64>() / span.len() as f64;
    (0..p).map(|j| (0..seasons).map(|i| y[n - p + j - i * p]).sum::<f64>() / seasons as f64 - mean).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: MethodSettings = MethodSettings { window: 4, long_window: 8, seasons: 3, fit_rows: 1000, median_seasons: 5 };

    #[test]
    fn each_method_forecasts_what_it_promises() {
        let y: Vec<f64> = (0..48).map(|i| (i % 6) as f64).collect();
        assert_eq!(forecast(Method::LastValue, &y, 3, None, S, Hints::default()), Some(vec![5.0; 3]));
        assert_eq!(forecast(Method::SeasonalNaive, &y, 7, Some(6), S, Hints::default()), Some(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0]));
        assert_eq!(forecast(Method::SeasonalMean, &y, 2, Some(6), S, Hints::default()), Some(vec![0.0, 1.0]));
        assert_eq!(forecast(Method::MovingAverage, &y, 1, None, S, Hints::default()), Some(vec![3.5]));
        assert_eq!(forecast(Method::MovingAverageLong, &y, 1, None, S, Hints::default()), Some(vec![3.0]));
        assert_eq!(forecast(Method::SeasonalNaive, &y, 3, None, S, Hints::default()), None, "no period");
        // A pure seasonal pattern: seasonal theta reproduces it; a straight line: theta follows it.
        let st = forecast(Method::SeasonalTheta, &y, 6, Some(6), S, Hints::default()).unwrap();
        for (k, v) in st.iter().enumerate() {
            assert!((v - k as f64).abs() < 1e-6, "{st:?}");
        }
        let line: Vec<f64> = (0..100).map(|i| 2.0 * i as f64).collect();
        let th = forecast(Method::Theta, &line, 2, None, S, Hints::default()).unwrap();
        assert!((th[0] - 200.0).abs() < 1.5 && th[1] > th[0], "{th:?}");
        let ses = forecast(Method::Ses, &[1.0, 1.0, 5.0, 5.0, 5.0, 5.0], 1, None, S, Hints::default()).unwrap();
        // Medians ignore a spike; the seasonal median a one-off day.
        let spiky = [1.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(forecast(Method::MovingMedian, &spiky, 2, None, S, Hints::default()), Some(vec![1.0; 2]));
        let mut days: Vec<f64> = (0..30).map(|i| (i % 6) as f64).collect();
        days[26] = 50.0;
        assert_eq!(forecast(Method::SeasonalMedian, &days, 3, Some(6), S, Hints::default()), Some(vec![0.0, 1.0, 2.0]));
        assert!((ses[0] - 5.0).abs() < 0.1, "{ses:?}");
    }

    #[test]
    fn the_unrolled_ses_level_is_the_recursion() {
        let y: Vec<f64> = (0..1500).map(|i| ((i * 37) % 101) as f64 + (i as f64 / 50.0).sin() * 20.0).collect();
        for alpha in ALPHAS.into_iter().chain([0.33]) {
            for n in [1usize, 2, 5, 999, 1500] {
                let tail = &y[n.saturating_sub(ses_reach(alpha))..n];
                let recursion = tail[1..].iter().fold(tail[0], |l, v| l + alpha * (v - l));
                let unrolled = ses_level(&y[..n], alpha);
                assert!((recursion - unrolled).abs() < 1e-9 * recursion.abs().max(1.0), "α {alpha}, n {n}: {recursion} vs {unrolled}");
            }
        }
    }

    #[test]
    fn long_windows_restart_after_a_level_shift_and_not_for_a_spike() {
        let s = MethodSettings { window: 12, long_window: 180, ..S };
        // 170 rows around 10, then 20 rows around 40: the long mean and median follow the new
        // level (they use the rows since the shift), not the 180-row mix.
        let wobble = |i: usize| [0.0, 0.5, -0.5, 1.0][i % 4];
        let mut y: Vec<f64> = (0..170).map(|i| 10.0 + wobble(i)).collect();
        y.extend((0..30).map(|i| 40.0 + wobble(i)));
        for m in [Method::MovingAverageLong, Method::MovingMedian] {
            let f = forecast(m, &y, 1, None, s, Hints::default()).unwrap()[0];
            assert!((f - 40.0).abs() < 1.0, "{m:?} {f}");
        }
        // One spike in a steady level keeps the whole window (the median ignores it).
        let mut steady: Vec<f64> = (0..200).map(|i| 10.0 + wobble(i)).collect();
        steady[195] = 90.0;
        assert_eq!(settled_window(&steady, 12, 180).rows, 180);
        assert!((forecast(Method::MovingMedian, &steady, 1, None, s, Hints::default()).unwrap()[0] - 10.25).abs() < 0.3);
    }
}
