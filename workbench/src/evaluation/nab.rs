//! The NAB score, per NAB v1.1's rules (`nab/sweeper.py`, `optimize_threshold.py`,
//! `runner.py`, `config/profiles.json`):
//!
//! - each row after the probationary period (`min(floor(0.15 N), 750)` rows) is a candidate
//!   detection when its score ≥ threshold;
//! - in a window, the earliest detection scores `tp_weight · σ(y) / σ(-1)` with
//!   `y = -(right - i + 1) / width` and σ(y) = 2 / (1 + e^{5y}) - 1 (so 1 at the window's start,
//!   0 at its end); later detections in the same window add nothing; a window with none costs
//!   `-fn_weight`;
//! - a detection outside windows costs `fp_weight · σ(y)` (σ < 0) with `y` the distance past the
//!   previous window's end in window widths (−1 when no window precedes it);
//! - one threshold for the whole corpus, the one maximizing the summed score (exhaustive sweep);
//! - normalized: `100 (S - S_null) / (S_perfect - S_null)`, `S_null = -fn_weight · windows`
//!   (never detecting), `S_perfect = tp_weight · windows` (as NAB's `runner.normalize`).
//!
//! The published HTM and ARTime results are reproduced to ±0.01 (test in `tests/services`).

use serde::Serialize;

/// A NAB application profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    /// Profile name.
    pub name: &'static str,
    /// Weight of a true positive.
    pub tp_weight: f64,
    /// Weight of a false positive.
    pub fp_weight: f64,
    /// Weight of a missed window.
    pub fn_weight: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", tp_weight: 1.0, fp_weight: 0.11, fn_weight: 1.0 },
    Profile { name: "reward_low_FP_rate", tp_weight: 1.0, fp_weight: 0.22, fn_weight: 1.0 },
    Profile { name: "reward_low_FN_rate", tp_weight: 1.0, fp_weight: 0.11, fn_weight: 2.0 },
];

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 { -1.0 } else { 2.0 / (1.0 + (5.0 * y).exp()) - 1.0 }
}

/// One scored file: timestamps (file order), detector scores, windows (inclusive timestamps).
#[derive(Debug, Clone)]
pub struct NabInput<'a> {
    /// File key.
    pub key: &'a str,
    /// Timestamps in ms, file order.
    pub timestamps_ms: &'a [i64],
    /// Anomaly scores in [0, 1], one per row.
    pub scores: &'a [f64],
    /// Anomaly windows.
    pub windows: &'a [(i64, i64)],
}

/// Per-row scoring context of one file, independent of the threshold.
#[derive(Debug, Clone, Copy)]
struct Row {
    score: f64,
    /// σ weight if detected.
    weight: f64,
    /// Global window id, or `None` outside windows.
    window: Option<usize>,
    file: usize,
}

/// Result for one profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileResult {
    /// Profile name.
    pub profile: &'static str,
    /// Normalized score (null = 0, perfect = 100).
    pub score: f64,
    /// Raw summed score at the best threshold.
    pub raw: f64,
    /// The corpus threshold.
    pub threshold: f64,
    /// Windows with a detection.
    pub tp: usize,
    /// Detections outside windows (after probation).
    pub fp: usize,
    /// Windows without a detection.
    pub fn_: usize,
    /// Raw score per file at the corpus threshold.
    pub per_file: Vec<(String, f64)>,
}

fn rows_of(file: usize, input: &NabInput<'_>, window_base: usize) -> (Vec<Row>, usize) {
    let ts = input.timestamps_ms;
    let n = ts.len();
    let probation = crate::frames::nab::probationary_rows(n);
    let mut windows: std::collections::VecDeque<(i64, i64)> = input.windows.iter().copied().collect();
    let mut out = Vec::with_capacity(n);
    let mut window_id = window_base;
    let max_tp = scaled_sigmoid(-1.0);
    let mut cur: Option<(usize, f64, usize)> = None; // (right index, width, id)
    let mut prev: Option<(usize, f64)> = None; // (right index, width)
    for i in 0..n {
        if cur.is_none() && windows.front().is_some_and(|w| w.0 == ts[i]) {
            let (_, end) = windows.pop_front().expect("front exists");
            // Python's list.index: the first row with the end timestamp.
            let right = ts.iter().position(|t| *t == end).unwrap_or(n - 1);
            cur = Some((right, (right as f64 - i as f64 + 1.0), window_id));
            window_id += 1;
        }
        let (weight, window) = match (cur, prev) {
            (Some((right, width, id)), _) => (scaled_sigmoid(-(right as f64 - i as f64 + 1.0) / width) / max_tp, Some(id)),
            (None, Some((right, width))) => (scaled_sigmoid((right as f64 - i as f64).abs() / (width - 1.0).max(1.0)), None),
            (None, None) => (-1.0, None),
        };
        if i >= probation {
            out.push(Row { score: input.scores[i], weight, window, file });
        }
        if let Some((right, width, _)) = cur
            && i >= right
        {
            prev = Some((i, width));
            cur = None;
        }
    }
    (out, window_id - window_base)
}

