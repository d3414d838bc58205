//! How ids leave icpd. Every id in the REST API is a JSON string, whether
//! it is a UUID, a random key id or a row number, so a client keeps one
//! type for all of them (`"7"`, never `7`) and compares them as strings.
//! Paths take the same text (`/api/v1/roles/7`). Revisions and versions
//! stay numbers: they are ordered counts, not ids.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// A row id as a string: `#[serde(serialize_with = "crate::id::serialize")]`.
pub fn serialize<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// An optional row id as a string or null.
pub fn serialize_opt<S: Serializer>(id: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

/// A body field that names something by name or by id (a role assignment's
/// `role`): a string, or a whole number as clients sent ids before they
/// were strings. `#[serde(deserialize_with = "crate::id::name_or_id")]`.
pub fn name_or_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct NameOrId;
    impl Visitor<'_> for NameOrId {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a name or an id (a string, or a whole number)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(NameOrId)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Row {
        #[serde(serialize_with = "super::serialize", skip_deserializing)]
        #[schemars(with = "String")]
        id: i64,
        #[serde(serialize_with = "super::serialize_opt", skip_deserializing)]
        #[schemars(with = "Option<String>")]
        from: Option<i64>,
        #[serde(deserialize_with = "super::name_or_id", default)]
        role: String,
    }

    #[test]
    fn ids_leave_as_strings_and_come_in_as_either() {
        let row = Row {
            id: 7,
            from: None,
            role: String::new(),
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"id": "7", "from": null, "role": ""})
        );
        let row = Row {
            from: Some(3),
            ..row
        };
        assert_eq!(serde_json::to_value(&row).unwrap()["from"], "3");
        for (body, want) in [
            (json!({"role": 6}), "6"),
            (json!({"role": "6"}), "6"),
            (json!({"role": "Viewer"}), "Viewer"),
        ] {
            let row: Row = serde_json::from_value(body).unwrap();
            assert_eq!(row.role, want);
        }
        let err = serde_json::from_value::<Row>(json!({"role": 1.5}))
            .err()
            .unwrap();
        assert!(err.to_string().contains("a name or an id"), "{err}");
    }
}
