//! The reference README's method, online: Isolation Forest (100 trees, contamination 5%) on
//! the value/rolling/lag/rate feature family, fitted once `fit_after_rows` rows are seen and
//! refitted every `refit_every_rows` on the most recent `max_history_rows` (past rows only).

use serde::{Deserialize, Serialize};

use super::{DetectorError, StreamingDetector};
use crate::features::{FeatureSpec, StreamingFeatures};
use std::sync::Arc;

use crate::models::iforest::{IsolationForest, IsolationForestParams};

/// Settings of the IF-on-features detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IForestFeaturesConfig {
    /// Forest hyperparameters.
    pub forest: IsolationForestParams,
    /// Include the temporal columns (hour, weekday, business hours).
    pub temporal: bool,
    /// First fit after this many rows (scores before it are 0).
    pub fit_after_rows: usize,
    /// Refit period in rows (0: never).
    pub refit_every_rows: usize,
    /// Rows of history kept for refits.
    pub max_history_rows: usize,
}

impl Default for IForestFeaturesConfig {
    fn default() -> Self {
        Self {
            forest: IsolationForestParams::default(),
            temporal: true,
            fit_after_rows: 500,
            refit_every_rows: 1000,
            max_history_rows: 10_000,
        }
    }
}

impl IForestFeaturesConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<IForestFeatures, DetectorError> {
        self.forest.validate().map_err(|e| DetectorError { field: "forest".into(), value: String::new(), reason: e.to_string() })?;
        if self.fit_after_rows < 2 {
            return Err(DetectorError {
                field: "fit_after_rows".into(),
                value: self.fit_after_rows.to_string(),
                reason: "need at least 2 rows".into(),
            });
        }
        let names: Vec<String> = (0..n_metrics).map(|i| format!("m{i}")).collect();
        let spec = FeatureSpec { temporal: self.temporal, ..FeatureSpec::for_metrics(&names) };
        let features = StreamingFeatures::new(spec).map_err(|e| DetectorError {
            field: "features".into(),
            value: String::new(),
            reason: e.to_string(),
        })?;
        let width = features.width();
        let metric_of = features.spec().columns().iter().map(|c| c.metric).collect();
        Ok(IForestFeatures {
            cfg: self.clone(),
            features,
            width,
            history: Vec::new(),
            rows: 0,
            model: None,
            row: vec![0.0; width],
            metric_of,
            n_metrics,
            scored: None,
        })
    }
}

/// The running detector.
#[derive(Debug)]
pub(super) struct IForestFeatures {
    cfg: IForestFeaturesConfig,
    features: StreamingFeatures,
    width: usize,
    history: Vec<f64>,
    rows: usize,
    model: Option<Arc<IsolationForest>>,
    row: Vec<f64>,
    metric_of: Vec<Option<usize>>,
    n_metrics: usize,
    /// The last scored feature row and the model that scored it (for attribution).
    scored: Option<(Vec<f64>, Arc<IsolationForest>)>,
}

impl StreamingDetector for IForestFeatures {
    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64 {
        if self.features.push("s", timestamp_ms, values, &mut self.row).is_err() {
            // Out-of-order or non-finite rows are not learned; score them as unknown.
            return 0.0;
        }
        let score = self.model.as_ref().map_or(0.0, |m| m.score_row(&self.row));
        self.scored = self.model.as_ref().map(|m| (self.row.clone(), Arc::clone(m)));
        self.history.extend_from_slice(&self.row);
        self.rows += 1;
        let excess = self.history.len().saturating_sub(self.cfg.max_history_rows * self.width);
        if excess > self.width * 1000 {
            self.history.drain(..excess);
        }
        let due = super::fit_due(self.rows, self.cfg.fit_after_rows, self.cfg.refit_every_rows);
        if due {
            let start = self.history.len().saturating_sub(self.cfg.max_history_rows * self.width);
            self.model = self.cfg.forest.fit(&self.history[start..], self.width).ok().map(Arc::new);
        }
        score
    }

    fn contributions(&self) -> Vec<f64> {
        let Some((row, model)) = &self.scored else { return Vec::new() };
        let mut per_metric = vec![0.0; self.n_metrics];
        for (w, m) in model.attribution(row).iter().zip(&self.metric_of) {
            if let Some(m) = m {
                per_metric[*m] += w;
            }
        }
        per_metric
    }
}
