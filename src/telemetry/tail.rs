//! Live log subscribers: every stored batch is offered to each subscriber
//! whose filter and permissions match.
//!
//! [`Tail`] is a hub like `events::Events`: one bounded queue of
//! Server-Sent Events frames per subscriber (`GET
//! /api/v1/observability/logs/tail`). The ingest path calls
//! [`Tail::publish`] after each commit. Publishing never waits and costs
//! one atomic load when nobody listens; a subscriber whose queue is full
//! is dropped (its stream ends, and the console reconnects). Each
//! subscriber keeps the filter and [`Visibility`] it opened with; the
//! phrase is matched here the way FTS5's default tokenizer matches it in
//! the query API: the message and the phrase are cut into runs of letters
//! and digits, compared case-insensitively, and the phrase's tokens must
//! follow each other in the message (so `order 1` matches "order 1 created"
//! but not "order 1002", live and in a search alike).
//!
//! A stream opens with a comment (`: live tail`, ignored by `EventSource`,
//! so the first bytes leave at once); then each record is `id: <log id>`,
//! `event: log` and `data:` the item JSON of the query API, formatted once
//! per record whichever subscribers take it.
//!
//! With a shared store (PostgreSQL, several nodes on one database), the
//! records other nodes ingest reach this node's subscribers too:
//! [`follow`] starts a follower thread when the first subscriber comes,
//! which every [`FOLLOW_EVERY`] reads the logs committed since its last
//! read, in commit order, in batches of [`FOLLOW_BATCH`]
//! (`TelemetryStore::arrivals_after`; the store leaves out the ones this
//! node stored, which its ingest published already), and publishes them.
//! Commit order is what the store's position follows, so no record
//! committed after the follower started is skipped, late ones (an old
//! time) included, and none is published twice. The thread ends, and
//! stops reading, once no subscriber is left: without subscribers the
//! follower costs nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::query::{log_json, visible};
use super::{LogFilter, StoredLog, Visibility};
use crate::error::{Error, Result};
use crate::store::telemetry::TelemetryStore;

/// How often the follower reads the logs other nodes committed: they reach
/// this node's subscribers within about this long.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Logs the follower reads per query.
pub const FOLLOW_BATCH: usize = 1_000;

/// Queries per round: a follower this far behind catches up over the
/// next rounds (a subscriber that cannot take that many is dropped anyway).
const FOLLOW_QUERIES: usize = 50;

/// Frames a subscriber may have waiting before it counts as too slow.
pub const QUEUE: usize = 4096;

struct Subscriber {
    /// The user the stream belongs to, so it can be ended when their
    /// session ends or their permissions change.
    user: Option<i64>,
    filter: LogFilter,
    /// `filter.phrase`'s tokens (see [`tokens`]); `None` = no phrase.
    phrase: Option<Vec<String>>,
    vis: Visibility,
    tx: SyncSender<String>,
}

impl Subscriber {
    fn wants(&self, log: &StoredLog, message_tokens: &mut Option<Vec<String>>) -> bool {
        let f = &self.filter;
        let r = &log.record;
        let s = &r.source;
        let same = |want: Option<i64>, got: Option<i64>| want.is_none() || want == got;
        if !(visible(&self.vis, s)
            && same(f.environment_id, Some(s.environment_id))
            && same(f.project_id, s.project_id)
            && same(f.integration_id, s.integration_id)
            && (f.runtime_id.is_none() || f.runtime_id == s.runtime_id)
            && (f.levels.is_empty() || f.levels.contains(&r.level))
            && f.from.is_none_or(|from| r.ts >= from)
            && f.to.is_none_or(|to| r.ts < to))
        {
            return false;
        }
        match &self.phrase {
            None => true,
            Some(p) => {
                let words = message_tokens.get_or_insert_with(|| tokens(&r.message));
                words.windows(p.len()).any(|w| w == p.as_slice())
            }
        }
    }
}

