//! The fleet detector: the default for multi-metric server data (10 s to 1 min rows), built for
//! the alert stage and for fleets of 100,000 series (a few KB per server, O(1) work per value).
//!
//! Per metric, online and causal:
//! - a **baseline**: an EWMA of the value (half-life `baseline_half_life_rows`), its updates
//!   clipped at `clip_z` residual scales so an incident (or a restart's drop) does not teach
//!   itself as normal;
//! - the **level** view: the mean of the last `smooth_rows` values above the baseline, in units
//!   of its robust running scale (spikes, storms, saturation);
//! - the **sustained** view: the mean residual of the last `sustain_rows` rows in units of its
//!   own running scale (level shifts and ramps such as leaks: a move too small for one row but
//!   lasting). After `accept_rows` rows past `clip_z` (four times as many below) the recent
//!   level becomes the baseline, so a deploy that moves a level for good alerts once and then
//!   settles;
//! - the **flatline** view: a run of identical values, once `flatline_min_rows` long, scored by
//!   how rarely this metric repeats a value (`run × −ln p̂`, p̂ the decayed share of repeats), so
//!   a metric that idles at a constant is never flagged but a frozen exporter is;
//! - the **daily** context: per `seasonal_bin_secs` bin of the day, yesterday's largest level or
//!   sustained residual in that bin when it went past `seasonal_free_z` scales, in the metric's
//!   own units. Today's residuals in the bin and its neighbours are reduced by
//!   `seasonal_tolerance` × it, so a spike at the same time as yesterday's (a batch job) is
//!   normal once learned, and one at a new time is not.
//!
//! - the **joint** view (`joint`, two or more metrics): each metric against what the others say
//!   it should be — the Gaussian conditional mean given the other metrics, from a running mean
//!   and covariance of ordinary rows (half-life `joint_half_life_rows`) — with its own sustained
//!   view (its level view too with `joint_level`), offset and daily context, used only while every
//!   other metric is inside its own
//!   band (a restart's drop or a counter reset in one metric says nothing about the others).
//!   Load moves CPU, memory, network and disk together, so
//!   the conditional residual strips the daily curve and the business-hours step: CPU up
//!   without traffic (a deploy, a runaway process) shows several times sooner than against
//!   CPU's own history.
//!
//! Views are one-sided (up) unless `two_sided`: a server doing less (a restart, a quiet weekend,
//! a counter reset) is not paged for; a frozen metric is. Each view's z becomes a Gaussian tail
//! surprise in nats (`−ln P(Z ≥ z)`), the row's surprise is the largest over views and metrics,
//! and the score is `s / (s + half_surprise)`: 0.5 means a one-in-a-million row (14 nats) on
//! every server and metric, so the default alert threshold works without a sweep.
//!
//! State per metric and channel (own, joint): about 20 numbers, a ring of `sustain_rows`
//! residuals and two `f32` per daily bin; plus the joint mean and covariance (n² numbers).
//! About 2.8 KB per metric at the defaults: 11 KB for a server's four metrics.

use serde::{Deserialize, Serialize};

use super::{DetectorError, StreamingDetector};

