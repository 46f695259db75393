//! Metric history as polars DataFrames.
//!
//! Two shapes:
//! - **wide**: `timestamp` (Datetime ms, UTC), `server` (String), one `Float64` column per metric;
//! - **long**: `timestamp`, `server`, `metric`, `value`.
//!
//! Loaders: [`csv::read_metrics_csv`] and Parquet ([`read_parquet`]), the NAB layout
//! ([`nab::NabCorpus`]), the SMD layout ([`smd::SmdMachine`]), InfluxDB and Prometheus
//! ([`remote`]). Bad input gives a [`FrameError`] naming the file, line and field.
//!
//! ```no_run
//! use workbench::frames::{nab::NabCorpus, datasets_root};
//! let corpus = NabCorpus::open(&datasets_root().join("nab")).unwrap();
//! let series = corpus.load("realKnownCause/nyc_taxi.csv").unwrap();
//! println!("{} rows, {} windows, {:?}", series.frame.height(), series.windows.len(), series.quirks);
//! ```

pub mod csv;
pub mod nab;
pub mod remote;
pub mod smd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use runtime::MetricSample;

/// Name of the timestamp column.
pub const TIMESTAMP: &str = "timestamp";
/// Name of the server column.
pub const SERVER: &str = "server";

/// Errors loading or converting frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A malformed cell or line.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Column name (or `line` / `header`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A polars operation failed.
    #[error("{context}: {source}")]
    Polars {
        /// What was being done.
        context: String,
        /// The cause.
        source: PolarsError,
    },
    /// A remote source failed.
    #[error(transparent)]
    Source(#[from] runtime::sources::SourceError),
    /// A public labelled dataset is not where `$AIOPS_DATASETS` says.
    #[error("{name} not found at {path}: {DATASETS_HELP}")]
    MissingDataset {
        /// `NAB` or `SMD`.
        name: &'static str,
        /// Where it was looked for.
        path: String,
    },
    /// A required column is missing or has the wrong type.
    #[error("{context}: {message}")]
    Schema {
        /// Frame or file.
        context: String,
        /// What is wrong.
        message: String,
    },
}

impl From<runtime::csv_file::CsvError> for FrameError {
    fn from(e: runtime::csv_file::CsvError) -> Self {
        match e.line {
            0 => Self::Io { path: e.path, source: std::io::Error::other(e.message) },
            line => Self::Parse { path: e.path, line, field: e.field, message: e.message },
        }
    }
}

/// What the labelled datasets are and where they come from.
pub const DATASETS_HELP: &str = "set AIOPS_DATASETS (or --datasets) to a folder holding nab/ (data/ and labels/ of \
github.com/numenta/NAB) and smd/ (train/, test/, test_label/, interpretation_label/ of the ServerMachineDataset, \
github.com/NetManAIOps/OmniAnomaly); the default is ../shared/datasets next to the repository, else datasets/ in \
the data directory ($AIOPS_DATA_DIR, else $XDG_DATA_HOME/aiops-workbench, else ~/.local/share/aiops-workbench)";

pub(crate) fn polars_err(context: impl Into<String>) -> impl FnOnce(PolarsError) -> FrameError {
    let context = context.into();
    move |source| FrameError::Polars { context, source }
}

/// The datasets folder: `$AIOPS_DATASETS`, else `../shared/datasets` next to the workspace
/// when it exists (a checkout), else `datasets/` in the [`data_dir`] (an installed binary).
pub fn datasets_root() -> PathBuf {
    if let Ok(p) = std::env::var("AIOPS_DATASETS") {
        return PathBuf::from(p);
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    if checkout.is_dir() { checkout } else { data_dir().join("datasets") }
}

/// The workbench's data directory: `$AIOPS_DATA_DIR`, else `$XDG_DATA_HOME/aiops-workbench`,
/// else `~/.local/share/aiops-workbench` (the XDG default), else one under the temp folder.
/// It holds the shipped simulator fleet (see [`shipped_sim_dir`]) and, for an installed
/// binary, the default `datasets/`.
pub fn data_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("AIOPS_DATA_DIR")
        .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("aiops-workbench")))
        .or_else(|| var("HOME").map(|h| h.join(".local/share/aiops-workbench")))
        .unwrap_or_else(|| std::env::temp_dir().join("aiops-workbench"))
}

