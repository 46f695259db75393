//! The context-tail detector, our univariate default: how unusual is now against a metric's own
//! past, in three contexts, each turned into a tail surprise (nats) against that context's
//! history.
//!
//! - **value**: the row's value, two-sided rank among the last `history_rows` values;
//! - **level**: the mean of the last `short_window` rows, two-sided rank among past means;
//! - **seasonal**: the distance of the level from the nearest level at the same time of day on
//!   each of the last `seasonal_days` days (`min_d |m_t − m_{t − d·day}|`, so a weekly pattern
//!   finds last week's same day), upper-tail rank among past such distances. This is the
//!   time-of-day context: a level normal at 3 pm can be anomalous at 3 am, and a missing daily
//!   peak is seen even though every value is in range.
//!
//! Each view's surprise is its rank part — the *smallest* of its last `persistence_rows` rows
//! (`seasonal_persistence_rows` for the seasonal view), so a lone new record of plain noise does
//! not alarm but a lasting one does — plus `range_weight` × the distance past everything the
//! view has seen, in units of its spread (so a spike far outside the range alarms at once: the
//! range rule). The row's surprise is the largest over views and metrics, mapped to
//! `1 − e^{−s / scale_nats}`. Optionally an HTM-style anomaly-likelihood path (`likelihood_weight`
//! > 0) scores the mean surprise of the last `likelihood_short_rows` rows against a Gaussian of its
//! >    past. After a score ≥ `alarm_score`, scores are multiplied by `refractory_factor` for
//! >    `refractory_rows` rows, so one incident raises one alarm.
//!
//! Causal: a row's score uses only rows up to it, and the file's length, min or max are never
//! known. State per metric: three rank histories of at most `history_rows` values (16 bytes
//! each: 384 KB at the default 8,000), the levels of the last `seasonal_days` days at most one
//! per `seasonal_step_secs` (16 bytes each: 32 KB for 7 days of 5-minute rows, 161 KB at the
//! one-a-minute cap) and a few short buffers.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::window::{Refractory, SortedWindow};
use super::{DetectorError, StreamingDetector};

/// Settings of the context-tail detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextTailConfig {
    /// Rows of history each view ranks against.
    pub history_rows: usize,
    /// Rows before any score is emitted (scores 0 before; the views learn from them).
    pub warmup_rows: usize,
    /// Rows averaged by the level view (and compared by the seasonal view).
    pub short_window: usize,
    /// Rows the value and level views' rank surprise must persist (the smallest is used).
    pub persistence_rows: usize,
    /// Weight of the distance past the seen range, in spreads, added to a view's surprise.
    pub range_weight: f64,
    /// Days the seasonal view looks back (0: no seasonal view).
    pub seasonal_days: usize,
    /// Length of the seasonal period in seconds (a day).
    pub seasonal_period_secs: i64,
    /// Weight of the seasonal view's surprise.
    pub seasonal_weight: f64,
    /// Rows the seasonal view's rank surprise must persist.
    pub seasonal_persistence_rows: usize,
    /// How far (in median sampling intervals) a past row may be from the same time on an
    /// earlier day and still count as it (rows need not be regular; gaps just skip a day).
    pub seasonal_tolerance_intervals: f64,
    /// Levels kept for the seasonal view at most one per this many seconds (bounds its memory at
    /// high sampling rates: 7 days at one a minute is 10,080 levels, 161 KB).
    pub seasonal_step_secs: i64,
    /// Surprise scale of the [0, 1] mapping.
    pub scale_nats: f64,
    /// Weight of the anomaly-likelihood path (0: off).
    pub likelihood_weight: f64,
    /// Rows of the likelihood path's short-term mean surprise.
    pub likelihood_short_rows: usize,
    /// Past short-term means the likelihood's Gaussian is fitted to.
    pub likelihood_history_rows: usize,
    /// Floor of that Gaussian's standard deviation (nats).
    pub likelihood_min_sd: f64,
    /// Score that starts a refractory period.
    pub alarm_score: f64,
    /// Rows of the refractory period.
    pub refractory_rows: usize,
    /// Factor applied to scores during the refractory period.
    pub refractory_factor: f64,
}

