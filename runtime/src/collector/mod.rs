//! Metric collection: this host's metrics from `/proc` ([`host::HostSampler`]) and the seeded
//! server simulator ([`simulate::Simulator`]) that stands in for a fleet.

pub mod host;
pub mod simulate;
