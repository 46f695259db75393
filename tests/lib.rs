//! Shared helpers for the service tests.
