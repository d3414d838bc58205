//! icpd: an Integration Control Plane in one binary.
//!
//! Runtimes (Ballerina / WSO2 Integrator, Micro Integrator) register over
//! the bridge protocol (`protocol`), authenticate with secrets (`secrets`),
//! and are tracked in memory for liveness (`liveness`) and in one SQLite
//! file (`store`). `http` is the only module that knows sockets, TLS and
//! HTTP; `daemon` wires everything for `icpd serve`; `cli` is the command
//! line. See ARCHITECTURE.md for the map and its invariants.

pub mod access;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod error;
pub mod events;
pub mod http;
pub mod liveness;
pub mod master_key;
pub mod protocol;
pub mod runtimes;
pub mod secrets;
pub mod store;
pub mod time;

pub use error::{Error, Result};
pub use time::Millis;
