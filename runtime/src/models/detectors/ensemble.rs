//! Ensembles: several detectors on the same rows, each member's score calibrated by its
//! upper-tail rank among that member's own past scores (so scores of different detectors mean
//! the same), combined by mean or max. Causal like its members.

use serde::{Deserialize, Serialize};

use super::window::SortedWindow;
use super::{DetectorConfig, DetectorError, StreamingDetector};

/// How calibrated member scores are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Mean.
    Mean,
    /// Max.
    Max,
}

/// Settings of an ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleConfig {
    /// Member detectors (at least two).
    pub members: Vec<DetectorConfig>,
    /// Combination.
    #[serde(default = "default_combine")]
    pub combine: Combine,
    /// Past scores per member kept for calibration.
    #[serde(default = "default_calibration_rows")]
    pub calibration_rows: usize,
}

fn default_combine() -> Combine {
    Combine::Mean
}

fn default_calibration_rows() -> usize {
    20_000
}

impl EnsembleConfig {
    pub(super) fn build(&self, n_metrics: usize) -> Result<Ensemble, DetectorError> {
        if self.members.len() < 2 {
            return Err(DetectorError {
                field: "members".into(),
                value: self.members.len().to_string(),
                reason: "an ensemble needs at least two members".into(),
            });
        }
        if self.calibration_rows < 10 {
            return Err(DetectorError {
                field: "calibration_rows".into(),
                value: self.calibration_rows.to_string(),
                reason: "at least 10".into(),
            });
        }
        let members = self.members.iter().map(|m| m.build(n_metrics)).collect::<Result<Vec<_>, _>>()?;
        let n = members.len();
        Ok(Ensemble { cfg: self.clone(), members, history: vec![SortedWindow::new(self.calibration_rows); n], calibrated: vec![0.0; n] })
    }
}

/// Upper-tail rank of `x` among past scores: 1 - (count ≥ x + 1) / (n + 1).
fn calibrate(past: &SortedWindow, x: f64) -> f64 {
    1.0 - (past.count_ge(x) as f64 + 1.0) / (past.sorted().len() as f64 + 1.0)
}

/// The running ensemble.
#[derive(Debug)]
pub(super) struct Ensemble {
    cfg: EnsembleConfig,
    members: Vec<Box<dyn StreamingDetector>>,
    history: Vec<SortedWindow>,
    calibrated: Vec<f64>,
}

impl StreamingDetector for Ensemble {
    fn push(&mut self, timestamp_ms: i64, values: &[f64]) -> f64 {
        for (i, m) in self.members.iter_mut().enumerate() {
            let s = m.push(timestamp_ms, values);
            self.calibrated[i] = calibrate(&self.history[i], s);
            self.history[i].insert(s);
        }
        match self.cfg.combine {
            Combine::Mean => self.calibrated.iter().sum::<f64>() / self.calibrated.len() as f64,
            Combine::Max => self.calibrated.iter().copied().fold(0.0, f64::max),
        }
    }

    fn learn(&mut self, timestamp_ms: i64, values: &[f64]) {
        for m in &mut self.members {
            m.learn(timestamp_ms, values);
        }
    }

    fn contributions(&self) -> Vec<f64> {
        // The most confident member explains the row.
        let best = self.calibrated.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        self.members[best].contributions()
    }
}
