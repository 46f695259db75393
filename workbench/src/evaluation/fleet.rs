//! Alert-level evaluation of a detector on a simulated fleet, as a pager would feel it.
//!
//! Every server's rows go through the detector and then through the runtime's own
//! [`AlertDecider`] (threshold, consecutive rows, cooldown, resolve): what is counted is what the
//! runtime would send. An incident is detected when a notification for its server starts inside
//! its window; the detection delay is from the incident's start to that notification. A false
//! alert is every notification outside all incidents of its server (window plus
//! [`GRACE_MS`]), re-notifications of an alert that keeps firing included, and the time spent
//! with an alert open outside incidents is reported next to it. So a setting that always alerts
//! pays for every re-notification and every hour it stays open, and one that never alerts
//! detects nothing: neither can rank above a useful one.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use runtime::collector::simulate::Incident;
use runtime::decisions::{AlertDecider, Decision, DecisionConfig};
use serde::Serialize;

use crate::detect::{DetectInput, detect_rows};
use crate::detectors::AnyDetector;
use crate::frames::FrameError;

/// After an incident's labelled end, alerts within this long still belong to it (the system
/// settling back, a restart after a leak).
pub const GRACE_MS: i64 = 10 * 60_000;

/// Longest gap between two rows counted as time spent alerting (a longer gap is missing data).
const MAX_ROW_GAP_MS: i64 = 5 * 60_000;

/// A simulated fleet as read for evaluation: metrics, labels, and per-server detector input.
#[derive(Debug, Clone)]
pub struct SimFleet {
    /// Labelled incidents.
    pub incidents: Vec<Incident>,
    /// Metric columns, in order.
    pub metrics: Vec<String>,
    /// Server names, in order of first appearance.
    pub servers: Vec<String>,
    ts: Vec<i64>,
    server_of_row: Vec<String>,
    cols: Vec<Vec<Option<f64>>>,
}

impl SimFleet {
    /// Read `metrics.parquet|csv` + `labels.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, FrameError> {
        let data = if dir.join("metrics.parquet").exists() { dir.join("metrics.parquet") } else { dir.join("metrics.csv") };
        let df = crate::frames::read_metrics_file(&data)?;
        let incidents = crate::simulate::read_labels(&dir.join("labels.csv"))?;
        let ts = crate::frames::timestamps_ms(&df)?;
        let server_of_row = crate::frames::server_column(&df, "series")?;
        let metrics = crate::frames::metric_columns(&df);
        let cols: Vec<Vec<Option<f64>>> = metrics.iter().map(|m| crate::frames::f64_column(&df, m)).collect::<Result<_, _>>()?;
        let mut servers: Vec<String> = Vec::new();
        for s in &server_of_row {
            if !servers.contains(s) {
                servers.push(s.clone());
            }
        }
        if servers.is_empty() {
            return Err(FrameError::Schema { context: data.display().to_string(), message: "no rows: nothing to evaluate".into() });
        }
        Ok(Self { incidents, metrics, servers, ts, server_of_row, cols })
    }

    /// One server's rows as detector input (missing values as NaN).
    pub fn server_input(&self, server: &str) -> DetectInput {
        let idx: Vec<usize> = (0..self.ts.len()).filter(|&i| self.server_of_row[i] == server).collect();
        DetectInput {
            columns: self.metrics.clone(),
            timestamps_ms: Some(idx.iter().map(|&i| self.ts[i]).collect()),
            rows: idx.iter().map(|&i| self.cols.iter().map(|c| c[i].unwrap_or(f64::NAN)).collect()).collect(),
        }
    }
}

/// Detection of one incident kind in a simulated fleet.
#[derive(Debug, Clone, Serialize)]
pub struct SimKindResult {
    /// Incident kind.
    pub kind: String,
    /// Incidents of that kind.
    pub incidents: usize,
    /// Incidents with a notification starting inside their window.
    pub detected: usize,
    /// Mean minutes from incident start to its first notification (detected ones).
    pub mttd_minutes: f64,
    /// Detected incidents whose first notification names the incident's metric as primary.
    pub primary_correct: usize,
}

