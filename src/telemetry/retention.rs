//! Retention of telemetry: by age and by size, enforced by a background
//! thread in `daemon` (every `telemetry.retention_interval`).
//!
//! A pass first deletes every record (log, request record, metric point)
//! older than the age limit by its own time, then, while the live size of
//! the database (its pages minus the free ones) is above the size limit,
//! the oldest records across all three tables. When the free pages add up
//! to more than a sixteenth of the limit, they are given back to the file
//! system (`incremental_vacuum`), so the file shrinks too; fewer are left
//! for new records to reuse, which costs nothing.
//!
//! Every step is its own short write transaction (a chunk of [`CHUNK`]
//! rows per table, or 1,024 pages of vacuum), followed by a short pause:
//! the writer connection's mutex is not fair, and a thread that unlocks and
//! locks again at once keeps the threads waiting on it out. Without the
//! pause a long pass kept ingest to 2,000 records/s with batches waiting
//! over a second; with it, steps and ingest batches take turns (purging
//! 1.4 million logs while ingesting: about 20,000 records/s, batches
//! mostly under 100 ms). A chunk usually takes 10 to 50 ms; now and then
//! the full-text index rebuilds a segment's table of deleted rows in one
//! go, and that chunk takes up to about a second.
//!
//! The size limit is checked once a pass, so between passes the database
//! can grow past it by what arrives in one interval.
//!
//! On PostgreSQL the same pass runs, on every node sharing the database
//! (their deletes of the same oldest rows wait on each other's row locks;
//! a size pass may delete up to a chunk per node more than one node
//! would). The live size is an estimate there (`TelemetryStore::live_bytes`),
//! deleted rows' space is reused by new rows rather than given back, and
//! the text index merge, the vacuum steps and the checkpoint are
//! PostgreSQL's own work (the calls do nothing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Retention;
use crate::error::Result;
use crate::store::telemetry::{Deleted, TelemetryStore};
use crate::time::Millis;

/// Rows deleted per table per transaction.
pub const CHUNK: usize = 2_000;

/// The pause after a step: long enough for a thread woken by the unlock
/// (an ingest batch waiting for the writer) to take the lock first.
const PAUSE: Duration = Duration::from_millis(5);

/// Runs one step of a pass, then pauses (see above).
fn step<T>(stop: &AtomicBool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let out = f()?;
    if !stop.load(Ordering::SeqCst) {
        std::thread::sleep(PAUSE);
    }
    Ok(out)
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Older than the age limit.
    pub by_age: Deleted,
    /// The oldest, to get under the size limit.
    pub by_size: Deleted,
    /// Live bytes before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Report {
    /// Whether anything was deleted.
    pub fn deleted_anything(&self) -> bool {
        self.by_age.total() + self.by_size.total() > 0
    }
}

/// One retention pass at `now`. Returns early (with what it did so far)
/// when `stop` is set, so shutdown never waits for a long pass.
pub fn enforce(
    store: &TelemetryStore,
    limits: &Retention,
    now: Millis,
    stop: &AtomicBool,
) -> Result<Report> {
    let mut report = Report {
        bytes_before: store.live_bytes()?,
        ..Report::default()
    };
    let cutoff = now.saturating_sub(limits.max_age_ms);
    while !stop.load(Ordering::SeqCst) {
        let d = step(stop, || store.delete_older_than(cutoff, CHUNK))?;
        if d.total() == 0 {
            break;
        }
        report.by_age.add(d);
    }
    while !stop.load(Ordering::SeqCst) && store.live_bytes()? > limits.max_bytes {
        let d = step(stop, || store.delete_oldest(CHUNK))?;
        if d.total() == 0 {
            // Nothing left to delete: the empty schema alone is over the limit.
            break;
        }
        report.by_size.add(d);
    }
    if report.deleted_anything() && !stop.load(Ordering::SeqCst) {
        step(stop, || store.merge_text_index())?;
    }
    if store.free_bytes()? > limits.max_bytes / 16 {
        while !stop.load(Ordering::SeqCst) && step(stop, || store.vacuum_step())? > 0 {}
        store.checkpoint()?;
    }
    report.bytes_after = store.live_bytes()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Attribution, Level, LogRecord, RequestRecord};

    fn log(ts: Millis) -> LogRecord {
        LogRecord {
            ts,
            level: Level::Info,
            module: None,
            message: format!("record at {ts} with a few words of padding to take some room"),
            attributes: Default::default(),
            source: Attribution {
                environment_id: 1,
                environment: "dev".into(),
                ..Attribution::default()
            },
        }
    }

    #[test]
    fn age_then_size_oldest_first() {
        let dir = std::env::temp_dir().join(format!("icpd-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = TelemetryStore::open(&dir.join("telemetry.db")).unwrap();
        let day = 86_400_000;
        let now = 100 * day;
        let stop = AtomicBool::new(false);
        // 3,000 logs from ten days ago, 20,000 recent ones (a minute apart).
        store
            .insert_logs((0..3_000).map(|i| log(now - 10 * day + i)).collect(), now)
            .unwrap();
        store
            .insert_logs((0..20_000).map(|i| log(now - day + i * 60)).collect(), now)
            .unwrap();
        let request = RequestRecord {
            ts: now - 10 * day,
            service: "s".into(),
            resource: "/".into(),
            method: "GET".into(),
            status: 200,
            duration_ms: 1.0,
            source: log(0).source,
        };
        store.insert_requests(&[request]).unwrap();
        let roomy = Retention {
            max_age_ms: 7 * day,
            max_bytes: 1 << 30,
        };
        let r = enforce(&store, &roomy, now, &stop).unwrap();
        assert_eq!(
            r.by_age,
            Deleted {
                logs: 3_000,
                requests: 1,
                points: 0
            }
        );
        assert_eq!(r.by_size.total(), 0);
        assert!(r.bytes_after < r.bytes_before);
        assert!(!enforce(&store, &roomy, now, &stop)
            .unwrap()
            .deleted_anything());

        // Half the size: the oldest records go until it fits.
        let tight = Retention {
            max_bytes: r.bytes_after / 2,
            ..roomy
        };
        let r = enforce(&store, &tight, now, &stop).unwrap();
        assert!(r.by_size.logs > 5_000, "{r:?}");
        assert!(r.bytes_after <= tight.max_bytes, "{r:?}");
        assert_eq!(
            store.file_bytes().unwrap(),
            r.bytes_after,
            "the file shrank"
        );
        // What is left is the newest: nothing before the first kept record.
        let first_kept = now - day + 60 * r.by_size.logs as i64;
        assert_eq!(store.delete_older_than(first_kept, 10).unwrap().total(), 0);
        assert_eq!(store.delete_older_than(first_kept + 1, 10).unwrap().logs, 1);

        // A limit below the empty schema deletes everything and stops.
        let r = enforce(
            &store,
            &Retention {
                max_bytes: 1,
                ..roomy
            },
            now,
            &stop,
        )
        .unwrap();
        assert!(r.by_size.logs > 0);
        assert_eq!(store.delete_oldest(10).unwrap().total(), 0);

        // A stop request ends a pass between chunks.
        store
            .insert_logs((0..5_000).map(log).collect(), now)
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        let r = enforce(&store, &roomy, now, &stop).unwrap();
        assert!(!r.deleted_anything());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
