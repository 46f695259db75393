//! Pointwise and event metrics of anomaly scores against 0/1 labels.

use serde::Serialize;

/// ROC-AUC (ties averaged, Mann–Whitney). `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            if labels[idx[k]] {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Precision/recall at each distinct threshold (descending), as (threshold, tp, fp).
fn sweep(scores: &[f64], labels: &[bool]) -> Vec<(f64, usize, usize)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0, 0);
    let mut out = Vec::new();
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] {
            tp += 1
        } else {
            fp += 1
        }
        if idx.get(k + 1).is_none_or(|&n| scores[n] != scores[i]) {
            out.push((scores[i], tp, fp));
        }
    }
    out
}

/// Average precision (PR-AUC, step-wise as scikit-learn's `average_precision_score`).
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (_, tp, fp) in sweep(scores, labels) {
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// Best pointwise F1 over thresholds: (f1, threshold).
pub fn best_f1(scores: &[f64], labels: &[bool]) -> Option<(f64, f64)> {
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 {
        return None;
    }
    sweep(scores, labels)
        .into_iter()
        .map(|(t, tp, fp)| (2.0 * tp as f64 / (2 * tp + fp + (pos - tp)) as f64, t))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Contiguous runs of `true`: (start, end exclusive).
pub fn segments(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < labels.len() {
        if labels[i] {
            let s = i;
            while i < labels.len() && labels[i] {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Best point-adjusted F1 (a segment counts as fully detected when any row of it is):
/// flatters weak detectors, never report it alone. (f1, threshold).
pub fn best_f1_point_adjusted(scores: &[f64], labels: &[bool]) -> Option<(f64, f64)> {
    let segs = segments(labels);
    if segs.is_empty() {
        return None;
    }
    let mut adjusted = scores.to_vec();
    for &(s, e) in &segs {
        let m = scores[s..e].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        adjusted[s..e].iter_mut().for_each(|v| *v = m);
    }
    best_f1(&adjusted, labels)
}

/// Event metrics of binary alerts against labelled segments.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventMetrics {
    /// Labelled events.
    pub events: usize,
    /// Events with an alert inside them.
    pub detected: usize,
    /// detected / events.
    pub recall: f64,
    /// Mean rows from event start to its first alert (detected events only).
    pub mttd_rows: f64,
    /// The same in minutes (`interval_secs` per row).
    pub mttd_minutes: f64,
    /// Alert onsets (rising edges) outside any event.
    pub false_alerts: usize,
    /// false_alerts per day of data.
    pub false_alerts_per_day: f64,
}

/// Event recall, MTTD and false alerts per day of `alerts` (one bool per row).
pub fn event_metrics(alerts: &[bool], labels: &[bool], interval_secs: f64) -> EventMetrics {
    let segs = segments(labels);
    let mut delays = Vec::new();
    for &(s, e) in &segs {
        if let Some(k) = alerts[s..e].iter().position(|a| *a) {
            delays.push(k as f64);
        }
    }
    let false_alerts = (0..alerts.len()).filter(|&i| alerts[i] && !labels[i] && (i == 0 || !alerts[i - 1])).count();
    let days = alerts.len() as f64 * interval_secs / 86_400.0;
    let mttd_rows = if delays.is_empty() { f64::NAN } else { delays.iter().sum::<f64>() / delays.len() as f64 };
    EventMetrics {
        events: segs.len(),
        detected: delays.len(),
        recall: if segs.is_empty() { f64::NAN } else { delays.len() as f64 / segs.len() as f64 },
        mttd_rows,
        mttd_minutes: mttd_rows * interval_secs / 60.0,
        false_alerts,
        false_alerts_per_day: if days > 0.0 { false_alerts as f64 / days } else { 0.0 },
    }
}

/// ROC curve points `(false positive rate, true positive rate)`, at most `max_points` (+ ends).
pub fn roc_curve(scores: &[f64], labels: &[bool], max_points: usize) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let neg = (labels.len() as f64 - pos).max(1.0);
    let pts = sweep(scores, labels);
    let step = (pts.len() / max_points.max(1)).max(1);
    let mut out = vec![(0.0, 0.0)];
    out.extend(pts.iter().step_by(step).map(|(_, tp, fp)| (*fp as f64 / neg, *tp as f64 / pos)));
    out.push((1.0, 1.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_f1_by_hand() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        assert!((roc_auc(&s, &l).unwrap() - 0.75).abs() < 1e-12);
        // sklearn average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.8333
        assert!((pr_auc(&s, &l).unwrap() - 0.833_333_333_333_333_4).abs() < 1e-12);
        let (f1, t) = best_f1(&s, &l).unwrap();
        assert!((f1 - 0.8).abs() < 1e-12 && t == 0.35);
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
    }

    #[test]
    fn events_mttd_and_false_alerts() {
        let labels = [false, true, true, true, false, false, true, true, false, false];
        let alerts = [true, false, true, true, false, true, false, false, false, true];
        let m = event_metrics(&alerts, &labels, 60.0);
        assert_eq!((m.events, m.detected, m.false_alerts), (2, 1, 3));
        assert_eq!(m.mttd_rows, 1.0);
        assert!((m.false_alerts_per_day - 3.0 / (10.0 / 1440.0)).abs() < 1e-9);
        let (pa, _) = best_f1_point_adjusted(&[0.0, 0.9, 0.1, 0.1, 0.0, 0.0, 0.2, 0.1, 0.0, 0.0], &labels).unwrap();
        assert_eq!(pa, 1.0);
    }
}