/// The shipped simulator fleet (`datasets/sim` of the repository: 5 servers × 4 days at 10 s, seed 42),
/// built into the binary so an installed `experiment` has it too.
const SHIPPED_SIM: [(&str, &[u8]); 3] = [
    ("metrics.parquet", include_bytes!("../../../datasets/sim/metrics.parquet")),
    ("labels.csv", include_bytes!("../../../datasets/sim/labels.csv")),
    ("events.csv", include_bytes!("../../../datasets/sim/events.csv")),
];

/// The shipped simulator dataset folder: `sim/` of the [`data_dir`], written there from the copy
/// built into the binary (once per process, each file replaced atomically when it differs), so
/// the default sweep and `evaluate --sim` work from any folder and from an installed binary.
pub fn shipped_sim_dir() -> Result<PathBuf, FrameError> {
    // Held while writing, so parallel trials wait for the files instead of reading half of one.
    static DIR: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut done = DIR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(dir) = done.as_ref() {
        return Ok(dir.clone());
    }
    let dir = data_dir().join("sim");
    write_shipped(&dir)
        .map_err(|source| FrameError::Io { path: format!("{} (the data directory, $AIOPS_DATA_DIR)", dir.display()), source })?;
    Ok(done.insert(dir).clone())
}

fn write_shipped(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in SHIPPED_SIM {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|b| b == bytes) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// Metric columns of a wide frame: every numeric column except `timestamp`, `server`, `index`, `label`.
pub fn metric_columns(df: &DataFrame) -> Vec<String> {
    df.columns()
        .iter()
        .filter(|c| !matches!(c.name().as_str(), TIMESTAMP | SERVER | "index" | "label") && c.dtype().is_primitive_numeric())
        .map(|c| c.name().to_string())
        .collect()
}

/// Build a wide frame from `(timestamp_ms, server, values)` rows.
pub fn wide_frame(
    timestamps_ms: Vec<i64>,
    servers: Vec<String>,
    metrics: &[String],
    columns: Vec<Vec<Option<f64>>>,
) -> Result<DataFrame, FrameError> {
    let mut cols: Vec<Column> = Vec::with_capacity(metrics.len() + 2);
    cols.push(
        Series::new(TIMESTAMP.into(), timestamps_ms)
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .map_err(polars_err("timestamp column"))?
            .into(),
    );
    cols.push(Series::new(SERVER.into(), servers).into());
    for (m, values) in metrics.iter().zip(columns) {
        cols.push(Series::new(m.as_str().into(), values).into());
    }
    DataFrame::new_infer_height(cols).map_err(polars_err("building wide frame"))
}

/// Samples to a wide frame sorted by server then time. Samples with the same
/// (server, timestamp, metric) keep the last value; the count of such duplicates is returned.
pub fn samples_to_wide(samples: &[MetricSample]) -> Result<(DataFrame, usize), FrameError> {
    let mut metrics: Vec<String> =
        samples.iter().map(|s| s.metric.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    // Keep the reference order for the base metrics when present.
    metrics.sort_by_key(|m| (runtime::BASE_METRICS.iter().position(|b| b == m).unwrap_or(usize::MAX), m.clone()));
    let index: BTreeMap<&str, usize> = metrics.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut rows: BTreeMap<(&str, i64), Vec<Option<f64>>> = BTreeMap::new();
    let mut duplicates = 0;
    for s in samples {
        let row = rows.entry((s.server.as_str(), s.timestamp_ms)).or_insert_with(|| vec![None; metrics.len()]);
        let slot = &mut row[index[s.metric.as_str()]];
        if slot.is_some() {
            duplicates += 1;
        }
        *slot = Some(s.value);
    }
    let mut ts = Vec::with_capacity(rows.len());
    let mut servers = Vec::with_capacity(rows.len());
    let mut cols = vec![Vec::with_capacity(rows.len()); metrics.len()];
    for ((server, t), values) in rows {
        ts.push(t);
        servers.push(server.to_string());
        for (c, v) in cols.iter_mut().zip(values) {
            c.push(v);
        }
    }
    Ok((wide_frame(ts, servers, &metrics, cols)?, duplicates))
}

/// Samples as a long frame: `timestamp`, `server`, `metric`, `value`, in the samples' order.
pub fn samples_to_long(samples: &[MetricSample]) -> Result<DataFrame, FrameError> {
    let ts = Series::new(TIMESTAMP.into(), samples.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>())
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .map_err(polars_err("timestamp column"))?;
    DataFrame::new_infer_height(vec![
        ts.into(),
        Series::new(SERVER.into(), samples.iter().map(|s| s.server.as_str()).collect::<Vec<_>>()).into(),
        Series::new("metric".into(), samples.iter().map(|s| s.metric.as_str()).collect::<Vec<_>>()).into(),
        Series::new("value".into(), samples.iter().map(|s| s.value).collect::<Vec<_>>()).into(),
    ])
    .map_err(polars_err("building long frame"))
}

/// A long frame (`timestamp`, `server`, `metric`, `value`) to a wide one (see [`samples_to_wide`]).
pub fn long_to_wide(df: &DataFrame) -> Result<(DataFrame, usize), FrameError> {
    let ts = timestamps_ms(df)?;
    let servers = server_column(df, "series")?;
    let metric = df
        .column("metric")
        .map_err(polars_err("metric column"))?
        .as_materialized_series()
        .cast(&DataType::String)
        .map_err(polars_err("metric column"))?;
    let metric = metric.str().map_err(polars_err("metric column"))?;
    let values = f64_column(df, "value")?;
    let samples: Vec<MetricSample> =
        (0..df.height()).filter_map(|i| Some(MetricSample::new(ts[i], servers[i].clone(), metric.get(i)?, values[i]?))).collect();
    samples_to_wide(&samples)
}

/// A wide frame back to samples (null cells are skipped). Frames without a `server` column use `default_server`.
pub fn wide_to_samples(df: &DataFrame, default_server: &str) -> Result<Vec<MetricSample>, FrameError> {
    let ts = timestamps_ms(df)?;
    let servers = server_column(df, default_server)?;
    let mut out = Vec::new();
    for m in metric_columns(df) {
        let col = f64_column(df, &m)?;
        for (i, v) in col.into_iter().enumerate() {
            if let Some(v) = v {
                out.push(MetricSample::new(ts[i], servers[i].clone(), m.clone(), v));
            }
        }
    }
    Ok(out)
}

/// The `timestamp` column as epoch milliseconds.
pub fn timestamps_ms(df: &DataFrame) -> Result<Vec<i64>, FrameError> {
    let col = df.column(TIMESTAMP).map_err(polars_err("timestamp column"))?;
    let s = col
        .as_materialized_series()
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .and_then(|s| s.cast(&DataType::Int64))
        .map_err(polars_err("timestamp column"))?;
    let ca = s.i64().map_err(polars_err("timestamp column"))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| FrameError::Schema { context: "timestamp column".into(), message: format!("null at row {i}") }))
        .collect()
}

