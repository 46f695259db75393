//! The `experiment` binary as users run it: the README's main job (`experiment sweep` on the
//! shipped defaults) and `experiment detect`.

use std::process::Command;

fn experiment() -> Command {
    Command::new(env!("CARGO_BIN_EXE_experiment"))
}

#[test]
fn default_sweep_runs_on_shipped_data_and_tracks_every_trial() {
    // As an installed binary runs it: a copy of the binary in a folder of its own, started in
    // another folder, with its own data directory; the shipped fleet and spec come from inside it.
    let root = std::env::temp_dir().join(format!("wb-cli-sweep-{}", std::process::id()));
    let (bin, work, data) = (root.join("bin"), root.join("work"), root.join("data"));
    for d in [&bin, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let exe = bin.join("experiment");
    std::fs::copy(env!("CARGO_BIN_EXE_experiment"), &exe).unwrap();
    let out = Command::new(&exe).arg("sweep").current_dir(&work).env("AIOPS_DATA_DIR", &data).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Sweep default on sim: 24 trials") && stdout.contains("✓ 24 trials"), "{stdout}");
    let out_dir = work.join("runs/sweeps");
    let trials = std::fs::read_dir(out_dir.join("default/trials")).unwrap().count();
    assert_eq!(trials, 24);
    let board = std::fs::read_to_string(out_dir.join("default/leaderboard.md")).unwrap();
    assert!(board.contains("\n| 24 | "), "{board}");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/sim");
    for f in ["metrics.parquet", "labels.csv", "events.csv"] {
        assert!(std::fs::read(data.join("sim").join(f)).unwrap() == std::fs::read(shipped.join(f)).unwrap(), "{f} in the data directory");
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn detect_scores_every_row_and_bad_configs_fail_with_one_line() {
    let dir = std::env::temp_dir().join(format!("wb-cli-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..500 {
        text.push_str(&format!("2014-04-01 {:02}:{:02}:00,{}\n", i / 60 % 24, i % 60, if i == 400 { 90.0 } else { (i % 7) as f64 }));
    }
    std::fs::write(&input, text).unwrap();
    let output = dir.join("out.csv");
    let out = experiment().args(["detect", "--input"]).arg(&input).arg("--output").arg(&output).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("detector: context_tail (the default for one metric without a training split"), "says what it picked: {said}");
    let servers = dir.join("server.csv");
    let mut text = String::from("timestamp,cpu_usage,memory_usage\n");
    for i in 0..500 {
        text.push_str(&format!("2014-04-01 {:02}:{:02}:00,{},{}\n", i / 60 % 24, i % 60, 20 + i % 7, 50 + i % 3));
    }
    std::fs::write(&servers, text).unwrap();
    let out = experiment().args(["detect", "--input"]).arg(&servers).arg("--output").arg(dir.join("servers-out.csv")).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("detector: fleet (the default for several metrics"), "{said}");
    let out =
        experiment().args(["detect", "--input"]).arg(&input).arg("--train").arg(&input).arg("--output").arg(&output).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("detector: knn (the default with a training split"));
    let scores = std::fs::read_to_string(&output).unwrap();
    assert_eq!(scores.lines().count(), 501);
    assert!(scores.starts_with("timestamp,anomaly_score,primary_metric,severity\n"));
    std::fs::write(dir.join("bad.toml"), "kind = \"tail_ensemble\"\nshort_window = 0\n").unwrap();
    let out = experiment()
        .args(["detect", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--config")
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("short_window") && err.lines().count() == 1, "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn forecast_evaluate_prints_one_json_line_and_refuses_bad_settings() {
    let dir = std::env::temp_dir().join(format!("wb-cli-forecast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("daily.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..288 * 10 {
        let (day, minute) = (i / 288, (i % 288) * 5);
        let v = if (9..17).contains(&(minute / 60)) { 80 } else { 20 } + (i * 7) % 5;
        text.push_str(&format!("2014-04-{:02} {:02}:{:02}:00,{v}\n", day + 1, minute / 60, minute % 60));
    }
    std::fs::write(&input, text).unwrap();
    let out =
        experiment().args(["forecast", "evaluate", "--horizon", "36", "--max-origins", "20", "--input"]).arg(&input).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["period"], 288);
    assert!(report["mae"]["auto"].as_f64().unwrap() < report["mae"]["baseline_last_value"].as_f64().unwrap(), "{report}");
    let out = experiment().args(["forecast", "evaluate", "--train-fraction", "1.5", "--input"]).arg(&input).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--train-fraction") && err.lines().count() == 1, "{err}");
    std::fs::write(dir.join("bad.toml"), "combine = 0\n").unwrap();
    let out =
        experiment().args(["forecast", "evaluate", "--config"]).arg(dir.join("bad.toml")).arg("--input").arg(&input).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("combine"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_fleet_file_is_scored_server_by_server_and_forecast_one_server_at_a_time() {
    // What `experiment simulate` writes: the rows of several servers in one file.
    let dir = std::env::temp_dir().join(format!("wb-cli-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = experiment()
        .args(["simulate", "--servers", "3", "--days", "3", "--interval-secs", "60", "--seed", "11", "--format", "csv", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fleet = dir.join("metrics.csv");
    let rows_of = |server: &str| std::fs::read_to_string(&fleet).unwrap().lines().filter(|l| l.split(',').nth(1) == Some(server)).count();
    let output = dir.join("scores.csv");
    let out = experiment().args(["detect", "--input"]).arg(&fleet).arg("--output").arg(&output).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("3 servers, each on its own rows"), "{said}");
    let scores = std::fs::read_to_string(&output).unwrap();
    assert!(scores.starts_with("timestamp,server,anomaly_score,primary_metric,severity\n"), "{}", &scores[..200]);
    for server in ["web-server-01", "web-server-02", "web-server-03"] {
        let mine: Vec<&str> = scores.lines().filter(|l| l.split(',').nth(1) == Some(server)).collect();
        assert_eq!(mine.len(), rows_of(server), "{server}: one score per row of its own");
        // Each server's rows together and in time order: scored as one causal series.
        let times: Vec<&str> = mine.iter().map(|l| l.split(',').next().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{server}'s rows in time order");
    }
    // The same server alone scores the same as inside the fleet file.
    let one = dir.join("one.csv");
    let out = experiment().args(["detect", "--server", "web-server-02", "--input"]).arg(&fleet).arg("--output").arg(&one).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let alone: Vec<String> = std::fs::read_to_string(&one).unwrap().lines().skip(1).map(String::from).collect();
    let inside: Vec<String> =
        scores.lines().filter(|l| l.split(',').nth(1) == Some("web-server-02")).map(|l| l.replacen(",web-server-02", "", 1)).collect();
    assert_eq!(alone, inside);
    // A forecast needs one series: refused without --server, naming the servers.
    let out = experiment().args(["forecast", "evaluate", "--column", "cpu_usage", "--input"]).arg(&fleet).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("rows of 3 servers") && err.contains("web-server-01") && err.contains("--server"),
        "{err}"
    );
    let out = experiment()
        .args([
            "forecast",
            "evaluate",
            "--column",
            "cpu_usage",
            "--server",
            "web-server-03",
            "--horizon",
            "30",
            "--max-origins",
            "10",
            "--input",
        ])
        .arg(&fleet)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"].as_u64().unwrap() as usize, rows_of("web-server-03"));
    assert!(report["series"].as_str().unwrap().ends_with("metrics.csv web-server-03"), "{report}");
    // Tracked under the file's and the server's name.
    let out = experiment()
        .args(["forecast", "train", "--column", "cpu_usage", "--server", "web-server-01", "--history-hours", "24", "--input"])
        .arg(&fleet)
        .arg("--runs")
        .arg(dir.join("runs"))
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("runs/metrics_web-server-01").is_dir(), "{}", String::from_utf8_lossy(&out.stdout));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_refused_by_name_and_nothing_stored_is_lost() {
    let dir = std::env::temp_dir().join(format!("wb-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = experiment().args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let path = |name: &str| dir.join(name).into_os_string();
    // An empty file: the error names it.
    std::fs::write(dir.join("empty.csv"), "").unwrap();
    let (ok, err) = run(&[&os("detect"), &os("--input"), &path("empty.csv"), &os("--output"), &path("o.csv")]);
    assert!(!ok && err.contains("empty.csv:1") && err.contains("empty file"), "{err}");
    // A missing file: named, its cause said once.
    let (ok, err) = run(&[&os("detect"), &os("--input"), &path("absent.csv"), &os("--output"), &path("o.csv")]);
    assert!(!ok && err.contains("absent.csv: No such file") && err.matches("No such file").count() == 1, "{err}");
    // An impossible date is an error naming the line, not March 2.
    std::fs::write(dir.join("feb.csv"), "timestamp,value\n2024-02-28 00:00:00,1\n2024-02-31 00:00:00,2\n").unwrap();
    let (ok, err) = run(&[&os("detect"), &os("--input"), &path("feb.csv"), &os("--output"), &path("o.csv")]);
    assert!(!ok && err.contains("feb.csv:3") && err.contains("timestamp"), "{err}");
    // --output equal to --input is refused and the input kept.
    let text = "timestamp,value\n2024-02-28 00:00:00,1\n2024-02-28 00:05:00,2\n";
    std::fs::write(dir.join("in.csv"), text).unwrap();
    let (ok, err) = run(&[&os("detect"), &os("--input"), &path("in.csv"), &os("--output"), &dir.join(".").join("in.csv").into_os_string()]);
    assert!(!ok && err.contains("is the input file"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("in.csv")).unwrap(), text);
    // An empty SMD folder is an error, not a mean of nothing.
    std::fs::create_dir_all(dir.join("data/smd/test")).unwrap();
    let out = experiment().args(["evaluate", "--smd"]).env("AIOPS_DATASETS", dir.join("data")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no SMD machine"), "{err}");
    // A missing dataset says what it is and where it comes from.
    let out = experiment().args(["evaluate", "--nab"]).env("AIOPS_DATASETS", dir.join("nowhere")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("NAB not found at") && err.contains("AIOPS_DATASETS") && err.contains("numenta/NAB"),
        "{err}"
    );
    // A closed pipe ends the process quietly (no panic message).
    let mut child = experiment()
        .arg("load")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/sim/metrics.parquet"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_shipped_detector_config_and_sweep_spec_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("detectors")).unwrap().flatten() {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap();
        let det = workbench::detectors::AnyDetector::from_toml_str(&text, &path.display().to_string()).unwrap();
        det.build(4).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        checked += 1;
    }
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let (_, trials) = workbench::sweep::SweepSpec::parse(&text, &path.display().to_string()).unwrap();
            assert!(!trials.is_empty(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} files checked");
}

/// The environment variables `experiment` reads are flags too (`--datasets`, `--mlflow`), shown
/// in `--help`; a flag wins over the environment.
#[test]
fn datasets_and_mlflow_are_flags_with_their_environment_variables() {
    let help = String::from_utf8_lossy(&experiment().arg("--help").output().unwrap().stdout).to_string();
    assert!(help.contains("--datasets <DIR>") && help.contains("env: AIOPS_DATASETS") && help.contains("--mlflow <URI>"), "{help}");
    let dir = std::env::temp_dir().join(format!("wb-cli-no-datasets-{}", std::process::id()));
    let out = experiment().args(["evaluate", "--nab", "--datasets"]).arg(&dir).env("AIOPS_DATASETS", "/elsewhere").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&dir.display().to_string()) && !err.contains("/elsewhere"), "{err}");
}

#[test]
fn a_forecaster_run_is_tracked_then_promoted_as_a_forecaster_bundle() {
    let dir = std::env::temp_dir().join(format!("wb-cli-forecast-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Ten days of 5-minute rows: a working-hours plateau over a small ripple.
    let mut text = String::from("timestamp,value\n");
    for i in 0..2880u64 {
        let (day, minute) = (i / 288, (i % 288) * 5);
        let v = if (540..1020).contains(&minute) { 80.0 } else { 20.0 } + (i % 7) as f64;
        text.push_str(&format!("2024-01-{:02} {:02}:{:02}:00,{v}\n", day + 1, minute / 60, minute % 60));
    }
    let input = dir.join("web-cpu.csv");
    std::fs::write(&input, text).unwrap();
    let out = experiment()
        .current_dir(&dir)
        .args(["forecast", "train", "--metric", "cpu_usage", "--horizon-minutes", "60", "--input"])
        .arg(&input)
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<_> = std::fs::read_dir(dir.join("runs/forecasts/web-cpu")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let id = runs[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(said.contains(&format!("forecaster run {id}")) && said.contains("mae_vs_best_baseline"), "{said}");
    // Promoted by its id (looked up next to runs/sweeps): model `forecaster` unless told.
    let registry = format!("file://{}", dir.join("registry").display());
    let out = experiment().current_dir(&dir).args(["promote", &id[..8], "--to", &registry]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg = runtime::registry::Registry::open(&registry).unwrap();
    let bundle = workbench::promote::block_on(reg.load_alias("forecaster", "champion")).unwrap();
    let f = bundle.forecaster().unwrap();
    assert_eq!((f.metric.as_str(), f.horizon_minutes, f.interval_secs), ("cpu_usage", 60.0, 300.0));
    assert_eq!(bundle.manifest.kind, "auto");
    assert_eq!(bundle.manifest.source_run, format!("forecasts/web-cpu/{id}"));
    // The evaluation travels with it: on a clean daily pattern, about as good as seasonal naive.
    let e = &bundle.manifest.evaluation;
    assert!((0.0..1.1).contains(&e["mae_vs_best_baseline"]) && e["spike_recall"] > 0.9, "{e:?}");
    assert_eq!(bundle.manifest.training.rows, 2880);
    // Bad settings are refused naming the setting.
    let out = experiment().current_dir(&dir).args(["forecast", "train", "--horizon-minutes", "0", "--input"]).arg(&input).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("horizon_minutes"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_forecast_sweep_ranks_its_trials_and_reports_the_leave_one_series_out_figure() {
    let dir = std::env::temp_dir().join(format!("wb-cli-forecast-sweep-{}", std::process::id()));
    let nab = dir.join("data/nab/tiny");
    std::fs::create_dir_all(&nab).unwrap();
    // Three series of six days at 5 minutes: a daily plateau, a level shift, noise.
    for (k, name) in ["daily", "shift", "noise"].iter().enumerate() {
        let mut text = String::from("timestamp,value\n");
        for i in 0..1728u64 {
            let (day, minute) = (i / 288, (i % 288) * 5);
            let ripple = ((i * 7919 + k as u64) % 11) as f64;
            let v = match k {
                0 => (if (540..1020).contains(&minute) { 60.0 } else { 20.0 }) + ripple,
                1 => (if i > 1300 { 50.0 } else { 30.0 }) + ripple,
                _ => 40.0 + 3.0 * ripple,
            };
            text.push_str(&format!("2024-01-{:02} {:02}:{:02}:00,{v}\n", day + 1, minute / 60, minute % 60));
        }
        std::fs::write(nab.join(format!("{name}.csv")), text).unwrap();
    }
    let spec = dir.join("sweep.toml");
    std::fs::write(
        &spec,
        "name = \"tiny\"\nnab = [\"tiny\"]\nsmd_columns = []\nhorizon = 36\nmax_origins = 40\n[space]\ncombine = [1, 3]\n",
    )
    .unwrap();
    let out =
        experiment().current_dir(&dir).args(["forecast", "sweep"]).arg(&spec).env("AIOPS_DATASETS", dir.join("data")).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("2 trials × 3 series") && said.contains("Leave one series out"), "{said}");
    let board = std::fs::read_to_string(dir.join("runs/forecast-sweeps/tiny/leaderboard.md")).unwrap();
    assert!(board.contains("| 1 | ") && board.contains("| 2 | ") && board.contains("at_or_below"), "{board}");
    let trials: Vec<_> = std::fs::read_dir(dir.join("runs/forecast-sweeps/tiny/trials")).unwrap().flatten().collect();
    assert_eq!(trials.len(), 2);
    let per_series = std::fs::read_to_string(trials[0].path().join("series.jsonl")).unwrap();
    assert_eq!(per_series.lines().count(), 3, "{per_series}");
    std::fs::remove_dir_all(&dir).ok();
}