/// Alert-level evaluation of a simulated fleet (see the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Detector name.
    pub detector: String,
    /// Alert threshold on the score.
    pub threshold: f64,
    /// Anomalous rows in a row before a notification.
    pub consecutive: usize,
    /// Seconds before the same server and metric notifies again.
    pub cooldown_secs: i64,
    /// Per kind.
    pub kinds: Vec<SimKindResult>,
    /// All incidents.
    pub incidents: usize,
    /// Incidents detected.
    pub detected: usize,
    /// detected / incidents.
    pub recall: f64,
    /// Notifications sent (triggers, re-notifications included).
    pub notifications: usize,
    /// Notifications outside every incident of their server.
    pub false_alerts: usize,
    /// Server-days of data (each server's first to last row).
    pub server_days: f64,
    /// false_alerts / server_days.
    pub false_alerts_per_server_day: f64,
    /// Hours with an alert open outside incidents, per server-day.
    pub false_alert_hours_per_server_day: f64,
    /// Detected incidents among detected incidents plus false alerts.
    pub precision: f64,
    /// Harmonic mean of precision and recall.
    pub event_f1: f64,
    /// The incidents no notification caught (`server kind start`), to look at.
    pub missed: Vec<String>,
    /// The false notifications (`server metric time`), to look at next to `events.csv`.
    pub false_notifications: Vec<String>,
}

impl SimReport {
    /// The per-kind table and the fleet totals, as aligned text or Markdown.
    pub fn render(&self, markdown: bool) -> String {
        use std::fmt::Write;
        let mut table = super::table::TextTable::new(&["kind", "incidents", "detected", "MTTD (min)", "primary metric"]);
        for k in &self.kinds {
            table.row(vec![
                k.kind.clone(),
                k.incidents.to_string(),
                k.detected.to_string(),
                format!("{:.1}", k.mttd_minutes),
                format!("{}/{}", k.primary_correct, k.detected),
            ]);
        }
        let mut out = table.render(markdown);
        if markdown {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{}: threshold {}, {} consecutive rows, cooldown {} s: detected {}/{} (recall {:.3}), {} notifications, {} false \
             ({:.2} per server-day, {:.2} h open per server-day, over {:.1} server-days), event F1 {:.3}",
            self.detector,
            self.threshold,
            self.consecutive,
            self.cooldown_secs,
            self.detected,
            self.incidents,
            self.recall,
            self.notifications,
            self.false_alerts,
            self.false_alerts_per_server_day,
            self.false_alert_hours_per_server_day,
            self.server_days,
            self.event_f1
        );
        out
    }
}

/// What one server's notifications amounted to.
#[derive(Debug, Default)]
struct ServerOutcome {
    /// Per incident of this server (in `incidents` order): delay in minutes and whether the
    /// primary metric was right, for the detected ones.
    detections: Vec<(usize, f64, bool)>,
    notifications: usize,
    false_alerts: usize,
    false_list: Vec<String>,
    false_open_ms: i64,
    span_ms: i64,
}

