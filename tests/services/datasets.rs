use workbench::frames::{datasets_root, nab::NabCorpus, smd::SmdMachine};

#[test]
fn nab_subset_loads_with_documented_counts_and_quirks() {
    let corpus = NabCorpus::open(&datasets_root().join("nab")).expect("NAB under AIOPS_DATASETS");
    let keys = corpus.keys();
    assert_eq!(keys.len(), 35);
    let (mut rows, mut windows, mut labels) = (0, 0, 0);
    let mut repeats = Vec::new();
    let mut backwards = Vec::new();
    for k in &keys {
        let s = corpus.load(k).unwrap();
        rows += s.quirks.rows;
        windows += s.windows.len();
        labels += s.labels.len();
        assert_eq!(s.quirks.missing_values, 0, "{k}");
        if s.quirks.repeated_timestamps > 0 {
            repeats.push((k.rsplit('/').next().unwrap().to_string(), s.quirks.repeated_timestamps));
        }
        if s.quirks.backwards_steps > 0 {
            backwards.push(k.clone());
        }
        // Windows are rows of the file.
        for (a, b) in &s.windows {
            assert!(s.timestamps_ms.contains(a) && s.timestamps_ms.contains(b), "{k}: window not on rows");
        }
    }
    assert_eq!((rows, windows, labels), (181_653, 55, 57));
    repeats.sort();
    assert_eq!(
        repeats,
        vec![
            ("ec2_disk_write_bytes_1ef3de.csv".to_string(), 11),
            ("ec2_network_in_5abac7.csv".to_string(), 11),
            ("ec2_request_latency_system_failure.csv".to_string(), 11)
        ]
    );
    assert_eq!(backwards, vec!["realKnownCause/machine_temperature_system_failure.csv".to_string()]);
    let taxi = corpus.load("realKnownCause/nyc_taxi.csv").unwrap();
    assert_eq!(taxi.quirks.median_interval_secs, 1800);
    assert_eq!(taxi.probationary_rows(), 750);
    assert_eq!(taxi.row_labels().iter().filter(|l| **l).count(), 1035);
}

#[test]
fn smd_subset_loads_with_documented_shapes() {
    let root = datasets_root().join("smd");
    assert_eq!(SmdMachine::list(&root), vec!["machine-1-7", "machine-2-1", "machine-3-3"]);
    for (m, train, test, anomalous, lines) in
        [("machine-1-7", 23_697, 23_697, 2_398, 13), ("machine-2-1", 23_693, 23_694, 1_170, 13), ("machine-3-3", 23_703, 23_703, 632, 28)]
    {
        let s = SmdMachine::load(&root, m).unwrap();
        assert_eq!(s.train.shape(), (train, 2 + 38), "{m}");
        assert_eq!(s.test.height(), test);
        assert_eq!(s.test_labels.iter().filter(|l| **l == 1).count(), anomalous);
        assert_eq!(s.segments.len(), lines);
        // The union of segments equals the labelled rows.
        let mut covered = vec![0u8; test];
        for seg in &s.segments {
            covered[seg.start..seg.end].iter_mut().for_each(|c| *c = 1);
        }
        assert_eq!(covered, s.test_labels, "{m}");
    }
}

