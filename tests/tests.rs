//! icpd's integration tests: one test binary, modules by subject. Each test
//! starts the real `icpd` binary (or the real connection layer) on port 0
//! in its own temporary data directory and talks to it over real sockets
//! with real TLS.

mod harness;

mod api_auth;
mod api_commands;
mod api_resources;
mod backup;
mod bad_input;
mod cli;
mod cluster;
mod connections;
mod console;
mod contracts;
mod events;
mod graphql;
mod http;
mod hygiene;
mod idp;
mod ingest;
mod layers;
mod ldap;
mod lifecycle;
mod metrics;
mod mi;
mod mi_control;
mod mi_management;
mod mi_standin;
mod observability;
mod pg_cluster;
mod pipeline;
mod postgres_half;
mod promotion;
mod protocol;
mod readme;
mod refusals;
mod slapd;
mod sso;
mod store_pg;
mod telemetry_pg;
