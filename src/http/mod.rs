//! The HTTP connection layer: the only part of icpd that knows sockets, TLS
//! and HTTP/1.1 framing.
//!
//! Handlers see plain [`Request`] and [`Response`] values. [`Server`] owns an
//! accept thread, one epoll poller thread that parks idle and half-received
//! connections, and a bounded pool of workers that read, parse, run the
//! handler and write; a streamed response (Server-Sent Events) then moves
//! to one streams thread per server. That shape keeps thousands of idle keep-alive (TLS)
//! connections on a fixed number of threads and means a slow or hostile peer
//! only ever costs a poller map entry, never a blocked thread.
//! [`client::Client`] is a small blocking client for tests, examples and CLI
//! tools, so that they do not need to know sockets either.
//! [`outbound::send`] is the other direction: the only code that dials a
//! runtime (one bounded request per connection, with TLS trust modes).

pub mod api;
pub mod assets;
pub mod client;
pub mod message;
pub mod outbound;
pub mod server;

mod conn;
pub(crate) mod parse;
mod poller;
mod pool;
mod stream;

pub use message::{Handler, Reply, Request, Response};
pub use server::{Limits, Server};
pub mod listen;
pub mod routes;
pub mod tls;
