//! Benchmarks printed as one JSON line (figures go in notes, never into test assertions).

use std::time::Instant;

use runtime::collector::simulate::SimConfig;
use runtime::features::FeatureSpec;
use serde_json::json;

use crate::frames::FrameError;

/// `experiment bench features`: simulate `servers` × `days` at `interval_secs`, then time the
/// batch feature computation of the default spec (47 columns).
pub fn features(
    servers: usize,
    days: f64,
    interval_secs: u32,
) -> Result<serde_json::Value, FrameError> {
    let cfg = SimConfig {
        servers,
        interval_secs,
        incidents_per_day: 0.0,
        ..SimConfig::default()
    };
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
