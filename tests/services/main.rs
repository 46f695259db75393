//! Tests against the real InfluxDB and Prometheus started by `tests/run`, and against the
//! shared labelled datasets (`AIOPS_DATASETS`, default `../shared/datasets`), and in headless
//! Chromium.

mod browser;
mod datasets;
mod flux;
mod influxdb;
mod lstm;
mod mlflow;
mod prometheus;
mod registry;