#[test]
fn malformed_labels_and_smd_rows_name_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("aiops-bad-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    std::fs::write(dir.join("labels/combined_windows.json"), "{\n  \"a.csv\": [[\"2014-01-01 00:00:00\", \"2014-01-01\"]]\n}").unwrap();
    std::fs::write(dir.join("labels/combined_labels.json"), "{}").unwrap();
    let e = NabCorpus::open(&dir).unwrap_err().to_string();
    assert!(e.contains("combined_windows.json") && e.contains("a.csv") && e.contains("not a timestamp"), "{e}");
    std::fs::write(dir.join("labels/combined_windows.json"), "{\n  \"a.csv\": [\n}").unwrap();
    let e = NabCorpus::open(&dir).unwrap_err().to_string();
    assert!(e.contains("combined_windows.json:3"), "{e}");
    let bad = dir.join("m.txt");
    std::fs::write(&bad, "0.1,0.2\n0.1,abc\n").unwrap();
    let e = workbench::frames::smd::read_matrix(&bad).unwrap_err().to_string();
    assert!(e.contains("m.txt:2") && e.contains("m02") && e.contains("abc"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// scikit-learn 1.9.1's IsolationForest (100 trees, defaults) fitted on SMD machine-1-7 train and
/// scored on its test split: mean ROC-AUC over seeds 0..19 (tests/reference/sklearn_iforest.py).
const SKLEARN_MEAN_AUC_MACHINE_1_7: f64 = 0.7059;

#[test]
fn iforest_auc_matches_scikit_learn_on_smd() {
    use runtime::models::iforest::IsolationForestParams;
    use workbench::evaluation::metrics::roc_auc;
    use workbench::frames::smd::read_matrix;
    let root = datasets_root().join("smd");
    let flat = |rows: Vec<Vec<f64>>| rows.into_iter().flatten().collect::<Vec<f64>>();
    let train = flat(read_matrix(&root.join("train/machine-1-7.txt")).unwrap());
    let test = flat(read_matrix(&root.join("test/machine-1-7.txt")).unwrap());
    let labels: Vec<bool> = read_matrix(&root.join("test_label/machine-1-7.txt")).unwrap().iter().map(|r| r[0] > 0.5).collect();
    let aucs: Vec<f64> = (0..20)
        .map(|seed| {
            let model = IsolationForestParams::default().seed(seed).fit(&train, 38).unwrap();
            roc_auc(&model.score_samples(&test), &labels).unwrap()
        })
        .collect();
    let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
    eprintln!("our mean ROC-AUC over 20 seeds: {mean:.4}; scikit-learn: {SKLEARN_MEAN_AUC_MACHINE_1_7:.4}");
    assert!((mean - SKLEARN_MEAN_AUC_MACHINE_1_7).abs() < 0.01, "ours {mean:.4} vs scikit-learn {SKLEARN_MEAN_AUC_MACHINE_1_7:.4}");
}

#[test]
fn long_and_wide_frames_convert_both_ways() {
    use workbench::frames::{long_to_wide, samples_to_long, wide_to_samples};
    let cfg = runtime::collector::simulate::SimConfig { servers: 2, ..Default::default() };
    let (wide, _) = workbench::simulate::simulate(&cfg, 0.01, false).unwrap();
    let long = samples_to_long(&wide_to_samples(&wide, "x").unwrap()).unwrap();
    assert_eq!(long.height(), wide.height() * 4);
    assert_eq!(long.get_column_names(), ["timestamp", "server", "metric", "value"]);
    let (back, dups) = long_to_wide(&long).unwrap();
    assert_eq!(dups, 0);
    assert!(back.equals(&wide));
}

#[test]
fn runtime_does_not_depend_on_polars_or_burn_autodiff() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-p", "runtime", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().count() > 10, "{tree}");
    for banned in ["polars", "burn-autodiff", "burn-optim"] {
        assert!(!tree.lines().any(|l| l.starts_with(banned)), "runtime depends on {banned}:\n{tree}");
    }
    // It does serve the LSTM with burn's ndarray backend.
    assert!(tree.lines().any(|l| l.starts_with("burn-ndarray ")), "runtime lacks burn-ndarray:\n{tree}");
}

#[test]
fn knn_detector_meets_the_smd_targets() {
    // Issue 3's SMD targets: mean ROC-AUC ≥ 0.90 and pointwise best F1 ≥ 0.5 over the three
    // shared machines (fit on train, score test). Measured: 0.904 / 0.579 (z clipped at ± 10).
    use runtime::models::detectors::{DetectorConfig, KnnConfig};
    let results =
        workbench::evaluation::report::evaluate_smd(&datasets_root().join("smd"), &DetectorConfig::Knn(KnnConfig::default()).into())
            .unwrap();
    assert_eq!(results.len(), 3);
    let mean = |f: fn(&workbench::evaluation::report::SmdResult) -> f64| results.iter().map(f).sum::<f64>() / 3.0;
    let (auc, f1) = (mean(|r| r.roc_auc), mean(|r| r.best_f1));
    eprintln!("knn on SMD: mean ROC-AUC {auc:.4}, mean best F1 {f1:.4}");
    assert!(auc >= 0.90, "mean ROC-AUC {auc:.4}");
    assert!(f1 >= 0.50, "mean best F1 {f1:.4}");
}

#[test]
fn gmm_detector_fits_every_smd_machine() {
    // EM collapses on machine-1-7 at the default regularization; the detector retries with a
    // stronger one instead of scoring nothing (which read as ROC-AUC 0.5).
    use workbench::detectors::AnyDetector;
    let cfg = AnyDetector::from_toml_str("kind = \"gmm\"", "test").unwrap();
    let results = workbench::evaluation::report::evaluate_smd(&datasets_root().join("smd"), &cfg).unwrap();
    for r in &results {
        assert!(r.roc_auc > 0.6, "{}: ROC-AUC {:.3}", r.machine, r.roc_auc);
    }
}

#[test]
fn nab_scorer_reproduces_the_published_detectors_table() {
    // ../shared/datasets/nab-results/README.md: HTM and ARTime scored on the 35 files.
    let root = datasets_root();
    for (folder, detector, expected) in [("numenta", "numenta", [66.59, 60.81, 71.06]), ("ARTime", "ARTime", [67.85, 57.84, 73.72])] {
        let (report, series) =
            workbench::evaluation::report::evaluate_nab_scores(&root.join("nab"), &root.join("nab-results").join(folder)).unwrap();
        assert_eq!((report.detector.as_str(), report.files, series.len()), (detector, 35, 35));
        let got: Vec<f64> = report.profiles.iter().map(|p| p.score).collect();
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() <= 0.01, "{detector}: {got:?} vs {expected:?}");
        }
    }
}