impl Default for ContextTailConfig {
    fn default() -> Self {
        Self {
            history_rows: 8000,
            warmup_rows: 100,
            short_window: 24,
            persistence_rows: 3,
            range_weight: 8.0,
            seasonal_days: 7,
            seasonal_period_secs: 86_400,
            seasonal_weight: 1.2,
            seasonal_persistence_rows: 8,
            seasonal_tolerance_intervals: 2.0,
            seasonal_step_secs: 60,
            scale_nats: 10.0,
            likelihood_weight: 0.0,
            likelihood_short_rows: 5,
            likelihood_history_rows: 8640,
            likelihood_min_sd: 0.5,
            alarm_score: 0.5,
            refractory_rows: 100,
            refractory_factor: 0.25,
        }
    }
}

impl ContextTailConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<ContextTail, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        for (field, v, lo) in [
            ("history_rows", self.history_rows, 10),
            ("short_window", self.short_window, 1),
            ("persistence_rows", self.persistence_rows, 1),
            ("seasonal_persistence_rows", self.seasonal_persistence_rows, 1),
            ("likelihood_short_rows", self.likelihood_short_rows, 1),
            ("likelihood_history_rows", self.likelihood_history_rows, 2),
        ] {
            if v < lo {
                return bad(field, v.to_string(), &format!("at least {lo}"));
            }
        }
        if self.seasonal_days > 60 {
            return bad("seasonal_days", self.seasonal_days.to_string(), "at most 60");
        }
        if self.seasonal_period_secs < 1 {
            return bad("seasonal_period_secs", self.seasonal_period_secs.to_string(), "at least 1");
        }
        if !(0..=self.seasonal_period_secs).contains(&self.seasonal_step_secs) {
            return bad("seasonal_step_secs", self.seasonal_step_secs.to_string(), "between 0 and seasonal_period_secs");
        }
        for (field, v, lo, hi) in [
            ("range_weight", self.range_weight, 0.0, 1e6),
            ("seasonal_weight", self.seasonal_weight, 0.0, 1e6),
            ("seasonal_tolerance_intervals", self.seasonal_tolerance_intervals, 0.0, 100.0),
            ("scale_nats", self.scale_nats, 1e-9, 1e9),
            ("likelihood_weight", self.likelihood_weight, 0.0, 1.0),
            ("likelihood_min_sd", self.likelihood_min_sd, 1e-9, 1e9),
            ("alarm_score", self.alarm_score, 0.0, 1.0),
            ("refractory_factor", self.refractory_factor, 0.0, 1.0),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return bad(field, v.to_string(), &format!("a finite number in [{lo}, {hi}]"));
            }
        }
        Ok(ContextTail {
            cfg: self.clone(),
            metrics: (0..n_metrics).map(|_| MetricContext::new(self)).collect(),
            contrib: vec![0.0; n_metrics],
            rows: 0,
            refractory: Refractory::new(self.refractory_rows, self.refractory_factor, self.alarm_score),
            likelihood: Likelihood::default(),
            intervals: Vec::new(),
            last_ts: None,
        })
    }
}

/// A view's history and the rank surprises of its last rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct View {
    history: SortedWindow,
    recent_ranks: VecDeque<f64>,
}

/// One view's surprise of a value: rank part and distance past the seen range (in spreads).
#[derive(Debug, Clone, Copy, Default)]
struct Surprise {
    rank_nats: f64,
    beyond: f64,
}

impl View {
    fn new(cap: usize) -> Self {
        Self { history: SortedWindow::new(cap), recent_ranks: VecDeque::new() }
    }

    /// Surprise of `x` against the history (zero with fewer than 2 values); two-sided or upper tail.
    fn surprise(&self, x: f64, two_sided: bool) -> Surprise {
        let sorted = self.history.sorted();
        let n = sorted.len();
        if n < 2 {
            return Surprise::default();
        }
        let ge = self.history.count_ge(x);
        let count = if two_sided { ge.min(self.history.count_le(x)) } else { ge };
        let p = (count as f64 + 1.0) / (n as f64 + 1.0);
        let (lo, hi) = (sorted[n / 20], sorted[n - 1 - n / 20]);
        let spread = (hi - lo).max((sorted[n - 1] - sorted[0]) * 0.1).max(1e-9 * x.abs().max(1.0));
        let past = if two_sided { (x - sorted[n - 1]).max(sorted[0] - x) } else { x - sorted[n - 1] };
        Surprise { rank_nats: -p.ln(), beyond: past.max(0.0) / spread }
    }

