//! Evaluation: the NAB score ([`nab`]) and pointwise / event metrics ([`metrics`]): ROC-AUC,
//! PR-AUC, best F1 (pointwise and point-adjusted), event recall, mean time to detect and
//! false alerts per day; and the alert-level evaluation of a simulated fleet ([`fleet`]).

pub mod fleet;
pub mod html;
pub mod metrics;
pub mod nab;
pub mod report;
pub mod table;
