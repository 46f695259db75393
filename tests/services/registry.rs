//! The model registry against a real S3 server (s3s-fs, signatures enforced, started by
//! `tests/run`): promote, list, download, concurrent promotions, corrupt and future-format
//! bundles refused, rollback.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use aiops_tests::block_on;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStoreExt, PutPayload};
use runtime::decisions::DecisionConfig;
use runtime::models::detectors::{DetectorConfig, MahalanobisConfig};
use runtime::registry::{Bundle, Manifest, Registry, RegistryError, TrainingData};
use workbench::promote::promote;

fn endpoint() -> String {
    std::env::var("S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9002".into())
}
fn bucket() -> String {
    std::env::var("S3_BUCKET").unwrap_or_else(|_| "models".into())
}
fn keys() -> (String, String) {
    (std::env::var("S3_ACCESS_KEY").unwrap_or_else(|_| "AK".into()), std::env::var("S3_SECRET_KEY").unwrap_or_else(|_| "SK".into()))
}

fn registry(prefix: &str, secret: Option<&str>) -> Registry {
    let (ak, sk) = keys();
    let endpoint = endpoint();
    let secret = secret.unwrap_or(&sk);
    let opts = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", ak.as_str()),
        ("aws_secret_access_key", secret),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
    ];
    Registry::open_with(&format!("s3://{}/{prefix}", bucket()), &opts).expect("open registry")
}

/// Direct access to the bucket, to tamper with what the registry wrote.
fn raw_store() -> object_store::aws::AmazonS3 {
    let (ak, sk) = keys();
    AmazonS3Builder::new()
        .with_endpoint(endpoint())
        .with_bucket_name(bucket())
        .with_access_key_id(ak)
        .with_secret_access_key(sk)
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .expect("store")
}

fn unique_prefix(tag: &str) -> String {
    format!("test-{tag}-{}-{}", std::process::id(), runtime::now_ms())
}

fn bundle(source_run: &str, detector: &DetectorConfig) -> Bundle {
    let metrics = runtime::BASE_METRICS.iter().map(|m| m.to_string()).collect();
    let decisions = DecisionConfig { threshold: 0.6, ..DecisionConfig::default() };
    let training = TrainingData { dataset: "sim".into(), sha256: "ab".repeat(32), rows: 86_400, start_ms: Some(0), end_ms: Some(1) };
    let manifest = Manifest {
        evaluation: BTreeMap::from([("event_f1".into(), 0.8)]),
        params: BTreeMap::from([("range_weight".into(), "2.0".into())]),
        git_commit: Some("0".repeat(40)),
        ..Manifest::new("anomaly-detector", metrics, decisions, training, source_run)
    };
    Bundle::for_detector(manifest, detector)
}

#[test]
fn promote_list_download_and_rollback_on_s3() {
    let prefix = unique_prefix("promote");
    let reg = registry(&prefix, None);
    let first = bundle("default/aaaaaaaa", &DetectorConfig::default());
    let second = bundle("smd/bbbbbbbb", &DetectorConfig::Mahalanobis(MahalanobisConfig::default()));
    let p1 = block_on(promote(&reg, &first, "champion")).expect("S3 server must be running (tests/run starts s3s-fs)");
    let p2 = block_on(promote(&reg, &second, "champion")).expect("second promotion");
    assert_eq!((p1.version, p1.previous, p2.version, p2.previous), (1, None, 2, Some(1)));

    let listed = block_on(reg.list("anomaly-detector")).expect("list");
    let summary: Vec<(u64, Vec<String>, String)> = listed.iter().map(|v| (v.version, v.aliases.clone(), v.manifest.kind.clone())).collect();
    assert_eq!(summary, vec![(1, vec![], "context_tail".into()), (2, vec!["champion".into()], "mahalanobis".into())]);
    assert_eq!(block_on(reg.models()).expect("models"), vec!["anomaly-detector".to_string()]);

    // Download what the alias points to: exactly what was promoted.
    let loaded = block_on(reg.load_alias("anomaly-detector", "champion")).expect("load");
    assert_eq!(loaded.files, second.files);
    assert_eq!(loaded.detector().expect("detector"), DetectorConfig::Mahalanobis(MahalanobisConfig::default()));
    assert_eq!(loaded.manifest.decisions.threshold, 0.6);

    let back = block_on(reg.rollback("anomaly-detector", "champion", None)).expect("rollback");
    assert_eq!(back.version, 1);
    assert_eq!(block_on(reg.load_alias("anomaly-detector", "champion")).expect("load").manifest.source_run, "default/aaaaaaaa");
    let err = block_on(reg.rollback("anomaly-detector", "champion", None)).expect_err("nothing earlier");
    assert!(err.to_string().contains("no earlier version"), "{err}");
    let forward = block_on(reg.rollback("anomaly-detector", "champion", Some(2))).expect("roll forward");
    assert_eq!(forward.version, 2);
}

