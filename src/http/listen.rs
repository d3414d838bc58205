//! Binding a listener address and starting a [`Server`] on it. The two
//! steps are apart so `serve` can hold both ports before it creates
//! anything in the data directory.

use std::net::TcpListener;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::http::{Handler, Limits, Server};

/// Binds `addr` (port 0 picks a free port) for the listener called `name`.
pub fn bind(name: &str, addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| {
        Error::io(format!("cannot listen on {addr} for the {name} listener (is another icpd running? use --{name}-listen)"), e)
    })
}

/// Serves a bound listener.
pub fn serve(
    name: &str,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: Arc<dyn Handler>,
) -> Result<Server> {
    Server::start(name, listener, tls, limits, handler)
        .map_err(|e| Error::io(format!("starting the {name} listener"), e))
}