/// Settings of the fleet detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Rows after which an observation's weight in the baseline has halved.
    pub baseline_half_life_rows: f64,
    /// Rows after which an observation's weight in the residual scales has halved.
    pub scale_half_life_rows: f64,
    /// Rows averaged by the level view.
    pub smooth_rows: usize,
    /// Rows averaged by the sustained view.
    pub sustain_rows: usize,
    /// Rows before any score (scores 0 before; the statistics learn from them).
    pub warmup_rows: usize,
    /// Baseline updates are clipped at this many scales; rows beyond it do not update the
    /// scales.
    pub clip_z: f64,
    /// Surprise (nats) that maps to score 0.5.
    pub half_surprise: f64,
    /// Rows the sustained view may stay above `clip_z` before its level is accepted as the new
    /// baseline (a deploy that moved the level for good alerts once, then settles; four times
    /// as many below; 0: never).
    pub accept_rows: usize,
    /// Identical values in a row before the flatline view scores.
    pub flatline_min_rows: usize,
    /// Rows after which an observation's weight in the repeat share has halved.
    pub repeat_half_life_rows: f64,
    /// Width of a daily bin in seconds (0: no daily context).
    pub seasonal_bin_secs: u32,
    /// Yesterday's residual in a bin up to this many scales is ordinary (nothing is learned).
    pub seasonal_free_z: f64,
    /// A larger one, times this, is subtracted from today's residuals in that bin (and its
    /// neighbours): the margin for a recurring job that runs a little heavier today.
    pub seasonal_tolerance: f64,
    /// Score drops below the baseline too.
    pub two_sided: bool,
    /// Also score each metric against what the other metrics say it should be (the joint
    /// view: CPU up without traffic), when there are at least two.
    pub joint: bool,
    /// Rows after which an observation's weight in the joint mean and covariance has halved.
    pub joint_half_life_rows: f64,
    /// The joint view scores its level (smoothed) residual too, not only its sustained one.
    pub joint_level: bool,
    /// Rows between refits of the joint view's precision matrix.
    pub joint_refit_rows: usize,
    /// Floor of a residual scale, as a fraction of the baseline's magnitude.
    pub min_std_frac: f64,
    /// Absolute floor of a residual scale.
    pub min_std: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            baseline_half_life_rows: 180.0,
            scale_half_life_rows: 8640.0,
            smooth_rows: 3,
            sustain_rows: 30,
            warmup_rows: 360,
            clip_z: 3.0,
            half_surprise: 14.0,
            accept_rows: 180,
            flatline_min_rows: 12,
            repeat_half_life_rows: 8640.0,
            seasonal_bin_secs: 600,
            seasonal_free_z: 3.5,
            seasonal_tolerance: 1.25,
            two_sided: false,
            joint: true,
            joint_half_life_rows: 8640.0,
            joint_refit_rows: 30,
            joint_level: false,
            min_std_frac: 0.002,
            min_std: 1e-3,
        }
    }
}

impl FleetConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<Fleet, DetectorError> {
        let bad = |f: &str, v: String, r: &str| Err(DetectorError { field: f.into(), value: v, reason: r.into() });
        super::check_ranges(&[
            ("baseline_half_life_rows", self.baseline_half_life_rows, 1.0, 1e12),
            ("scale_half_life_rows", self.scale_half_life_rows, 1.0, 1e12),
            ("repeat_half_life_rows", self.repeat_half_life_rows, 1.0, 1e12),
            ("joint_half_life_rows", self.joint_half_life_rows, 1.0, 1e12),
            ("clip_z", self.clip_z, super::POSITIVE, 1e6),
            ("half_surprise", self.half_surprise, super::POSITIVE, 1e6),
            ("seasonal_free_z", self.seasonal_free_z, 0.0, 1e6),
            ("seasonal_tolerance", self.seasonal_tolerance, 0.0, 1e6),
            ("min_std_frac", self.min_std_frac, 0.0, 1e6),
            ("min_std", self.min_std, super::POSITIVE, 1e12),
        ])?;
        if self.joint_refit_rows == 0 {
            return bad("joint_refit_rows", "0".into(), "at least 1 row");
        }
        if self.smooth_rows == 0 || self.smooth_rows > SMOOTH_MAX || self.sustain_rows == 0 || self.flatline_min_rows < 2 {
            return bad(
                "smooth_rows/sustain_rows/flatline_min_rows",
                format!("{}/{}/{}", self.smooth_rows, self.sustain_rows, self.flatline_min_rows),
                "smooth 1 to 8 rows, sustain at least 1, flatline at least 2",
            );
        }
        let bins = 86_400u64.checked_div(u64::from(self.seasonal_bin_secs)).map_or(0, |b| b.max(1) as usize);
        let alpha = |h: f64| 1.0 - 0.5f64.powf(1.0 / h);
        let joint = self.joint && n_metrics >= 2;
        Ok(Fleet {
            a_base: alpha(self.baseline_half_life_rows),
            a_scale: alpha(self.scale_half_life_rows),
            a_repeat: alpha(self.repeat_half_life_rows),
            a_joint: alpha(self.joint_half_life_rows),
            bins,
            day: i64::MIN,
            metrics: (0..n_metrics).map(|_| MetricState::new(self.sustain_rows, bins)).collect(),
            joint: joint.then(|| Joint::new(n_metrics, self.sustain_rows, bins)),
            surprise: vec![0.0; n_metrics],
            ordinary: vec![true; n_metrics],
            cfg: self.clone(),
        })
    }
}

