//! A bounded chaos soak (about two minutes): the monitor's loop (`runtime replay` on a virtual
//! clock: the daemon's tick / flush loop, made repeatable) reads a simulated fleet from a real
//! InfluxDB of its own and sends to payload-checking Slack / PagerDuty / webhook receivers and
//! the real Alertmanager of tests/run, while the receivers fail at random (HTTP 500, 429 with
//! `Retry-After`, hangs past the sink timeout), InfluxDB is stopped and started again, and the
//! process is killed with `kill -9` three times. At the end every notification of an
//! uninterrupted, fault-free run was delivered, nothing else was, repeats stay within what
//! at-least-once allows, and the outbox is empty. The figures are printed.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::{bundle, promote};
use rand::{Rng, SeedableRng};
use runtime::collector::simulate::{SimConfig, Simulator};
use runtime::decisions::DecisionConfig;
use runtime::models::detectors::{DetectorConfig, FleetConfig};
use runtime::registry::Registry;
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};

const PORT: u16 = 18086;
const HOURS: i64 = 30;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// An InfluxDB 1.x of the soak's own (so it can be stopped), on 127.0.0.1:18086.
struct Influx {
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl Influx {
    fn start(dir: &Path) -> Self {
        let mut me = Self { dir: dir.to_path_buf(), child: None };
        me.up();
        me
    }

    fn up(&mut self) {
        let d = self.dir.display();
        let conf = self.dir.join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                "reporting-enabled = false\nbind-address = \"127.0.0.1:{}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n[monitor]\n  store-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{PORT}\"\n  log-enabled = false\n",
                PORT + 2
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.join("influxd.log")).unwrap();
        self.child = Some(
            std::process::Command::new("influxd")
                .args(["run", "-config"])
                .arg(&conf)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("influxd (tests/run installs it)"),
        );
        let t0 = Instant::now();
        while ping().is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "influxd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill").arg(c.id().to_string()).status(); // SIGTERM
            let _ = c.wait();
        }
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// GET /ping on the soak's InfluxDB.
fn ping() -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", PORT))?;
    s.write_all(b"GET /ping HTTP/1.0\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    if buf.starts_with("HTTP/1.0 204") || buf.starts_with("HTTP/1.1 204") { Ok(()) } else { Err(std::io::Error::other(buf)) }
}

