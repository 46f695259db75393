use super::*;
use runtime::forecast::Forecaster;

fn tiny_cfg() -> LstmTraining {
    LstmTraining {
        model: LstmConfig { lookback_window: 6, forecast_horizon: 4, lstm_units: vec![5, 3], ..LstmConfig::default() },
        dropout_rate: 0.0,
        batch_size: 3,
        ..LstmTraining::default()
    }
}

fn batch_data(b: usize, t: usize, d: usize, s: usize, hz: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..b * t * d).map(|i| ((i as f32) * 0.37).sin()).collect();
    let y = (0..b * s * hz).map(|i| ((i as f32) * 0.11).cos() * 0.5).collect();
    (x, y)
}

fn assert_close(name: &str, a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len(), "{name}: length");
    let scale = b.iter().map(|v| v.abs()).fold(1e-3f32, f32::max);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= rel * scale, "{name}[{i}]: fused {x} vs burn-autodiff {y} (scale {scale})");
    }
}

#[test]
fn fused_gradients_match_burn_autodiff() {
    for loss_steps in [1, 6] {
        let cfg = LstmTraining { loss_steps, ..tiny_cfg() };
        let w = kernel::init_weights(2, &cfg.model.lstm_units, cfg.model.forecast_horizon, 7);
        let (x, y) = batch_data(3, 6, 2, loss_steps, 4);
        let shape = Shape { steps: 6, loss_steps };
        let (loss, g) = kernel::loss_and_grads(&w, Batch { x: &x, y: &y, size: 3 }, shape, None);
        let device = burn_device().autodiff();
        let model = LstmForecaster::from_weights(&w, &device);
        let (loss_ref, g_ref) = burn_loss_and_grads(&model, &x, &y, 3, &cfg, &device);
        assert!((loss - loss_ref).abs() < 1e-5 * loss_ref.abs().max(1.0), "loss {loss} vs {loss_ref}");
        for (l, (a, b)) in g.layers.iter().zip(&g_ref.layers).enumerate() {
            assert_close(&format!("S={loss_steps} layer {l} w_ih"), &a.w_ih, &b.w_ih, 1e-4);
            assert_close(&format!("S={loss_steps} layer {l} w_hh"), &a.w_hh, &b.w_hh, 1e-4);
            assert_close(&format!("S={loss_steps} layer {l} bias"), &a.bias, &b.bias, 1e-4);
        }
        assert_close("head_w", &g.head_w, &g_ref.head_w, 1e-4);
        assert_close("head_b", &g.head_b, &g_ref.head_b, 1e-4);
        // A gradient that can be zero everywhere would pass trivially: make sure it is not.
        assert!(g.layers[0].w_hh.iter().any(|v| v.abs() > 1e-6));
    }
}

#[test]
fn batch_split_across_threads_gives_the_same_gradients() {
    let cfg = tiny_cfg();
    let w = kernel::init_weights(2, &cfg.model.lstm_units, 4, 3);
    let (x, y) = batch_data(5, 6, 2, 1, 4);
    let shape = Shape { steps: 6, loss_steps: 1 };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    let (l1, g1) = one.install(|| kernel::loss_and_grads(&w, Batch { x: &x, y: &y, size: 5 }, shape, None));
    let (l4, g4) = four.install(|| kernel::loss_and_grads(&w, Batch { x: &x, y: &y, size: 5 }, shape, None));
    assert!((l1 - l4).abs() < 1e-9);
    assert_close("w_ih", &g4.layers[0].w_ih, &g1.layers[0].w_ih, 1e-5);
    assert_close("head_w", &g4.head_w, &g1.head_w, 1e-5);
}

fn sine_series(n: usize) -> ForecastSeries {
    let rows: Vec<Vec<f64>> =
        (0..n).map(|i| vec![50.0 + 20.0 * (i as f64 * 2.0 * std::f64::consts::PI / 24.0).sin() + ((i * 7919) % 13) as f64 * 0.1]).collect();
    let ts = (0..n as i64).map(|i| i * 10_000).collect();
    ForecastSeries::new("sine", vec!["cpu_usage".into()], ts, &rows).unwrap()
}