#[test]
fn nab_results_with_wrong_rows_name_the_file_and_line() {
    let root = datasets_root();
    let dir = std::env::temp_dir().join(format!("aiops-nab-results-{}", std::process::id()));
    let src = root.join("nab-results").join("numenta");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let to = dir.join(entry.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(entry.path()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    let taxi = dir.join("realKnownCause/numenta_nyc_taxi.csv");
    let text = std::fs::read_to_string(&taxi).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "2014-07-01 01:00:00,1,abc,0";
    std::fs::write(&taxi, lines.join("\n")).unwrap();
    let e = workbench::evaluation::report::evaluate_nab_scores(&root.join("nab"), &dir).unwrap_err().to_string();
    assert!(e.contains("numenta_nyc_taxi.csv:4") && e.contains("anomaly_score") && e.contains("abc"), "{e}");
    lines.remove(3);
    std::fs::write(&taxi, lines.join("\n")).unwrap();
    let e = workbench::evaluation::report::evaluate_nab_scores(&root.join("nab"), &dir).unwrap_err().to_string();
    assert!(e.contains("numenta_nyc_taxi.csv:4") && e.contains("does not match row 3"), "{e}");
    std::fs::remove_file(&taxi).unwrap();
    let e = workbench::evaluation::report::evaluate_nab_scores(&root.join("nab"), &dir).unwrap_err().to_string();
    assert!(e.contains("nyc_taxi.csv") && e.contains("no results file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nab_scores_written_in_results_layout_score_the_same_when_read_back() {
    let root = datasets_root();
    let cfg = workbench::detectors::AnyDetector::from(runtime::models::detectors::DetectorConfig::Ewma(Default::default()));
    let (report, series) = workbench::evaluation::report::evaluate_nab(&root.join("nab"), &cfg).unwrap();
    let dir = std::env::temp_dir().join(format!("aiops-nab-written-{}", std::process::id()));
    workbench::evaluation::report::write_nab_scores(&dir, "ewma", &series).unwrap();
    assert!(dir.join("realKnownCause/ewma_nyc_taxi.csv").exists());
    let (again, _) = workbench::evaluation::report::evaluate_nab_scores(&root.join("nab"), &dir).unwrap();
    assert_eq!(again.detector, "ewma");
    for (a, b) in report.profiles.iter().zip(&again.profiles) {
        assert!((a.score - b.score).abs() < 1e-9 && a.fp == b.fp && a.tp == b.tp, "{a:?} vs {b:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn context_tail_default_beats_htm_and_artime_on_every_nab_profile() {
    // Issue 15's targets on the 35 shared files: standard ≥ 70, reward_low_FP ≥ 62,
    // reward_low_FN ≥ 75 (ARTime 67.85 / 57.84 / 73.72, HTM 66.59 / 60.81 / 71.06).
    // Measured: 72.09 / 66.38 / 75.94.
    let cfg = workbench::detectors::AnyDetector::default();
    assert_eq!(cfg.name(), "context_tail");
    let (report, _) = workbench::evaluation::report::evaluate_nab(&datasets_root().join("nab"), &cfg).unwrap();
    let got: Vec<f64> = report.profiles.iter().map(|p| p.score).collect();
    eprintln!("context_tail on NAB: {got:?}");
    for (g, target) in got.iter().zip([70.0, 62.0, 75.0]) {
        assert!(*g >= target, "{got:?}");
    }
}
