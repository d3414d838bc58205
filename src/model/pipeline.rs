//! Data planes, deployment records, promotions and ingest tokens, as stored.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::time::{serialize_rfc3339, Millis};

/// The stored fields of a data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPlaneRow {
    pub id: i64,
    pub handle: String,
    pub name: String,
    pub kind: String,
    pub region: String,
    pub description: String,
    pub created_at: Millis,
}

/// One deployment record.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    #[serde(serialize_with = "crate::id::serialize")]
    #[schemars(with = "String")]
    pub id: i64,
    pub project: String,
    pub integration: String,
    pub environment: String,
    pub version: String,
    pub artifact: String,
    pub sha256: Option<String>,
    pub created_by: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    /// The record (in the previous environment) a promotion copied, if any.
    #[serde(serialize_with = "crate::id::serialize_opt")]
    #[schemars(with = "Option<String>")]
    pub promoted_from: Option<i64>,
    #[serde(skip)]
    pub integration_id: i64,
    #[serde(skip)]
    pub environment_id: i64,
}

/// A [`NewDeployment`] that passed validation (sha256 in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidDeployment {
    pub version: String,
    pub artifact: String,
    pub sha256: Option<String>,
}

/// Where a promotion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Applied,
    Rejected,
    Cancelled,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Applied,
        Status::Rejected,
        Status::Cancelled,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Applied => "applied",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
        }
    }

    /// 400 for anything but the five names.
    pub fn parse(text: &str) -> Result<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                Error::BadRequest(
                    "status must be pending, applied, rejected, cancelled or failed".into(),
                )
            })
    }
}

/// A promotion as the store keeps it (handles joined in).
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionRow {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub integration_id: i64,
    pub integration: String,
    pub from_environment_id: i64,
    pub from: String,
    pub from_critical: bool,
    pub to_environment_id: i64,
    pub to: String,
    pub to_critical: bool,
    pub status: String,
    /// The source's current deployment record when requested, copied.
    pub source_deployment_id: i64,
    pub version: String,
    pub artifact: String,
    pub sha256: Option<String>,
    /// The source's configuration revision when requested (0: none).
    pub source_config_revision: i64,
    /// The target's current record and revision (0: none) when requested.
    pub target_deployment_id: Option<i64>,
    pub target_config_revision: i64,
    pub required_approvals: i64,
    pub requested_by: String,
    pub requested_at: Millis,
    pub comment: String,
    /// Who applied, rejected, cancelled or (by approving) failed it, and when.
    pub decided_by: Option<String>,
    pub decided_at: Option<Millis>,
    /// The rejection comment or the failure reason.
    pub reason: Option<String>,
    pub applied_deployment_id: Option<i64>,
    pub applied_revision: Option<i64>,
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Approval {
    pub user: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub at: Millis,
    pub comment: String,
}

/// What the store keeps for a token (with the handles of its scope).
#[derive(Debug, Clone, PartialEq)]
pub struct IngestTokenRow {
    pub id: String,
    pub name: String,
    pub token_hash: String,
    pub environment_id: i64,
    pub environment: String,
    /// Whether the environment is critical (for authorization).
    pub critical: bool,
    pub project_id: Option<i64>,
    pub project: Option<String>,
    pub integration_id: Option<i64>,
    pub integration: Option<String>,
    pub created_by: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}
