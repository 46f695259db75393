//! Tests against the real InfluxDB and Prometheus started by `tests/run`, and against the
//! shared labelled datasets (`AIOPS_DATASETS`, default `../shared/datasets`).

mod datasets;
mod influxdb;
mod prometheus;