/// The `server` column as strings, or `default` for every row when absent.
pub fn server_column(df: &DataFrame, default: &str) -> Result<Vec<String>, FrameError> {
    match df.column(SERVER) {
        Ok(c) => {
            let s = c.as_materialized_series().cast(&DataType::String).map_err(polars_err("server column"))?;
            Ok(s.str().map_err(polars_err("server column"))?.iter().map(|v| v.unwrap_or(default).to_string()).collect())
        }
        Err(_) => Ok(vec![default.to_string(); df.height()]),
    }
}

/// A numeric column as `Option<f64>` values.
pub fn f64_column(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>, FrameError> {
    let s = df
        .column(name)
        .map_err(polars_err(format!("column {name}")))?
        .as_materialized_series()
        .cast(&DataType::Float64)
        .map_err(polars_err(format!("column {name}")))?;
    Ok(s.f64().map_err(polars_err(format!("column {name}")))?.iter().collect())
}

/// Read a Parquet file.
pub fn read_parquet(path: &Path) -> Result<DataFrame, FrameError> {
    let file = std::fs::File::open(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    ParquetReader::new(file).finish().map_err(polars_err(format!("reading parquet {}", path.display())))
}

/// Write a Parquet file (zstd).
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), FrameError> {
    let file = std::fs::File::create(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)
        .map(|_| ())
        .map_err(polars_err(format!("writing parquet {}", path.display())))
}

/// Write a CSV file with `YYYY-MM-DD HH:MM:SS` timestamps.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<(), FrameError> {
    let file = std::fs::File::create(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    CsvWriter::new(file)
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S".into()))
        .finish(df)
        .map_err(polars_err(format!("writing csv {}", path.display())))
}

/// Read a metrics file by extension: `.parquet` or `.csv` (see [`csv::read_metrics_csv`]).
pub fn read_metrics_file(path: &Path) -> Result<DataFrame, FrameError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => read_parquet(path),
        _ => csv::read_metrics_csv(path),
    }
}