    /// Record this row's rank surprise (0 when the view had none) and return the smallest of the
    /// last `rows` ones.
    fn persistent_rank(&mut self, rank_nats: f64, rows: usize) -> f64 {
        self.recent_ranks.push_back(rank_nats);
        while self.recent_ranks.len() > rows {
            self.recent_ranks.pop_front();
        }
        self.recent_ranks.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// One metric's views.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetricContext {
    value: View,
    level: View,
    seasonal: View,
    recent: VecDeque<f64>,
    /// Levels of the last `seasonal_days` periods: (timestamp, level), increasing timestamps.
    levels: VecDeque<(i64, f64)>,
}

impl MetricContext {
    fn new(cfg: &ContextTailConfig) -> Self {
        Self {
            value: View::new(cfg.history_rows),
            level: View::new(cfg.history_rows),
            seasonal: View::new(cfg.history_rows),
            recent: VecDeque::with_capacity(cfg.short_window),
            levels: VecDeque::new(),
        }
    }

    /// The level nearest to `target_ms` within `tolerance_ms`.
    fn level_at(&self, target_ms: i64, tolerance_ms: i64) -> Option<f64> {
        let i = self.levels.partition_point(|(t, _)| *t < target_ms);
        [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| self.levels.get(j))
            .filter(|(t, _)| (t - target_ms).abs() <= tolerance_ms)
            .min_by_key(|(t, _)| (t - target_ms).abs())
            .map(|(_, m)| *m)
    }

    /// This row's surprise (nats), learning the row afterwards.
    fn step(&mut self, cfg: &ContextTailConfig, timestamp_ms: i64, x: f64, tolerance_ms: Option<i64>, scoring: bool) -> f64 {
        self.recent.push_back(x);
        if self.recent.len() > cfg.short_window {
            self.recent.pop_front();
        }
        let level = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        let full = self.recent.len() == cfg.short_window;
        let period_ms = cfg.seasonal_period_secs * 1000;
        let residual = match tolerance_ms {
            Some(tol) if full && cfg.seasonal_days > 0 => (1..=cfg.seasonal_days as i64)
                .filter_map(|d| self.level_at(timestamp_ms - d * period_ms, tol))
                .map(|past| (level - past).abs())
                .reduce(f64::min),
            _ => None,
        };
        let value = self.value.surprise(x, true);
        let lvl = if full { self.level.surprise(level, true) } else { Surprise::default() };
        let season = residual.map(|r| self.seasonal.surprise(r, false)).unwrap_or_default();
        let mut surprise = 0.0;
        if scoring {
            let v = self.value.persistent_rank(value.rank_nats, cfg.persistence_rows) + cfg.range_weight * value.beyond;
            let l = self.level.persistent_rank(lvl.rank_nats, cfg.persistence_rows) + cfg.range_weight * lvl.beyond;
            let s = self.seasonal.persistent_rank(season.rank_nats, cfg.seasonal_persistence_rows) + cfg.range_weight * season.beyond;
            surprise = v.max(l).max(if residual.is_some() { cfg.seasonal_weight * s } else { 0.0 });
        }
        self.value.history.insert(x);
        if full {
            self.level.history.insert(level);
            let step_ms = cfg.seasonal_step_secs * 1000;
            if self.levels.back().is_none_or(|(t, _)| *t + step_ms.max(1) <= timestamp_ms) {
                self.levels.push_back((timestamp_ms, level));
            }
            let keep_from = timestamp_ms - cfg.seasonal_days as i64 * period_ms - period_ms / 2;
            while self.levels.front().is_some_and(|(t, _)| *t < keep_from) {
                self.levels.pop_front();
            }
        }
        if let Some(r) = residual {
            self.seasonal.history.insert(r);
        }
        surprise
    }
}

/// HTM-style anomaly likelihood of the short-term mean surprise against the past such means
/// (the current one excluded), on HTM's log scale (1 at p = 1e-10).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Likelihood {
    short: VecDeque<f64>,
    history: VecDeque<f64>,
    sum: f64,
    sumsq: f64,
}

