//! The domain's data: the records, identifiers and enums that the domain
//! modules work on and the store reads and writes. Plain data and its
//! pure conversions (names, parsing, ordering), with no I/O and no SQL.
//!
//! This is the bottom of the dependency graph below the domain: `store`
//! builds on it and imports no domain module, the domain modules build on
//! both and re-export their part of it (`crate::runtimes::RuntimeRecord`
//! is `crate::model::runtimes::RuntimeRecord`). See ARCHITECTURE.md,
//! "Layers".

pub mod access;
pub mod catalog;
pub mod cluster;
pub mod commands;
pub mod configuration;
pub mod contracts;
pub mod mi;
pub mod pipeline;
pub mod runtimes;
pub mod secrets;
pub mod telemetry;
pub mod telemetry_query;
