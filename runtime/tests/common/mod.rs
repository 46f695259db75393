//! Helpers shared by the runtime integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod receiver;

use std::path::{Path, PathBuf};

use runtime::collector::simulate::{Incident, SimConfig, Simulator};
use runtime::decisions::DecisionConfig;
use runtime::models::detectors::{DetectorConfig, TailEnsembleConfig};
use runtime::registry::{Bundle, Manifest, Registry, TrainingData};

/// A simulated fleet (`hours` from `cfg.start_ms`) as a wide CSV `DIR/fleet.csv`; returns the
/// file and the labelled incidents that start in it.
pub fn fleet_csv(dir: &Path, cfg: SimConfig, hours: i64) -> (PathBuf, Vec<Incident>) {
    let mut sim = Simulator::new(cfg);
    let end = sim.next_timestamp_ms() + hours * 3_600_000;
    let mut text = String::from("timestamp,server,cpu_usage,memory_usage,network,disk_io\n");
    while sim.next_timestamp_ms() < end {
        let (t, rows) = sim.next_row();
        for (s, v) in rows.into_iter().filter(|(_, v)| v.iter().all(|x| x.is_finite())) {
            text.push_str(&format!("{t},{s},{},{},{},{}\n", v[0], v[1], v[2], v[3]));
        }
    }
    let path = dir.join("fleet.csv");
    std::fs::write(&path, text).unwrap();
    let incidents = sim.incidents().into_iter().filter(|i| i.start_ms < end).collect();
    (path, incidents)
}

/// Decisions for the pinned tail ensemble: threshold 0.7, one row (the tail ensemble damps the
/// rows after an alarm, so a run of two would never come).
pub fn sim_decisions() -> DecisionConfig {
    DecisionConfig { consecutive: 1, threshold: 0.7, ..DecisionConfig::default() }
}

/// The tail ensemble on the four base metrics with [`sim_decisions`]; pinned, so these runtime
/// tests of the monitor's mechanics (on a fleet without confounders) do not move with the
/// detectors' defaults.
pub fn sim_bundle() -> Bundle {
    bundle(&DetectorConfig::TailEnsemble(TailEnsembleConfig::default()), sim_decisions())
}

/// A bundle of `detector` on the four base metrics with `decisions`.
pub fn bundle(detector: &DetectorConfig, decisions: DecisionConfig) -> Bundle {
    let metrics = runtime::BASE_METRICS.iter().map(|m| m.to_string()).collect();
    let training = TrainingData { dataset: "sim".into(), sha256: "ab".repeat(32), rows: 1, start_ms: None, end_ms: None };
    Bundle::for_detector(Manifest::new("anomaly-detector", metrics, decisions, training, "test"), detector)
}

/// Publish a bundle and point its model's `champion` at it; returns the version.
pub async fn promote(registry: &Registry, bundle: &Bundle) -> u64 {
    let (version, _) = registry.publish(bundle).await.unwrap();
    let model = &bundle.manifest.model;
    let current = registry.read_alias(model, "champion").await.unwrap();
    registry.set_alias(model, "champion", version, current.as_ref()).await.unwrap();
    version
}

/// The runtime binary with no sink configured from the environment (tests/run exports
/// `ALERTMANAGER_URL` for other tests): only the sinks of the test's config are used.
pub fn runtime_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"));
    for k in [
        "ALERTMANAGER_URL",
        "SLACK_WEBHOOK_URL",
        "PAGERDUTY_ROUTING_KEY",
        "PAGERDUTY_KEY",
        "ALERT_WEBHOOK_URL",
        "MODEL_URI",
        "AIOPS_REGISTRY",
    ] {
        c.env_remove(k);
    }
    c
}
