//! The batch twin of [`runtime::features::StreamingFeatures`]: a [`FeatureSpec`] as polars lazy
//! expressions over many servers at once (rolling windows and shifts `over` server and segment,
//! so nothing leaks across servers or across a reset gap).
//!
//! ```
//! use runtime::features::FeatureSpec;
//! use workbench::{features::batch_features, frames::wide_frame};
//! let df = wide_frame(vec![0, 10_000, 20_000], vec!["a".into(); 3], &["cpu_usage".into()],
//!     vec![vec![Some(1.0), Some(2.0), Some(4.0)]]).unwrap();
//! let out = batch_features(&df, &FeatureSpec::for_metrics(&["cpu_usage"])).unwrap();
//! assert_eq!(out.width(), 2 + 14);
//! ```

use polars::prelude::*;
use runtime::features::{FeatureKind, FeatureSpec};

use crate::frames::{FrameError, SERVER, TIMESTAMP, polars_err};

const SEGMENT: &str = "__segment";

fn fixed(window: usize, ddof: Option<u8>) -> RollingOptionsFixedWindow {
    RollingOptionsFixedWindow {
        window_size: window,
        min_periods: 1,
        weights: None,
        center: false,
        fn_params: ddof.map(|d| RollingFnParams::Var(RollingVarParams { ddof: d })),
    }
}

/// The lazy query: input frame → `server`, `timestamp`, then the spec's columns in order.
/// The input needs `timestamp`, the spec's metric columns without nulls, and optionally `server`.
pub fn feature_query(lf: LazyFrame, spec: &FeatureSpec, has_server: bool) -> PolarsResult<LazyFrame> {
    let mut lf = lf;
    if !has_server {
        lf = lf.with_column(lit("series").alias(SERVER));
    }
    let ts = col(TIMESTAMP).cast(DataType::Datetime(TimeUnit::Milliseconds, None));
    lf = lf.with_column(ts).sort([SERVER, TIMESTAMP], SortMultipleOptions::default().with_maintain_order(true));
    let keys = match spec.reset_after_gap_secs {
        Some(gap) => {
            let t = col(TIMESTAMP).cast(DataType::Int64);
            let step = (t.clone() - t.shift(lit(1i64))).over([col(SERVER)])?;
            lf = lf.with_column(
                step.gt(lit(gap * 1000)).cast(DataType::UInt32).fill_null(lit(0u32)).cum_sum(false).over([col(SERVER)])?.alias(SEGMENT),
            );
            vec![col(SERVER), col(SEGMENT)]
        }
        None => vec![col(SERVER)],
    };
    let mut exprs = vec![col(SERVER), col(TIMESTAMP)];
    for c in spec.columns() {
        let m = c.metric.map(|i| col(spec.metrics[i].as_str()).cast(DataType::Float64));
        let e = match (c.kind, m) {
            (FeatureKind::Value, Some(m)) => m,
            (FeatureKind::RollMean(w), Some(m)) => m.rolling_mean(fixed(w, None)).over(&keys)?,
            (FeatureKind::RollStd(w), Some(m)) => m.rolling_std(fixed(w, Some(1))).over(&keys)?.fill_null(lit(0.0)),
            (FeatureKind::RollMin(w), Some(m)) => m.rolling_min(fixed(w, None)).over(&keys)?,
            (FeatureKind::RollMax(w), Some(m)) => m.rolling_max(fixed(w, None)).over(&keys)?,
            (FeatureKind::Lag(k), Some(m)) => m.clone().shift(lit(k as i64)).fill_null(m.first()).over(&keys)?,
            (FeatureKind::RateOfChange, Some(m)) => (m.clone() - m.shift(lit(1i64))).fill_null(lit(0.0)).over(&keys)?,
            (FeatureKind::Hour, _) => col(TIMESTAMP).dt().hour().cast(DataType::Float64),
            (FeatureKind::DayOfWeek, _) => col(TIMESTAMP).dt().weekday().cast(DataType::Float64) - lit(1.0),
            (FeatureKind::IsBusinessHours, _) => {
                let h = col(TIMESTAMP).dt().hour().cast(DataType::Int32);
                let wd = col(TIMESTAMP).dt().weekday().cast(DataType::Int32);
                (wd.lt_eq(lit(5))
                    .and(h.clone().gt_eq(lit(spec.business_hours_start as i32)))
                    .and(h.lt(lit(spec.business_hours_end as i32))))
                .cast(DataType::Float64)
            }
            (_, None) => unreachable!("metric features always name a metric"),
        };
        exprs.push(e.alias(c.name.as_str()));
    }
    Ok(lf.select(exprs))
}

