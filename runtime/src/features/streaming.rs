//! Incremental, per-server computation of a [`FeatureSpec`]: one row in, one feature row out.

use std::collections::HashMap;

use super::FeatureError;
use super::spec::{FeatureColumn, FeatureKind, FeatureSpec, hour_and_weekday, is_business_hours};

/// Per-server ring buffers that turn a stream of metric rows into feature rows.
///
/// Rows of one server must arrive in strictly increasing time order; a duplicate or backwards
/// row is rejected with [`FeatureError::OutOfOrder`] and leaves the state untouched.
#[derive(Debug, Clone)]
pub struct StreamingFeatures {
    spec: FeatureSpec,
    columns: Vec<FeatureColumn>,
    history: usize,
    servers: HashMap<String, ServerState>,
}

#[derive(Debug, Clone)]
struct ServerState {
    last_ms: i64,
    /// Rows seen in the current segment.
    rows: usize,
    /// `history` rows × metrics, row-major; row r lives at `(r % history)`.
    ring: Vec<f64>,
    /// First value of each metric in the current segment (the lag fill value).
    first: Vec<f64>,
}

impl StreamingFeatures {
    /// Validate the spec and start with no servers.
    pub fn new(spec: FeatureSpec) -> Result<Self, FeatureError> {
        spec.validate()?;
        let columns = spec.columns();
        let history = spec.history_rows();
        Ok(Self { spec, columns, history, servers: HashMap::new() })
    }

    /// The spec in use.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Number of feature columns per output row.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Forget a server's history (its next row starts a new segment).
    pub fn reset(&mut self, server: &str) {
        self.servers.remove(server);
    }

    /// Number of rows seen in the server's current segment (0 if unknown).
    pub fn rows_seen(&self, server: &str) -> usize {
        self.servers.get(server).map_or(0, |s| s.rows)
    }

    /// Push one row (`values` in the spec's metric order) and write its features into `out`
    /// (`out.len() == self.width()`).
    pub fn push(&mut self, server: &str, timestamp_ms: i64, values: &[f64], out: &mut [f64]) -> Result<(), FeatureError> {
        let nm = self.spec.metrics.len();
        if values.len() != nm {
            return Err(FeatureError::Width { server: server.to_string(), expected: nm, got: values.len() });
        }
        assert_eq!(out.len(), self.columns.len(), "output row must have width() columns");
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(FeatureError::NotFinite {
                server: server.to_string(),
                timestamp_ms,
                metric: self.spec.metrics[i].clone(),
                value: *v,
            });
        }
        let history = self.history;
        let state = match self.servers.get_mut(server) {
            Some(s) => s,
            None => self.servers.entry(server.to_string()).or_insert_with(|| ServerState {
                last_ms: i64::MIN,
                rows: 0,
                ring: vec![0.0; history * nm],
                first: vec![0.0; nm],
            }),
        };
        if state.rows > 0 && timestamp_ms <= state.last_ms {
            return Err(FeatureError::OutOfOrder { server: server.to_string(), timestamp_ms, previous_ms: state.last_ms });
        }
        if let Some(gap_secs) = self.spec.reset_after_gap_secs
            && state.rows > 0
            && timestamp_ms - state.last_ms > gap_secs * 1000
        {
            state.rows = 0;
        }
        if state.rows == 0 {
            state.first.copy_from_slice(values);
        }
        let row = state.rows;
        state.ring[(row % history) * nm..(row % history + 1) * nm].copy_from_slice(values);
        state.rows += 1;
        state.last_ms = timestamp_ms;

