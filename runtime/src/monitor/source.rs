//! The live metric source of the runtime: one `read(metrics, start, end)` over InfluxDB,
//! Prometheus or a replayed file.

use std::collections::BTreeSet;
use std::path::Path;

use super::config::{SourceConfig, SourceKind};
use crate::MetricSample;
use crate::sources::SourceError;
use crate::sources::influxdb::InfluxClient;
use crate::sources::prometheus::PrometheusClient;

/// A metric source.
#[derive(Debug)]
pub enum LiveSource {
    /// InfluxDB 1.x.
    Influx(InfluxClient),
    /// Prometheus.
    Prometheus {
        /// Client.
        client: PrometheusClient,
        /// Settings (queries, server label, step).
        cfg: super::config::PrometheusSourceConfig,
    },
    /// The simulator, advanced as reads move forward.
    Simulator {
        /// Settings.
        cfg: super::config::SimulatorSourceConfig,
        /// The fleet, created at the first read.
        sim: std::sync::Mutex<Option<crate::collector::simulate::Simulator>>,
    },
    /// A file held in memory, sorted by time.
    File {
        /// The samples.
        samples: Vec<MetricSample>,
        /// Its name, for errors.
        path: String,
    },
}

/// A file that cannot be replayed: names the file, line and field.
pub use crate::csv_file::CsvError as FileError;

/// Read a replay file: CSV long (`timestamp,server,metric,value`), CSV wide
/// (`timestamp[,server],<metric>…`; a missing server column means server `file`) or line
/// protocol (`.lp`, millisecond timestamps). Empty and `NaN` cells are kept as NaN (the monitor
/// counts and skips them); anything else malformed is an error naming line and column.
pub fn read_file(path: &Path) -> Result<Vec<MetricSample>, FileError> {
    let name = path.display().to_string();
    let err = |line: usize, field: &str, message: String| FileError { path: name.clone(), line, field: field.into(), message };
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e == "lp") {
        let text = std::fs::read_to_string(path).map_err(|e| err(0, "file", e.to_string()))?;
        let (samples, _) = crate::line_protocol::parse(&text, &name, 1).map_err(|e| err(0, "line protocol", e.to_string()))?;
        out = samples;
    } else {
        let mut csv = crate::csv_file::CsvReader::open(path, true)?;
        let ts = csv.column("timestamp")?;
        let server = csv.find("server");
        let long = csv.find("metric").zip(csv.find("value"));
        let cols = csv.header().to_vec();
        while let Some(row) = csv.next_row()? {
            let t = row.timestamp_ms(ts)?;
            let srv = server.map_or("file", |s| row.cell(s)).to_string();
            let value = |c: usize| row.number(c).map(|v| v.unwrap_or(f64::NAN));
            if let Some((m, v)) = long {
                out.push(MetricSample::new(t, srv, row.cell(m), value(v)?));
            } else {
                for c in (0..cols.len()).filter(|c| *c != ts && Some(*c) != server) {
                    out.push(MetricSample::new(t, srv.clone(), &cols[c], value(c)?));
                }
            }
        }
    }
    out.sort_by_key(|s| s.timestamp_ms); // stable: file order within a timestamp
    Ok(out)
}

