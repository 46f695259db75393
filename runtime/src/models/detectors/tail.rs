//! The tail ensemble: for every metric, three views of "how unusual is now" against that
//! metric's own history — the value, the absolute change from the previous row, and the mean
//! of the last `short_window` rows — each turned into a two-sided empirical tail probability
//! (with the distance past the seen range in units of the history's spread), combined by max
//! over views and metrics into a surprise in nats. The surprise is then mapped to [0, 1]
//! (`1 - e^{-s / scale}`) and, after an alarm, damped for `suppress_rows` rows so one incident
//! raises one alarm. Everything is causal and needs no fitting; a training split only fills
//! the histories.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

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
    /// Weight of the distance past the seen range (in history spreads) added to the surprise.
    pub range_weight: f64,
    /// Surprise (nats) that counts as an alarm for suppression.
    pub alarm_nats: f64,
    /// Rows damped after an alarm.
    pub suppress_rows: usize,
    /// Factor applied to scores during suppression.
    pub suppress_factor: f64,
    /// Surprise scale of the [0, 1] mapping.
    pub scale_nats: f64,
}

impl Default for TailEnsembleConfig {
    fn default() -> Self {
        Self {
            history_rows: 3000,
            warmup_rows: 100,
            short_window: 6,
            range_weight: 2.0,
            alarm_nats: 7.0,
            suppress_rows: 200,
            suppress_factor: 0.25,
            scale_nats: 10.0,
        }
    }
}

impl TailEnsembleConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<TailEnsemble, DetectorError> {
        let bad = |f: &str, v: String, r: &str| {
            Err(DetectorError {
                field: f.into(),
                value: v,
                reason: r.into(),
            })
        };
        if self.history_rows < 10 {
            return bad("history_rows", self.history_rows.to_string(), "at least 10");
        }
        if self.short_window == 0 {
            return bad("short_window", "0".into(), "at least 1");
        }
        if !(self.scale_nats > 0.0) {
            return bad(
                "scale_nats",
                self.scale_nats.to_string(),
                "must be positive",
            );
        }
        if !(0.0..=1.0).contains(&self.suppress_factor) {
            return bad(
                "suppress_factor",
                self.suppress_factor.to_string(),
                "in [0, 1]",
            );
        }
        let views = (0..n_metrics * 3)
            .map(|_| TailView::new(self.history_rows))
            .collect();
        Ok(TailEnsemble {
            cfg: self.clone(),
            views,
            last: vec![None; n_metrics],
            recent: vec![VecDeque::new(); n_metrics],
            rows: 0,
            since_alarm: usize::MAX,
        })
    }
}

/// History of one view: a ring (for eviction) and a sorted copy (for ranks).
#[derive(Debug, Clone)]
struct TailView {
    cap: usize,
    ring: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl TailView {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            ring: VecDeque::with_capacity(cap),
            sorted: Vec::with_capacity(cap),
        }
    }

    /// Surprise of x in nats against the history (0 with fewer than 2 points).
    fn surprise(&self, x: f64, range_weight: f64) -> f64 {
        let n = self.sorted.len();
        if n < 2 {
            return 0.0;
        }
        let below = self.sorted.partition_point(|v| *v < x); // count < x
        let at_or_below = self.sorted.partition_point(|v| *v <= x);
        let ge = n - below;
        let le = at_or_below;
        let p = (ge.min(le) as f64 + 1.0) / (n as f64 + 1.0);
        let lo = self.sorted[n / 20];
        let hi = self.sorted[n - 1 - n / 20];
        let spread = (hi - lo)
            .max((self.sorted[n - 1] - self.sorted[0]) * 0.1)
            .max(1e-9 * x.abs().max(1.0));
        let beyond = (x - self.sorted[n - 1]).max(self.sorted[0] - x).max(0.0) / spread;
        -p.ln() + range_weight * beyond
    }

    fn insert(&mut self, x: f64) {
        if self.ring.len() == self.cap {
            if let Some(old) = self.ring.pop_front() {
                let i = self.sorted.partition_point(|v| *v < old);
                self.sorted.remove(i);
            }
        }
        self.ring.push_back(x);
        let i = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(i, x);
    }
}

/// The running ensemble.
#[derive(Debug)]
pub(super) struct TailEnsemble {
    cfg: TailEnsembleConfig,
    views: Vec<TailView>,
    last: Vec<Option<f64>>,
    recent: Vec<VecDeque<f64>>,
    rows: usize,
    since_alarm: usize,
}

impl TailEnsemble {
    fn step(&mut self, values: &[f64], score: bool) -> f64 {
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
            let [v_value, v_diff, v_mean] = [3 * m, 3 * m + 1, 3 * m + 2];
            if score {
                surprise = surprise.max(self.views[v_value].surprise(x, self.cfg.range_weight));
                if let Some(d) = diff {
                    surprise = surprise.max(self.views[v_diff].surprise(d, self.cfg.range_weight));
                }
                if full {
                    surprise =
                        surprise.max(self.views[v_mean].surprise(mean, self.cfg.range_weight));
                }
            }
            self.views[v_value].insert(x);
            if let Some(d) = diff {
                self.views[v_diff].insert(d);
            }
            if full {
                self.views[v_mean].insert(mean);
            }
            self.last[m] = Some(x);
        }
        self.rows += 1;
        surprise
    }
}

impl StreamingDetector for TailEnsemble {
    fn push(&mut self, _timestamp_ms: i64, values: &[f64]) -> f64 {
        let warm = self.rows >= self.cfg.warmup_rows;
        let surprise = self.step(values, true);
        if !warm {
            return 0.0;
        }
        let mut score = 1.0 - (-surprise / self.cfg.scale_nats).exp();
        if self.since_alarm < self.cfg.suppress_rows {
            score *= self.cfg.suppress_factor;
        }
        self.since_alarm = self.since_alarm.saturating_add(1);
        if surprise >= self.cfg.alarm_nats && self.since_alarm > self.cfg.suppress_rows {
            self.since_alarm = 0;
        }
        score
    }

    fn learn(&mut self, _timestamp_ms: i64, values: &[f64]) {
        self.step(values, false);
    }
}