/// Two promotions overlap: both read the alias before either moves it. The first to swap wins;
/// the other's compare-and-swap fails (its version stays published, unaliased). The swaps reach
/// the server one after the other: s3s-fs (like moto) checks `If-Match` and then writes, so two
/// requests landing in the same instant can both pass there, which AWS S3 rules out.
#[test]
fn concurrent_promotions_exactly_one_moves_the_alias() {
    let prefix = unique_prefix("race");
    let reg = registry(&prefix, None);
    block_on(promote(&reg, &bundle("seed/00000000", &DetectorConfig::default()), "champion")).expect("S3 server must be running");
    for round in 0..3 {
        let both_read = Arc::new(Barrier::new(2));
        let (first_done_tx, first_done_rx) = std::sync::mpsc::channel::<()>();
        let mut first_done_tx = Some(first_done_tx);
        let mut first_done_rx = Some(first_done_rx);
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (reg, both_read) = (reg.clone(), both_read.clone());
                let (tx, rx) = if i == 0 { (first_done_tx.take(), None) } else { (None, first_done_rx.take()) };
                std::thread::spawn(move || {
                    let seen = block_on(reg.read_alias("anomaly-detector", "champion")).expect("read").expect("exists");
                    both_read.wait();
                    if let Some(rx) = rx {
                        rx.recv().expect("first promotion finished");
                    }
                    let b = bundle(&format!("round{round}/{i}"), &DetectorConfig::default());
                    let result = block_on(async {
                        let (version, _) = reg.publish(&b).await?;
                        reg.set_alias("anomaly-detector", "champion", version, Some(&seen)).await.map(|p| (version, p))
                    });
                    if let Some(tx) = tx {
                        tx.send(()).expect("signal");
                    }
                    (seen.pointer.version, result)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        assert_eq!(results[0].0, results[1].0, "both promotions started from the same alias state");
        let winners: Vec<u64> = results.iter().filter_map(|(_, r)| r.as_ref().ok().map(|(v, _)| *v)).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one promotion moves the alias: {results:?}");
        let loser = results.iter().find(|(_, r)| r.is_err()).expect("a loser");
        let err = loser.1.as_ref().expect_err("loser");
        assert!(matches!(err, RegistryError::AliasConflict { .. }), "{err}");
        assert!(err.to_string().contains(&format!("now version {}", winners[0])), "{err}");
        let now = block_on(reg.read_alias("anomaly-detector", "champion")).expect("read").expect("exists");
        assert_eq!(now.pointer.version, winners[0]);
        assert_eq!(now.pointer.history.last(), Some(&results[0].0), "the winner's history records what it replaced");
        block_on(reg.load_alias("anomaly-detector", "champion")).expect("the alias still loads cleanly");
    }
    // Every promotion published its own version, winners and losers alike.
    assert_eq!(block_on(reg.versions("anomaly-detector")).expect("versions"), (1..=7).collect::<Vec<u64>>());
}

#[test]
fn corrupt_or_future_bundles_are_refused_and_versions_are_immutable() {
    let prefix = unique_prefix("corrupt");
    let reg = registry(&prefix, None);
    let b = bundle("default/cccccccc", &DetectorConfig::default());
    block_on(promote(&reg, &b, "champion")).expect("S3 server must be running");
    block_on(promote(&reg, &b, "staging")).expect("second version");
    let store = raw_store();

    // A published file changed behind the registry's back.
    let weights = object_store::path::Path::from(format!("{prefix}/anomaly-detector/versions/1/detector.json"));
    block_on(store.put(&weights, PutPayload::from(b"{\"kind\":\"robust_z\"}".to_vec()))).expect("tamper");
    let err = block_on(reg.load_alias("anomaly-detector", "champion")).expect_err("corrupt bundle refused");
    assert!(err.to_string().contains("detector.json") && err.to_string().contains("checksum"), "{err}");

    // A manifest from a future format.
    let manifest = object_store::path::Path::from(format!("{prefix}/anomaly-detector/versions/2/manifest.json"));
    let text = String::from_utf8(block_on(async { store.get(&manifest).await?.bytes().await }).expect("get").to_vec()).expect("utf8");
    let future = text.replacen("\"format_version\": 1", "\"format_version\": 9", 1);
    assert_ne!(future, text);
    block_on(store.put(&manifest, PutPayload::from(future.into_bytes()))).expect("tamper");
    let err = block_on(reg.load_alias("anomaly-detector", "staging")).expect_err("future format refused");
    assert!(err.to_string().contains("format version 9"), "{err}");

    // The registry itself never overwrites a version: a create-only put of an existing object fails.
    let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
    let err = block_on(object_store::ObjectStore::put_opts(&store, &weights, PutPayload::from(b"x".to_vec()), opts)).expect_err("exists");
    assert!(matches!(err, object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }), "{err}");
}

#[test]
fn wrong_credentials_fail_without_leaking_the_secret() {
    let reg = registry(&unique_prefix("creds"), Some("wrong-secret-do-not-print"));
    let err = block_on(reg.versions("anomaly-detector")).expect_err("signature mismatch");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("wrong-secret-do-not-print"), "{text}");
    assert!(text.contains("list"), "{text}");
}