impl Likelihood {
    fn push(&mut self, cfg: &ContextTailConfig, surprise: f64) -> f64 {
        self.short.push_back(surprise);
        if self.short.len() > cfg.likelihood_short_rows {
            self.short.pop_front();
        }
        let mean_short = self.short.iter().sum::<f64>() / self.short.len() as f64;
        let n = self.history.len() as f64;
        let score = if self.history.len() >= 100 {
            let mean = self.sum / n;
            let sd = (self.sumsq / n - mean * mean).max(0.0).sqrt().max(cfg.likelihood_min_sd);
            let q = 0.5 * libm::erfc((mean_short - mean) / sd / std::f64::consts::SQRT_2);
            (-(q + 1e-10).log10() / 10.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.history.push_back(mean_short);
        self.sum += mean_short;
        self.sumsq += mean_short * mean_short;
        if self.history.len() > cfg.likelihood_history_rows
            && let Some(old) = self.history.pop_front()
        {
            self.sum -= old;
            self.sumsq -= old * old;
        }
        score
    }
}

/// The running detector.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ContextTail {
    cfg: ContextTailConfig,
    metrics: Vec<MetricContext>,
    contrib: Vec<f64>,
    rows: usize,
    refractory: Refractory,
    likelihood: Likelihood,
    /// The first sampling intervals (ms), for the seasonal lookup's tolerance.
    intervals: Vec<i64>,
    last_ts: Option<i64>,
}

impl ContextTail {
    /// `seasonal_tolerance_intervals` × the median of the first (up to 50) sampling intervals:
    /// how far a past row may be from "the same time on an earlier day".
    fn tolerance_ms(&mut self, timestamp_ms: i64) -> Option<i64> {
        if let Some(prev) = self.last_ts
            && timestamp_ms > prev
            && self.intervals.len() < 50
        {
            self.intervals.push(timestamp_ms - prev);
            self.intervals.sort_unstable();
        }
        self.last_ts = Some(timestamp_ms);
        (!self.intervals.is_empty()).then(|| {
            let median = self.intervals[self.intervals.len() / 2];
            ((median as f64 * self.cfg.seasonal_tolerance_intervals) as i64).max(self.cfg.seasonal_step_secs * 1000)
        })
    }

    fn step(&mut self, timestamp_ms: i64, values: &[f64], scoring: bool) -> f64 {
        let tolerance = self.tolerance_ms(timestamp_ms);
        let mut surprise: f64 = 0.0;
        for (m, &x) in values.iter().enumerate() {
            self.contrib[m] = 0.0;
            if !x.is_finite() {
                continue;
            }
            let s = self.metrics[m].step(&self.cfg, timestamp_ms, x, tolerance, scoring);
            self.contrib[m] = s;
            surprise = surprise.max(s);
        }
        self.rows += 1;
        surprise
    }
}

impl StreamingDetector for ContextTail {
    fn save_state(&self) -> Option<Vec<u8>> {
        super::save_state(self)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        super::load_state(self, state)
    }

    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64 {
        let warm = self.rows >= self.cfg.warmup_rows;
        let surprise = self.step(timestamp_ms, values, warm);
        if !warm {
            return 0.0;
        }
        let mut score = 1.0 - (-surprise / self.cfg.scale_nats).exp();
        if self.cfg.likelihood_weight > 0.0 {
            score = score.max(self.cfg.likelihood_weight * self.likelihood.push(&self.cfg, surprise));
        }
        self.refractory.apply(score)
    }

    fn learn(&mut self, timestamp_ms: i64, values: &[f64]) {
        self.step(timestamp_ms, values, false);
    }

