//! Point forecasts of the statistical methods, each from a history slice (oldest first).

use serde::{Deserialize, Serialize};

use super::mstl::MstlFit;

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
    /// The median of the rows since the level last shifted, at most `long_window` (the constant
    /// forecast with the least absolute error while the level holds: robust to the spikes of CPU
    /// and network series).
    MovingMedian,
    /// The median of the values at the same phase over the last `median_seasons` periods, each
    /// moved by the change of level since its period (the median of the last rows now less the
    /// median of the same rows then, over `median_level_share` of the period): a level shift
    /// moves the whole profile at once instead of one period at a time.
    SeasonalMedian,
    /// MSTL with an ETS trend: the series less its seasonal components (one per detected period),
    /// forecast by exponential smoothing with a damped additive trend, the components added back
    /// (plain ETS when no period is found).
    Mstl,
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
        Self::MovingMedian,
        Self::SeasonalMedian,
        Self::Mstl,
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
            Self::MovingMedian => "moving_median",
            Self::SeasonalMedian => "seasonal_median",
            Self::Mstl => "mstl",
        }
    }

    /// Preference among members that validation cannot tell apart (equal errors: a flat
    /// stretch, a constant series), lowest first: the ones a single outlier moves least. The
    /// moving median ignores an isolated blip and restarts after a shift; the last value
    /// repeats whatever the last row was for the whole horizon, so it comes last.
    pub fn tie_rank(self) -> u8 {
        match self {
            Self::MovingMedian => 0,
            Self::SeasonalMedian => 1,
            Self::MovingAverageLong => 2,
            Self::Mstl => 3,
            Self::Ses => 4,
            Self::Theta => 5,
            Self::MovingAverage => 6,
            Self::SeasonalMean => 7,
            Self::SeasonalNaive => 8,
            Self::LastValue => 9,
        }
    }

    /// Whether the method needs a seasonal period.
    pub fn seasonal(self) -> bool {
        matches!(self, Self::SeasonalNaive | Self::SeasonalMean | Self::SeasonalMedian)
    }
}

/// Settings shared by the methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct MethodSettings {
    /// Window of the moving average.
    pub(super) window: usize,
    /// Window of the long moving average.
    pub(super) long_window: usize,
    /// Periods the seasonal mean averages.
    pub(super) seasons: usize,
    /// Most recent values the smoothing methods are fitted on.
    pub(super) fit_rows: usize,
    /// Periods the seasonal median takes its median over.
    pub(super) median_seasons: usize,
    /// Share of the period the seasonal median's level windows cover (at least twice `window`).
    pub(super) median_level_share: f64,
    /// Rows whose median, where it lies outside the range of the history before the long
    /// window, is the level of the moving median and the long mean at forecast time (0: off).
    pub(super) novel_level_rows: usize,
}

/// The smoothing constant of SES and Theta fitted on `y` (a small grid, least one-step squared
/// error over the last `fit_rows` values); `None` for the other methods.
pub(super) fn smoothing_constant(method: Method, y: &[f64], s: MethodSettings) -> Option<f64> {
    let n = y.len();
    match method {
        Method::Ses | Method::Theta if n >= 2 => Some(fit_ses(&y[n.saturating_sub(s.fit_rows)..]).1),
        _ => None,
    }
}

/// What is already known about a history when forecasting from it (each `None`: computed).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Hints<'a> {
    /// The smoothing constant of the smoothing methods (fitted once, see [`smoothing_constant`]).
    pub(super) alpha: Option<f64>,
    /// The history's [`settled_window`] (shared by the long mean and median).
    pub(super) settled: Option<Settled>,
    /// Σ t·y and Σ y over Theta's rows (the last `fit_rows`, t counted from 0 at the first).
    pub(super) theta_sums: Option<(f64, f64)>,
    /// The MSTL decomposition and parameters over (at least) this history; MSTL forecasts
    /// nothing without it.
    pub(super) mstl: Option<&'a MstlFit>,
}

/// The `h`-step point forecast of `method` from `y` (oldest first), `None` when the history is
/// too short for it (or a seasonal method has no period).
pub(super) fn forecast(method: Method, y: &[f64], h: usize, period: Option<usize>, s: MethodSettings, hints: Hints) -> Option<Vec<f64>> {
    let mut out = vec![0.0; h];
    forecast_into(method, y, &mut out, period, s, hints).then_some(out)
}