/// Score a corpus under one profile.
pub fn score_corpus(inputs: &[NabInput<'_>], profile: Profile) -> ProfileResult {
    let mut rows = Vec::new();
    let mut n_windows = 0;
    let mut window_file = Vec::new();
    for (f, input) in inputs.iter().enumerate() {
        assert_eq!(input.timestamps_ms.len(), input.scores.len(), "{}: one score per row", input.key);
        let (r, w) = rows_of(f, input, n_windows);
        rows.extend(r);
        window_file.extend(std::iter::repeat_n(f, w));
        n_windows += w;
    }
    // Windows that were deleted by probation still count as windows NAB expects? No: NAB's
    // windows file already drops windows starting in the probationary period.
    rows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut best_tp = vec![f64::NEG_INFINITY; n_windows];
    let (mut tp_score, mut fp_score) = (0.0, 0.0);
    let mut detected_windows = 0usize;
    let null = -profile.fn_weight * n_windows as f64;
    // No detections at all (threshold above every score).
    let mut best = (null, f64::INFINITY, 0usize);
    for (i, r) in rows.iter().enumerate() {
        match r.window {
            Some(w) => {
                if r.weight > best_tp[w] {
                    if best_tp[w] == f64::NEG_INFINITY {
                        detected_windows += 1;
                        tp_score += profile.tp_weight * r.weight;
                    } else {
                        tp_score += profile.tp_weight * (r.weight - best_tp[w]);
                    }
                    best_tp[w] = r.weight;
                }
            }
            None => fp_score += profile.fp_weight * r.weight,
        }
        let last_of_score = rows.get(i + 1).is_none_or(|n| n.score != r.score);
        if last_of_score {
            let total = tp_score + fp_score - profile.fn_weight * (n_windows - detected_windows) as f64;
            if total > best.0 {
                best = (total, r.score, i + 1);
            }
        }
    }
    let threshold = best.1;
    // Recount at the chosen threshold, per file.
    let mut per_file = vec![0.0; inputs.len()];
    let mut best_tp = vec![f64::NEG_INFINITY; n_windows];
    let mut fp = 0;
    for r in rows.iter().filter(|r| r.score >= threshold) {
        match r.window {
            Some(w) => best_tp[w] = best_tp[w].max(r.weight),
            None => {
                fp += 1;
                per_file[r.file] += profile.fp_weight * r.weight;
            }
        }
    }
    let mut tp = 0;
    for (w, b) in best_tp.iter().enumerate() {
        if b.is_finite() {
            tp += 1;
            per_file[window_file[w]] += profile.tp_weight * b;
        } else {
            per_file[window_file[w]] -= profile.fn_weight;
        }
    }
    let perfect = profile.tp_weight * n_windows as f64;
    let score = if perfect > null { 100.0 * (best.0 - null) / (perfect - null) } else { 0.0 };
    ProfileResult {
        profile: profile.name,
        score,
        raw: best.0,
        threshold,
        tp,
        fp,
        fn_: n_windows - tp,
        per_file: inputs.iter().map(|i| i.key.to_string()).zip(per_file).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize, window: (usize, usize)) -> (Vec<i64>, Vec<(i64, i64)>) {
        let ts: Vec<i64> = (0..n as i64).map(|i| i * 300_000).collect();
        let w = vec![(ts[window.0], ts[window.1])];
        (ts, w)
    }

    #[test]
    fn sigmoid_matches_nab() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_2).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn perfect_null_and_late_detectors() {
        let (ts, w) = file(1000, (500, 599));
        let key = "f.csv";
        let score = |s: &[f64]| score_corpus(&[NabInput { key, timestamps_ms: &ts, scores: s, windows: &w }], PROFILES[0]);
        let mut perfect = vec![0.0; 1000];
        perfect[500] = 1.0;
        let r = score(&perfect);
        assert!((r.score - 100.0).abs() < 1e-9, "{r:?}");
        assert_eq!((r.tp, r.fp, r.fn_), (1, 0, 0));
        let r = score(&vec![0.0; 1000]);
        assert!(r.score.abs() < 1e-9);
        // Detecting at the window's middle: σ(-0.5) / σ(-1) = 0.860.
        let mut mid = vec![0.0; 1000];
        mid[550] = 1.0;
        let r = score(&mid);
        let expected = 100.0 * (scaled_sigmoid(-50.0 / 100.0) / scaled_sigmoid(-1.0) + 1.0) / 2.0;
        assert!((r.score - expected).abs() < 1e-9, "{} vs {expected}", r.score);
        // Detections in the probationary period are ignored; a far false positive costs 0.11.
        let mut fp = perfect.clone();
        fp[10] = 1.0;
        fp[300] = 1.0;
        let r = score(&fp);
        assert_eq!(r.fp, 1);
        assert!((r.raw - (1.0 - 0.11)).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn threshold_is_optimized_over_the_corpus() {
        let (ts, w) = file(1000, (500, 599));
        let mut a = vec![0.1; 1000];
        a[510] = 0.9;
        a[800] = 0.8; // an FP just below the TP
        let r = score_corpus(&[NabInput { key: "a", timestamps_ms: &ts, scores: &a, windows: &w }], PROFILES[0]);
        assert_eq!(r.threshold, 0.9);
        assert_eq!(r.fp, 0);
    }
}
