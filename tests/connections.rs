//! Hostile connections against the real binary: a silent TCP client and a
//! stalled TLS handshake must not delay others, and are dropped at the
//! handshake deadline (set to 2 s here through the config file).

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{assert_ack, closes_within, still_open, Bridge, TestServer};

/// "Not delayed" is shown by order, not by a stopwatch: the runtime is
/// served while every hostile socket is still open, which a server whose
/// two workers were held by them could only do after the deadline dropped
/// them. The deadline is far above what two heartbeats take on a loaded
/// machine.
#[test]
fn silent_and_stalled_clients_do_not_delay_others_and_are_dropped_at_the_deadline() {
    const HANDSHAKE: Duration = Duration::from_secs(2);
    let dir = crate::harness::TestDir::new("cfgfile");
    let cfg = dir.path.join("icp.toml");
    std::fs::write(&cfg, "[http]\nhandshake_timeout = \"2s\"\nworkers = 2\n").unwrap();
    let s = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let secret = s.secret("dev", None);
    let addr = s.runtime_url.trim_start_matches("https://").to_string();

    // Before the first hostile connection: no deadline falls before
    // HANDSHAKE after this.
    let opened = Instant::now();
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

    // Normal runtimes are served meanwhile.
    let b = Bridge::new(&secret, None);
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    assert_ack(&b.delta(&mut c));
    let served = opened.elapsed();
    for (i, sock) in hostile.iter_mut().enumerate() {
        assert!(
            still_open(sock),
            "hostile socket {i} was dropped before the runtime was served ({served:?})"
        );
    }

    // Every hostile socket is closed by the server at the deadline: not
    // before, and within 5 s after (slack for a loaded machine).
    let latest = opened + HANDSHAKE + Duration::from_secs(5);
    for mut sock in hostile {
        assert!(
            closes_within(&mut sock, latest.saturating_duration_since(Instant::now())),
            "hostile connection not closed within 5 s of its deadline"
        );
    }
    let took = opened.elapsed();
    assert!(took >= HANDSHAKE, "closed before the deadline: {took:?}");
}