const SMOOTH_MAX: usize = 8;

/// `−ln P(Z ≥ z)` for a standard normal Z (Börjesson–Sundberg's approximation of the Mills
/// ratio, within 1 % for every z ≥ 0); `ln 2` at 0 and below.
pub(crate) fn gaussian_surprise(z: f64) -> f64 {
    let z = z.max(0.0);
    0.5 * z * z + 0.5 * std::f64::consts::TAU.ln() + (0.226 + 0.64 * z + 0.33 * (z * z + 3.0).sqrt()).ln()
}

/// A view's surprise above the ordinary: `−ln P(Z ≥ z) − ln 2`, 0 at z ≤ 0.
fn tail_surprise(z: f64) -> f64 {
    if z > 0.0 { gaussian_surprise(z) - std::f64::consts::LN_2 } else { 0.0 }
}

/// One residual stream (a metric against its baseline, or against the other metrics): level and
/// sustained views, their scales and daily context.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Channel {
    rows: usize,
    /// Subtracted from the residual: the joint view's own baseline (0 for a metric's own).
    offset: f64,
    recent: [f64; SMOOTH_MAX],
    ring: Vec<f64>,
    ring_sum: f64,
    /// Running mean square of the level residual and of the sustained mean.
    var_level: f64,
    var_sustain: f64,
    /// Rows in a row the sustained view has been past clip_z (×4 up, ×1 down).
    shifted: usize,
    /// Largest unusual residual per daily bin (× tolerance): yesterday's and today's so far.
    yesterday: Vec<f32>,
    today: Vec<f32>,
}

/// What a channel's views saw in one row.
#[derive(Debug, Clone, Copy)]
struct Seen {
    level: f64,
    sustain: f64,
    sd_level: f64,
    sd_sustain: f64,
}

impl Channel {
    fn new(sustain: usize, bins: usize) -> Self {
        Self {
            rows: 0,
            offset: 0.0,
            recent: [0.0; SMOOTH_MAX],
            ring: vec![0.0; sustain],
            ring_sum: 0.0,
            var_level: 0.0,
            var_sustain: 0.0,
            shifted: 0,
            yesterday: vec![0.0; bins],
            today: vec![0.0; bins],
        }
    }

    fn new_day(&mut self, next_day: bool) {
        if next_day {
            std::mem::swap(&mut self.yesterday, &mut self.today);
        } else {
            self.yesterday.iter_mut().for_each(|b| *b = 0.0);
        }
        self.today.iter_mut().for_each(|b| *b = 0.0);
    }

    /// Take this row's residual; the views before learning from it.
    fn observe(&mut self, cfg: &FleetConfig, resid: f64, floor: f64) -> Seen {
        let resid = resid - self.offset;
        let slot = self.rows % SMOOTH_MAX;
        self.recent[slot] = resid;
        let n = cfg.smooth_rows.min(self.rows + 1);
        let level = (0..n).map(|i| self.recent[(self.rows + SMOOTH_MAX - i) % SMOOTH_MAX]).sum::<f64>() / n as f64;
        let ring_slot = self.rows % self.ring.len();
        self.ring_sum += resid - self.ring[ring_slot];
        self.ring[ring_slot] = resid;
        let sustain = self.ring_sum / (self.rows + 1).min(self.ring.len()) as f64;
        Seen { level, sustain, sd_level: self.var_level.sqrt().max(floor), sd_sustain: self.var_sustain.sqrt().max(floor) }
    }

