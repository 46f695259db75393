//! Simulated fleets as frames and files: `metrics.parquet` (or `.csv`) plus `labels.csv`
//! (`server,kind,metric,start,end`, RFC 3339 UTC, `end` inclusive).

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::DataFrame;
use runtime::collector::simulate::{Incident, IncidentKind, NormalEvent, SimConfig, Simulator};

use crate::frames::{FrameError, wide_frame};

/// Simulate `days` of the fleet: a wide frame (sorted by server, time) and its incidents.
pub fn simulate(cfg: &SimConfig, days: f64, progress: bool) -> Result<(DataFrame, Vec<Incident>), FrameError> {
    simulate_with_events(cfg, days, progress).map(|(df, incidents, _)| (df, incidents))
}

/// [`simulate`], plus the normal events (restarts, batch jobs, counter resets, gaps) that
/// start in it.
pub fn simulate_with_events(
    cfg: &SimConfig,
    days: f64,
    progress: bool,
) -> Result<(DataFrame, Vec<Incident>, Vec<NormalEvent>), FrameError> {
    let rows = (days * 86_400.0 / f64::from(cfg.interval_secs.max(1))).round() as usize;
    let mut sim = Simulator::new(cfg.clone());
    let names = sim.server_names();
    let ns = names.len();
    // Per server: timestamps and values of the samples present (a missing sample is no row).
    type Columns = [Vec<Option<f64>>; 4];
    let mut per_server: Vec<(Vec<i64>, Columns)> =
        (0..ns).map(|_| (Vec::with_capacity(rows), std::array::from_fn(|_| Vec::with_capacity(rows)))).collect();
    let bar = if progress { ProgressBar::new(rows as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({eta})").expect("template").progress_chars("=> "));
    bar.set_message("simulating");
    let mut end = cfg.start_ms;
    for r in 0..rows {
        let (t, values) = sim.next_row();
        end = t;
        for (s, (_, v)) in values.iter().enumerate() {
            if v.iter().all(|x| x.is_nan()) {
                continue;
            }
            per_server[s].0.push(t);
            for (col, x) in per_server[s].1.iter_mut().zip(v) {
                col.push(Some(*x).filter(|x| x.is_finite()));
            }
        }
        if r % 10_000 == 0 {
            bar.set_position(r as u64);
        }
    }
    bar.finish_and_clear();
    let total: usize = per_server.iter().map(|p| p.0.len()).sum();
    let mut all_ts = Vec::with_capacity(total);
    let mut servers = Vec::with_capacity(total);
    let mut cols: Vec<Vec<Option<f64>>> = (0..4).map(|_| Vec::with_capacity(total)).collect();
    for (name, (ts, mut values)) in names.iter().zip(per_server) {
        servers.extend(std::iter::repeat_n(name.clone(), ts.len()));
        all_ts.extend(ts);
        for k in 0..4 {
            cols[k].append(&mut values[k]);
        }
    }
    let metrics: Vec<String> = runtime::BASE_METRICS.iter().map(|s| s.to_string()).collect();
    let df = wide_frame(all_ts, servers, &metrics, cols)?;
    let incidents = sim.incidents().into_iter().filter(|i| i.start_ms <= end).collect();
    let events = sim.events().into_iter().filter(|e| e.start_ms <= end).collect();
    Ok((df, incidents, events))
}

/// Write normal events as `events.csv` (`server,kind,start,end`, like `labels.csv`): what
/// a false alert may have been reacting to.
pub fn write_events(events: &[NormalEvent], path: &Path) -> Result<(), FrameError> {
    let mut text = String::from("server,kind,start,end\n");
    for e in events {
        text.push_str(&format!("{},{},{},{}\n", e.server, e.kind.name(), runtime::format_ts(e.start_ms), runtime::format_ts(e.end_ms)));
    }
    std::fs::write(path, text).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })
}

/// Write incidents as `labels.csv`.
pub fn write_labels(incidents: &[Incident], path: &Path) -> Result<(), FrameError> {
    let mut text = String::from("server,kind,metric,start,end\n");
    for i in incidents {
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            i.server,
            i.kind.name(),
            i.metric,
            runtime::format_ts(i.start_ms),
            runtime::format_ts(i.end_ms)
        ));
    }
    std::fs::write(path, text).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })
}

/// Read a `labels.csv`; errors name the line and field.
pub fn read_labels(path: &Path) -> Result<Vec<Incident>, FrameError> {
    let mut csv = runtime::csv_file::CsvReader::open(path, true)?;
    let [server, kind, metric, start, end] = ["server", "kind", "metric", "start", "end"].map(|c| csv.column(c));
    let (server, kind, metric, start, end) = (server?, kind?, metric?, start?, end?);
    let mut out = Vec::new();
    while let Some(row) = csv.next_row()? {
        let k = IncidentKind::from_name(row.cell(kind)).ok_or_else(|| row.error("kind", format!("unknown kind `{}`", row.cell(kind))))?;
        let (start_ms, end_ms) = (row.timestamp_ms(start)?, row.timestamp_ms(end)?);
        out.push(Incident { server: row.cell(server).to_string(), kind: k, metric: row.cell(metric).to_string(), start_ms, end_ms });
    }
    Ok(out)
}
