//! Stored secrets (sealed) and their queries.

use crate::time::Millis;

/// What the store keeps for a secret; `sealed_material` never leaves the crate's domain code.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub key_id: String,
    pub environment_id: i64,
    pub environment: String,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
    pub project: Option<String>,
    pub integration: Option<String>,
    pub sealed_material: Vec<u8>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub bound_at: Option<Millis>,
}

/// Filters of `GET /api/v1/secrets`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct SecretQuery {
    pub environment: Option<String>,
    pub project: Option<String>,
    pub integration: Option<String>,
    /// `active`, `revoked` or `expired`.
    pub status: Option<String>,
}