/// Compute the spec's features for every row of a clean wide frame (no nulls in the metric
/// columns: run [`crate::clean::clean`] with a gap policy first). Output sorted by server, time.
pub fn batch_features(df: &DataFrame, spec: &FeatureSpec) -> Result<DataFrame, FrameError> {
    spec.validate().map_err(|e| FrameError::Schema { context: "feature spec".into(), message: e.to_string() })?;
    for m in &spec.metrics {
        let c = df.column(m).map_err(|_| FrameError::Schema {
            context: "feature input".into(),
            message: format!("metric column `{m}` is missing (columns: {:?})", df.get_column_names()),
        })?;
        let nulls = c.null_count()
            + c.as_materialized_series()
                .cast(&DataType::Float64)
                .ok()
                .and_then(|s| s.f64().ok().map(|ca| ca.into_no_null_iter().filter(|v| !v.is_finite()).count()))
                .unwrap_or(0);
        if nulls > 0 {
            return Err(FrameError::Schema {
                context: "feature input".into(),
                message: format!("metric column `{m}` has {nulls} missing or non-finite values; clean it with a gap policy first"),
            });
        }
    }
    let has_server = df.column(SERVER).is_ok();
    feature_query(df.clone().lazy(), spec, has_server).and_then(LazyFrame::collect).map_err(polars_err("computing features"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{f64_column, server_column, timestamps_ms, wide_frame};
    use proptest::prelude::*;
    use runtime::features::StreamingFeatures;

    /// Stream every row of a (sorted) frame through the runtime twin and compare every column.
    fn assert_parity(df: &DataFrame, spec: &FeatureSpec) {
        let batch = batch_features(df, spec).unwrap();
        let ts = timestamps_ms(&batch).unwrap();
        let servers = server_column(&batch, "series").unwrap();
        let inputs: Vec<Vec<f64>> =
            spec.metrics.iter().map(|m| f64_column(&batch, m).unwrap().into_iter().map(Option::unwrap).collect()).collect();
        let names = spec.column_names();
        let cols: Vec<Vec<f64>> =
            names.iter().map(|n| f64_column(&batch, n).unwrap().into_iter().map(|v| v.expect("no nulls in features")).collect()).collect();
        let mut stream = StreamingFeatures::new(spec.clone()).unwrap();
        let mut row = vec![0.0; stream.width()];
        for r in 0..batch.height() {
            let values: Vec<f64> = inputs.iter().map(|c| c[r]).collect();
            stream.push(&servers[r], ts[r], &values, &mut row).unwrap();
            for (c, name) in names.iter().enumerate() {
                let (b, s) = (cols[c][r], row[c]);
                let tol = 1e-9 * b.abs().max(s.abs()).max(1.0);
                assert!((b - s).abs() <= tol, "row {r} server {} column {name}: batch {b} vs streaming {s}", servers[r]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn batch_and_streaming_agree(
            servers in 1usize..4,
            rows in 1usize..60,
            seed in any::<u64>(),
            scale in prop_oneof![Just(1.0), Just(100.0), Just(1e6)],
            reset in prop_oneof![Just(None), Just(Some(60i64))],
            min_max in any::<bool>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (mut ts, mut srv, mut a, mut b) = (vec![], vec![], vec![], vec![]);
            for s in 0..servers {
                let mut t = 1_705_276_800_000i64 + rng.random_range(0..86_400) * 1000;
                for _ in 0..rows {
                    // Mostly 10 s steps, sometimes a gap that crosses the reset threshold.
                    t += if rng.random_bool(0.1) { rng.random_range(61..7200) * 1000 } else { 10_000 };
                    ts.push(t);
                    srv.push(format!("s{s}"));
                    a.push(Some(scale * rng.random_range(-1.0..1.0)));
                    b.push(Some(if rng.random_bool(0.2) { 5.0 } else { rng.random_range(0.0..100.0) }));
                }
            }
            let df = wide_frame(ts, srv, &["a".into(), "b".into()], vec![a, b]).unwrap();
            let spec = FeatureSpec { reset_after_gap_secs: reset, rolling_min_max: min_max, ..FeatureSpec::for_metrics(&["a", "b"]) };
            assert_parity(&df, &spec);
        }
    }

    #[test]
    fn parity_on_nab_files_with_repeats_and_backwards_steps() {
        let corpus = crate::frames::nab::NabCorpus::open(&crate::frames::datasets_root().join("nab")).expect("NAB under AIOPS_DATASETS");
        // (key, repeated timestamps, backwards steps, duplicates after sorting) per the datasets README:
        // the one backwards step of machine_temperature re-covers 02:00..02:55, 12 rows.
        for (key, repeats, backwards, dups) in [
            ("realKnownCause/machine_temperature_system_failure.csv", 0, 1, 12),
            ("realAWSCloudwatch/ec2_network_in_5abac7.csv", 11, 0, 11),
        ] {
            let s = corpus.load(key).unwrap();
            assert_eq!((s.quirks.repeated_timestamps, s.quirks.backwards_steps), (repeats, backwards), "{key}");
            let (clean, report) = crate::clean::clean(&s.frame, &crate::clean::CleanConfig::default()).unwrap();
            assert_eq!((report.duplicates, report.backwards_steps), (dups, backwards), "{key}");
            assert_parity(&clean, &FeatureSpec { reset_after_gap_secs: Some(3600), ..FeatureSpec::for_metrics(&["value"]) });
        }
    }

    #[test]
    fn features_never_leak_across_servers() {
        let df = wide_frame(
            vec![0, 10_000, 0, 10_000],
            vec!["a".into(), "a".into(), "b".into(), "b".into()],
            &["x".into()],
            vec![vec![Some(1.0), Some(3.0), Some(100.0), Some(300.0)]],
        )
        .unwrap();
        let out = batch_features(&df, &FeatureSpec::for_metrics(&["x"])).unwrap();
        let mean3 = f64_column(&out, "x_roll_mean_3").unwrap();
        assert_eq!(mean3, vec![Some(1.0), Some(2.0), Some(100.0), Some(200.0)]);
        let lag2 = f64_column(&out, "x_lag_2").unwrap();
        assert_eq!(lag2, vec![Some(1.0), Some(1.0), Some(100.0), Some(100.0)]);
    }

    #[test]
    fn nulls_are_refused_with_the_column_named() {
        let df = wide_frame(vec![0, 10_000], vec!["a".into(); 2], &["cpu_usage".into()], vec![vec![Some(1.0), None]]).unwrap();
        let e = batch_features(&df, &FeatureSpec::for_metrics(&["cpu_usage"])).unwrap_err().to_string();
        assert!(e.contains("cpu_usage") && e.contains("1 missing"), "{e}");
    }
}
