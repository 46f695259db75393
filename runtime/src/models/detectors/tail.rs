//! The tail ensemble: for every metric, up to three views of "how unusual is now" against that
//! metric's own history — the value, the absolute change from the previous row, and the mean
//! of the last `short_window` rows (default: value and mean) — each turned into a two-sided empirical tail probability
//! (with the distance past the seen range in units of the history's spread), combined by max
//! over views and metrics into a surprise in nats. The surprise is then mapped to [0, 1]
//! (`1 - e^{-s / scale}`) and, after an alarm, damped for `suppress_rows` rows so one incident
//! raises one alarm. Optionally (`confirm_rows` > 1) the surprise must persist: the smallest of
//! the last rows' surprises is used, unless `confirm_bypass` × the row's own is larger.
//! Everything is causal and needs no fitting; a training split only fills the histories.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::window::{Refractory, SortedWindow};
use super::{DetectorError, StreamingDetector};

/// Settings of the tail ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailEnsembleConfig {
    /// Rows of history each view keeps.
    pub history_rows: usize,
    /// Rows before any score is emitted (scores 0 before).
    pub warmup_rows: usize,
    /// Rows averaged by the short-mean view.
    pub short_window: usize,
    /// Views in use: any of `value`, `change`, `mean`, `seasonal` (the value minus the value
    /// one season earlier, in rows from the median of the first 50 sampling intervals).
    pub views: Vec<String>,
    /// Season of the seasonal view in seconds.
    pub season_secs: i64,
    /// Weight of the distance past the seen range (in history spreads) added to the surprise.
    pub range_weight: f64,
    /// Cap of the rank-based part of the surprise (nats): a new record of plain noise has a
    /// tiny tail probability at long histories, so high surprise must come from the distance
    /// past the seen range.
    pub tail_cap_nats: f64,
    /// Score that counts as an alarm for suppression.
    pub alarm_score: f64,
    /// Anomaly-likelihood stage (as HTM's for NAB): rows of surprise history whose mean and
    /// std the short-term average is compared with (0: off, score = `1 - e^{-s/scale}`).
    pub likelihood_history_rows: usize,
    /// Rows of the short-term average of the likelihood stage.
    pub likelihood_short_rows: usize,
    /// Weight of the direct surprise mapping mixed into the likelihood score
    /// (`max(likelihood, weight · (1 - e^{-s/scale}))`), so a single huge spike still alarms.
    pub direct_weight: f64,
    /// Rows damped after an alarm.
    pub suppress_rows: usize,
    /// Factor applied to scores during suppression.
    pub suppress_factor: f64,
    /// Surprise scale of the [0, 1] mapping.
    pub scale_nats: f64,
    /// Rows the surprise must persist: the score uses the minimum surprise of the last
    /// `confirm_rows` rows (1: the row's own).
    pub confirm_rows: usize,
    /// Weight of the row's own surprise when confirming (`max(confirmed, weight · own)`), so
    /// a large single spike alarms at once.
    pub confirm_bypass: f64,
}

impl Default for TailEnsembleConfig {
    fn default() -> Self {
        Self {
            history_rows: 8000,
            warmup_rows: 100,
            short_window: 12,
            // The change view adds more false alarms than detections on NAB (ablation in the README).
            views: vec!["value".into(), "mean".into()],
            season_secs: 86_400,
            range_weight: 2.0,
            tail_cap_nats: 1e9,
            alarm_score: 0.5,
            likelihood_history_rows: 0,
            likelihood_short_rows: 5,
            direct_weight: 1.0,
            suppress_rows: 100,
            suppress_factor: 0.25,
            scale_nats: 10.0,
            confirm_rows: 1,
            confirm_bypass: 0.0,
        }
    }
}

