//! Restart equivalence: `runtime replay` killed with `kill -9` at several points and started
//! again delivers the same set of (alert key, alert time, trigger / resolve) as an uninterrupted
//! run: no alert missing, none extra, every resolve of an alert raised before a kill sent.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::{bundle, fleet_csv, promote};
use runtime::collector::simulate::SimConfig;
use runtime::decisions::DecisionConfig;
use runtime::models::detectors::{DetectorConfig, FleetConfig, TailEnsembleConfig};
use runtime::registry::Registry;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rt-restart-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A replay config: the fleet file, a local registry, every alert to a webhook.
fn write_config(dir: &Path, data: &Path, receiver: &Receiver) -> PathBuf {
    let text = format!(
        r#"
[source]
kind = "file"
[source.file]
path = "{data}"
[model]
registry = "file://{dir}/registry"
[schedule]
interval_secs = 60
warmup_secs = 21600
settle_secs = 0
deliver_timeout_secs = 20
max_catchup_secs = 604800
[outbox]
dir = "{dir}/outbox"
backoff_initial_secs = 0.05
backoff_max_secs = 0.2
state_every_secs = 0
[http]
listen = ""
[routing]
info = ["webhook"]
low = ["webhook"]
medium = ["webhook"]
high = ["webhook"]
critical = ["webhook"]
[sinks.webhook]
url = "{url}/webhook"
rate_limit_per_minute = 100000
"#,
        data = data.display(),
        dir = dir.display(),
        url = receiver.url,
    );
    let path = dir.join("runtime.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn replay(config: &Path) -> std::process::Command {
    let mut c = common::runtime_cmd();
    c.args(["replay", "--config"]).arg(config);
    c
}

/// Each delivery's `Idempotency-Key` (alert key @ alert time : Firing / Resolved), with how
/// many times it arrived.
fn deliveries(r: &Receiver) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for x in r.accepted("/webhook") {
        let key = x.headers["idempotency-key"].clone();
        *out.entry(key).or_default() += 1;
    }
    out
}

/// The uninterrupted run, then the same run killed at 3 points (once a quarter, a half and
/// three quarters of the reference's deliveries arrived: wherever the process is then, in a
/// tick, queueing, saving or delivering) and restarted each time. Returns (expected, got).
fn killed_and_restarted(
    tag: &str,
    detector: &DetectorConfig,
    decisions: DecisionConfig,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let base = tmp(tag);
    let sim = SimConfig { servers: 3, seed: 5, ..SimConfig::default() };
    let (data, _) = fleet_csv(&base, sim, 30);
    let b = bundle(detector, decisions);

    let ref_dir = base.join("reference");
    std::fs::create_dir_all(&ref_dir).unwrap();
    let reference = Receiver::start();
    block_on(promote(&Registry::open(&format!("file://{}/registry", ref_dir.display())).unwrap(), &b));
    let out = replay(&write_config(&ref_dir, &data, &reference)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = deliveries(&reference);
    let total: usize = expected.values().sum();
    assert!(total >= 8, "enough alerts to kill between: {expected:?}");
    assert!(expected.keys().any(|k| k.ends_with(":Resolved")), "resolves are part of it");

    let dir = base.join("killed");
    std::fs::create_dir_all(&dir).unwrap();
    let receiver = Receiver::start();
    block_on(promote(&Registry::open(&format!("file://{}/registry", dir.display())).unwrap(), &b));
    let config = write_config(&dir, &data, &receiver);
    for quarter in 1..=3 {
        let mut child = replay(&config).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let target = total * quarter / 4;
        let t0 = Instant::now();
        while receiver.accepted("/webhook").len() < target && t0.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        assert!(!finished, "killed mid-run {quarter}/4 (the replay must not end first)");
    }
    let out = replay(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = deliveries(&receiver);
    std::fs::remove_dir_all(&base).ok();
    (expected, got)
}

fn assert_equivalent(expected: &BTreeMap<String, usize>, got: &BTreeMap<String, usize>) {
    let (want, have): (BTreeSet<&String>, BTreeSet<&String>) = (expected.keys().collect(), got.keys().collect());
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    // At least once: a kill between a sink's answer and the entry's removal sends that one again.
    let repeats: usize = got.values().map(|n| n - 1).sum();
    assert!(repeats <= 3, "{repeats} repeated deliveries for 3 kills: {got:?}");
    eprintln!("{} deliveries expected, {} delivered, {repeats} repeated", expected.len(), got.values().sum::<usize>());
}

/// The production default detector (fleet) with the default decisions.
#[test]
fn kill_9_at_three_points_delivers_what_an_uninterrupted_run_does() {
    let (expected, got) = killed_and_restarted("fleet", &DetectorConfig::Fleet(FleetConfig::default()), DecisionConfig::default());
    assert_equivalent(&expected, &got);
}

/// The same for a univariate-style detector whose alarms damp the following rows: its
/// post-alarm state must come back too.
#[test]
fn the_tail_ensembles_post_alarm_state_survives_the_kills() {
    let decisions = DecisionConfig { consecutive: 1, threshold: 0.5, ..DecisionConfig::default() };
    let (expected, got) = killed_and_restarted("tail", &DetectorConfig::TailEnsemble(TailEnsembleConfig::default()), decisions);
    assert_equivalent(&expected, &got);
}
