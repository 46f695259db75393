//! Benchmarks printed as one JSON line (figures go in notes, never into test assertions).

use std::time::Instant;

use runtime::collector::simulate::SimConfig;
use runtime::features::FeatureSpec;
use serde_json::json;

use crate::frames::FrameError;

/// `experiment bench features`: simulate `servers` × `days` at `interval_secs`, then time the
/// batch feature computation of the default spec (47 columns).
pub fn features(servers: usize, days: f64, interval_secs: u32) -> Result<serde_json::Value, FrameError> {
    let cfg = SimConfig { servers, interval_secs, incidents_per_day: 0.0, ..SimConfig::default() };
    let t0 = Instant::now();
    let (df, _) = crate::simulate::simulate(&cfg, days, true)?;
    let sim_secs = t0.elapsed().as_secs_f64();
    let spec = FeatureSpec::default();
    let t1 = Instant::now();
    let out = crate::features::batch_features(&df, &spec)?;
    let secs = t1.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "features",
        "rows": out.height(),
        "servers": servers,
        "features": spec.column_names().len(),
        "seconds": secs,
        "rows_per_s": out.height() as f64 / secs,
        "simulate_seconds": sim_secs,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    }))
}

/// `experiment bench iforest`: the default 47-column feature matrix of a simulated fleet
/// (`rows` rows), then Isolation Forest fit (100 trees, 256 samples) and scoring of every row.
pub fn iforest(rows: usize, threads: Option<usize>) -> Result<serde_json::Value, FrameError> {
    use runtime::models::iforest::IsolationForestParams;
    let servers = 12;
    let days = (rows as f64 / servers as f64).ceil() * 10.0 / 86_400.0;
    let cfg = SimConfig { servers, ..SimConfig::default() };
    let (df, _) = crate::simulate::simulate(&cfg, days, true)?;
    let feats = crate::features::batch_features(&df, &FeatureSpec::default())?;
    let names = FeatureSpec::default().column_names();
    let cols: Vec<Vec<f64>> = names
        .iter()
        .map(|n| crate::frames::f64_column(&feats, n).map(|c| c.into_iter().map(|v| v.unwrap_or(0.0)).collect()))
        .collect::<Result<_, _>>()?;
    let n = feats.height().min(rows);
    let nf = names.len();
    let mut data = Vec::with_capacity(n * nf);
    for r in 0..n {
        for c in &cols {
            data.push(c[r]);
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| FrameError::Schema { context: "thread pool".into(), message: e.to_string() })?;
    let params = IsolationForestParams::default().seed(0);
    let t0 = Instant::now();
    let model = pool.install(|| params.fit(&data, nf)).map_err(|e| FrameError::Schema { context: "fit".into(), message: e.to_string() })?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let mut out = vec![0.0; n];
    let t1 = Instant::now();
    pool.install(|| model.score_into(&data, &mut out));
    let score_seconds = t1.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "iforest",
        "rows": n,
        "features": nf,
        "trees": model.params().n_estimators,
        "max_samples": model.max_samples(),
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
        "score_rows_per_s": n as f64 / score_seconds,
        "threads": pool.current_num_threads(),
        "mean_score": out.iter().sum::<f64>() / n as f64,
    }))
}
