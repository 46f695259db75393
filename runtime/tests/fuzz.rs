//! Every parser of untrusted input fed arbitrary bytes, and valid inputs with bytes spliced in:
//! an error (or a repair), never a panic. Line protocol, replay files (CSV / line protocol),
//! runtime and feature configs, detector settings, model bundles (manifest and detector files),
//! Lambda events, timestamps, `Retry-After` values and a saved monitor state.

use std::collections::BTreeMap;

use proptest::prelude::*;
use runtime::decisions::DecisionConfig;
use runtime::models::detectors::DetectorConfig;
use runtime::registry::{Bundle, DETECTOR_FILE, Manifest, TrainingData};

const CONFIG: &str = r#"
[source]
kind = "file"
[source.file]
path = "fleet.csv"
[model]
registry = "file:///tmp/registry"
[schedule]
interval_secs = 30
[sinks.slack]
webhook_url = "https://hooks.slack.com/services/T/B/X"
"#;

const DETECTOR: &str = "kind = \"fleet\"\nhalf_surprise = 14.0\nsustain_rows = 30\n";

const CSV: &str = "timestamp,server,cpu_usage,memory_usage\n2024-01-15 00:00:00,web-01,12.5,40.1\n2024-01-15 00:00:10,web-01,13.0,40.2\n";

/// `base` with `junk` spliced in at `at` (a byte offset, clamped; the result may be invalid UTF-8).
fn splice(base: &str, at: usize, junk: &[u8]) -> Vec<u8> {
    let at = at.min(base.len());
    let mut out = base.as_bytes()[..at].to_vec();
    out.extend_from_slice(junk);
    out.extend_from_slice(&base.as_bytes()[at..]);
    out
}

fn inputs() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (0usize..400, proptest::collection::vec(any::<u8>(), 0..64))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn line_protocol_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), (at, junk) in inputs()) {
        let _ = runtime::line_protocol::parse(&text(&bytes), "fuzz.lp", 1);
        let _ = runtime::line_protocol::parse(&text(&splice("cpu_usage,server=a value=1 1700000000000\n", at, &junk)), "fuzz.lp", 1_000_000);
    }

    #[test]
    fn replay_files_never_panic((at, junk) in inputs(), lp in any::<bool>()) {
        let dir = std::env::temp_dir().join(format!("rt-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (name, base) = if lp { ("f.lp", "cpu_usage,server=a value=1 1700000000000000000\n") } else { ("f.csv", CSV) };
        let path = dir.join(name);
        std::fs::write(&path, splice(base, at, &junk)).unwrap();
        let _ = runtime::monitor::source::read_file(&path);
    }

    #[test]
    fn configs_never_panic((at, junk) in inputs()) {
        let t = text(&splice(CONFIG, at, &junk));
        if let Ok(cfg) = runtime::monitor::config::RuntimeConfig::from_toml_str(&t, "fuzz.toml") {
            let _ = cfg.validate("fuzz.toml");
        }
        let _ = runtime::features::FeatureSpec::from_toml_str(&text(&splice("[rolling]\nwindows = [5, 15]\n", at, &junk)), "f.toml");
        let _ = toml::from_str::<DecisionConfig>(&text(&splice("threshold = 0.5\nconsecutive = 2\n", at, &junk))).map(|d| d.validate());
    }

    #[test]
    fn detector_settings_never_panic((at, junk) in inputs(), n in 1usize..6, x in proptest::collection::vec(-1e9f64..1e9, 1..6)) {
        if let Ok(cfg) = toml::from_str::<DetectorConfig>(&text(&splice(DETECTOR, at, &junk)))
            && let Ok(mut det) = cfg.build(n) {
                let row: Vec<f64> = (0..n).map(|i| x[i % x.len()]).collect();
                for t in 0..3 {
                    let s = det.push(t * 10_000, &row);
                    prop_assert!((0.0..=1.0).contains(&s), "score {s}");
                }
            }
    }

    #[test]
    fn bundles_never_panic((at, junk) in inputs(), manifest_junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let training = TrainingData { dataset: "sim".into(), sha256: "ab".repeat(32), rows: 1, start_ms: None, end_ms: None };
        let manifest = Manifest::new("m", vec!["cpu_usage".into()], DecisionConfig::default(), training, "fuzz");
        let mut files = BTreeMap::new();
        files.insert(DETECTOR_FILE.to_string(), splice("{\"kind\":\"fleet\"}", at, &junk));
        let bundle = Bundle::new(manifest, files);
        let _ = runtime::monitor::LoadedModel::from_bundle(&bundle);
        let _ = serde_json::from_slice::<Manifest>(&manifest_junk);
    }

    #[test]
    fn lambda_events_timestamps_and_retry_after_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128), (at, junk) in inputs()) {
        let _ = serde_json::from_slice::<runtime::lambda::TickEvent>(&bytes);
        let _ = serde_json::from_slice::<runtime::lambda::TickEvent>(&splice("{\"mode\":\"detect\",\"shard\":0,\"shards\":2}", at, &junk));
        let s = text(&splice("2024-02-29 23:59:59.123", at, &junk));
        let _ = runtime::parse_timestamp_ms(&s);
        let _ = runtime::parse_ts(&s);
        let _ = runtime::sinks::parse_retry_after(&text(&bytes), std::time::SystemTime::now());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A damaged saved monitor state (`outbox/state.bin`) is ignored, and the history re-learned:
    /// the monitor still starts.
    #[test]
    fn a_damaged_saved_state_is_ignored(junk in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = std::env::temp_dir().join(format!("rt-fuzz-state-{}-{}", std::process::id(), junk.len()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("outbox")).unwrap();
        std::fs::write(dir.join("outbox/state.bin"), &junk).unwrap();
        std::fs::write(dir.join("data.csv"), CSV).unwrap();
        let mut cfg = runtime::monitor::config::RuntimeConfig::default();
        cfg.source.kind = runtime::monitor::config::SourceKind::File;
        cfg.source.file.path = dir.join("data.csv");
        cfg.model.registry = format!("file://{}/registry", dir.display());
        cfg.outbox.dir = dir.join("outbox");
        cfg.http.listen = String::new();
        let monitor = runtime::monitor::Monitor::new(cfg, std::sync::Arc::new(runtime::monitor::telemetry::Telemetry::new()));
        prop_assert!(monitor.is_ok(), "{:?}", monitor.err());
        drop(monitor);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
