//! Cleaning, explicit and reported: non-finite values, backwards and duplicate timestamps,
//! resampling to a fixed interval, and a gap policy. Every repair is counted in [`CleanReport`];
//! nothing is silent.
//!
//! ```
//! use workbench::clean::{clean, CleanConfig, GapPolicy};
//! use workbench::frames::wide_frame;
//! let df = wide_frame(vec![0, 10_000, 10_000, 40_000, 50_000], vec!["a".into(); 5], &["cpu".into()],
//!     vec![vec![Some(1.0), Some(2.0), Some(4.0), Some(10.0), Some(f64::NAN)]]).unwrap();
//! let cfg = CleanConfig { interval_secs: Some(10), gap_policy: GapPolicy::Interpolate { limit: 3 }, ..Default::default() };
//! let (out, report) = clean(&df, &cfg).unwrap();
//! assert_eq!(report.duplicates, 1);
//! assert_eq!(report.non_finite, 1);
//! assert_eq!(report.inserted_rows, 2); // 20 s and 30 s, interpolated between 3 and 10
//! assert_eq!(report.filled_values, 2);
//! assert_eq!(report.dropped_incomplete_rows, 1); // the trailing NaN has no right neighbour
//! assert_eq!(out.height(), 5);
//! ```

use serde::{Deserialize, Serialize};

use crate::frames::{FrameError, f64_column, metric_columns, server_column, timestamps_ms, wide_frame};
use polars::prelude::DataFrame;

/// What to do with missing values (after resampling and non-finite removal).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GapPolicy {
    /// Keep nulls.
    Leave,
    /// Carry the last value forward over at most `limit` consecutive missing rows.
    Ffill {
        /// Longest run filled.
        limit: usize,
    },
    /// Linear interpolation across runs of at most `limit` missing rows (needs both neighbours).
    Interpolate {
        /// Longest run filled.
        limit: usize,
    },
}

/// How rows sharing a server and timestamp (or resampling bucket) are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Keep the first in file order.
    First,
    /// Keep the last in file order.
    Last,
    /// Mean of the non-null values.
    Mean,
}

/// Cleaning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanConfig {
    /// Resample to this interval (bucket = floor(t / interval)); `None` keeps timestamps.
    pub interval_secs: Option<u32>,
    /// Merge of rows in one bucket / with one timestamp.
    pub duplicates: DuplicatePolicy,
    /// Missing-value policy.
    pub gap_policy: GapPolicy,
    /// Drop rows that still have a missing value at the end (feature computation needs none).
    pub drop_incomplete: bool,
}

impl Default for CleanConfig {
    fn default() -> Self {
        Self { interval_secs: None, duplicates: DuplicatePolicy::Mean, gap_policy: GapPolicy::Ffill { limit: 6 }, drop_incomplete: true }
    }
}

/// Counts of every repair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Rows in.
    pub rows_in: usize,
    /// Rows out.
    pub rows_out: usize,
    /// NaN / ±inf values turned into missing.
    pub non_finite: usize,
    /// Rows earlier than their predecessor (same server, file order); re-sorted.
    pub backwards_steps: usize,
    /// Rows merged into another with the same server and timestamp / bucket.
    pub duplicates: usize,
    /// Empty intervals inserted as missing rows by resampling.
    pub inserted_rows: usize,
    /// Missing values filled by the gap policy.
    pub filled_values: usize,
    /// Missing values left (policy `leave` or runs over the limit).
    pub remaining_missing: usize,
    /// Rows dropped because a value was still missing.
    pub dropped_incomplete_rows: usize,
}

impl std::fmt::Display for CleanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows in, {} out; repaired: {} non-finite, {} backwards, {} duplicates merged, {} gap rows inserted, {} values filled; {} missing left, {} incomplete rows dropped",
            self.rows_in,
            self.rows_out,
            self.non_finite,
            self.backwards_steps,
            self.duplicates,
            self.inserted_rows,
            self.filled_values,
            self.remaining_missing,
            self.dropped_incomplete_rows
        )
    }
}