fn server_outcome(
    name: &str,
    input: &DetectInput,
    scores: &[f64],
    primary: &[usize],
    incidents: &[(usize, &Incident)],
    decision: &DecisionConfig,
) -> Result<ServerOutcome, FrameError> {
    let mut decider = AlertDecider::new(decision.clone())
        .map_err(|e| FrameError::Schema { context: "decision settings".into(), message: e.to_string() })?;
    let t = input.times();
    let within = |ts: i64, grace: i64| incidents.iter().find(|(_, i)| ts >= i.start_ms && ts <= i.end_ms + grace).map(|(k, i)| (*k, *i));
    let mut out = ServerOutcome::default();
    let mut open: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut contributions = vec![0.0; input.columns.len()];
    for (k, (&ts, row)) in t.iter().zip(&input.rows).enumerate() {
        contributions.iter_mut().for_each(|c| *c = 0.0);
        if let Some(c) = contributions.get_mut(primary[k]) {
            *c = 1.0;
        }
        for d in decider.observe(name, ts, scores[k], &input.columns, row, &contributions) {
            match d {
                Decision::Trigger(alert) => {
                    out.notifications += 1;
                    open.insert(alert.dedup_key.clone());
                    match within(ts, 0) {
                        Some((idx, inc)) if !out.detections.iter().any(|d| d.0 == idx) => {
                            out.detections.push((idx, (ts - inc.start_ms) as f64 / 60_000.0, alert.primary_metric == inc.metric));
                        }
                        Some(_) => {}
                        None if within(ts, GRACE_MS).is_some() => {}
                        None => {
                            out.false_alerts += 1;
                            out.false_list.push(format!("{name} {} {}", alert.primary_metric, runtime::format_ts(ts)));
                        }
                    }
                }
                Decision::Resolve { dedup_key, .. } => {
                    open.remove(&dedup_key);
                }
            }
        }
        if !open.is_empty() && within(ts, GRACE_MS).is_none() {
            out.false_open_ms += t.get(k + 1).map_or(0, |next| (next - ts).clamp(0, MAX_ROW_GAP_MS));
        }
    }
    out.span_ms = match (t.first(), t.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    Ok(out)
}

/// Run a detector per server over a simulated fleet (`metrics.parquet|csv` + `labels.csv` in
/// `dir`), send its scores through an [`AlertDecider`] with `decision`, and count per incident
/// kind what was detected and how early, and what was sent outside incidents.
pub fn evaluate_sim(dir: &Path, cfg: &AnyDetector, decision: &DecisionConfig) -> Result<SimReport, FrameError> {
    decision.validate().map_err(|e| FrameError::Schema { context: "decision settings".into(), message: e.to_string() })?;
    let fleet = SimFleet::load(dir)?;
    let outcomes: Vec<(String, ServerOutcome)> = fleet
        .servers
        .par_iter()
        .map(|name| {
            let input = fleet.server_input(name);
            let det = detect_rows(cfg, &input, None).map_err(|e| FrameError::Schema { context: name.clone(), message: e.to_string() })?;
            let mine: Vec<(usize, &Incident)> = fleet.incidents.iter().enumerate().filter(|(_, i)| &i.server == name).collect();
            Ok((name.clone(), server_outcome(name, &input, &det.scores, &det.primary, &mine, decision)?))
        })
        .collect::<Result<_, FrameError>>()?;
    let mut by_kind: BTreeMap<&str, SimKindResult> = BTreeMap::new();
    for inc in &fleet.incidents {
        let e = by_kind.entry(inc.kind.name()).or_insert_with(|| SimKindResult {
            kind: inc.kind.name().to_string(),
            incidents: 0,
            detected: 0,
            mttd_minutes: 0.0,
            primary_correct: 0,
        });
        e.incidents += 1;
    }
    let (mut notifications, mut false_alerts, mut false_open_ms, mut span_ms) = (0, 0, 0i64, 0i64);
    let mut false_notifications = Vec::new();
    let mut caught = vec![false; fleet.incidents.len()];
    for (_, o) in &outcomes {
        false_notifications.extend(o.false_list.iter().cloned());
        notifications += o.notifications;
        false_alerts += o.false_alerts;
        false_open_ms += o.false_open_ms;
        span_ms += o.span_ms;
        for &(idx, delay, right) in &o.detections {
            let e = by_kind.get_mut(fleet.incidents[idx].kind.name()).expect("every incident's kind is listed");
            e.detected += 1;
            e.mttd_minutes += delay;
            e.primary_correct += usize::from(right);
            caught[idx] = true;
        }
    }
    let kinds: Vec<SimKindResult> = by_kind
        .into_values()
        .map(|mut k| {
            k.mttd_minutes = if k.detected > 0 { k.mttd_minutes / k.detected as f64 } else { f64::NAN };
            k
        })
        .collect();
    let incidents = fleet.incidents.len();
    let detected: usize = kinds.iter().map(|k| k.detected).sum();
    let server_days = span_ms as f64 / 86_400_000.0;
    let recall = if incidents > 0 { detected as f64 / incidents as f64 } else { f64::NAN };
    let precision = if detected + false_alerts > 0 { detected as f64 / (detected + false_alerts) as f64 } else { 0.0 };
    let event_f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    Ok(SimReport {
        detector: cfg.name().to_string(),
        threshold: decision.threshold,
        consecutive: decision.consecutive,
        cooldown_secs: decision.cooldown_secs,
        kinds,
        incidents,
        detected,
        recall,
        notifications,
        false_alerts,
        server_days,
        false_alerts_per_server_day: false_alerts as f64 / server_days.max(1e-9),
        false_alert_hours_per_server_day: false_open_ms as f64 / 3_600_000.0 / server_days.max(1e-9),
        precision,
        event_f1,
        missed: fleet
            .incidents
            .iter()
            .zip(&caught)
            .filter(|(_, c)| !**c)
            .map(|(i, _)| format!("{} {} {}", i.server, i.kind.name(), runtime::format_ts(i.start_ms)))
            .collect(),
        false_notifications,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::collector::simulate::IncidentKind;

    fn incident(start_ms: i64, end_ms: i64) -> Incident {
        Incident { server: "s".into(), kind: IncidentKind::CpuSpike, metric: "cpu".into(), start_ms, end_ms }
    }

    fn outcome(scores: &[f64], incidents: &[Incident]) -> ServerOutcome {
        let n = scores.len();
        let input = DetectInput {
            columns: vec!["cpu".into()],
            timestamps_ms: Some((0..n as i64).map(|i| i * 10_000).collect()),
            rows: vec![vec![1.0]; n],
        };
        let mine: Vec<(usize, &Incident)> = incidents.iter().enumerate().collect();
        server_outcome("s", &input, scores, &vec![0; n], &mine, &DecisionConfig::default()).unwrap()
    }

    #[test]
    fn every_notification_outside_incidents_counts_and_so_does_open_time() {
        // One day of 10 s rows; an incident at rows 1000..1100.
        let n = 8640;
        let inc = [incident(1000 * 10_000, 1100 * 10_000)];
        // Useful: alerts only inside the incident.
        let useful: Vec<f64> = (0..n).map(|i| if (1010..1060).contains(&i) { 0.9 } else { 0.1 }).collect();
        let o = outcome(&useful, &inc);
        assert_eq!((o.detections.len(), o.notifications, o.false_alerts, o.false_open_ms), (1, 1, 0, 0));
        assert!((o.detections[0].1 - 11.0 * 10.0 / 60.0).abs() < 1e-9, "second anomalous row notifies: {:?}", o.detections);
        // Always alerting: a re-notification every cooldown (15 min), all but the incident's false.
        let o = outcome(&vec![0.9; n], &inc);
        assert!(o.notifications >= 95 && o.false_alerts + 2 >= o.notifications, "{} / {}", o.notifications, o.false_alerts);
        assert!(o.false_open_ms > 23 * 3_600_000, "{}", o.false_open_ms);
        // Never alerting.
        let o = outcome(&vec![0.0; n], &inc);
        assert_eq!((o.detections.len(), o.notifications), (0, 0));
        // A late alert inside the grace period after the incident is neither a detection nor false.
        let late: Vec<f64> = (0..n).map(|i| if (1110..1113).contains(&i) { 0.9 } else { 0.1 }).collect();
        let o = outcome(&late, &inc);
        assert_eq!((o.detections.len(), o.notifications, o.false_alerts), (0, 1, 0));
    }
}
