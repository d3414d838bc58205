//! Service contracts: the OpenAPI definitions runtimes report.

use serde::Serialize;

use crate::time::Millis;

/// One definition file as a full heartbeat reported it, checked and ready
/// to store (`contracts::read_definitions` makes these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDefinition {
    pub file_name: String,
    /// The service the file describes, when icpd could tell.
    pub service: Option<String>,
    pub base_path: Option<String>,
    /// The document as compact JSON text; `None` when it was not kept.
    pub definition: Option<String>,
    /// Why the document was not kept (too large, not JSON, not OpenAPI).
    pub problem: Option<String>,
    /// SHA-256 (hex) of what the runtime sent: an unchanged file is not rewritten.
    pub digest: String,
    /// Size of what the runtime sent, in bytes.
    pub size_bytes: i64,
}

/// A stored definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDefinition {
    pub new: NewDefinition,
    /// When this version of the file first arrived.
    pub received_at: Millis,
}

/// What a full heartbeat changed among a runtime's definitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DefinitionWrites {
    pub written: u64,
    pub deleted: u64,
}