fn merge(policy: DuplicatePolicy, acc: &mut (Option<f64>, f64, usize), v: Option<f64>) {
    let Some(v) = v else { return };
    match policy {
        DuplicatePolicy::First => {
            if acc.0.is_none() {
                acc.0 = Some(v);
            }
        }
        DuplicatePolicy::Last => acc.0 = Some(v),
        DuplicatePolicy::Mean => {
            acc.1 += v;
            acc.2 += 1;
            acc.0 = Some(acc.1 / acc.2 as f64);
        }
    }
}

fn fill(policy: GapPolicy, col: &mut [Option<f64>]) -> usize {
    let mut filled = 0;
    let n = col.len();
    let mut i = 0;
    while i < n {
        if col[i].is_some() {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && col[i].is_none() {
            i += 1;
        }
        let run = i - start;
        let before = start.checked_sub(1).and_then(|j| col[j]);
        let after = col.get(i).copied().flatten();
        match policy {
            GapPolicy::Leave => {}
            GapPolicy::Ffill { limit } => {
                if let Some(b) = before {
                    for slot in col.iter_mut().skip(start).take(run.min(limit)) {
                        *slot = Some(b);
                        filled += 1;
                    }
                }
            }
            GapPolicy::Interpolate { limit } => {
                if let (Some(b), Some(a)) = (before, after)
                    && run <= limit
                {
                    for k in 0..run {
                        col[start + k] = Some(b + (a - b) * (k + 1) as f64 / (run + 1) as f64);
                        filled += 1;
                    }
                }
            }
        }
    }
    filled
}

/// Clean a wide frame (see the module docs). Output is sorted by server, then time.
pub fn clean(df: &DataFrame, cfg: &CleanConfig) -> Result<(DataFrame, CleanReport), FrameError> {
    let ts = timestamps_ms(df)?;
    let servers = server_column(df, "series")?;
    let metrics = metric_columns(df);
    let mut cols: Vec<Vec<Option<f64>>> = metrics.iter().map(|m| f64_column(df, m)).collect::<Result<_, _>>()?;
    let mut report = CleanReport { rows_in: ts.len(), ..Default::default() };
    for col in &mut cols {
        for v in col.iter_mut() {
            if v.is_some_and(|x| !x.is_finite()) {
                *v = None;
                report.non_finite += 1;
            }
        }
    }
    // Backwards steps, per server in file order.
    let mut last: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (s, t) in servers.iter().zip(&ts) {
        if let Some(p) = last.insert(s.as_str(), *t)
            && *t < p
        {
            report.backwards_steps += 1;
        }
    }
    let interval_ms = cfg.interval_secs.map(|s| i64::from(s.max(1)) * 1000);
    let bucket = |t: i64| interval_ms.map_or(t, |i| t.div_euclid(i) * i);
    let mut order: Vec<usize> = (0..ts.len()).collect();
    order.sort_by(|&a, &b| (&servers[a], bucket(ts[a])).cmp(&(&servers[b], bucket(ts[b]))).then(a.cmp(&b)));

    let nm = metrics.len();
    let (mut out_ts, mut out_srv) = (Vec::with_capacity(ts.len()), Vec::with_capacity(ts.len()));
    let mut out_cols: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(ts.len()); nm];
    let mut server_starts = vec![0usize];
    let mut i = 0;
    while i < order.len() {
        let (s, b) = (&servers[order[i]], bucket(ts[order[i]]));
        let mut acc = vec![(None, 0.0, 0usize); nm];
        let mut j = i;
        while j < order.len() && &servers[order[j]] == s && bucket(ts[order[j]]) == b {
            for (m, a) in acc.iter_mut().enumerate() {
                merge(cfg.duplicates, a, cols[m][order[j]]);
            }
            j += 1;
        }
        report.duplicates += j - i - 1;
        // New server: remember where its rows start; else insert empty intervals.
        if let (Some(prev_t), Some(prev_s)) = (out_ts.last().copied(), out_srv.last()) {
            if prev_s != s {
                server_starts.push(out_ts.len());
            } else if let Some(step) = interval_ms {
                let mut t = prev_t + step;
                while t < b {
                    out_ts.push(t);
                    out_srv.push(s.clone());
                    for c in out_cols.iter_mut() {
                        c.push(None);
                    }
                    report.inserted_rows += 1;
                    t += step;
                }
            }
        }
        out_ts.push(b);
        out_srv.push(s.clone());
        for (c, a) in out_cols.iter_mut().zip(acc) {
            c.push(a.0);
        }
        i = j;
    }
    server_starts.push(out_ts.len());
    for c in out_cols.iter_mut() {
        for w in server_starts.windows(2) {
            report.filled_values += fill(cfg.gap_policy, &mut c[w[0]..w[1]]);
        }
        report.remaining_missing += c.iter().filter(|v| v.is_none()).count();
    }
    if cfg.drop_incomplete && report.remaining_missing > 0 {
        let keep: Vec<bool> = (0..out_ts.len()).map(|r| out_cols.iter().all(|c| c[r].is_some())).collect();
        report.dropped_incomplete_rows = keep.iter().filter(|k| !**k).count();
        let pick = |v: &mut Vec<Option<f64>>| {
            let mut it = keep.iter();
            v.retain(|_| *it.next().unwrap_or(&true));
        };
        out_cols.iter_mut().for_each(pick);
        let mut it = keep.iter();
        out_ts.retain(|_| *it.next().unwrap_or(&true));
        let mut it = keep.iter();
        out_srv.retain(|_| *it.next().unwrap_or(&true));
    }
    report.rows_out = out_ts.len();
    Ok((wide_frame(out_ts, out_srv, &metrics, out_cols)?, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: Vec<i64>, srv: Vec<&str>, v: Vec<Option<f64>>) -> DataFrame {
        wide_frame(ts, srv.into_iter().map(String::from).collect(), &["x".into()], vec![v]).unwrap()
    }

    #[test]
    fn backwards_and_repeats_like_nab_are_counted_and_sorted() {
        let df =
            frame(vec![0, 300_000, 300_000, 600_000, 100_000], vec!["a"; 5], vec![Some(1.0), Some(2.0), Some(4.0), Some(5.0), Some(9.0)]);
        let cfg = CleanConfig { duplicates: DuplicatePolicy::Last, ..Default::default() };
        let (out, r) = clean(&df, &cfg).unwrap();
        assert_eq!((r.backwards_steps, r.duplicates, r.rows_out), (1, 1, 4));
        assert_eq!(timestamps_ms(&out).unwrap(), vec![0, 100_000, 300_000, 600_000]);
        assert_eq!(f64_column(&out, "x").unwrap()[2], Some(4.0));
    }

    #[test]
    fn ffill_respects_limit_and_servers_do_not_leak() {
        let df = frame(
            vec![0, 10_000, 50_000, 0, 30_000],
            vec!["a", "a", "a", "b", "b"],
            vec![Some(1.0), Some(2.0), Some(3.0), None, Some(7.0)],
        );
        let cfg = CleanConfig {
            interval_secs: Some(10),
            gap_policy: GapPolicy::Ffill { limit: 2 },
            drop_incomplete: false,
            ..Default::default()
        };
        let (out, r) = clean(&df, &cfg).unwrap();
        let x = f64_column(&out, "x").unwrap();
        // a: 0,10,[20,30 ffilled],[40 left],50 ; b: 0 (None: no value before), [10, 20 None: b's first value missing], 30
        assert_eq!(&x[..6], &[Some(1.0), Some(2.0), Some(2.0), Some(2.0), None, Some(3.0)]);
        assert_eq!(x[6], None, "server b must not inherit a's value");
        assert_eq!(r.inserted_rows, 3 + 2);
        assert_eq!(r.filled_values, 2);
        assert_eq!(r.remaining_missing, 1 + 3);
    }
}
