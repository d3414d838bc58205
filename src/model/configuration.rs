//! Configuration values and revisions, as stored (secret values sealed).

use serde::{Deserialize, Serialize};

use crate::time::{serialize_rfc3339, Millis};

/// The type of a configuration value, as Ballerina's `Config.toml` knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Int,
    Float,
    Boolean,
    Array,
    Table,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Boolean => "boolean",
            ValueType::Array => "array",
            ValueType::Table => "table",
        }
    }

    pub fn parse(text: &str) -> Option<ValueType> {
        [
            ValueType::String,
            ValueType::Int,
            ValueType::Float,
            ValueType::Boolean,
            ValueType::Array,
            ValueType::Table,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// Where a value goes: `[section]` and `key`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ValueKey {
    /// `org.module` (dotted), or `""` for a top-level key.
    #[serde(default)]
    pub section: String,
    pub key: String,
}

impl ValueKey {
    /// `section.key`, or `key` at top level, for messages.
    pub fn dotted(&self) -> String {
        if self.section.is_empty() {
            self.key.clone()
        } else {
            format!("{}.{}", self.section, self.key)
        }
    }
}

/// One value as the store keeps it.
#[derive(Clone, PartialEq)]
pub struct StoredValue {
    pub section: String,
    pub key: String,
    pub value_type: ValueType,
    pub secret: bool,
    /// The JSON text of a plain value.
    pub value: Option<String>,
    /// A secret value: the JSON text sealed under [`seal_context`].
    pub sealed: Option<Vec<u8>>,
    pub updated_by: String,
    pub updated_at: Millis,
}

impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredValue")
            .field("section", &self.section)
            .field("key", &self.key)
            .field("type", &self.value_type)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// A revision's header.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    #[serde(skip)]
    pub id: i64,
    pub revision: i64,
    pub created_by: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    pub comment: String,
    /// The revision a promotion copied, if any.
    pub promoted_from: Option<RevisionRef>,
    /// How many values it holds.
    pub values: i64,
}

/// A revision of another environment (what a promotion copied).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRef {
    #[serde(skip)]
    pub id: i64,
    pub environment: String,
    pub revision: i64,
}

/// What a new revision records about itself.
#[derive(Debug, Clone, Default)]
pub struct RevisionMeta {
    pub created_by: String,
    pub created_at: Millis,
    pub comment: String,
    /// `config_revisions.id` of the revision a promotion copied.
    pub promoted_from: Option<i64>,
}

/// The AEAD context of a secret value: its integration, environment,
/// section and key (none may contain `/`), so a sealed value opens only
/// where it was sealed.
pub fn seal_context(integration_id: i64, environment_id: i64, k: &ValueKey) -> String {
    format!(
        "config/{integration_id}/{environment_id}/{}/{}",
        k.section, k.key
    )
}