impl TailEnsembleConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<TailEnsemble, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        if self.history_rows < 10 {
            return bad("history_rows", self.history_rows.to_string(), "at least 10");
        }
        if self.views.is_empty() || self.views.iter().any(|v| !matches!(v.as_str(), "value" | "change" | "mean" | "seasonal")) {
            return bad("views", format!("{:?}", self.views), "a non-empty list of value, change, mean, seasonal");
        }
        if self.short_window == 0 {
            return bad("short_window", "0".into(), "at least 1");
        }
        super::check_ranges(&[
            ("range_weight", self.range_weight, 0.0, 1e6),
            ("tail_cap_nats", self.tail_cap_nats, super::POSITIVE, 1e12),
            ("alarm_score", self.alarm_score, 0.0, 1.0),
            ("direct_weight", self.direct_weight, 0.0, 1.0),
            ("scale_nats", self.scale_nats, super::POSITIVE, 1e9),
        ])?;
        if self.confirm_rows == 0 {
            return bad("confirm_rows", "0".into(), "at least 1");
        }
        if !(0.0..=1.0).contains(&self.confirm_bypass) {
            return bad("confirm_bypass", self.confirm_bypass.to_string(), "in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.suppress_factor) {
            return bad("suppress_factor", self.suppress_factor.to_string(), "in [0, 1]");
        }
        let views = (0..n_metrics * 4).map(|_| TailView::new(self.history_rows)).collect();
        Ok(TailEnsemble {
            cfg: self.clone(),
            views,
            last: vec![None; n_metrics],
            recent: vec![VecDeque::new(); n_metrics],
            rows: 0,
            refractory: Refractory::new(self.suppress_rows, self.suppress_factor, self.alarm_score),
            lk_hist: VecDeque::new(),
            lk_sum: 0.0,
            lk_sumsq: 0.0,
            lk_short: VecDeque::new(),
            contrib: vec![0.0; n_metrics],
            use_value: self.views.iter().any(|v| v == "value"),
            use_change: self.views.iter().any(|v| v == "change"),
            use_mean: self.views.iter().any(|v| v == "mean"),
            use_seasonal: self.views.iter().any(|v| v == "seasonal"),
            past: vec![VecDeque::new(); n_metrics],
            intervals: Vec::new(),
            last_ts: None,
            confirm: VecDeque::new(),
        })
    }
}

/// History of one view.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TailView(SortedWindow);

impl TailView {
    fn new(cap: usize) -> Self {
        Self(SortedWindow::new(cap))
    }

    /// Surprise of x in nats against the history (0 with fewer than 2 points).
    fn surprise(&self, x: f64, range_weight: f64, cap: f64) -> f64 {
        let sorted = self.0.sorted();
        let n = sorted.len();
        if n < 2 {
            return 0.0;
        }
        let p = (self.0.count_ge(x).min(self.0.count_le(x)) as f64 + 1.0) / (n as f64 + 1.0);
        let lo = sorted[n / 20];
        let hi = sorted[n - 1 - n / 20];
        let spread = (hi - lo).max((sorted[n - 1] - sorted[0]) * 0.1).max(1e-9 * x.abs().max(1.0));
        let beyond = (x - sorted[n - 1]).max(sorted[0] - x).max(0.0) / spread;
        (-p.ln()).min(cap) + range_weight * beyond
    }

    fn insert(&mut self, x: f64) {
        self.0.insert(x);
    }
}

/// The running ensemble.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TailEnsemble {
    cfg: TailEnsembleConfig,
    views: Vec<TailView>,
    last: Vec<Option<f64>>,
    recent: Vec<VecDeque<f64>>,
    rows: usize,
    refractory: Refractory,
    lk_hist: VecDeque<f64>,
    lk_sum: f64,
    lk_sumsq: f64,
    lk_short: VecDeque<f64>,
    contrib: Vec<f64>,
    use_value: bool,
    use_change: bool,
    use_mean: bool,
    use_seasonal: bool,
    /// Per metric, the values of the last season (for the seasonal view).
    past: Vec<VecDeque<f64>>,
    /// The first sampling intervals seen (ms), to turn `season_secs` into rows.
    intervals: Vec<i64>,
    last_ts: Option<i64>,
    /// The last `confirm_rows` surprises.
    confirm: VecDeque<f64>,
}