    /// The larger z of the two views, after yesterday's excess in this bin is taken off.
    fn z(&self, cfg: &FleetConfig, seen: &Seen, bin: Option<usize>) -> f64 {
        let sign = |r: f64| if cfg.two_sided { r.abs() } else { r };
        let excess = bin.map_or(0.0, |b| {
            let hi = (b + 1).min(self.yesterday.len() - 1);
            f64::from(self.yesterday[b.saturating_sub(1)..=hi].iter().copied().fold(0.0f32, f32::max))
        });
        ((sign(seen.level) - excess) / seen.sd_level).max((sign(seen.sustain) - excess) / seen.sd_sustain).max(0.0)
    }

    /// Whether the row was ordinary (inside the clip band), after learning from it; `Some(shift)`
    /// when a lasting move is accepted (the caller moves its baseline by it).
    /// With `absorb`, an accepted move and a slow drift (rate `a_base`, clipped to the band)
    /// go into the channel's own offset.
    fn learn(&mut self, cfg: &FleetConfig, seen: &Seen, bin: Option<usize>, a_scale: f64, absorb: Option<f64>) -> (bool, Option<f64>) {
        let sign = |r: f64| if cfg.two_sided { r.abs() } else { r };
        if let Some(b) = bin
            && (sign(seen.level) > cfg.seasonal_free_z * seen.sd_level || sign(seen.sustain) > cfg.seasonal_free_z * seen.sd_sustain)
        {
            self.today[b] = self.today[b].max((sign(seen.level).max(sign(seen.sustain)) * cfg.seasonal_tolerance) as f32);
        }
        // Scales learn from ordinary rows only (within clip_z), so a lasting incident does not
        // widen them; a noisier regime still does, through its rows inside the band.
        let s = a_scale.max(1.0 / (self.rows + 1) as f64);
        let warm = self.rows < cfg.warmup_rows;
        if let Some(a_base) = absorb {
            let band = cfg.clip_z * seen.sd_level;
            let recent = self.recent[self.rows % SMOOTH_MAX];
            self.offset += a_base * recent.clamp(-band, band);
        }
        let ordinary = seen.level.abs() <= cfg.clip_z * seen.sd_level;
        if warm || ordinary {
            self.var_level += s * (seen.level.powi(2) - self.var_level);
        }
        if warm || seen.sustain.abs() <= cfg.clip_z * seen.sd_sustain {
            self.var_sustain += s * (seen.sustain.powi(2) - self.var_sustain);
        }
        // Rows in a row past the band: up counts four, down one (a drop that recovers, as memory
        // refilling after a restart, must not become the baseline it then rises above).
        let past = seen.sustain.abs() > cfg.clip_z * seen.sd_sustain;
        self.shifted = if !past {
            0
        } else if seen.sustain > 0.0 {
            self.shifted + 4
        } else {
            self.shifted + 1
        };
        self.rows += 1;
        if cfg.accept_rows > 0 && self.shifted >= 4 * cfg.accept_rows {
            let shift = seen.sustain;
            self.ring.iter_mut().for_each(|r| *r = 0.0);
            self.recent = [0.0; SMOOTH_MAX];
            self.ring_sum = 0.0;
            self.shifted = 0;
            if absorb.is_some() {
                self.offset += shift;
            }
            return (ordinary, Some(shift));
        }
        (ordinary || warm, None)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetricState {
    rows: usize,
    base: f64,
    own: Channel,
    /// Decayed counts of rows and of rows equal to the previous one.
    seen: f64,
    repeats: f64,
    last: f64,
    run: usize,
}

impl MetricState {
    fn new(sustain: usize, bins: usize) -> Self {
        Self { rows: 0, base: 0.0, own: Channel::new(sustain, bins), seen: 0.0, repeats: 0.0, last: f64::NAN, run: 0 }
    }
}

/// The joint view's running mean, covariance and precision, and one channel per metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Joint {
    rows: usize,
    mean: Vec<f64>,
    cov: Vec<f64>,
    precision: Option<Vec<f64>>,
    channels: Vec<Channel>,
    centered: Vec<f64>,
    /// This row's conditional residuals (a buffer kept between rows).
    resid: Vec<f64>,
}

impl Joint {
    fn new(n: usize, sustain: usize, bins: usize) -> Self {
        Self {
            rows: 0,
            mean: vec![0.0; n],
            cov: vec![0.0; n * n],
            precision: None,
            channels: (0..n).map(|_| Channel::new(sustain, bins)).collect(),
            centered: vec![0.0; n],
            resid: vec![f64::NAN; n],
        }
    }