/// [`forecast`] into `out` (its length is the horizon); false when there is none.
pub(super) fn forecast_into(method: Method, y: &[f64], out: &mut [f64], period: Option<usize>, s: MethodSettings, hints: Hints) -> bool {
    let alpha = hints.alpha;
    let settled = || hints.settled.unwrap_or_else(|| settled_window(y, s.window, s.long_window));
    let n = y.len();
    if n == 0 || out.is_empty() {
        return false;
    }
    let period = period.filter(|p| *p >= 2 && *p <= n);
    match method {
        Method::LastValue => out.fill(y[n - 1]),
        Method::MovingAverage | Method::MovingAverageLong => {
            let w = if method == Method::MovingAverage { s.window.min(n) } else { settled().rows };
            out.fill(y[n - w..].iter().sum::<f64>() / w as f64);
        }
        Method::SeasonalNaive => {
            let Some(p) = period else { return false };
            // Phases counted along (no division per step).
            out.iter_mut().zip((0..p).cycle()).for_each(|(o, j)| *o = y[n - p + j]);
        }
        Method::SeasonalMean => {
            let Some(p) = period else { return false };
            let seasons = s.seasons.min(n / p).max(1);
            for (o, j) in out.iter_mut().zip((0..p).cycle()) {
                let phase = n - p + j;
                *o = (0..seasons).map(|i| y[phase - i * p]).sum::<f64>() / seasons as f64;
            }
        }
        Method::MovingMedian => out.fill(settled().median),
        Method::SeasonalMedian => {
            let Some(p) = period else { return false };
            seasonal_median(y, p, s, out);
        }
        Method::Mstl => {
            let Some(m) = hints.mstl else { return false };
            return m.forecast_into(n, out);
        }
        Method::Ses => {
            let tail = &y[n.saturating_sub(s.fit_rows)..];
            let alpha = alpha.unwrap_or_else(|| fit_ses(tail).1);
            out.fill(ses_level(tail, alpha));
        }
        Method::Theta => {
            let tail = &y[n.saturating_sub(s.fit_rows)..];
            let alpha = alpha.unwrap_or_else(|| fit_ses(tail).1);
            let sums = hints.theta_sums.unwrap_or_else(|| theta_sums(tail));
            theta_into(tail.len(), ses_level(tail, alpha), sums, alpha, out);
        }
    }
    true
}

/// The level-adjusted seasonal median ([`Method::SeasonalMedian`]) at period `p` into `out`.
fn seasonal_median(y: &[f64], p: usize, s: MethodSettings, out: &mut [f64]) {
    let n = y.len();
    let seasons = s.median_seasons.min(n / p).max(1);
    // Season i (i + 1 periods back) is moved by the level now less the level then, each the
    // median of `level_rows` rows (0 where the history is too short for it): a share of the
    // period (an hour and a half of a day by default), so a level is read over the same span
    // of the cycle whatever the sampling interval, and at least twice the moving average's
    // window.
    let level_rows = ((p as f64 * s.median_level_share).round() as usize).max(2 * s.window).max(1);
    let mut buf = Vec::with_capacity(level_rows.max(seasons));
    let level = |end: usize, buf: &mut Vec<f64>| {
        (end >= level_rows).then(|| {
            buf.clear();
            buf.extend_from_slice(&y[end - level_rows..end]);
            median(buf)
        })
    };
    let now = level(n, &mut buf);
    let shifts: Vec<f64> = (1..=seasons)
        .map(|i| match (now, level(n - i * p, &mut buf)) {
            (Some(a), Some(b)) => a - b,
            _ => 0.0,
        })
        .collect();
    for (o, j) in out.iter_mut().zip((0..p).cycle()) {
        let phase = n - p + j;
        buf.clear();
        buf.extend((0..seasons).map(|i| y[phase - i * p] + shifts[i]));
        *o = median(&mut buf);
    }
}

/// The median of `v` (reordered in place; the mean of the middle two for an even count).
pub(super) fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let m = if n <= SMALL_SELECT {
        // The seasons of the seasonal median (a few values: its insertion sort) and a level's
        // few dozen rows (its levels, the short window): a plain quickselect is a quarter
        // faster there than the standard library's.
        small_select(v, mid)
    } else {
        // The values are finite (a fit refuses others): `total_cmp` orders them as `<` does
        // (but for −0 before +0, which are equal values) and compiles to an integer comparison.
        *v.select_nth_unstable_by(mid, f64::total_cmp).1
    };
    if n % 2 == 1 {
        m
    } else {
        let below = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    }
}

