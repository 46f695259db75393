//! A strict reader for timestamped metric CSV: a header with a `timestamp` column, an optional
//! `server` column, and numeric columns. Every malformed cell is reported with file, line and
//! column name. Empty cells and `NaN` become null (cleaning counts and repairs them).
//!
//! Timestamps: `YYYY-MM-DD HH:MM:SS[.fff…]` (UTC), RFC 3339, or integer epoch (≤ 10 digits:
//! seconds, else milliseconds).

use std::path::Path;

use super::{FrameError, SERVER, TIMESTAMP, wide_frame};
use polars::prelude::DataFrame;

/// The one timestamp parser of file inputs, shared with the runtime's replay source.
pub use runtime::{days_from_civil, parse_timestamp_ms};

/// Split one CSV line (double quotes allowed around a field; no embedded newlines).
pub(crate) fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parse a numeric cell: empty / `NaN` / `null` → `None`; anything else must be a number.
pub(crate) fn parse_cell(cell: &str) -> Result<Option<f64>, String> {
    let c = cell.trim();
    if c.is_empty() || c.eq_ignore_ascii_case("nan") || c.eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    c.parse::<f64>().map(Some).map_err(|_| format!("`{c}` is not a number"))
}

/// Read a timestamped metrics CSV into a wide frame (see the module docs). Rows keep file order.
/// Without a `server` column every row gets `default_server`: the file stem.
pub fn read_metrics_csv(path: &Path) -> Result<DataFrame, FrameError> {
    let text = std::fs::read_to_string(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    let p = path.display().to_string();
    let mut lines = text.lines().enumerate();
    let (_, header) =
        lines.next().ok_or_else(|| FrameError::Parse { path: p.clone(), line: 1, field: "header".into(), message: "empty file".into() })?;
    let names: Vec<String> = split_csv_line(header.trim_start_matches('\u{feff}')).into_iter().map(|s| s.trim().to_string()).collect();
    let ts_idx = names.iter().position(|n| n == TIMESTAMP).ok_or_else(|| FrameError::Parse {
        path: p.clone(),
        line: 1,
        field: "header".into(),
        message: format!("no `{TIMESTAMP}` column in {names:?}"),
    })?;
    let server_idx = names.iter().position(|n| n == SERVER);
    let metric_idx: Vec<usize> = (0..names.len()).filter(|i| *i != ts_idx && Some(*i) != server_idx).collect();
    let default_server = path.file_stem().and_then(|s| s.to_str()).unwrap_or("series").to_string();
    let mut ts = Vec::new();
    let mut servers = Vec::new();
    let mut cols: Vec<Vec<Option<f64>>> = vec![Vec::new(); metric_idx.len()];
    for (i, line) in lines {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cells = split_csv_line(line);
        if cells.len() != names.len() {
            return Err(FrameError::Parse {
                path: p,
                line: lineno,
                field: "line".into(),
                message: format!("{} fields, header has {}", cells.len(), names.len()),
            });
        }
        let t = parse_timestamp_ms(&cells[ts_idx]).ok_or_else(|| FrameError::Parse {
            path: p.clone(),
            line: lineno,
            field: TIMESTAMP.into(),
            message: format!("`{}` is not a timestamp", cells[ts_idx].trim()),
        })?;
        ts.push(t);
        servers.push(server_idx.map_or_else(|| default_server.clone(), |s| cells[s].trim().to_string()));
        for (c, &j) in metric_idx.iter().enumerate() {
            let v = parse_cell(&cells[j]).map_err(|message| FrameError::Parse {
                path: p.clone(),
                line: lineno,
                field: names[j].clone(),
                message,
            })?;
            cols[c].push(v);
        }
    }
    let metrics: Vec<String> = metric_idx.iter().map(|&j| names[j].clone()).collect();
    wide_frame(ts, servers, &metrics, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats() {
        assert_eq!(parse_timestamp_ms("2014-04-01 00:05:00"), Some(1_396_310_700_000));
        assert_eq!(parse_timestamp_ms("2014-04-01T00:05:00.250Z"), Some(1_396_310_700_250));
        assert_eq!(parse_timestamp_ms("2014-04-01 00:05:00.000000"), Some(1_396_310_700_000));
        assert_eq!(parse_timestamp_ms("1396310700"), Some(1_396_310_700_000));
        assert_eq!(parse_timestamp_ms("2014-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp_ms("soon"), None);
    }

    #[test]
    fn malformed_csv_names_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("wb-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.csv");
        std::fs::write(&f, "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,x1\n").unwrap();
        let e = read_metrics_csv(&f).unwrap_err().to_string();
        assert!(e.contains("bad.csv:3") && e.contains("`value`") && e.contains("x1"), "{e}");
        std::fs::write(&f, "timestamp,value\n2014-04-01 00:00:00,1,2\n").unwrap();
        assert!(read_metrics_csv(&f).unwrap_err().to_string().contains("bad.csv:2: field `line`"));
        std::fs::write(&f, "time,value\n").unwrap();
        assert!(read_metrics_csv(&f).unwrap_err().to_string().contains("no `timestamp` column"));
        std::fs::write(&f, "timestamp,value\nyesterday,1\n").unwrap();
        assert!(read_metrics_csv(&f).unwrap_err().to_string().contains("field `timestamp`"));
        std::fs::write(&f, "timestamp,server,cpu_usage\n2014-04-01 00:00:00,a,\n2014-04-01 00:00:10,\"a\",NaN\n").unwrap();
        let df = read_metrics_csv(&f).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("cpu_usage").unwrap().null_count(), 2);
        std::fs::remove_dir_all(&dir).ok();
    }
}