/// ln of the upper Gaussian tail Q(z) = erfc(z/√2)/2, with the asymptotic series where erfc
/// underflows.
fn ln_gauss_tail(z: f64) -> f64 {
    if z < 30.0 {
        (0.5 * libm::erfc(z / std::f64::consts::SQRT_2)).max(f64::MIN_POSITIVE).ln()
    } else {
        -z * z / 2.0 - (z * (2.0 * std::f64::consts::PI).sqrt()).ln() + (1.0 - 1.0 / (z * z)).ln()
    }
}

impl TailEnsemble {
    /// Rows per season, once 50 intervals were seen.
    fn season_rows(&self) -> Option<usize> {
        if self.intervals.len() < 50 {
            return None;
        }
        let mut v = self.intervals.clone();
        v.sort_unstable();
        let median = v[v.len() / 2].max(1);
        Some(((self.cfg.season_secs * 1000) as f64 / median as f64).round().clamp(1.0, 20_000.0) as usize)
    }

    fn step(&mut self, timestamp_ms: i64, values: &[f64], score: bool) -> f64 {
        if let Some(prev) = self.last_ts
            && timestamp_ms > prev
            && self.intervals.len() < 50
        {
            self.intervals.push(timestamp_ms - prev);
        }
        self.last_ts = Some(timestamp_ms);
        let season = if self.use_seasonal { self.season_rows() } else { None };
        let mut surprise: f64 = 0.0;
        for (m, &x) in values.iter().enumerate() {
            if !x.is_finite() {
                continue;
            }
            let diff = self.last[m].map(|p| (x - p).abs());
            let recent = &mut self.recent[m];
            recent.push_back(x);
            if recent.len() > self.cfg.short_window {
                recent.pop_front();
            }
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            let full = recent.len() == self.cfg.short_window;
            let [v_value, v_diff, v_mean, v_season] = [4 * m, 4 * m + 1, 4 * m + 2, 4 * m + 3];
            let seasonal = season.and_then(|lag| {
                let past = &mut self.past[m];
                past.push_back(x);
                while past.len() > lag + 1 {
                    past.pop_front();
                }
                (past.len() == lag + 1).then(|| (x - past[0]).abs())
            });
            if score {
                let mut mine: f64 = 0.0;
                if self.use_value {
                    mine = mine.max(self.views[v_value].surprise(x, self.cfg.range_weight, self.cfg.tail_cap_nats));
                }
                if let Some(d) = diff.filter(|_| self.use_change) {
                    mine = mine.max(self.views[v_diff].surprise(d, self.cfg.range_weight, self.cfg.tail_cap_nats));
                }
                if full && self.use_mean {
                    mine = mine.max(self.views[v_mean].surprise(mean, self.cfg.range_weight, self.cfg.tail_cap_nats));
                }
                if let Some(r) = seasonal {
                    mine = mine.max(self.views[v_season].surprise(r, self.cfg.range_weight, self.cfg.tail_cap_nats));
                }
                self.contrib[m] = mine;
                surprise = surprise.max(mine);
            }
            self.views[v_value].insert(x);
            if let Some(d) = diff {
                self.views[v_diff].insert(d);
            }
            if full {
                self.views[v_mean].insert(mean);
            }
            if let Some(r) = seasonal {
                self.views[v_season].insert(r);
            }
            self.last[m] = Some(x);
        }
        self.rows += 1;
        surprise
    }
}