#[test]
fn training_learns_and_the_runtime_serves_the_same_forecast() {
    let series = sine_series(400);
    let cfg = LstmTraining {
        model: LstmConfig { lookback_window: 24, forecast_horizon: 12, lstm_units: vec![16, 8], ..LstmConfig::default() },
        epochs: 30,
        batch_size: 16,
        learning_rate: 1e-2,
        loss_steps: 4,
        patience: 0,
        dropout_rate: 0.1,
        ..LstmTraining::default()
    };
    let trained = train(&series, &cfg, Some(300), "web-server-01", false).unwrap();
    let first = trained.history.first().unwrap().1;
    let last = trained.history.last().unwrap().1;
    assert!(last < first * 0.5, "training loss {first} → {last}");
    // Reproducible: same seed, same weights.
    let again = train(&series, &cfg, Some(300), "web-server-01", false).unwrap();
    assert_eq!(again.weights, trained.weights);

    // Export, load in the runtime (burn ndarray, no autodiff), compare with the kernel's forward.
    let dir = std::env::temp_dir().join(format!("wb-lstm-{}", std::process::id()));
    let meta = Forecaster::save_dir(&trained.meta, &trained.weights, &dir).unwrap();
    let served = Forecaster::load_dir(&dir).unwrap();
    assert_eq!(served.meta, meta);
    let d = 1;
    let t = cfg.model.lookback_window;
    for origin in [300usize, 350, 388] {
        let window = &series.values[(origin - t) * d..origin * d];
        let runtime_fc = served.forecast(window).unwrap();
        let mut x: Vec<f32> = window.iter().map(|v| trained.meta.scaler.scale(0, *v) as f32).collect();
        let (m, sd) = runtime::forecast::normalize_window(&mut x, 1)[0];
        let mut kernel_fc = kernel::predict(&trained.weights, &x, 1, Shape { steps: t, loss_steps: 1 });
        runtime::forecast::apply_skip(&mut kernel_fc, &trained.meta.skip, x[t - 1]);
        for (a, b) in runtime_fc.iter().zip(&kernel_fc) {
            let b = trained.meta.scaler.unscale_target((*b * sd + m) as f64);
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "runtime {a} vs workbench {b}");
        }
    }
    // The forecast follows the cycle better than repeating the last value.
    let report = eval::report(&series, &trained, 300, 50, Some(24)).unwrap();
    assert!(report.mae["lstm"] < report.mae["last_value"], "{:?}", report.mae);

    // A damaged bundle is refused with the file named.
    std::fs::write(dir.join(runtime::forecast::WEIGHTS_FILE), b"not a record").unwrap();
    let e = Forecaster::load_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("weights.bpk") && e.contains("sha256"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gaps_are_filled_and_counted() {
    let rows = vec![vec![f64::NAN, 1.0], vec![2.0, f64::NAN], vec![3.0, 4.0]];
    let s = ForecastSeries::new("g", vec!["a".into(), "b".into()], vec![0, 10_000, 20_000], &rows).unwrap();
    assert_eq!(s.filled, 2);
    assert_eq!(s.values, vec![2.0, 1.0, 2.0, 1.0, 3.0, 4.0]);
    assert_eq!(s.interval_secs, 10.0);
    let e = ForecastSeries::new("g", vec!["a".into()], vec![0], &[vec![f64::NAN]]).unwrap_err().to_string();
    assert!(e.contains("`a`"), "{e}");
}

#[test]
fn a_row_stands_for_a_day_over_the_rows_a_typical_day_holds() {
    let series = |ts: Vec<i64>| {
        let rows: Vec<Vec<f64>> = ts.iter().map(|_| vec![1.0]).collect();
        ForecastSeries::new("t", vec!["v".into()], ts, &rows).unwrap().interval_secs
    };
    const FIVE_MIN: i64 = 300_000;
    // Every 5 minutes for ten days: 300 s, with or without a two-day outage (the typical day is
    // still full).
    assert_eq!(series((0..2880).map(|i| i * FIVE_MIN).collect()), 300.0);
    assert_eq!(series((0..2880).filter(|i| !(1000..1576).contains(i)).map(|i| i * FIVE_MIN).collect()), 300.0);
    // Timestamps jittered by up to ±40 s: the median interval, as before.
    let jittered = series((0..2880).map(|i| i * FIVE_MIN + ((i * 7919) % 81 - 40) * 1000).collect());
    assert!((jittered - 300.0).abs() < 10.0, "{jittered}");
    // One row of every four missing: the median interval is still 5 minutes, but a day holds
    // 216 rows, not 288, and a row stands for 86 400 / 216 = 400 s.
    assert_eq!(series((0..2880).filter(|i| i % 4 != 3).map(|i| i * FIVE_MIN).collect()), 400.0);
}

#[test]
fn rows_missing_in_runs_become_cells_of_time_and_bursts_stay_rows() {
    const FIVE_MIN: i64 = 300_000;
    let series = |ts: &[i64]| {
        let rows: Vec<Vec<f64>> = (0..ts.len()).map(|i| vec![i as f64]).collect();
        ForecastSeries::new("t", vec!["v".into()], ts.to_vec(), &rows).unwrap()
    };
    // Regular: the rows themselves.
    let regular: Vec<i64> = (0..2880).map(|i| i * FIVE_MIN).collect();
    assert_eq!(series(&regular).target_on_grid(), ((0..2880).map(|i| i as f64).collect(), None));
    // Ten days every 5 minutes with the rows of a 40-row run missing in every 100: a typical day
    // holds about 173 rows, a row stands for about 500 s, and the cells are that long (a day is
    // about 173 of them whichever rows went missing); a cell with two rows holds their mean, one
    // without rows the previous cell's value.
    let ts: Vec<i64> = (0..2880).filter(|i| i % 100 < 60).map(|i| i * FIVE_MIN).collect();
    let s = series(&ts);
    let cell = (s.interval_secs * 1000.0).round() as i64;
    let (values, observed) = s.target_on_grid();
    let observed = observed.expect("a grid");
    assert_eq!(values.len(), (ts[ts.len() - 1] / cell - ts[0] / cell + 1) as usize);
    assert!(observed.iter().filter(|v| !**v).count() > values.len() / 4);
    let first = ts[0] / cell;
    for (i, t) in ts.iter().enumerate() {
        let c = (t / cell - first) as usize;
        assert!(observed[c]);
        let same: Vec<usize> = (0..ts.len()).filter(|j| ts[*j] / cell - first == c as i64).collect();
        assert_eq!(values[c], same.iter().sum::<usize>() as f64 / same.len() as f64, "row {i}");
    }
    for c in (1..values.len()).filter(|c| !observed[*c]) {
        assert_eq!(values[c], values[c - 1]);
    }
    // Bursts: an hour of rows every 5 minutes, then five hours without: most cells would be
    // filled, so the rows stay rows.
    let bursts: Vec<i64> = (0..2880).filter(|i| i % 72 < 12).map(|i| i * FIVE_MIN).collect();
    assert!(series(&bursts).interval_secs > 300.0);
    assert_eq!(series(&bursts).target_on_grid().1, None);
}
