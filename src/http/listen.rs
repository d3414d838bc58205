//! Binding a listener address and starting a [`Server`] on it.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::http::{Handler, Limits, Server};

/// Binds `addr` (port 0 picks a free port) and serves it.
pub fn serve(
    name: &str,
    addr: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: Arc<dyn Handler>,
) -> Result<Server> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        Error::io(format!("cannot listen on {addr} for the {name} listener (is another icpd running? use --{name}-listen)"), e)
    })?;
    Server::start(name, listener, tls, limits, handler)
        .map_err(|e| Error::io(format!("starting the {name} listener"), e))
}