/// The longest slice [`median`] selects in with [`small_select`].
const SMALL_SELECT: usize = 64;

/// The `k`-th smallest of `v` (0-based; `v` reordered so that the values before it are not
/// above it and those after not below): quickselect with a median-of-three pivot and a
/// branch-free partition, insertion sort below a dozen values. For short slices (a long one
/// could meet its quadratic worst case).
fn small_select(v: &mut [f64], k: usize) -> f64 {
    let (mut lo, mut hi) = (0, v.len());
    loop {
        let n = hi - lo;
        if n <= 12 {
            let s = &mut v[lo..hi];
            for i in 1..s.len() {
                let x = s[i];
                let mut j = i;
                while j > 0 && s[j - 1] > x {
                    s[j] = s[j - 1];
                    j -= 1;
                }
                s[j] = x;
            }
            return v[k];
        }
        // The median of the first, middle and last values, moved to the end.
        let m = lo + n / 2;
        let (a, b, c) = (v[lo], v[m], v[hi - 1]);
        let pick = if (a < b) == (b < c) {
            m
        } else if (b < a) == (a < c) {
            lo
        } else {
            hi - 1
        };
        v.swap(pick, hi - 1);
        let pivot = v[hi - 1];
        // Values below the pivot gather at the front (a swap every step, no branch).
        let mut store = lo;
        for i in lo..hi - 1 {
            v.swap(i, store);
            store += usize::from(v[store] < pivot);
        }
        v.swap(store, hi - 1);
        match k.cmp(&store) {
            std::cmp::Ordering::Equal => return v[k],
            std::cmp::Ordering::Less => hi = store,
            std::cmp::Ordering::Greater => lo = store + 1,
        }
    }
}

/// The rows since the level last shifted, at most `long` (and `y.len()`): of the windows `short`, 2·`short`,
/// … up to `long` rows (`short` = twice the moving average's window), the longest whose every
/// added block (the rows from the previous window's start back to its own) has a median within
/// `SHIFT_SCALES` robust scales (1.4826 × MAD of the long window) of the short window's median.
pub(super) fn settled_window(y: &[f64], short: usize, long: usize) -> Settled {
    settled_windows(y, &[y.len()], short, long)[0]
}

/// [`settled_window`] of every prefix `y[..n]` for `n` in `origins` (ascending): the long window
/// is kept sorted as the origins advance (rows leaving and entering moved in and out) instead of
/// copied and selected anew at each origin.
pub(super) fn settled_windows(y: &[f64], origins: &[usize], short: usize, long: usize) -> Vec<Settled> {
    let mut sorted: Vec<f64> = Vec::with_capacity(long);
    let mut next: Vec<f64> = Vec::with_capacity(long);
    let (mut leaving, mut entering) = (Vec::new(), Vec::new());
    let mut buf: Vec<f64> = Vec::with_capacity(long);
    // Rows `held.0..held.1` of `y` are in `sorted`.
    let mut held = (0usize, 0usize);
    origins
        .iter()
        .map(|&n| {
            let start = n - long.min(n);
            let moved = start.saturating_sub(held.0) + n.saturating_sub(held.1);
            if start < held.0 || n < held.1 || start >= held.1 || 2 * moved > n - start {
                sorted.clear();
                sorted.extend_from_slice(&y[start..n]);
                sorted.sort_unstable_by(f64::total_cmp);
            } else {
                // The rows leaving and entering, each sorted, merged with the window in one pass.
                // Finite values: `==` and `<` order them (a leaving zero may take an equal zero
                // of the other sign, which changes no median).
                leaving.clear();
                leaving.extend_from_slice(&y[held.0..start]);
                leaving.sort_unstable_by(f64::total_cmp);
                entering.clear();
                entering.extend_from_slice(&y[held.1..n]);
                entering.sort_unstable_by(f64::total_cmp);
                next.clear();
                let (mut i, mut j) = (0, 0);
                for &x in &sorted {
                    if i < leaving.len() && leaving[i] == x {
                        i += 1;
                        continue;
                    }
                    while j < entering.len() && entering[j] < x {
                        next.push(entering[j]);
                        j += 1;
                    }
                    next.push(x);
                }
                next.extend_from_slice(&entering[j..]);
                std::mem::swap(&mut sorted, &mut next);
            }
            held = (start, n);
            settled_in(&y[..n], short, long, &sorted, &mut buf)
        })
        .collect()
}

