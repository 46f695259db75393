//! `experiment`: the workbench CLI (a thin layer over the `workbench` library).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use runtime::collector::simulate::SimConfig;
use runtime::features::FeatureSpec;
use workbench::clean::{CleanConfig, clean};
use workbench::frames::{self, nab::NabCorpus, smd::SmdMachine};

#[derive(Parser, Debug)]
#[command(
    name = "experiment",
    version,
    about = "AIOps workbench: load metric history, build features, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a fleet with labelled incidents (Parquet or CSV + labels.csv).
    Simulate {
        /// Number of servers.
        #[arg(long, default_value_t = 5)]
        servers: usize,
        /// Days of history.
        #[arg(long, default_value_t = 1.0)]
        days: f64,
        /// Sampling interval.
        #[arg(long, default_value_t = 10)]
        interval_secs: u32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Expected incidents per server-day.
        #[arg(long, default_value_t = 2.0)]
        incidents_per_day: f64,
        /// Output folder.
        #[arg(long, default_value = "datasets/sim")]
        out: PathBuf,
        /// `parquet` or `csv`.
        #[arg(long, default_value = "parquet")]
        format: String,
    },
    /// Load metric history, clean it, build the feature matrix and write it (the main job today).
    Features {
        /// Input: a metrics file (.parquet/.csv). Default: the shipped simulator dataset.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Feature spec TOML (default: the 47-column reference family).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Resample interval (default: keep timestamps).
        #[arg(long)]
        interval_secs: Option<u32>,
        /// Output Parquet file.
        #[arg(long, default_value = "runs/features.parquet")]
        out: PathBuf,
    },
    /// Load a source and report its shape and quirks.
    Load {
        /// `nab:<category/file.csv>`, `smd:<machine>`, or a file path.
        source: String,
    },
    /// Benchmarks (run in release mode); one JSON line each.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Batch feature computation over a simulated fleet.
    Features {
        /// Servers.
        #[arg(long, default_value_t = 100)]
        servers: usize,
        /// Days.
        #[arg(long, default_value_t = 7.0)]
        days: f64,
        /// Interval.
        #[arg(long, default_value_t = 10)]
        interval_secs: u32,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate {
            servers,
            days,
            interval_secs,
            seed,
            incidents_per_day,
            out,
            format,
        } => {
            let cfg = SimConfig {
                servers,
                interval_secs,
                seed,
                incidents_per_day,
                ..SimConfig::default()
            };
            let (mut df, incidents) = workbench::simulate::simulate(&cfg, days, true)?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let data = out.join(format!("metrics.{format}"));
            match format.as_str() {
                "parquet" => frames::write_parquet(&mut df, &data)?,
                "csv" => frames::write_csv(&mut df, &data)?,
                other => bail!("--format {other}: expected parquet or csv"),
            }
            workbench::simulate::write_labels(&incidents, &out.join("labels.csv"))?;
            println!(
                "✓ {} rows ({} servers × {} rows) → {}",
                df.height(),
                servers,
                df.height() / servers.max(1),
                data.display()
            );
            println!(
                "✓ {} incidents → {}",
                incidents.len(),
                out.join("labels.csv").display()
            );
        }
        Command::Features {
            input,
            spec,
            interval_secs,
            out,
        } => {
            let input = input.unwrap_or_else(|| frames::shipped_sim_dir().join("metrics.parquet"));
            let df = frames::read_metrics_file(&input)?;
            println!(
                "Loaded {} rows × {} metrics from {}",
                df.height(),
                frames::metric_columns(&df).len(),
                input.display()
            );
            let cfg = CleanConfig {
                interval_secs,
                ..CleanConfig::default()
            };
            let (df, report) = clean(&df, &cfg)?;
            println!("Cleaning: {report}");
            let spec = match spec {
                Some(p) => FeatureSpec::from_toml_file(&p)?,
                None => {
                    let metrics = frames::metric_columns(&df);
                    if metrics.iter().map(String::as_str).eq(runtime::BASE_METRICS) {
                        FeatureSpec::default()
                    } else {
                        FeatureSpec::for_metrics(&metrics)
                    }
                }
            };
            let t = std::time::Instant::now();
            let mut feats = workbench::features::batch_features(&df, &spec)?;
            println!(
                "Features: {} rows × {} columns in {:.2} s",
                feats.height(),
                spec.column_names().len(),
                t.elapsed().as_secs_f64()
            );
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            frames::write_parquet(&mut feats, &out)?;
            println!("{}", feats.head(Some(5)));
            println!("✓ feature matrix → {}", out.display());
        }
        Command::Load { source } => {
            if let Some(key) = source.strip_prefix("nab:") {
                let corpus = NabCorpus::open(&frames::datasets_root().join("nab"))?;
                let s = corpus.load(key)?;
                println!(
                    "{}\n{} windows, {} labels, probationary rows {}\nquirks: {:?}",
                    s.frame,
                    s.windows.len(),
                    s.labels.len(),
                    s.probationary_rows(),
                    s.quirks
                );
            } else if let Some(m) = source.strip_prefix("smd:") {
                let s = SmdMachine::load(&frames::datasets_root().join("smd"), m)?;
                let pos = s.test_labels.iter().filter(|l| **l == 1).count();
                println!(
                    "{}: train {:?}, test {:?}, {} anomalous test rows, {} segments",
                    s.name,
                    s.train.shape(),
                    s.test.shape(),
                    pos,
                    s.segments.len()
                );
            } else {
                let df = frames::read_metrics_file(std::path::Path::new(&source))?;
                println!("{df}");
            }
        }
        Command::Bench {
            which:
                BenchCmd::Features {
                    servers,
                    days,
                    interval_secs,
                },
        } => {
            println!(
                "{}",
                workbench::bench::features(servers, days, interval_secs)?
            );
        }
    }
    Ok(())
}