fn write_config(dir: &Path, db: &str, receiver: &Receiver) -> PathBuf {
    let am = std::env::var("ALERTMANAGER_URL").unwrap_or_else(|_| "http://127.0.0.1:9093".into());
    let text = format!(
        r#"
[source]
kind = "influxdb"
[source.influxdb]
url = "http://127.0.0.1:{PORT}"
database = "{db}"
[model]
registry = "file://{dir}/registry"
[schedule]
interval_secs = 60
warmup_secs = 21600
settle_secs = 0
deliver_timeout_secs = 60
max_catchup_secs = 604800
[outbox]
dir = "{dir}/outbox"
backoff_initial_secs = 0.05
backoff_max_secs = 0.3
state_every_secs = 0
[http]
listen = ""
[sinks.slack]
webhook_url = "{url}/slack/T000/B000/XXXX"
timeout_secs = 1
rate_limit_per_minute = 100000
[sinks.pagerduty]
routing_key = "{key}"
url = "{url}/pagerduty/v2/enqueue"
timeout_secs = 1
rate_limit_per_minute = 100000
[sinks.webhook]
url = "{url}/webhook"
timeout_secs = 1
rate_limit_per_minute = 100000
[sinks.alertmanager]
url = "{am}"
rate_limit_per_minute = 100000
"#,
        dir = dir.display(),
        url = receiver.url,
        key = "k".repeat(32),
    );
    let path = dir.join("runtime.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every notification a receiver accepted (path + body), with how often.
fn received(r: &Receiver) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for x in r.accepted("/") {
        *out.entry(format!("{} {}", x.path, x.body)).or_default() += 1;
    }
    out
}

fn pending(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("outbox/pending"))
        .map_or(0, |d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
}

/// Four servers, 30 h at 10 s from `start_ms`, with incidents and normal confounders.
fn write_fleet(client: &InfluxClient, start_ms: i64) {
    let mut sim = Simulator::new(SimConfig { servers: 4, seed: 11, start_ms, ..SimConfig::default() });
    let mut batch = Vec::new();
    while sim.next_timestamp_ms() < start_ms + HOURS * 3_600_000 {
        let (t, rows) = sim.next_row();
        for (s, v) in rows {
            batch.extend(
                runtime::BASE_METRICS
                    .iter()
                    .zip(v)
                    .filter(|(_, x)| x.is_finite())
                    .map(|(m, x)| runtime::MetricSample::new(t, s.clone(), *m, x)),
            );
        }
    }
    block_on(async {
        client.create_database().await.unwrap();
        client.write(&batch).await.unwrap();
    });
}

/// Until `stop`: every 150 ms, by a seeded draw, the next two requests answer 500 (2 in 10), or
/// 429 with `Retry-After` (1 in 10), or every request hangs for 0.4 s (1 in 10); counted in
/// `faults` (500s, 429s, hangs).
fn start_chaos(receiver: &Receiver, stop: &Arc<AtomicBool>, faults: &Arc<[AtomicUsize; 3]>) -> std::thread::JoinHandle<()> {
    let (receiver, stop, faults) = (receiver.clone(), stop.clone(), faults.clone());
    std::thread::spawn(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        while !stop.load(Ordering::SeqCst) {
            match rng.random_range(0..10) {
                0 | 1 => {
                    receiver.fail_next(2);
                    faults[0].fetch_add(2, Ordering::SeqCst);
                }
                2 => {
                    receiver.throttle_next(2);
                    faults[1].fetch_add(2, Ordering::SeqCst);
                }
                3 => {
                    receiver.set_hang(true);
                    faults[2].fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(400));
                    receiver.set_hang(false);
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    })
}

/// Check that `got` holds every notification of `expected`, at least as often, and nothing
/// else; returns how many deliveries repeated one.
fn repeats_beyond(expected: &BTreeMap<String, usize>, got: &BTreeMap<String, usize>) -> usize {
    let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:#?}\nextra {extra:#?}");
    let short: Vec<&String> = expected.iter().filter(|(k, n)| got[*k] < **n).map(|(k, _)| k).collect();
    assert!(short.is_empty(), "delivered fewer times than sent: {short:?}");
    expected.iter().map(|(k, n)| got[k] - n).sum()
}

#[test]
fn chaos_soak_delivers_every_alert_once_the_faults_stop() {
    let t_start = Instant::now();
    let base = std::env::temp_dir().join(format!("rt-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("influx")).unwrap();
    let mut influx = Influx::start(&base.join("influx"));
    let start_ms = 1_705_000_000_000i64 / 60_000 * 60_000;
    let db = "soak";
    let client =
        InfluxClient::new(InfluxConfig { url: format!("http://127.0.0.1:{PORT}"), database: db.into(), ..InfluxConfig::default() });
    write_fleet(&client, start_ms);
    let (from, until) = (runtime::format_ts(start_ms + 6 * 3_600_000), runtime::format_ts(start_ms + HOURS * 3_600_000));
    let b = bundle(&DetectorConfig::Fleet(FleetConfig::default()), DecisionConfig::default());
    let replay = |config: &Path| {
        let mut c = common::runtime_cmd();
        c.args(["replay", "--from", &from, "--until", &until, "--config"]).arg(config);
        c
    };

    // The reference: uninterrupted, no faults.
    let ref_dir = base.join("reference");
    std::fs::create_dir_all(&ref_dir).unwrap();
    let reference = Receiver::start();
    block_on(promote(&Registry::open(&format!("file://{}/registry", ref_dir.display())).unwrap(), &b));
    let out = replay(&write_config(&ref_dir, db, &reference)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = received(&reference);
    let total: usize = expected.values().sum();
    assert!(total >= 12 && pending(&ref_dir) == 0, "{total} notifications in the reference");

    // The same under faults.
    let dir = base.join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    let receiver = Receiver::start();
    block_on(promote(&Registry::open(&format!("file://{}/registry", dir.display())).unwrap(), &b));
    let config = write_config(&dir, db, &receiver);
    let stop = Arc::new(AtomicBool::new(false));
    let faults = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]); // 500s, 429s, hangs
    let chaos = start_chaos(&receiver, &stop, &faults);
    let mut influx_restarts = 0;
    for quarter in 1..=3 {
        let mut child = replay(&config).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let target = total * quarter / 4;
        let t0 = Instant::now();
        let mut outage_done = quarter != 2;
        while receiver.accepted("/").len() < target && t0.elapsed() < Duration::from_secs(180) && child.try_wait().unwrap().is_none() {
            if !outage_done && receiver.accepted("/").len() >= total * 3 / 8 {
                influx.down(); // the source goes away mid-run for 3 s
                std::thread::sleep(Duration::from_secs(3));
                influx.up();
                influx_restarts += 1;
                outage_done = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(child.try_wait().unwrap().is_none(), "killed mid-run {quarter}/4 (the replay must not end first)");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let out = replay(&config).output().unwrap();
    stop.store(true, Ordering::SeqCst);
    chaos.join().unwrap();
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{}", logs.lines().rev().take(30).collect::<Vec<_>>().join("\n"));

    let got = received(&receiver);
    let repeats = repeats_beyond(&expected, &got);
    // At least once: a kill between a sink's answer and the entry's removal sends it again; at
    // most one entry per sink is in flight (three receiving sinks, three kills).
    assert!(repeats <= 9, "{repeats} repeated deliveries");
    assert_eq!(pending(&dir), 0, "the outbox is empty");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    let f: Vec<usize> = faults.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let figures = format!(
        "chaos soak: {total} notifications expected (Slack/PagerDuty/webhook), {} delivered, {} unique = expected, {repeats} repeated; \
         faults: {} HTTP 500, {} HTTP 429 + Retry-After, {} hangs, 3 kill -9, {influx_restarts} InfluxDB restart; outbox empty; {:.0} s",
        got.values().sum::<usize>(),
        got.len(),
        f[0],
        f[1],
        f[2],
        t_start.elapsed().as_secs_f64()
    );
    println!("{figures}");
    // tests/run prints this file after the tests (their output is captured).
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak-figures.txt"), &figures).unwrap();
    influx.down();
    std::fs::remove_dir_all(&base).ok();
}
