//! A strict reader for timestamped metric CSV: a header with a `timestamp` column, an optional
//! `server` column, and numeric columns, read by the runtime's [`runtime::csv_file`] (the same
//! reader as the runtime's replay source: quotes, BOM, CRLF). Every malformed cell is reported
//! with file, line and column name. Empty cells and `NaN` become null (cleaning counts and
//! repairs them).
//!
//! Timestamps: `YYYY-MM-DD HH:MM:SS[.fff…]` (UTC), RFC 3339, or integer epoch (≤ 10 digits:
//! seconds, else milliseconds).

use std::path::Path;

use super::{FrameError, SERVER, TIMESTAMP, wide_frame};
use polars::prelude::DataFrame;
use runtime::csv_file::CsvReader;

/// The one timestamp parser of file inputs, shared with the runtime's replay source.
pub use runtime::parse_timestamp_ms;

/// Read a timestamped metrics CSV into a wide frame (see the module docs). Rows keep file order.
/// Without a `server` column every row gets `default_server`: the file stem.
pub fn read_metrics_csv(path: &Path) -> Result<DataFrame, FrameError> {
    let mut csv = CsvReader::open(path, true)?;
    let ts_idx = csv.column(TIMESTAMP)?;
    let server_idx = csv.find(SERVER);
    let names = csv.header().to_vec();
    let metric_idx: Vec<usize> = (0..names.len()).filter(|i| *i != ts_idx && Some(*i) != server_idx).collect();
    let default_server = path.file_stem().and_then(|s| s.to_str()).unwrap_or("series").to_string();
    let mut ts = Vec::new();
    let mut servers = Vec::new();
    let mut cols: Vec<Vec<Option<f64>>> = vec![Vec::new(); metric_idx.len()];
    while let Some(row) = csv.next_row()? {
        ts.push(row.timestamp_ms(ts_idx)?);
        servers.push(server_idx.map_or_else(|| default_server.clone(), |s| row.cell(s).to_string()));
        for (c, &j) in metric_idx.iter().enumerate() {
            cols[c].push(row.number(j)?);
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

    #[test]
    fn the_runtime_replays_a_file_as_the_workbench_reads_it() {
        let dir = std::env::temp_dir().join(format!("wb-csv-same-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("export.csv");
        let text = "\u{feff}timestamp,server,\"cpu_usage\",memory_usage\r\n\
                    2024-01-15T10:00:00+02:00,\"web, eu\",45.5,\r\n\r\n\
                    2024-01-15 08:00:45.123+00:00,web-2,\"12\",NaN\r\n";
        std::fs::write(&f, text).unwrap();
        let df = read_metrics_csv(&f).unwrap();
        let samples = runtime::monitor::source::read_file(&f).unwrap();
        let ts = crate::frames::timestamps_ms(&df).unwrap();
        let servers = crate::frames::server_column(&df, "").unwrap();
        let mut from_frame = Vec::new();
        for m in ["cpu_usage", "memory_usage"] {
            let values = crate::frames::f64_column(&df, m).unwrap();
            for r in 0..df.height() {
                from_frame.push((ts[r], servers[r].clone(), m.to_string(), values[r].map(f64::to_bits)));
            }
        }
        let mut from_runtime: Vec<_> = samples
            .iter()
            .map(|s| (s.timestamp_ms, s.server.clone(), s.metric.clone(), Some(s.value).filter(|v| !v.is_nan()).map(f64::to_bits)))
            .collect();
        from_frame.sort();
        from_runtime.sort();
        assert_eq!(from_frame, from_runtime);
        assert_eq!((ts[0], servers[0].as_str()), (1_705_305_600_000, "web, eu"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
