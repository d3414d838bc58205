//! Hostile connections against the real binary: a silent TCP client and a
//! stalled TLS handshake must not delay others, and are dropped at the
//! handshake deadline (set to 1 s here through the config file).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{assert_ack, Bridge, TestServer};

#[test]
fn silent_and_stalled_clients_do_not_delay_others_and_are_dropped_at_the_deadline() {
    let dir = crate::harness::TestDir::new("cfgfile");
    let cfg = dir.path.join("icp.toml");
    std::fs::write(&cfg, "[http]\nhandshake_timeout = \"1s\"\nworkers = 2\n").unwrap();
    let s = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let secret = s.secret("dev", None);
    let addr = s.runtime_url.trim_start_matches("https://").to_string();

    // More hostile sockets than workers: silent ones and ones that sent part of a ClientHello.
    let mut hostile = Vec::new();
    for i in 0..6 {
        let mut sock = TcpStream::connect(&addr).unwrap();
        if i % 2 == 1 {
            // A TLS record header announcing a 512-byte handshake, then only a few bytes of it.
            sock.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
                .unwrap();
        }
        hostile.push(sock);
    }
    let opened = Instant::now();

    // Normal runtimes are served at once.
    let b = Bridge::new(&secret, None);
    let mut c = s.runtime_client();
    let t = Instant::now();
    assert_ack(&b.full(&mut c));
    assert_ack(&b.delta(&mut c));
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "normal requests took {:?}",
        t.elapsed()
    );

    // Every hostile socket is closed by the server at the deadline.
    for mut sock in hostile {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            match sock.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // an alert, then EOF
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "hostile connection not closed");
    }
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}