    /// Conditional residuals `x_j − E[x_j | the others]` (NaN when unknown).
    fn residuals(&mut self, values: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|r| *r = f64::NAN);
        let Some(p) = &self.precision else { return };
        if values.iter().any(|v| !v.is_finite()) {
            return;
        }
        let n = self.mean.len();
        for (c, (x, m)) in self.centered.iter_mut().zip(values.iter().zip(&self.mean)) {
            *c = x - m;
        }
        for j in 0..n {
            let row = &p[j * n..(j + 1) * n];
            let pc: f64 = row.iter().zip(&self.centered).map(|(a, b)| a * b).sum();
            out[j] = pc / row[j];
        }
    }

    /// Learn an ordinary, complete row; refit the precision every `refit` rows.
    fn learn(&mut self, values: &[f64], alpha: f64, refit: usize, warmup: usize) {
        let n = self.mean.len();
        let a = alpha.max(1.0 / (self.rows + 1) as f64);
        for (c, (x, m)) in self.centered.iter_mut().zip(values.iter().zip(&self.mean)) {
            *c = x - m;
        }
        for (m, c) in self.mean.iter_mut().zip(&self.centered) {
            *m += a * c;
        }
        for i in 0..n {
            for j in 0..n {
                let v = &mut self.cov[i * n + j];
                *v = (1.0 - a) * (*v + a * self.centered[i] * self.centered[j]);
            }
        }
        self.rows += 1;
        if self.rows >= warmup && self.rows.is_multiple_of(refit) {
            self.precision = invert_ridged(&self.cov, n);
        }
    }
}

/// Inverse of a covariance matrix with a small ridge (1e-3 of each variance, plus 1e-12), by
/// Gauss–Jordan with partial pivoting; `None` when singular even so.
fn invert_ridged(cov: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut a = cov.to_vec();
    for i in 0..n {
        a[i * n + i] += 1e-3 * a[i * n + i].abs() + 1e-12;
    }
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x * n + col].abs().total_cmp(&a[y * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
                inv.swap(pivot * n + k, col * n + k);
            }
        }
        let d = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= d;
            inv[col * n + k] /= d;
        }
        for r in 0..n {
            if r != col {
                let f = a[r * n + col];
                if f != 0.0 {
                    for k in 0..n {
                        a[r * n + k] -= f * a[col * n + k];
                        inv[r * n + k] -= f * inv[col * n + k];
                    }
                }
            }
        }
    }
    inv.iter().all(|v| v.is_finite()).then_some(inv)
}

/// The running detector.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Fleet {
    cfg: FleetConfig,
    a_base: f64,
    a_scale: f64,
    a_repeat: f64,
    a_joint: f64,
    bins: usize,
    day: i64,
    metrics: Vec<MetricState>,
    joint: Option<Joint>,
    surprise: Vec<f64>,
    ordinary: Vec<bool>,
}

impl Fleet {
    fn bin_of(&mut self, timestamp_ms: i64) -> Option<usize> {
        if self.bins == 0 {
            return None;
        }
        let day = timestamp_ms.div_euclid(86_400_000);
        if day != self.day {
            let next_day = self.day != i64::MIN && day == self.day + 1;
            for m in &mut self.metrics {
                m.own.new_day(next_day);
            }
            for c in self.joint.iter_mut().flat_map(|j| j.channels.iter_mut()) {
                c.new_day(next_day);
            }
            self.day = day;
        }
        let bin = (timestamp_ms.rem_euclid(86_400_000) / (i64::from(self.cfg.seasonal_bin_secs) * 1000)) as usize;
        Some(bin.min(self.bins - 1))
    }

