//! The SQL of the environments pipeline: data planes, deployment records,
//! configuration revisions and their values, configuration fetches, and
//! how each runtime compares with them ([`Rollout`]).
//!
//! The current deployment record of an (integration, environment) is its
//! row with the highest id; the current configuration revision its row
//! with the highest revision number. Both are found through an index on
//! (integration, environment, ...), so the runtime views can ask for them
//! per runtime.

use std::collections::BTreeMap;

use super::db;
use super::db::{params, OptionalExtension, Queries, Row};

use super::Tx;
use crate::error::Result;
use crate::model::configuration::{
    RevisionInfo, RevisionMeta, RevisionRef, StoredValue, ValueType,
};
use crate::model::pipeline::DataPlaneRow;
use crate::model::pipeline::{Deployment, ValidDeployment};
use crate::model::runtimes::{Rollout, Status};
use crate::time::Millis;

const DATA_PLANE_COLUMNS: &str = "id, handle, name, kind, region, description, created_at";

fn data_plane(r: &Row) -> db::Result<DataPlaneRow> {
    Ok(DataPlaneRow {
        id: r.get(0)?,
        handle: r.get(1)?,
        name: r.get(2)?,
        kind: r.get(3)?,
        region: r.get(4)?,
        description: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// A configuration value from the columns section, key, type, secret,
/// value, sealed, updated_by, updated_at (a revision's value, or a
/// promotion's override with its requester and time).
pub(super) fn stored_value(r: &Row) -> db::Result<StoredValue> {
    let t: String = r.get(2)?;
    Ok(StoredValue {
        section: r.get(0)?,
        key: r.get(1)?,
        // The schema's CHECK admits only the six names.
        value_type: ValueType::parse(&t).unwrap_or(ValueType::String),
        secret: r.get(3)?,
        value: r.get(4)?,
        sealed: r.get(5)?,
        updated_by: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

const DEPLOYMENT_SELECT: &str =
    "SELECT d.id, p.handle, i.handle, e.handle, d.version, d.artifact, \
     d.sha256, d.created_by, d.created_at, d.promoted_from, d.integration_id, d.environment_id \
     FROM deployments d JOIN integrations i ON i.id = d.integration_id \
     JOIN projects p ON p.id = i.project_id JOIN environments e ON e.id = d.environment_id";

fn deployment(r: &Row) -> db::Result<Deployment> {
    Ok(Deployment {
        id: r.get(0)?,
        project: r.get(1)?,
        integration: r.get(2)?,
        environment: r.get(3)?,
        version: r.get(4)?,
        artifact: r.get(5)?,
        sha256: r.get(6)?,
        created_by: r.get(7)?,
        created_at: r.get(8)?,
        promoted_from: r.get(9)?,
        integration_id: r.get(10)?,
        environment_id: r.get(11)?,
    })
}

const REVISION_SELECT: &str = "SELECT c.id, c.revision, c.created_by, c.created_at, c.comment, \
     s.id, se.handle, s.revision, (SELECT COUNT(*) FROM config_values v WHERE v.revision_id = c.id) \
     FROM config_revisions c LEFT JOIN config_revisions s ON s.id = c.promoted_from \
     LEFT JOIN environments se ON se.id = s.environment_id";

fn revision(r: &Row) -> db::Result<RevisionInfo> {
    let source: Option<i64> = r.get(5)?;
    Ok(RevisionInfo {
        id: r.get(0)?,
        revision: r.get(1)?,
        created_by: r.get(2)?,
        created_at: r.get(3)?,
        comment: r.get(4)?,
        promoted_from: match source {
            Some(id) => Some(RevisionRef {
                id,
                environment: r.get(6)?,
                revision: r.get(7)?,
            }),
            None => None,
        },
        values: r.get(8)?,
    })
}

impl Tx<'_> {
    // ---- data planes ---------------------------------------------------

    pub fn data_planes(&self) -> Result<Vec<DataPlaneRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {DATA_PLANE_COLUMNS} FROM data_planes ORDER BY id"
        ))?;
        let rows = st.query_map([], data_plane)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn data_plane_by_handle(&self, handle: &str) -> Result<Option<DataPlaneRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {DATA_PLANE_COLUMNS} FROM data_planes WHERE handle = ?1"
        ))?;
        Ok(st.query_row([handle], data_plane).optional()?)
    }

    pub fn insert_data_plane(&self, d: &DataPlaneRow) -> Result<i64> {
        self.exec(
            "INSERT INTO data_planes (handle, name, kind, region, description, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d.handle,
                d.name,
                d.kind,
                d.region,
                d.description,
                d.created_at
            ],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn update_data_plane(&self, d: &DataPlaneRow) -> Result<()> {
        self.exec(
            "UPDATE data_planes SET name = ?2, kind = ?3, region = ?4, description = ?5 WHERE id = ?1",
            params![d.id, d.name, d.kind, d.region, d.description],
        )?;
        Ok(())
    }

    /// Deletes a data plane; the foreign key refuses one that holds environments.
    pub fn delete_data_plane(&self, id: i64) -> Result<()> {
        self.exec("DELETE FROM data_planes WHERE id = ?1", [id])?;
        Ok(())
    }

    /// (data plane id, environment handle) of every environment, in creation order.
    pub fn data_plane_environments(&self) -> Result<Vec<(i64, String)>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT data_plane_id, handle FROM environments ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Per data plane, its runtimes (RUNNING, OFFLINE) as last flushed.
    pub fn data_plane_runtime_counts(&self) -> Result<BTreeMap<i64, (i64, i64)>> {
        let mut st = self.tx.prepare_cached(
            "SELECT e.data_plane_id, r.status, COUNT(*) FROM runtimes r \
             JOIN environments e ON e.id = r.environment_id GROUP BY e.data_plane_id, r.status",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut counts = BTreeMap::new();
        for row in rows {
            let (dp, status, n) = row?;
            let c: &mut (i64, i64) = counts.entry(dp).or_default();
            match Status::parse(&status) {
                Some(Status::Running) => c.0 += n,
                _ => c.1 += n,
            }
        }
        Ok(counts)
    }

    /// Moves an environment to another data plane.
    pub fn set_environment_data_plane(
        &self,
        environment_id: i64,
        data_plane_id: i64,
    ) -> Result<()> {
        self.exec(
            "UPDATE environments SET data_plane_id = ?2 WHERE id = ?1",
            params![environment_id, data_plane_id],
        )?;
        Ok(())
    }

    // ---- deployment records --------------------------------------------

    pub fn insert_deployment(
        &self,
        integration_id: i64,
        environment_id: i64,
        d: &ValidDeployment,
        created_by: &str,
        now: Millis,
        promoted_from: Option<i64>,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO deployments (integration_id, environment_id, version, artifact, sha256, \
                created_by, created_at, promoted_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                integration_id,
                environment_id,
                d.version,
                d.artifact,
                d.sha256,
                created_by,
                now,
                promoted_from
            ],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn deployment(&self, id: i64) -> Result<Option<Deployment>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("{DEPLOYMENT_SELECT} WHERE d.id = ?1"))?;
        Ok(st.query_row([id], deployment).optional()?)
    }

    /// The newest record of an (integration, environment).
    pub fn current_deployment(
        &self,
        integration_id: i64,
        environment_id: i64,
    ) -> Result<Option<Deployment>> {
        let mut st = self.tx.prepare_cached(&format!(
            "{DEPLOYMENT_SELECT} WHERE d.integration_id = ?1 AND d.environment_id = ?2 \
             ORDER BY d.id DESC LIMIT 1"
        ))?;
        Ok(st
            .query_row(params![integration_id, environment_id], deployment)
            .optional()?)
    }

    /// Up to `limit` records of an (integration, environment) older than
    /// record `before`, newest first, and how many there are.
    pub fn deployment_page(
        &self,
        integration_id: i64,
        environment_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<Deployment>, i64)> {
        let mut st = self.tx.prepare_cached(&format!(
            "{DEPLOYMENT_SELECT} WHERE d.integration_id = ?1 AND d.environment_id = ?2 \
             AND (CAST(?3 AS BIGINT) IS NULL OR d.id < ?3) ORDER BY d.id DESC LIMIT ?4"
        ))?;
        let rows = st
            .query_map(
                params![integration_id, environment_id, before, limit],
                deployment,
            )?
            .collect::<db::Result<_>>()?;
        let total = self.row(
            "SELECT COUNT(*) FROM deployments WHERE integration_id = ?1 AND environment_id = ?2",
            params![integration_id, environment_id],
            |r| r.get(0),
        )?;
        Ok((rows, total))
    }

    // ---- configuration revisions ---------------------------------------

    pub fn current_config_revision(
        &self,
        integration_id: i64,
        environment_id: i64,
    ) -> Result<Option<RevisionInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "{REVISION_SELECT} WHERE c.integration_id = ?1 AND c.environment_id = ?2 \
             ORDER BY c.revision DESC LIMIT 1"
        ))?;
        Ok(st
            .query_row(params![integration_id, environment_id], revision)
            .optional()?)
    }

    pub fn config_revision(
        &self,
        integration_id: i64,
        environment_id: i64,
        number: i64,
    ) -> Result<Option<RevisionInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "{REVISION_SELECT} WHERE c.integration_id = ?1 AND c.environment_id = ?2 AND c.revision = ?3"
        ))?;
        Ok(st
            .query_row(params![integration_id, environment_id, number], revision)
            .optional()?)
    }

    /// Up to `limit` revisions older than revision number `before`, newest
    /// first, and how many there are.
    pub fn config_revision_page(
        &self,
        integration_id: i64,
        environment_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<RevisionInfo>, i64)> {
        let mut st = self.tx.prepare_cached(&format!(
            "{REVISION_SELECT} WHERE c.integration_id = ?1 AND c.environment_id = ?2 \
             AND (CAST(?3 AS BIGINT) IS NULL OR c.revision < ?3) ORDER BY c.revision DESC LIMIT ?4"
        ))?;
        let rows = st
            .query_map(
                params![integration_id, environment_id, before, limit],
                revision,
            )?
            .collect::<db::Result<_>>()?;
        let total = self.row(
            "SELECT COUNT(*) FROM config_revisions WHERE integration_id = ?1 AND environment_id = ?2",
            params![integration_id, environment_id],
            |r| r.get(0),
        )?;
        Ok((rows, total))
    }

    pub fn insert_config_revision(
        &self,
        integration_id: i64,
        environment_id: i64,
        number: i64,
        meta: &RevisionMeta,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO config_revisions (integration_id, environment_id, revision, created_by, \
                created_at, comment, promoted_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                integration_id,
                environment_id,
                number,
                meta.created_by,
                meta.created_at,
                meta.comment,
                meta.promoted_from
            ],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn insert_config_value(&self, revision_id: i64, v: &StoredValue) -> Result<()> {
        self.exec(
            "INSERT INTO config_values (revision_id, section, key, type, secret, value, sealed, \
                updated_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                revision_id,
                v.section,
                v.key,
                v.value_type.as_str(),
                v.secret,
                v.value,
                v.sealed,
                v.updated_by,
                v.updated_at
            ],
        )?;
        Ok(())
    }

    /// The values of one revision, by section and key.
    pub fn config_values(&self, revision_id: i64) -> Result<Vec<StoredValue>> {
        let mut st = self.tx.prepare_cached(
            "SELECT section, key, type, secret, value, sealed, updated_by, updated_at \
             FROM config_values WHERE revision_id = ?1 ORDER BY section, key",
        )?;
        let rows = st.query_map([revision_id], stored_value)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Records that `client` was handed `revision`.
    pub fn record_config_fetch(
        &self,
        integration_id: i64,
        environment_id: i64,
        client: &str,
        revision: i64,
        now: Millis,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO config_fetches (integration_id, environment_id, client, revision, fetched_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (integration_id, environment_id, client) \
             DO UPDATE SET revision = excluded.revision, fetched_at = excluded.fetched_at",
            params![integration_id, environment_id, client, revision, now],
        )?;
        Ok(())
    }

    /// How each of these runtimes compares with its environment's current
    /// deployment record and configuration revision. A fetch is the
    /// runtime's by its id, else by its node name, else by its secret.
    pub fn runtime_rollouts(&self, runtime_ids: &[String]) -> Result<BTreeMap<String, Rollout>> {
        if runtime_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ids = serde_json::Value::from(runtime_ids.to_vec()).to_string();
        // The ids are text: PostgreSQL's `json_each` (store::postgres)
        // reads integer lists only, so it takes the elements as text itself.
        let ids_of = match self.tx.dialect() {
            db::Dialect::Sqlite => "r.runtime_id IN (SELECT value FROM json_each(?1))",
            db::Dialect::Postgres => {
                "r.runtime_id IN (SELECT jsonb_array_elements_text(CAST(?1 AS jsonb)))"
            }
        };
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT r.runtime_id, r.version, \
               (SELECT d.version FROM deployments d WHERE d.integration_id = r.integration_id \
                  AND d.environment_id = r.environment_id ORDER BY d.id DESC LIMIT 1), \
               (SELECT MAX(c.revision) FROM config_revisions c WHERE c.integration_id = r.integration_id \
                  AND c.environment_id = r.environment_id), \
               f.revision, f.fetched_at \
             FROM runtimes r LEFT JOIN config_fetches f ON f.rowid = ( \
               SELECT g.rowid FROM config_fetches g WHERE g.integration_id = r.integration_id \
                 AND g.environment_id = r.environment_id \
                 AND g.client IN ('runtime:' || r.runtime_id, 'name:' || r.name, 'key:' || r.key_id) \
               ORDER BY CASE WHEN g.client = 'runtime:' || r.runtime_id THEN 0 \
                             WHEN g.client = 'name:' || r.name THEN 1 ELSE 2 END LIMIT 1) \
             WHERE {ids_of}"
        ))?;
        let rows = st.query_map([ids], |r| {
            let version: Option<String> = r.get(1)?;
            let fetched: Option<i64> = r.get(4)?;
            let fetched_at: Option<Millis> = r.get(5)?;
            Ok((
                r.get::<_, String>(0)?,
                Rollout::new(
                    version.as_deref(),
                    r.get(2)?,
                    fetched.zip(fetched_at),
                    r.get(3)?,
                ),
            ))
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;

    use crate::commands::Scope;
    use crate::configuration::{self, check_value, PlainValue, RevisionMeta};
    use crate::deployments::{self, NewDeployment};
    use crate::master_key::MasterKey;
    use crate::model::runtimes::Status;
    use crate::store::{RuntimeRegistration, Store};

    fn scope(store: &Store, env: &str) -> Scope {
        store
            .write(|tx| {
                let (p, i) = crate::catalog::find_or_create_integration(tx, "p", "i", "BI", 1)?;
                let e = tx.environment_by_handle(env)?.unwrap();
                Ok(Scope::of(p, i, e))
            })
            .unwrap()
    }

    fn value(key: &str, v: serde_json::Value, secret: bool) -> PlainValue {
        let (value_type, value) = check_value(key, None, &v).unwrap();
        PlainValue {
            section: "myorg.orders".into(),
            key: key.into(),
            value_type,
            secret,
            value,
            updated_by: "u".into(),
            updated_at: 1,
        }
    }

    /// The model a promotion builds on: revisions numbered per environment,
    /// a revision copied (secrets re-sealed) into the next environment with
    /// its source named, deployment records superseding each other, and
    /// each runtime's rollout with fetches by id before name before secret.
    #[test]
    fn revisions_copies_records_and_rollouts() {
        let dir = std::env::temp_dir().join(format!("icpd-unit-pipeline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("icp.db")).unwrap();
        let key =
            MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([9u8; 32]))
                .unwrap();
        let (dev, prod) = (scope(&store, "dev"), scope(&store, "prod"));
        let meta = |who: &str, from: Option<i64>| RevisionMeta {
            created_by: who.into(),
            created_at: 5,
            comment: String::new(),
            promoted_from: from,
        };

        // Two revisions in dev.
        let values = vec![
            value("url", json!("jdbc:dev"), false),
            value("password", json!("pw"), true),
        ];
        let sealed = configuration::seal_values(&key, &dev, &values).unwrap();
        let r1 = store
            .write(|tx| configuration::write_revision(tx, &dev, &sealed, &meta("a", None)))
            .unwrap();
        let r2 = store
            .write(|tx| configuration::write_revision(tx, &dev, &sealed[..1], &meta("b", None)))
            .unwrap();
        assert_eq!((r1.revision, r2.revision, r2.values), (1, 2, 1));

        // Promotion: revision 1 of dev, opened and re-sealed for prod, with an override.
        let copied = store
            .write(|tx| {
                let source = tx
                    .config_revision(dev.integration_id, dev.environment_id, 1)?
                    .unwrap();
                let mut plain =
                    configuration::open_values(&key, &dev, &tx.config_values(source.id)?)?;
                plain[1].value = json!("jdbc:prod");
                let resealed = configuration::seal_values(&key, &prod, &plain)?;
                configuration::write_revision(tx, &prod, &resealed, &meta("c", Some(source.id)))
            })
            .unwrap();
        assert_eq!(copied.revision, 1);
        let from = copied.promoted_from.unwrap();
        assert_eq!((from.environment.as_str(), from.revision), ("dev", 1));
        let rendered = configuration::render(&store, &key, &prod).unwrap();
        let doc: toml::Table = rendered.toml.parse().unwrap();
        assert_eq!(doc["myorg"]["orders"]["url"].as_str(), Some("jdbc:prod"));
        assert_eq!(doc["myorg"]["orders"]["password"].as_str(), Some("pw"));
        // A sealed dev value does not open as prod's.
        assert!(configuration::open_values(&key, &prod, &sealed).is_err());

        // Deployment records: the newest is current.
        let rec = |v: &str| NewDeployment {
            version: v.into(),
            artifact: format!("orders-{v}.bala"),
            sha256: None,
        };
        let first = deployments::record(&store, &dev, &rec("1.0.0"), "a", 1).unwrap();
        let copy = store
            .write(|tx| {
                deployments::insert(tx, &prod, &rec("1.0.0").validate()?, "c", 2, Some(first.id))
            })
            .unwrap();
        assert_eq!(copy.promoted_from, Some(first.id));
        deployments::record(&store, &dev, &rec("1.1.0"), "a", 3).unwrap();
        assert_eq!(
            deployments::current(&store, &dev).unwrap().unwrap().version,
            "1.1.0"
        );

        // A runtime in dev reporting 1.0.0, and its fetches.
        let id = "3f6d0f0e-7c4e-4d8e-9a43-6a1b2c3d4e5f";
        store
            .write(|tx| {
                tx.insert_runtime(
                    &RuntimeRegistration {
                        runtime_id: id,
                        name: Some("node-1"),
                        runtime_type: "BI",
                        environment_id: dev.environment_id,
                        integration_id: dev.integration_id,
                        key_id: "abcd1234",
                        version: Some("1.0.0"),
                        node_info: "{}",
                        try_it_host: None,
                        runtime_hash: None,
                        now: 1,
                    },
                    Status::Running,
                )
            })
            .unwrap();
        let rollout = || {
            store
                .read(|tx| tx.runtime_rollouts(&[id.to_string()]))
                .unwrap()
                .remove(id)
                .unwrap()
        };
        let r = rollout();
        assert_eq!(r.deployed_version.as_deref(), Some("1.1.0"));
        assert_eq!(r.version_mismatch, Some(true));
        assert_eq!(
            (r.config_revision, r.current_config_revision),
            (None, Some(2))
        );
        assert_eq!(r.config_outdated, None);
        let fetch = |client: &str, rev: i64, at: i64| {
            store
                .write(|tx| {
                    tx.record_config_fetch(dev.integration_id, dev.environment_id, client, rev, at)
                })
                .unwrap()
        };
        fetch("key:abcd1234", 2, 10);
        assert_eq!(rollout().config_revision, Some(2));
        fetch("name:node-1", 1, 11);
        assert_eq!(
            rollout().config_revision,
            Some(1),
            "a name beats the secret"
        );
        fetch(&format!("runtime:{id}"), 2, 12);
        let r = rollout();
        assert_eq!(
            (r.config_revision, r.config_fetched_at),
            (Some(2), Some(12))
        );
        assert_eq!(r.config_outdated, Some(false));
        fetch("key:other", 1, 13);
        fetch("name:node-2", 1, 13);
        assert_eq!(
            rollout().config_revision,
            Some(2),
            "others' fetches are not its own"
        );

        // Deleting the runtime forgets the fetch made under its id.
        store.write(|tx| tx.delete_runtime(id)).unwrap();
        let count =
            |sql: &str| -> i64 { store.read(|tx| Ok(tx.row(sql, [], |r| r.get(0))?)).unwrap() };
        assert_eq!(
            count("SELECT COUNT(*) FROM config_fetches WHERE client LIKE 'runtime:%'"),
            0
        );
        assert_eq!(count("SELECT COUNT(*) FROM config_fetches"), 4);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
