//! Models the runtime scores with. Each algorithm is a folder with `hyperparams.rs` (unfitted
//! params, builder, validation), `algorithm.rs` (fit → fitted model) and `errors.rs`.

pub mod detectors;
pub mod forecasters;
pub mod iforest;
