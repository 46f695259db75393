//! `runtime`: the production binary. Today: `runtime collect` (the reference metric collector).

use std::time::Duration;

use clap::{Parser, Subcommand};
use runtime::collector::host::HostSampler;
use runtime::collector::simulate::{SimConfig, Simulator};
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
use runtime::{BASE_METRICS, MetricSample};

#[derive(Parser, Debug)]
#[command(name = "runtime", version, about = "AIOps runtime: collect, score and alert on live metrics")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read this host's cpu/memory/network/disk (or simulated servers) and write them to InfluxDB.
    Collect(CollectArgs),
}

#[derive(clap::Args, Debug)]
struct CollectArgs {
    /// InfluxDB base URL.
    #[arg(long, env = "INFLUXDB_URL", default_value = "http://127.0.0.1:8086")]
    influx_url: String,
    /// Database (created if missing).
    #[arg(long, env = "INFLUXDB_DATABASE", default_value = "metrics")]
    database: String,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    interval_secs: u32,
    /// Stream N simulated servers instead of this host.
    #[arg(long, value_name = "N")]
    simulate: Option<usize>,
    /// Seed of the simulator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First write this much simulated history (e.g. `1h`, `2d`); needs --simulate.
    #[arg(long, value_parser = humantime::parse_duration)]
    backfill: Option<Duration>,
    /// Stop after this many live ticks (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

fn print_row(t: i64, server: &str, v: &[f64; 4]) {
    let clock = &runtime::format_ts(t)[11..19];
    println!("[{clock}] {server}: CPU={:.1}% MEM={:.1}% NET={:.1}MB/s DISK={:.0}ops/s", v[0], v[1], v[2], v[3]);
}

fn samples(t: i64, rows: &[(String, [f64; 4])]) -> Vec<MetricSample> {
    rows.iter().flat_map(|(server, v)| BASE_METRICS.iter().zip(v).map(move |(m, x)| MetricSample::new(t, server.clone(), *m, *x))).collect()
}

async fn collect(args: CollectArgs) -> Result<(), String> {
    let mut cfg = InfluxConfig::from_env();
    cfg.url = args.influx_url.clone();
    cfg.database = args.database.clone();
    let client = InfluxClient::new(cfg);
    match client.ping().await.and(client.create_database().await) {
        Ok(()) => println!("✓ InfluxDB connection: pass"),
        Err(e) => return Err(format!("✗ InfluxDB connection: {e}")),
    }
    let interval_ms = i64::from(args.interval_secs) * 1000;
    let mut sim = args.simulate.map(|n| {
        let back = args.backfill.map_or(0, |d| d.as_millis() as i64);
        let start = (runtime::now_ms() - back) / interval_ms * interval_ms;
        Simulator::new(SimConfig {
            servers: n,
            start_ms: start,
            interval_secs: args.interval_secs,
            seed: args.seed,
            ..SimConfig::default()
        })
    });
    if let Some(d) = args.backfill {
        let sim = sim.as_mut().ok_or("--backfill needs --simulate (this host has no history to backfill)")?;
        println!("Generating {} of historical data...", humantime::format_duration(d));
        let mut batch = Vec::new();
        let mut written = 0;
        while sim.next_timestamp_ms() < runtime::now_ms() - interval_ms {
            let (t, rows) = sim.next_row();
            batch.extend(samples(t, &rows));
            if batch.len() >= 20_000 {
                written += client.write(&batch).await.map_err(|e| e.to_string())?.points;
                batch.clear();
            }
        }
        written += client.write(&batch).await.map_err(|e| e.to_string())?.points;
        println!("✓ wrote {written} points");
    }
    let mut host = HostSampler::new();
    if sim.is_none() {
        host.sample().map_err(|e| format!("cannot read /proc: {e}"))?;
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms as u64));
    ticker.tick().await;
    let mut ticks = 0;
    let server = hostname();
    loop {
        if args.count.is_some_and(|c| ticks >= c) {
            return Ok(());
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let (t, rows) = match sim.as_mut() {
            Some(sim) => sim.next_row(),
            None => {
                let v = host.sample().map_err(|e| format!("cannot read /proc: {e}"))?.unwrap_or([0.0; 4]);
                (runtime::now_ms(), vec![(server.clone(), v)])
            }
        };
        for (s, v) in &rows {
            print_row(t, s, v);
        }
        if let Err(e) = client.write(&samples(t, &rows)).await {
            // Keep collecting: one failed write after retries is reported, not fatal.
            eprintln!("✗ write failed: {e}");
        }
        ticks += 1;
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.command {
            Command::Collect(a) => collect(a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
