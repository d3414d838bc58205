//! The store on PostgreSQL, through its API, as a serving node uses it:
//! writers that arrive while a write transaction is open share it (group
//! commit), and each still gets its own outcome. They run in the
//! PostgreSQL half of the suite (`ICP_TEST_BACKEND=postgres`); the SQLite
//! half says so and returns.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use icpd::error::Error;
use icpd::store::postgres::DatabaseUrl;
use icpd::store::Store;

use crate::harness::TestDir;

/// A fresh database of the throwaway cluster, or `None` in the SQLite half.
fn database(test: &str) -> Option<(TestDir, DatabaseUrl)> {
    crate::pg_cluster::fresh_database(test, "a test of the store on PostgreSQL", "spg")
}

/// What each writer of the shared transaction does after writing its fact.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ends {
    Ok,
    Fails,
    Panics,
}

fn ends(i: usize) -> Ends {
    match i % 5 {
        1 => Ends::Fails,
        3 if i < 5 => Ends::Panics,
        _ => Ends::Ok,
    }
}

#[test]
fn writers_share_one_commit_and_each_keeps_its_own_outcome() {
    let Some((_dir, url)) = database("writers_share_one_commit") else {
        return;
    };
    let store = Arc::new(Store::connect(&url).unwrap());
    let before = store.write_sharing().unwrap();
    const RIDERS: usize = 15;
    let start = Arc::new(Barrier::new(RIDERS + 1));

    // The first writer keeps its transaction open until every other one
    // has joined it.
    let first = {
        let (store, start) = (store.clone(), start.clone());
        std::thread::spawn(move || {
            store.write(|tx| {
                tx.settle_cluster_fact("test-0", "written")?;
                start.wait();
                let deadline = Instant::now() + Duration::from_secs(20);
                while store.write_sharing().unwrap().waiting < RIDERS {
                    assert!(Instant::now() < deadline, "the riders never joined");
                    std::thread::yield_now();
                }
                Ok(())
            })
        })
    };
    let riders: Vec<_> = (1..=RIDERS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    store.write(|tx| {
                        tx.settle_cluster_fact(&format!("test-{i}"), "written")?;
                        match ends(i) {
                            Ends::Ok => Ok(()),
                            Ends::Fails => Err(Error::Conflict(format!("writer {i} says no"))),
                            Ends::Panics => panic!("writer {i} panics"),
                        }
                    })
                }))
            })
        })
        .collect();
    first.join().unwrap().unwrap();
    for (i, rider) in (1..=RIDERS).zip(riders) {
        let outcome = rider.join().unwrap();
        match ends(i) {
            Ends::Ok => assert!(matches!(outcome, Ok(Ok(()))), "writer {i}: {outcome:?}"),
            Ends::Fails => {
                let e = outcome.expect("no panic").expect_err("writer said no");
                assert!(e.to_string().contains("says no"), "writer {i}: {e}");
            }
            Ends::Panics => assert!(outcome.is_err(), "writer {i} should have panicked"),
        }
    }

    let after = store.write_sharing().unwrap();
    assert_eq!(
        after.commits - before.commits,
        1,
        "16 writers, one transaction: {before:?} -> {after:?}"
    );
    assert_eq!(after.writes - before.writes, RIDERS as u64 + 1);
    assert_eq!(after.waiting, 0);

    // What the failed and panicked writers wrote is undone; the others'
    // work is committed, and a new transaction sees it.
    let facts = store
        .read(|tx| {
            (0..=RIDERS)
                .map(|i| tx.cluster_fact(&format!("test-{i}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    for (i, fact) in facts.iter().enumerate() {
        let kept = i == 0 || ends(i) == Ends::Ok;
        assert_eq!(fact.is_some(), kept, "writer {i} ({:?}): {fact:?}", ends(i));
    }

    // The connection is fine afterwards: a write alone is one transaction.
    store
        .write(|tx| tx.settle_cluster_fact("test-after", "written").map(|_| ()))
        .unwrap();
    let last = store.write_sharing().unwrap();
    assert_eq!(
        (last.commits, last.writes),
        (after.commits + 1, after.writes + 1)
    );
}