    /// Score one metric's value against its own baseline (NaN: skipped, scores 0), learn from
    /// it, and note whether it was ordinary.
    fn step(&mut self, k: usize, bin: Option<usize>, x: f64, score: bool) -> f64 {
        let cfg = &self.cfg;
        let m = &mut self.metrics[k];
        if !x.is_finite() {
            self.ordinary[k] = false;
            return 0.0;
        }
        if m.rows == 0 {
            m.base = x;
        }
        let floor = cfg.min_std.max(cfg.min_std_frac * m.base.abs());
        let seen = m.own.observe(cfg, x - m.base, floor);
        let repeat = x == m.last;
        m.run = if repeat { m.run + 1 } else { 1 };
        let mut surprise = 0.0;
        if score && m.rows >= cfg.warmup_rows {
            surprise = tail_surprise(m.own.z(cfg, &seen, bin));
            if m.run >= cfg.flatline_min_rows {
                let p = (m.repeats + 1.0) / (m.seen + 2.0);
                surprise = surprise.max(m.run as f64 * -p.ln());
            }
        }
        // Learn: the baseline's updates are clipped to the band.
        let a = self.a_base.max(1.0 / (m.rows + 1) as f64);
        let band = cfg.clip_z * seen.sd_level;
        m.base += a * (x.clamp(m.base - band, m.base + band) - m.base);
        let (ordinary, shift) = m.own.learn(cfg, &seen, bin, self.a_scale, None);
        if let Some(shift) = shift {
            m.base += shift;
        }
        self.ordinary[k] = ordinary;
        m.seen = m.seen * (1.0 - self.a_repeat) + 1.0;
        m.repeats = m.repeats * (1.0 - self.a_repeat) + f64::from(u8::from(repeat));
        m.last = x;
        m.rows += 1;
        surprise
    }

    /// The joint view over the row: per metric, its surprise against the others.
    fn joint_step(&mut self, bin: Option<usize>, values: &[f64], score: bool) {
        let cfg = &self.cfg;
        let Some(joint) = &mut self.joint else { return };
        let mut resid = std::mem::take(&mut joint.resid);
        joint.residuals(values, &mut resid);
        let unusual = self.ordinary.iter().filter(|o| !**o).count();
        for (k, r) in resid.iter().enumerate() {
            // Only against metrics that are themselves ordinary: when another one is out of its
            // band (a restart's drop, a counter reset, its own incident) the conditional mean
            // says nothing about this one.
            let others_unusual = unusual - usize::from(!self.ordinary[k]);
            if !r.is_finite() || others_unusual > 0 {
                continue;
            }
            let base = self.metrics[k].base;
            let ch = &mut joint.channels[k];
            let seen = ch.observe(cfg, *r, cfg.min_std.max(cfg.min_std_frac * base.abs()));
            if score && ch.rows >= cfg.warmup_rows {
                let seen_for_z = if cfg.joint_level { seen } else { Seen { level: 0.0, ..seen } };
                self.surprise[k] = self.surprise[k].max(tail_surprise(ch.z(cfg, &seen_for_z, bin)));
            }
            let _ = ch.learn(cfg, &seen, bin, self.a_scale, Some(self.a_base));
        }
        joint.resid = resid;
        if self.ordinary.iter().all(|o| *o) {
            joint.learn(values, self.a_joint, cfg.joint_refit_rows, cfg.warmup_rows);
        }
    }

    fn row(&mut self, timestamp_ms: i64, values: &[f64], score: bool) -> f64 {
        let bin = self.bin_of(timestamp_ms);
        let n = self.metrics.len().min(values.len());
        for (k, &x) in values.iter().enumerate().take(n) {
            self.surprise[k] = self.step(k, bin, x, score);
        }
        if values.len() == self.metrics.len() {
            self.joint_step(bin, values, score);
        }
        let top = self.surprise.iter().copied().fold(0.0, f64::max);
        top / (top + self.cfg.half_surprise)
    }
}

impl StreamingDetector for Fleet {
    fn save_state(&self) -> Option<Vec<u8>> {
        super::save_state(self)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        super::load_state(self, state)
    }

    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64 {
        self.row(timestamp_ms, values, true)
    }

    fn learn(&mut self, timestamp_ms: i64, values: &[f64]) {
        let _ = self.row(timestamp_ms, values, false);
    }