impl TailEnsemble {
    /// HTM-style anomaly likelihood of the short-term mean surprise against the surprise
    /// history (excluding the current row), on HTM's log scale: p = 1e-10 maps to 1.
    fn likelihood(&mut self, surprise: f64) -> f64 {
        self.lk_short.push_back(surprise);
        if self.lk_short.len() > self.cfg.likelihood_short_rows.max(1) {
            self.lk_short.pop_front();
        }
        let short = self.lk_short.iter().sum::<f64>() / self.lk_short.len() as f64;
        let n = self.lk_hist.len() as f64;
        let score = if n >= 10.0 {
            let mean = self.lk_sum / n;
            let sd = (self.lk_sumsq / n - mean * mean).max(0.0).sqrt().max(0.05);
            let ln_p = ln_gauss_tail((short - mean) / sd);
            (-ln_p / 10f64.ln() / 10.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.lk_hist.push_back(surprise);
        self.lk_sum += surprise;
        self.lk_sumsq += surprise * surprise;
        if self.lk_hist.len() > self.cfg.likelihood_history_rows
            && let Some(old) = self.lk_hist.pop_front()
        {
            self.lk_sum -= old;
            self.lk_sumsq -= old * old;
        }
        score
    }
}

impl StreamingDetector for TailEnsemble {
    fn save_state(&self) -> Option<Vec<u8>> {
        super::save_state(self)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        super::load_state(self, state)
    }

    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64 {
        let warm = self.rows >= self.cfg.warmup_rows;
        let surprise = self.step(timestamp_ms, values, true);
        self.confirm.push_back(surprise);
        if self.confirm.len() > self.cfg.confirm_rows.max(1) {
            self.confirm.pop_front();
        }
        let surprise = self.confirm.iter().copied().fold(f64::INFINITY, f64::min).max(self.cfg.confirm_bypass * surprise);
        if !warm {
            return 0.0;
        }
        let direct = 1.0 - (-surprise / self.cfg.scale_nats).exp();
        let score =
            if self.cfg.likelihood_history_rows > 0 { self.likelihood(surprise).max(self.cfg.direct_weight * direct) } else { direct };
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

    #[test]
    fn confirmation_drops_one_row_blips_but_not_large_spikes_or_lasting_shifts() {
        let cfg = TailEnsembleConfig { confirm_rows: 2, confirm_bypass: 0.8, ..Default::default() };
        let run = |cfg: &TailEnsembleConfig, at: &dyn Fn(usize) -> f64| {
            let mut det = cfg.build(1).unwrap();
            (0..700).map(|i| det.push(i as i64 * 60_000, &[if i >= 600 { at(i) } else { (i % 10) as f64 }])).collect::<Vec<f64>>()
        };
        let blip = |i: usize| if i == 600 { 13.0 } else { (i % 10) as f64 };
        let spike = |i: usize| if i == 600 { 60.0 } else { (i % 10) as f64 };
        let shift = |i: usize| 14.0 + (i % 10) as f64 * 0.1;
        let plain = TailEnsembleConfig::default();
        assert!(run(&plain, &blip)[600] >= 0.5, "unconfirmed, a small new record alarms");
        assert!(run(&cfg, &blip).iter().all(|s| *s < 0.5), "confirmed, a one-row blip does not");
        assert!(run(&cfg, &spike)[600] >= 0.5, "a large spike bypasses confirmation");
        let shifted = run(&cfg, &shift);
        assert!(shifted[600] < shifted[601] && shifted[601] >= 0.5, "a lasting shift alarms one row later: {:?}", &shifted[599..603]);
        let err = TailEnsembleConfig { confirm_rows: 0, ..Default::default() }.build(1).unwrap_err();
        assert_eq!(err.field, "confirm_rows");
    }

    #[test]
    fn gaussian_tail_matches_known_values() {
        // Q(0) = 0.5, Q(1.96) = 0.025, Q(5) = 2.8665e-7, Q(8) = 6.2210e-16, Q(-1) = 0.8413.
        assert!((ln_gauss_tail(0.0) - 0.5f64.ln()).abs() < 1e-6);
        assert!((ln_gauss_tail(1.959_964) - 0.025f64.ln()).abs() < 1e-5);
        assert!((ln_gauss_tail(5.0) - 2.866_515_7e-7f64.ln()).abs() < 1e-6);
        assert!((ln_gauss_tail(8.0) - 6.220_960_5e-16f64.ln()).abs() < 1e-6);
        // Continuity where the asymptotic series takes over.
        assert!((ln_gauss_tail(29.999_999) - ln_gauss_tail(30.0)).abs() < 1e-3);
        assert!((ln_gauss_tail(-1.0) - 0.841_344_7f64.ln()).abs() < 1e-6);
    }
}