/// How far (robust scales: 1.4826 × MAD) a level must move to count as shifted.
pub(super) const SHIFT_SCALES: f64 = 3.0;

/// [`settled_window`] of `y`, given its last `long` rows sorted.
fn settled_in(y: &[f64], short: usize, long: usize, sorted: &[f64], buf: &mut Vec<f64>) -> Settled {
    let n = y.len();
    let long = long.min(n);
    let short = (2 * short).clamp(1, long);
    let mid = long / 2;
    let m_long = if long % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 };
    // The MAD: the absolute deviations in ascending order are the two sides of the sorted window
    // read outwards from the median, so its middle ranks come from two sorted sequences.
    let pos = sorted.partition_point(|x| *x < m_long);
    let below = |t: usize| (sorted[pos - 1 - t] - m_long).abs();
    let above = |t: usize| (sorted[pos + t] - m_long).abs();
    let rank = |k: usize| kth_of_two(below, pos, above, long - pos, k);
    let mad = if long % 2 == 1 { rank(mid) } else { (rank(mid - 1) + rank(mid)) / 2.0 };
    let band = SHIFT_SCALES * 1.4826 * mad;
    buf.clear();
    buf.extend_from_slice(&y[n - short..]);
    let m_short = median(buf);
    let (high, low) = (m_short + band, m_short - band);
    let mut best = short;
    while best < long {
        let w = (best * 2).min(long);
        if median_beyond(&y[n - w..n - best], low, high) {
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
        buf.clear();
        buf.extend_from_slice(&y[n - best..]);
        median(buf)
    };
    Settled { rows: best, median: median_of_window }
}

/// Whether the median of `v` (as [`median`] takes it) is above `high` or below `low`, by
/// counting instead of selecting: one pass, no copy.
fn median_beyond(v: &[f64], low: f64, high: f64) -> bool {
    let n = v.len();
    let k = n / 2;
    let (mut above, mut below) = (0usize, 0usize);
    // Around each threshold: the largest value on the near side and the smallest on the far one.
    let (mut high_near, mut high_far) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut low_near, mut low_far) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in v {
        if x > high {
            above += 1;
            high_far = high_far.min(x);
        } else {
            high_near = high_near.max(x);
        }
        if x < low {
            below += 1;
            low_far = low_far.max(x);
        } else {
            low_near = low_near.min(x);
        }
    }
    if n % 2 == 1 {
        return above > k || below > k;
    }
    // Even count: the median is the mean of ranks k − 1 and k; with exactly k values beyond a
    // threshold those two ranks straddle it.
    let over = above > k || (above == k && (high_near + high_far) / 2.0 > high);
    let under = below > k || (below == k && (low_far + low_near) / 2.0 < low);
    over || under
}