    fn contributions(&self) -> Vec<f64> {
        self.surprise.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: i64, k: i64) -> f64 {
        // Deterministic pseudo-noise in [-1, 1] (SplitMix64 of the row and metric).
        let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % 2001) as f64 / 1000.0 - 1.0
    }

    #[test]
    fn surprise_matches_the_gaussian_tail() {
        // P(Z ≥ 0) = 0.5, P(Z ≥ 3) = 1.35e-3, P(Z ≥ 5) = 2.87e-7.
        for (z, p) in [(0.0, 0.5), (3.0, 1.349_9e-3), (5.0, 2.866_5e-7)] {
            let s: f64 = gaussian_surprise(z);
            assert!((s - -f64::ln(p)).abs() < 0.02, "z {z}: {s} vs {}", -f64::ln(p));
        }
    }

    #[test]
    fn spikes_shifts_and_flatlines_alarm_drops_and_batch_jobs_do_not() {
        let mut d = FleetConfig::default().build(2).unwrap();
        let day = 8640;
        let mut score_at = |i: i64, v: [f64; 2]| d.push(i * 10_000, &v);
        let mut max_quiet: f64 = 0.0;
        for i in 0..day {
            let batch = (1200..1240).contains(&i);
            let v = [50.0 + 3.0 * noise(i, 0) + if batch { 30.0 } else { 0.0 }, 20.0 + noise(i, 1)];
            let s = score_at(i, v);
            if i > 100 && !(1200..1240 + 30).contains(&i) {
                max_quiet = max_quiet.max(s);
            }
        }
        assert!(max_quiet < 0.5, "quiet rows {max_quiet}");
        // The same batch job the next day is normal once learned.
        let mut batch_max: f64 = 0.0;
        for i in day..day + 1300 {
            let batch = (day + 1200..day + 1240).contains(&i);
            batch_max = batch_max.max(score_at(i, [50.0 + 3.0 * noise(i, 0) + if batch { 30.0 } else { 0.0 }, 20.0 + noise(i, 1)]));
        }
        assert!(batch_max < 0.5, "yesterday's batch job alarms again: {batch_max}");
        // A spike at a new time alarms in its metric.
        let t = day + 1400;
        for i in day + 1300..t {
            score_at(i, [50.0 + 3.0 * noise(i, 0), 20.0 + noise(i, 1)]);
        }
        assert!(score_at(t, [90.0, 20.0]) > 0.7);
        assert!(d.contributions()[0] > d.contributions()[1]);
    }

    #[test]
    fn a_lasting_small_shift_alarms_a_drop_does_not_and_a_frozen_metric_does() {
        let quiet = |d: &mut Fleet, from: i64, to: i64, off: f64| -> f64 {
            (from..to).map(|i| d.push(i * 10_000, &[50.0 + 3.0 * noise(i, 0) + off])).fold(0.0, f64::max)
        };
        let mut d = FleetConfig::default().build(1).unwrap();
        assert!(quiet(&mut d, 0, 3000, 0.0) < 0.5);
        // +2 scales: no single row is surprising, but it lasts.
        assert!(quiet(&mut d, 3000, 3060, 2.5 * 1.7) > 0.5, "a lasting shift");
        let mut d = FleetConfig::default().build(1).unwrap();
        quiet(&mut d, 0, 3000, 0.0);
        assert!(quiet(&mut d, 3000, 3060, -20.0) < 0.5, "a drop (restart) is not paged");
        let mut d = FleetConfig::default().build(1).unwrap();
        quiet(&mut d, 0, 3000, 0.0);
        let frozen: f64 = (3000..3020).map(|i| d.push(i * 10_000, &[51.3])).fold(0.0, f64::max);
        assert!(frozen > 0.5, "a frozen metric: {frozen}");
        // A metric that idles at a constant is not a flatline.
        let mut d = FleetConfig::default().build(1).unwrap();
        let idle: f64 = (0..3000).map(|i| d.push(i * 10_000, &[0.0])).fold(0.0, f64::max);
        assert!(idle < 0.5, "{idle}");
        assert!(FleetConfig { half_surprise: f64::NAN, ..Default::default() }.build(1).unwrap_err().to_string().contains("half_surprise"));
    }
}
