//! The Server Machine Dataset layout: headerless comma-separated `train/`, `test/` (38 metrics
//! per row, one row per minute, no timestamps), `test_label/` (0/1 per test row) and
//! `interpretation_label/` (`start-end:d1,d2,…`, 0-based rows, end exclusive, 1-based dims).
//!
//! Columns are named `m01` … `m38`. Frames get a synthetic `timestamp` (1-minute steps from
//! 1970-01-01; test rows continue after train rows) so time-based code works unchanged.

use std::path::Path;

use polars::prelude::DataFrame;

use super::{FrameError, wide_frame};

/// One labelled anomaly segment of a test split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpretationSegment {
    /// First row (0-based).
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// Responsible columns, 1-based.
    pub dims: Vec<usize>,
}

/// One SMD machine.
#[derive(Debug, Clone)]
pub struct SmdMachine {
    /// E.g. `machine-1-7`.
    pub name: String,
    /// Train split (wide frame, server = machine name).
    pub train: DataFrame,
    /// Test split.
    pub test: DataFrame,
    /// 0/1 per test row.
    pub test_labels: Vec<u8>,
    /// Labelled segments with their responsible columns.
    pub segments: Vec<InterpretationSegment>,
}

/// SMD sampling interval.
pub const SMD_INTERVAL_MS: i64 = 60_000;

/// Read a headerless numeric file: rows × columns, with file/line/column errors.
pub fn read_matrix(path: &Path) -> Result<Vec<Vec<f64>>, FrameError> {
    let mut csv = runtime::csv_file::CsvReader::open(path, false)?;
    let mut rows = Vec::new();
    while let Some(row) = csv.next_row()? {
        let values = (0..row.len())
            .map(|j| row.number(j)?.ok_or_else(|| row.error(&row.field_name(j), "empty value")))
            .collect::<Result<Vec<f64>, _>>()?;
        rows.push(values);
    }
    Ok(rows)
}

/// A matrix as a wide frame with columns `m01..` and synthetic 1-minute timestamps from `start_row`.
pub fn matrix_frame(rows: &[Vec<f64>], server: &str, start_row: usize) -> Result<DataFrame, FrameError> {
    let width = rows.first().map_or(0, Vec::len);
    let names: Vec<String> = (1..=width).map(|j| format!("m{j:02}")).collect();
    let cols = (0..width).map(|j| rows.iter().map(|r| Some(r[j])).collect()).collect();
    let ts = (0..rows.len()).map(|i| (start_row + i) as i64 * SMD_INTERVAL_MS).collect();
    wide_frame(ts, vec![server.to_string(); rows.len()], &names, cols)
}

/// Parse one `interpretation_label` file.
pub fn read_segments(path: &Path) -> Result<Vec<InterpretationSegment>, FrameError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FrameError::Io { path: p.clone(), source: e })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |field: &str, m: String| FrameError::Parse { path: p.clone(), line: i + 1, field: field.into(), message: m };
        let (range, dims) = line.split_once(':').ok_or_else(|| err("line", format!("`{line}` is not start-end:dims")))?;
        let (a, b) = range.split_once('-').ok_or_else(|| err("range", format!("`{range}` is not start-end")))?;
        let start: usize = a.trim().parse().map_err(|_| err("start", format!("`{a}`")))?;
        let end: usize = b.trim().parse().map_err(|_| err("end", format!("`{b}`")))?;
        let dims =
            dims.split(',').map(|d| d.trim().parse::<usize>().map_err(|_| err("dims", format!("`{d}`")))).collect::<Result<Vec<_>, _>>()?;
        if end <= start {
            return Err(err("range", format!("{start}-{end} is empty")));
        }
        out.push(InterpretationSegment { start, end, dims });
    }
    Ok(out)
}

impl SmdMachine {
    /// Load `machine` from an SMD folder (`train/`, `test/`, `test_label/`, `interpretation_label/`).
    pub fn load(root: &Path, machine: &str) -> Result<Self, FrameError> {
        let file = format!("{machine}.txt");
        let train = read_matrix(&root.join("train").join(&file))?;
        let test = read_matrix(&root.join("test").join(&file))?;
        let label_path = root.join("test_label").join(&file);
        let labels = read_matrix(&label_path)?;
        let test_labels: Vec<u8> = labels.iter().map(|r| u8::from(r.first().copied().unwrap_or(0.0) > 0.5)).collect();
        if test_labels.len() != test.len() {
            return Err(FrameError::Schema {
                context: label_path.display().to_string(),
                message: format!("{} labels for {} test rows", test_labels.len(), test.len()),
            });
        }
        let segments = read_segments(&root.join("interpretation_label").join(&file))?;
        Ok(Self {
            name: machine.to_string(),
            train: matrix_frame(&train, machine, 0)?,
            test: matrix_frame(&test, machine, train.len())?,
            test_labels,
            segments,
        })
    }

    /// Machines present in an SMD folder, sorted.
    pub fn list(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join("test"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".txt")).map(String::from))
            .collect();
        v.sort();
        v
    }
}