    fn contributions(&self) -> Vec<f64> {
        self.contrib.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: i64 = 300_000;

    fn run(cfg: &ContextTailConfig, xs: &[f64]) -> Vec<f64> {
        let mut det = cfg.build(1).unwrap();
        xs.iter().enumerate().map(|(i, x)| det.push(i as i64 * FIVE_MIN, &[*x])).collect()
    }

    /// A daily pulse (high from 9:00 to 17:00) with a little deterministic noise.
    fn daily(i: usize) -> f64 {
        let hour = (i % 288) / 12;
        let noise = ((i * 7919) % 13) as f64 * 0.3;
        if (9..17).contains(&hour) { 80.0 + noise } else { 20.0 + noise }
    }

    #[test]
    fn a_missing_daily_peak_alarms_though_every_value_is_in_range() {
        // Day 8's peak never comes: every value is one seen at night.
        let xs: Vec<f64> = (0..288 * 10).map(|i| if i / 288 == 8 { 20.0 + ((i * 7919) % 13) as f64 * 0.3 } else { daily(i) }).collect();
        let s = run(&ContextTailConfig::default(), &xs);
        let threshold = 0.5;
        let before = s[288 * 3..288 * 8].iter().copied().fold(0.0, f64::max);
        let day8 = s[288 * 8..288 * 9].iter().copied().fold(0.0, f64::max);
        assert!(before < threshold, "normal days scored {before}");
        assert!(day8 >= threshold, "the missing peak scored {day8}");
        let without = run(&ContextTailConfig { seasonal_days: 0, ..Default::default() }, &xs);
        assert!(without[288 * 8..288 * 9].iter().all(|v| *v < threshold), "without the seasonal view it is invisible");
    }

    #[test]
    fn a_lone_record_of_noise_waits_for_persistence_but_a_far_spike_alarms_at_once() {
        let base = |i: usize| ((i * 7919) % 101) as f64 / 10.0;
        let mut xs: Vec<f64> = (0..2000).map(base).collect();
        xs[1500] = 10.05; // a new record, barely past the range
        xs[1800] = 60.0; // far outside
        let s = run(&ContextTailConfig { seasonal_days: 0, ..Default::default() }, &xs);
        assert!(s[1500] < 0.5, "a lone record scored {}", s[1500]);
        assert!(s[1800] >= 0.5, "a far spike scored {}", s[1800]);
        let once = run(&ContextTailConfig { seasonal_days: 0, persistence_rows: 1, ..Default::default() }, &xs);
        assert!(once[1500] > s[1500], "persistence is what holds the record back");
    }

    #[test]
    fn truncating_the_input_never_changes_an_earlier_score() {
        let xs: Vec<f64> = (0..288 * 9).map(|i| daily(i) + if i > 288 * 8 { 30.0 } else { 0.0 }).collect();
        let cfg = ContextTailConfig { likelihood_weight: 0.9, ..Default::default() };
        let full = run(&cfg, &xs);
        for cut in [150, 288 * 2 + 5, 288 * 8 + 3, 288 * 9 - 1] {
            assert_eq!(run(&cfg, &xs[..cut]), full[..cut], "cut at {cut}");
        }
    }

    #[test]
    fn gaps_and_repeated_timestamps_do_not_shift_the_seasonal_lookup() {
        // The same daily series with a 3-hour gap on day 5 and a repeated row: no alarm on days 5–7.
        let mut det = ContextTailConfig::default().build(1).unwrap();
        let mut max_after: f64 = 0.0;
        for i in 0..288 * 8 {
            if (288 * 5..288 * 5 + 36).contains(&i) {
                continue;
            }
            let s = det.push(i as i64 * FIVE_MIN, &[daily(i)]);
            if i == 288 * 6 {
                det.push(i as i64 * FIVE_MIN, &[daily(i)]);
            }
            if i >= 288 * 5 {
                max_after = max_after.max(s);
            }
        }
        assert!(max_after < 0.5, "scored {max_after} after the gap");
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (cfg, field) in [
            (ContextTailConfig { persistence_rows: 0, ..Default::default() }, "persistence_rows"),
            (ContextTailConfig { range_weight: f64::NAN, ..Default::default() }, "range_weight"),
            (ContextTailConfig { seasonal_weight: -1.0, ..Default::default() }, "seasonal_weight"),
            (ContextTailConfig { likelihood_weight: 2.0, ..Default::default() }, "likelihood_weight"),
            (ContextTailConfig { alarm_score: f64::INFINITY, ..Default::default() }, "alarm_score"),
            (ContextTailConfig { seasonal_days: 61, ..Default::default() }, "seasonal_days"),
        ] {
            assert_eq!(cfg.build(1).unwrap_err().field, field);
        }
    }
}