impl LiveSource {
    /// Connect (clients are lazy) or read the replay file.
    pub fn from_config(cfg: &SourceConfig) -> Result<Self, FileError> {
        Ok(match cfg.kind {
            SourceKind::Influxdb => Self::Influx(InfluxClient::new(cfg.influxdb.clone())),
            SourceKind::Prometheus => Self::Prometheus { client: PrometheusClient::new(&cfg.prometheus.url), cfg: cfg.prometheus.clone() },
            SourceKind::File => Self::File { samples: read_file(&cfg.file.path)?, path: cfg.file.path.display().to_string() },
            SourceKind::Simulator => Self::Simulator { cfg: cfg.simulator.clone(), sim: std::sync::Mutex::new(None) },
        })
    }

    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Influx(_) => "influxdb",
            Self::Prometheus { .. } => "prometheus",
            Self::File { .. } => "file",
            Self::Simulator { .. } => "simulator",
        }
    }

    /// First and last timestamps of a replay file.
    pub fn span(&self) -> Option<(i64, i64)> {
        match self {
            Self::File { samples, .. } => Some((samples.first()?.timestamp_ms, samples.last()?.timestamp_ms)),
            _ => None,
        }
    }

    /// Samples of `metrics` with `start_ms <= t < end_ms`, any order.
    pub async fn read(&self, metrics: &[String], start_ms: i64, end_ms: i64) -> Result<Vec<MetricSample>, SourceError> {
        match self {
            Self::Influx(c) => c.read_samples(metrics, start_ms, end_ms).await,
            Self::Prometheus { client, cfg } => {
                let mut out = Vec::new();
                for m in metrics {
                    let Some(q) = cfg.queries.get(m) else {
                        return Err(SourceError::Decode {
                            service: "prometheus",
                            url: String::new(),
                            message: format!("no query for metric `{m}` in [source.prometheus.queries]"),
                        });
                    };
                    // query_range includes its end; keep the half-open window.
                    let end = end_ms - 1;
                    if end < start_ms {
                        continue;
                    }
                    out.extend(client.read_samples(q, m, &cfg.server_label, start_ms, end, cfg.step_secs).await?);
                }
                Ok(out)
            }
            Self::Simulator { cfg, sim } => {
                use crate::collector::simulate::{SimConfig, Simulator};
                let mut guard = sim.lock().expect("simulator lock");
                let step = i64::from(cfg.interval_secs) * 1000;
                let sim = guard.get_or_insert_with(|| {
                    Simulator::new(SimConfig {
                        servers: cfg.servers,
                        start_ms: start_ms.div_euclid(step) * step,
                        interval_secs: cfg.interval_secs,
                        seed: cfg.seed,
                        incidents_per_day: cfg.incidents_per_day,
                        confounders: cfg.confounders,
                    })
                });
                let index: Vec<Option<usize>> = crate::BASE_METRICS.iter().map(|m| metrics.iter().position(|x| x == m)).collect();
                let mut out = Vec::new();
                while sim.next_timestamp_ms() < end_ms {
                    let (t, rows) = sim.next_row();
                    if t < start_ms {
                        continue;
                    }
                    for (server, v) in rows {
                        for (k, slot) in index.iter().enumerate() {
                            // A missing sample is absent, as from a real exporter.
                            if slot.is_some() && v[k].is_finite() {
                                out.push(MetricSample {
                                    timestamp_ms: t,
                                    server: server.clone(),
                                    metric: crate::BASE_METRICS[k].to_string(),
                                    value: v[k],
                                });
                            }
                        }
                    }
                }
                Ok(out)
            }
            Self::File { samples, .. } => {
                let wanted: BTreeSet<&str> = metrics.iter().map(String::as_str).collect();
                let lo = samples.partition_point(|s| s.timestamp_ms < start_ms);
                let hi = samples.partition_point(|s| s.timestamp_ms < end_ms);
                Ok(samples[lo..hi].iter().filter(|s| wanted.contains(s.metric.as_str())).cloned().collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_layouts_and_errors() {
        let dir = std::env::temp_dir().join(format!("rt-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wide = dir.join("wide.csv");
        std::fs::write(&wide, "timestamp,server,cpu_usage,memory_usage\n2024-01-15T00:00:10Z,a,5,NaN\n2024-01-15 00:00:00,a,4,60\n")
            .unwrap();
        let s = read_file(&wide).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].timestamp_ms, s[0].metric.as_str(), s[0].value), (1_705_276_800_000, "cpu_usage", 4.0), "sorted by time");
        assert!(s[3].value.is_nan());
        let long = dir.join("long.csv");
        std::fs::write(&long, "timestamp,server,metric,value\n1705276800,b,disk_io,12.5\n").unwrap();
        assert_eq!(read_file(&long).unwrap()[0], MetricSample::new(1_705_276_800_000, "b", "disk_io", 12.5));
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "timestamp,cpu_usage\n2024-01-15T00:00:00Z,1\n2024-01-15T00:00:10Z,abc\n").unwrap();
        let e = read_file(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.csv:3: field `cpu_usage`") && e.contains("abc"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