        // Value of metric m, k rows back (k <= row).
        let ring = &state.ring;
        let back = |m: usize, k: usize| ring[((row - k) % history) * nm + m];
        let (hour, weekday) = hour_and_weekday(timestamp_ms);
        for (slot, col) in out.iter_mut().zip(&self.columns) {
            let m = col.metric.unwrap_or(0);
            *slot = match col.kind {
                FeatureKind::Value => values[m],
                FeatureKind::RollMean(w) => {
                    let n = w.min(row + 1);
                    (0..n).map(|k| back(m, k)).sum::<f64>() / n as f64
                }
                FeatureKind::RollStd(w) => {
                    let n = w.min(row + 1);
                    if n < 2 {
                        0.0
                    } else {
                        let mean = (0..n).map(|k| back(m, k)).sum::<f64>() / n as f64;
                        let ss: f64 = (0..n).map(|k| (back(m, k) - mean).powi(2)).sum();
                        (ss / (n - 1) as f64).sqrt()
                    }
                }
                FeatureKind::RollMin(w) => (0..w.min(row + 1)).map(|k| back(m, k)).fold(f64::INFINITY, f64::min),
                FeatureKind::RollMax(w) => (0..w.min(row + 1)).map(|k| back(m, k)).fold(f64::NEG_INFINITY, f64::max),
                FeatureKind::Lag(k) => {
                    if k <= row {
                        back(m, k)
                    } else {
                        state.first[m]
                    }
                }
                FeatureKind::RateOfChange => {
                    if row == 0 {
                        0.0
                    } else {
                        values[m] - back(m, 1)
                    }
                }
                FeatureKind::Hour => f64::from(hour),
                FeatureKind::DayOfWeek => f64::from(weekday),
                FeatureKind::IsBusinessHours => is_business_hours(&self.spec, hour, weekday),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec1() -> FeatureSpec {
        FeatureSpec { temporal: false, ..FeatureSpec::for_metrics(&["x"]) }
    }

    #[test]
    fn rolling_lag_and_roc_by_hand() {
        let mut s = StreamingFeatures::new(spec1()).unwrap();
        let names = s.spec().column_names();
        let mut out = vec![0.0; s.width()];
        for (i, v) in [1.0, 5.0, 3.0, 4.0].into_iter().enumerate() {
            s.push("a", i as i64 * 10_000, &[v], &mut out).unwrap();
        }
        let get = |n: &str| out[names.iter().position(|c| c == n).unwrap()];
        assert_eq!(get("x"), 4.0);
        assert_eq!(get("x_roll_mean_3"), 4.0);
        assert!((get("x_roll_std_3") - 1.0).abs() < 1e-12);
        assert_eq!(get("x_roll_mean_5"), 13.0 / 4.0);
        assert_eq!(get("x_lag_1"), 3.0);
        assert_eq!(get("x_lag_3"), 1.0);
        assert_eq!(get("x_roc"), 1.0);
    }

    #[test]
    fn first_row_fills_lags_with_itself_and_std_zero() {
        let mut s = StreamingFeatures::new(spec1()).unwrap();
        let mut out = vec![f64::NAN; s.width()];
        s.push("a", 0, &[7.0], &mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
        assert_eq!(out, vec![7.0, 7.0, 0.0, 7.0, 0.0, 7.0, 0.0, 7.0, 7.0, 7.0, 0.0]);
    }

    #[test]
    fn out_of_order_rows_are_rejected_without_changing_state() {
        let mut s = StreamingFeatures::new(spec1()).unwrap();
        let mut out = vec![0.0; s.width()];
        s.push("a", 1000, &[1.0], &mut out).unwrap();
        let err = s.push("a", 1000, &[9.0], &mut out).unwrap_err();
        assert!(matches!(err, FeatureError::OutOfOrder { .. }), "{err}");
        assert!(s.push("a", 500, &[9.0], &mut out).is_err());
        s.push("a", 2000, &[3.0], &mut out).unwrap();
        assert_eq!(out[1], 2.0, "rejected rows must not enter the window");
        assert_eq!(s.rows_seen("a"), 2);
    }

    #[test]
    fn gap_resets_windows_and_servers_do_not_mix() {
        let spec = FeatureSpec { reset_after_gap_secs: Some(60), ..spec1() };
        let mut s = StreamingFeatures::new(spec).unwrap();
        let mut out = vec![0.0; s.width()];
        s.push("a", 0, &[1.0], &mut out).unwrap();
        s.push("b", 0, &[100.0], &mut out).unwrap();
        s.push("a", 10_000, &[3.0], &mut out).unwrap();
        assert_eq!(out[1], 2.0);
        s.push("a", 200_000, &[10.0], &mut out).unwrap();
        assert_eq!(out[1], 10.0, "a gap over 60 s restarts the window");
        assert_eq!(s.rows_seen("a"), 1);
    }

    #[test]
    fn nan_is_rejected_with_metric_name() {
        let mut s = StreamingFeatures::new(spec1()).unwrap();
        let mut out = vec![0.0; s.width()];
        let err = s.push("a", 0, &[f64::NAN], &mut out).unwrap_err().to_string();
        assert!(err.contains("`x`") && err.contains("NaN"), "{err}");
    }
}
