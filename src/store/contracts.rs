//! The SQL of service contracts: `runtime_openapi_definitions`, one row per
//! (runtime, file name), written by difference at each full heartbeat.

use std::collections::BTreeMap;

use super::db::{self, params, Queries};
use super::Tx;
use crate::error::Result;
use crate::model::contracts::{DefinitionWrites, NewDefinition, StoredDefinition};
use crate::time::Millis;

impl Tx<'_> {
    /// Makes a runtime's stored definitions what `defs` says: files no
    /// longer reported are deleted, and only the files whose content or
    /// service changed are written.
    pub fn sync_openapi_definitions(
        &self,
        runtime_id: &str,
        defs: &[NewDefinition],
        now: Millis,
    ) -> Result<DefinitionWrites> {
        let mut st = self.tx.prepare_cached(
            "SELECT file_name, digest, service, base_path FROM runtime_openapi_definitions \
             WHERE runtime_id = ?1",
        )?;
        type Key = (String, Option<String>, Option<String>);
        let stored: BTreeMap<String, Key> = st
            .query_map([runtime_id], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })?
            .collect::<db::Result<_>>()?;
        let mut w = DefinitionWrites::default();
        for name in stored.keys() {
            if !defs.iter().any(|d| &d.file_name == name) {
                self.exec(
                    "DELETE FROM runtime_openapi_definitions WHERE runtime_id = ?1 AND file_name = ?2",
                    params![runtime_id, name],
                )?;
                w.deleted += 1;
            }
        }
        for d in defs {
            let same = stored
                .get(&d.file_name)
                .is_some_and(|(digest, service, base)| {
                    *digest == d.digest && *service == d.service && *base == d.base_path
                });
            if same {
                continue;
            }
            // received_at marks a new version of the file; a file whose
            // service alone changed keeps it.
            self.exec(
                "INSERT INTO runtime_openapi_definitions \
                   (runtime_id, file_name, service, base_path, definition, problem, digest, size_bytes, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (runtime_id, file_name) DO UPDATE SET \
                   service = excluded.service, base_path = excluded.base_path, \
                   definition = excluded.definition, problem = excluded.problem, \
                   received_at = CASE WHEN runtime_openapi_definitions.digest = excluded.digest \
                                      THEN runtime_openapi_definitions.received_at ELSE excluded.received_at END, \
                   digest = excluded.digest, size_bytes = excluded.size_bytes",
                params![
                    runtime_id,
                    d.file_name,
                    d.service,
                    d.base_path,
                    d.definition,
                    d.problem,
                    d.digest,
                    d.size_bytes,
                    now
                ],
            )?;
            w.written += 1;
        }
        Ok(w)
    }

    /// A runtime's stored definitions, by file name.
    pub fn openapi_definitions(&self, runtime_id: &str) -> Result<Vec<StoredDefinition>> {
        let mut st = self.tx.prepare_cached(
            "SELECT file_name, service, base_path, definition, problem, digest, size_bytes, received_at \
             FROM runtime_openapi_definitions WHERE runtime_id = ?1 ORDER BY file_name",
        )?;
        let rows = st.query_map([runtime_id], |r| {
            Ok(StoredDefinition {
                new: NewDefinition {
                    file_name: r.get(0)?,
                    service: r.get(1)?,
                    base_path: r.get(2)?,
                    definition: r.get(3)?,
                    problem: r.get(4)?,
                    digest: r.get(5)?,
                    size_bytes: r.get(6)?,
                },
                received_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }
}