/// The `k`-th smallest (0-based) of the union of two ascending sequences `a` (`na` values) and
/// `b` (`nb`), by binary search on how many of the `k + 1` smallest come from `a`.
fn kth_of_two(a: impl Fn(usize) -> f64, na: usize, b: impl Fn(usize) -> f64, nb: usize, k: usize) -> f64 {
    let (mut lo, mut hi) = ((k + 1).saturating_sub(nb), (k + 1).min(na));
    while lo < hi {
        let i = (lo + hi) / 2;
        // Taking i from a: a's next is still below b's last taken, so take more from a.
        if a(i) < b(k - i) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let j = k + 1 - lo;
    match (lo.checked_sub(1).map(&a), j.checked_sub(1).map(&b)) {
        (Some(x), Some(y)) => x.max(y),
        (Some(x), None) => x,
        (None, Some(y)) => y,
        (None, None) => f64::NAN,
    }
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
    // Every constant's recursion in one pass: independent chains the processor runs side by side.
    let mut level = [y[0]; ALPHAS.len()];
    let mut sse = [0.0; ALPHAS.len()];
    for &v in &y[1..] {
        for ((l, s), a) in level.iter_mut().zip(&mut sse).zip(ALPHAS) {
            let e = v - *l;
            *s += e * e;
            *l += a * e;
        }
    }
    let mut best = (f64::INFINITY, y[y.len() - 1], 1.0);
    for ((s, l), a) in sse.iter().zip(level).zip(ALPHAS) {
        if *s < best.0 {
            best = (*s, l, a);
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

/// The Theta method's forecast into `out`: SES level plus half the least-squares slope, as
/// `ℓ + b/2 · (k − 1 + 1/α)` for step k = 1..h (the `(1 − α)^n` term vanishes for long series).
fn theta_into(n: usize, level: f64, (ty, sy): (f64, f64), alpha: f64, out: &mut [f64]) {
    if n < 3 {
        out.fill(level);
        return;
    }
    // Least-squares slope on t = 0..n−1: Σ (t − t̄) y / Σ (t − t̄)², the latter n (n² − 1) / 12,
    // and Σ (t − t̄) y = Σ t y − t̄ Σ y.
    let (nf, mean_t) = (n as f64, (n as f64 - 1.0) / 2.0);
    let slope = (ty - mean_t * sy) / (nf * (nf * nf - 1.0) / 12.0);
    out.iter_mut().enumerate().for_each(|(k, o)| *o = level + slope / 2.0 * (k as f64 + 1.0 / alpha));
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: MethodSettings = MethodSettings {
        window: 4,
        long_window: 8,
        seasons: 3,
        fit_rows: 1000,
        median_seasons: 5,
        median_level_share: 0.0,
        novel_level_rows: 0,
    };

    #[test]
    fn each_method_forecasts_what_it_promises() {
        let y: Vec<f64> = (0..48).map(|i| (i % 6) as f64).collect();
        assert_eq!(forecast(Method::LastValue, &y, 3, None, S, Hints::default()), Some(vec![5.0; 3]));
        assert_eq!(forecast(Method::SeasonalNaive, &y, 7, Some(6), S, Hints::default()), Some(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0]));
        assert_eq!(forecast(Method::SeasonalMean, &y, 2, Some(6), S, Hints::default()), Some(vec![0.0, 1.0]));
        assert_eq!(forecast(Method::MovingAverage, &y, 1, None, S, Hints::default()), Some(vec![3.5]));
        assert_eq!(forecast(Method::MovingAverageLong, &y, 1, None, S, Hints::default()), Some(vec![3.0]));
        assert_eq!(forecast(Method::SeasonalNaive, &y, 3, None, S, Hints::default()), None, "no period");
        // A straight line: theta follows it.
        let line: Vec<f64> = (0..100).map(|i| 2.0 * i as f64).collect();
        let th = forecast(Method::Theta, &line, 2, None, S, Hints::default()).unwrap();
        assert!((th[0] - 200.0).abs() < 1.5 && th[1] > th[0], "{th:?}");
        let ses = forecast(Method::Ses, &[1.0, 1.0, 5.0, 5.0, 5.0, 5.0], 1, None, S, Hints::default()).unwrap();
        // Medians ignore a spike; the seasonal median a one-off day.
        let spiky = [1.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(forecast(Method::MovingMedian, &spiky, 2, None, S, Hints::default()), Some(vec![1.0; 2]));
        let mut days: Vec<f64> = (0..30).map(|i| (i % 6) as f64).collect();
        days[14] = 50.0;
        assert_eq!(forecast(Method::SeasonalMedian, &days, 3, Some(6), S, Hints::default()), Some(vec![0.0, 1.0, 2.0]));
        // A level shift 10 rows ago moves the whole profile (each past day by the change of
        // level since it), where the plain median of the past days would still forecast the old one.
        let shifted: Vec<f64> = (0..30).map(|i| (i % 6) as f64 + if i >= 20 { 10.0 } else { 0.0 }).collect();
        assert_eq!(forecast(Method::SeasonalMedian, &shifted, 3, Some(6), S, Hints::default()), Some(vec![10.0, 11.0, 12.0]));
        assert!((ses[0] - 5.0).abs() < 0.1, "{ses:?}");
    }

    #[test]
    fn the_seasonal_median_reads_its_level_over_a_share_of_the_period() {
        // A 48-row day (0 … 47), five days, the last 5 rows raised by 30 (a short excursion).
        // With levels over twice the window (8 rows) the excursion is most of the level now and
        // lifts the whole next day; over a quarter of the day (12 rows) it is under half of
        // them, the level holds, and the day is forecast as it was.
        let mut y: Vec<f64> = (0..240).map(|i| (i % 48) as f64).collect();
        y[235..].iter_mut().for_each(|v| *v += 30.0);
        let at = |share: f64| {
            forecast(Method::SeasonalMedian, &y, 48, Some(48), MethodSettings { median_level_share: share, ..S }, Hints::default()).unwrap()
        };
        let (short, quarter) = (at(0.0), at(0.25));
        assert!(short.iter().enumerate().all(|(k, f)| (f - (k as f64 + 30.0)).abs() < 1e-9), "{short:?}");
        assert!(quarter.iter().enumerate().all(|(k, f)| (f - k as f64).abs() < 1e-9), "{quarter:?}");
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
    fn the_median_is_the_middle_of_the_sorted_values_at_every_length() {
        // Lengths on both sides of the insertion sort, the quickselect and the standard
        // library's selection; values with ties (rounded), runs and sorted stretches.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut draw = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for n in (1..=80).chain([127, 128, 200]) {
            for shape in 0..4 {
                let v: Vec<f64> = (0..n)
                    .map(|i| match shape {
                        0 => draw() * 100.0 - 50.0,
                        1 => (draw() * 5.0).round(),
                        2 => i as f64,
                        _ => (n - i) as f64 + if i % 7 == 0 { 1e3 } else { 0.0 },
                    })
                    .collect();
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                let want = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
                assert_eq!(median(&mut v.clone()), want, "n {n}, shape {shape}");
                for k in [0, n / 3, n - 1] {
                    let mut w = v.clone();
                    assert_eq!(small_select(&mut w, k), sorted[k], "n {n}, shape {shape}, k {k}");
                    assert!(w[..k].iter().all(|x| *x <= sorted[k]) && w[k + 1..].iter().all(|x| *x >= sorted[k]), "n {n}, k {k}");
                }
            }
        }
    }

    /// The settled window as first written: the long window copied and selected at each call.
    fn settled_by_selection(y: &[f64], short: usize, long: usize) -> Settled {
        let n = y.len();
        let long = long.min(n);
        let short = (2 * short).clamp(1, long);
        let mut buf: Vec<f64> = y[n - long..].to_vec();
        let m_long = median(&mut buf);
        buf.iter_mut().for_each(|v| *v = (*v - m_long).abs());
        let band = 3.0 * 1.4826 * median(&mut buf);
        let block = |from: usize, to: usize| median(&mut y[n - to..n - from].to_vec());
        let m_short = block(0, short);
        let mut best = short;
        while best < long {
            let w = (best * 2).min(long);
            let m = block(best, w);
            if m > m_short + band || m < m_short - band {
                break;
            }
            best = w;
        }
        Settled { rows: best, median: if best == long { m_long } else { block(0, best) } }
    }

    #[test]
    fn counting_and_merging_give_the_order_statistics_that_selection_gives() {
        // Small integers, so ties and values exactly at a threshold are common.
        for seed in 1..400u64 {
            let len = (seed % 23 + 1) as usize;
            let v: Vec<f64> = (0..len).map(|i| ((seed * 31 + i as u64 * 17) % 11) as f64).collect();
            let m = median(&mut v.clone());
            for (low, high) in [(m - 1.0, m + 1.0), (m, m + 2.0), (m - 2.0, m), (m + 0.5, m + 3.0), (m - 3.0, m - 0.5)] {
                assert_eq!(median_beyond(&v, low, high), m > high || m < low, "{v:?} {low} {high}");
            }
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let split = (seed % (len as u64 + 1)) as usize;
            let (a, b) = sorted.split_at(split);
            for (k, want) in sorted.iter().enumerate() {
                assert_eq!(kth_of_two(|i| a[i], a.len(), |i| b[i], b.len(), k), *want, "{a:?} {b:?} {k}");
            }
        }
    }

    #[test]
    fn settled_windows_kept_sorted_match_selection_at_every_origin() {
        // Noise with repeated values, spikes and level shifts; origins at irregular steps.
        let y: Vec<f64> = (0..3000)
            .map(|i| {
                let level = [10.0, 40.0, 40.0, 15.0][(i / 700) % 4];
                let v = ((i * 7919) % 17) as f64 / 2.0;
                level + if i % 97 == 0 { 60.0 } else { v.round() }
            })
            .collect();
        let mut origins = Vec::new();
        let mut o = 1;
        while o <= y.len() {
            origins.push(o);
            o += 1 + (o * 31) % 40;
        }
        for (short, long) in [(12, 180), (4, 8), (12, 181), (1, 1)] {
            let fast = settled_windows(&y, &origins, short, long);
            for (&o, f) in origins.iter().zip(&fast) {
                assert_eq!(*f, settled_by_selection(&y[..o], short, long), "origin {o}, short {short}, long {long}");
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