/// A text's tokens as FTS5's default `unicode61` tokenizer sees them: runs
/// of letters and digits, lower-cased.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The live-tail hub.
pub struct Tail {
    subscribers: Mutex<Vec<Subscriber>>,
    /// `subscribers.len()`, readable without the lock: publishing to nobody
    /// costs one atomic load.
    count: AtomicUsize,
    queue: usize,
    /// Whether the follower thread runs (see [`follow`]); it decides to
    /// end under this lock, so a subscriber arriving then starts another.
    following: Mutex<bool>,
}

impl Default for Tail {
    fn default() -> Tail {
        Tail::new()
    }
}

/// The first frame of every stream: a comment.
const OPENED: &str = ": live tail\n\n";

fn frame(log: &StoredLog) -> String {
    format!("id: {}\nevent: log\ndata: {}\n\n", log.id, log_json(log))
}

impl Tail {
    pub fn new() -> Tail {
        Tail::with_queue(QUEUE)
    }

    /// A hub whose subscribers may have `queue` frames waiting.
    pub fn with_queue(queue: usize) -> Tail {
        Tail {
            subscribers: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            queue: queue.max(1),
            following: Mutex::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new subscriber for `user`: the receiver gets a frame for every
    /// record published from now on that `filter` and `vis` accept, until
    /// it is dropped, falls [`QUEUE`] frames behind or is ended.
    pub fn subscribe(
        &self,
        user: Option<i64>,
        filter: LogFilter,
        vis: Visibility,
    ) -> Receiver<String> {
        let (tx, rx) = sync_channel(self.queue);
        // Cannot fail: the queue is empty and the receiver alive. A comment
        // (ignored by `EventSource`) so the first bytes leave at once.
        let _ = tx.try_send(OPENED.to_string());
        let phrase = filter
            .phrase
            .as_deref()
            .map(tokens)
            .filter(|p| !p.is_empty());
        let mut subs = self.lock();
        // A subscriber whose filter never matches would otherwise stay
        // after its stream is gone: probe everyone with an empty frame
        // (it writes nothing) and forget the closed ones.
        subs.retain(|s| {
            !matches!(
                s.tx.try_send(String::new()),
                Err(TrySendError::Disconnected(_))
            )
        });
        subs.push(Subscriber {
            user,
            filter,
            phrase,
            vis,
            tx,
        });
        self.count.store(subs.len(), Ordering::Release);
        rx
    }

    /// Ends the streams of one user (`Some`), or of every user (`None`):
    /// they filter with permissions that may no longer hold. Returns how
    /// many ended.
    pub fn end_streams(&self, user: Option<i64>) -> usize {
        let mut subs = self.lock();
        let before = subs.len();
        subs.retain(|s| user.is_some_and(|u| s.user != Some(u)));
        self.count.store(subs.len(), Ordering::Release);
        before - subs.len()
    }

    /// Number of subscribers (gone ones are noticed when they would get a
    /// frame, or by [`Tail::forget_closed`]).
    pub fn subscriber_count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Forgets the subscribers whose stream is gone (probing each with an
    /// empty frame, which writes nothing); returns how many are left.
    pub fn forget_closed(&self) -> usize {
        let mut subs = self.lock();
        subs.retain(|s| {
            !matches!(
                s.tx.try_send(String::new()),
                Err(TrySendError::Disconnected(_))
            )
        });
        self.count.store(subs.len(), Ordering::Release);
        subs.len()
    }

    /// Offers freshly stored records to the subscribers (never blocks).
    pub fn publish(&self, logs: &[StoredLog]) {
        if logs.is_empty() || self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut subs = self.lock();
        for log in logs {
            if subs.is_empty() {
                break;
            }
            let mut lower = None;
            let mut text: Option<String> = None;
            subs.retain(|s| {
                if !s.wants(log, &mut lower) {
                    return true;
                }
                let text = text.get_or_insert_with(|| frame(log));
                match s.tx.try_send(text.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        log::info!(
                            "dropping a log tail subscriber that fell {} records behind",
                            self.queue
                        );
                        false
                    }
                    Err(TrySendError::Disconnected(_)) => false,
                }
            });
        }
        self.count.store(subs.len(), Ordering::Release);
    }
}

/// Makes sure the logs other nodes store reach `tail`'s subscribers, when
/// `store` is shared (PostgreSQL; nothing to do on SQLite): starts the
/// follower thread unless it runs. Call after subscribing. The position
/// the follower starts from is read here, before the caller's stream
/// opens, so a record committed from now on reaches it.
pub fn follow(tail: &Arc<Tail>, store: &Arc<TelemetryStore>) -> Result<()> {
    if !store.is_shared() {
        return Ok(());
    }
    let mut following = tail.following.lock().unwrap_or_else(|p| p.into_inner());
    if *following {
        return Ok(());
    }
    let Some(position) = store.follow_arrivals()? else {
        return Ok(());
    };
    let (t, s) = (tail.clone(), store.clone());
    let spawned = std::thread::Builder::new()
        .name("tail-follower".into())
        .spawn(move || follow_loop(&t, &s, position));
    if let Err(e) = spawned {
        store.unfollow_arrivals();
        return Err(Error::Internal(format!(
            "cannot start the live tail's follower thread: {e}"
        )));
    }
    *following = true;
    Ok(())
}

/// The follower thread: reads and publishes what other nodes commit until
/// no subscriber is left.
fn follow_loop(tail: &Tail, store: &TelemetryStore, mut position: i64) {
    let mut warned: Option<Instant> = None;
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        {
            let mut following = tail.following.lock().unwrap_or_else(|p| p.into_inner());
            if tail.forget_closed() == 0 {
                store.unfollow_arrivals();
                *following = false;
                return;
            }
        }
        for _ in 0..FOLLOW_QUERIES {
            match store.arrivals_after(position, FOLLOW_BATCH) {
                Ok(arrived) => {
                    position = arrived.next;
                    tail.publish(&arrived.logs);
                    if !arrived.more {
                        break;
                    }
                }
                Err(e) => {
                    // At most once a minute while the database is away.
                    if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        log::warn!(
                            "the live tail cannot read the logs other nodes stored (will retry): {e}"
                        );
                        warned = Some(Instant::now());
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::telemetry::{Attribution, Level, LogRecord};

    fn log(id: i64, integration: Option<i64>, level: Level, message: &str) -> StoredLog {
        StoredLog {
            id,
            received: 1000,
            record: LogRecord {
                ts: 1000 + id,
                level,
                module: Some("acme/orders".into()),
                message: message.into(),
                attributes: Map::new(),
                source: Attribution {
                    environment_id: 1,
                    environment: "dev".into(),
                    project_id: integration.map(|_| 7),
                    project: integration.map(|_| "p".into()),
                    integration_id: integration,
                    integration: integration.map(|i| format!("i{i}")),
                    runtime_id: Some("rt-1".into()),
                },
            },
        }
    }

    fn everything() -> Visibility {
        Visibility {
            everything: true,
            ..Visibility::default()
        }
    }

    fn data(frame: &str) -> Value {
        let line = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn records_are_filtered_per_subscriber() {
        let tail = Tail::new();
        let all = tail.subscribe(None, LogFilter::default(), everything());
        let errors_of_11 = tail.subscribe(
            None,
            LogFilter {
                integration_id: Some(11),
                levels: vec![Level::Error, Level::Fatal],
                ..LogFilter::default()
            },
            everything(),
        );
        let phrase = tail.subscribe(
            None,
            LogFilter {
                phrase: Some("  Payment FAILED ".into()),
                ..LogFilter::default()
            },
            everything(),
        );
        let only_12 = tail.subscribe(
            None,
            LogFilter::default(),
            Visibility {
                integrations: vec![12],
                ..Visibility::default()
            },
        );
        let env_1 = tail.subscribe(
            None,
            LogFilter::default(),
            Visibility {
                environments: vec![1],
                ..Visibility::default()
            },
        );
        tail.publish(&[
            log(1, Some(11), Level::Info, "order 1 created"),
            log(2, Some(11), Level::Error, "payment failed for order 2"),
            log(3, Some(12), Level::Error, "PAYMENT FAILED twice"),
            log(4, None, Level::Warn, "disk almost full"),
        ]);
        let ids = |rx: &Receiver<String>| -> Vec<String> {
            rx.try_iter()
                .filter(|f| f.contains("event: log\n"))
                .map(|f| data(&f)["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&all), ["1", "2", "3", "4"]);
        assert_eq!(ids(&errors_of_11), ["2"]);
        assert_eq!(ids(&phrase), ["2", "3"]);
        assert_eq!(ids(&only_12), ["3"], "no record without an integration");
        assert_eq!(ids(&env_1), ["1", "2", "3", "4"]);
    }

    #[test]
    fn the_phrase_matches_whole_tokens_in_order_as_fts5_does() {
        let tail = Tail::new();
        let rx = tail.subscribe(
            None,
            LogFilter {
                phrase: Some("Order 1".into()),
                ..LogFilter::default()
            },
            everything(),
        );
        tail.publish(&[
            log(1, Some(11), Level::Info, "order 1 created"),
            log(2, Some(11), Level::Info, "order 1002 created"),
            log(3, Some(11), Level::Info, "1 order created"),
            log(4, Some(11), Level::Info, "ORDER-1: shipped"),
        ]);
        let ids: Vec<String> = rx
            .try_iter()
            .filter(|f| f.contains("event: log\n"))
            .map(|f| data(&f)["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["1", "4"]);
    }

    #[test]
    fn a_frame_is_the_query_item() {
        let tail = Tail::new();
        let rx = tail.subscribe(None, LogFilter::default(), everything());
        tail.publish(&[log(5, Some(11), Level::Warn, "line one\nline two")]);
        assert_eq!(rx.try_recv().unwrap(), ": live tail\n\n");
        let f = rx.try_recv().unwrap();
        assert!(f.starts_with("id: 5\nevent: log\ndata: {"), "{f}");
        assert!(
            f.ends_with("}\n\n") && f.matches('\n').count() == 4,
            "{f:?}"
        );
        assert_eq!(
            data(&f),
            serde_json::json!({
                "id": "5", "time": "1970-01-01T00:00:01.005Z", "level": "WARN",
                "environment": "dev", "project": "p", "integration": "i11",
                "runtimeId": "rt-1", "module": "acme/orders",
                "message": "line one\nline two", "attributes": {}
            })
        );
    }

    #[test]
    fn a_slow_subscriber_is_dropped_without_blocking() {
        let tail = Tail::with_queue(3);
        let slow = tail.subscribe(None, LogFilter::default(), everything());
        let fast = tail.subscribe(None, LogFilter::default(), everything());
        for id in 1..=5 {
            tail.publish(&[log(id, None, Level::Info, "x")]);
            fast.try_iter().for_each(drop);
        }
        assert_eq!(tail.subscriber_count(), 1);
        // The opening comment, the empty probe of the second subscribe, one record.
        assert_eq!(slow.try_iter().count(), 3);
        assert!(slow.recv().is_err(), "the slow receiver is disconnected");
        drop(fast);
        tail.publish(&[log(6, None, Level::Info, "x")]);
        assert_eq!(tail.subscriber_count(), 0);
    }

    #[test]
    fn closed_subscribers_that_never_match_are_forgotten() {
        let tail = Tail::new();
        let never = LogFilter {
            runtime_id: Some("nobody".into()),
            ..LogFilter::default()
        };
        for _ in 0..10 {
            drop(tail.subscribe(None, never.clone(), everything()));
        }
        let _open = tail.subscribe(None, never, everything());
        assert_eq!(tail.subscriber_count(), 1);
    }

    #[test]
    fn streams_end_per_user_or_all() {
        let tail = Tail::new();
        let a = tail.subscribe(Some(1), LogFilter::default(), everything());
        let _b = tail.subscribe(Some(2), LogFilter::default(), everything());
        assert_eq!(tail.end_streams(Some(1)), 1);
        assert!(
            a.iter().all(|f| !f.contains("event: log")),
            "ended: no record, then disconnected"
        );
        assert_eq!(tail.end_streams(None), 1);
        assert_eq!(tail.subscriber_count(), 0);
    }
}
