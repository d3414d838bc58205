//! The schema, as an append-only list of named migrations.
//!
//! `PRAGMA user_version` holds how many of them a database has applied.
//! Never edit or reorder a migration that has shipped: add a new one.
//! Times are Unix milliseconds (UTC) in INTEGER columns.

/// One schema step: a name for logs and the SQL that performs it.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "registry",
        sql: r#"
CREATE TABLE environments (
    id          INTEGER PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    critical    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
INSERT INTO environments (handle, name, critical, created_at) VALUES
    ('dev',  'Development', 0, CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    ('prod', 'Production',  1, CAST(unixepoch('subsec') * 1000 AS INTEGER));

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE integrations (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    handle        TEXT NOT NULL,
    name          TEXT NOT NULL,
    runtime_type  TEXT NOT NULL CHECK (runtime_type IN ('BI', 'MI')),
    created_at    INTEGER NOT NULL,
    UNIQUE (project_id, handle)
);

CREATE TABLE secrets (
    key_id          TEXT PRIMARY KEY,
    environment_id  INTEGER NOT NULL REFERENCES environments(id),
    project_id      INTEGER REFERENCES projects(id),
    integration_id  INTEGER REFERENCES integrations(id),
    sealed_material BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    bound_at        INTEGER
);

-- A counter bumped by every change to secrets, so a server can notice
-- changes made by another process (the CLI) without re-reading secrets.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('secrets_generation', 0);
CREATE TRIGGER secrets_inserted AFTER INSERT ON secrets
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'secrets_generation'; END;
CREATE TRIGGER secrets_updated AFTER UPDATE ON secrets
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'secrets_generation'; END;
CREATE TRIGGER secrets_deleted AFTER DELETE ON secrets
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'secrets_generation'; END;

CREATE TABLE runtimes (
    runtime_id        TEXT PRIMARY KEY,
    name              TEXT,
    runtime_type      TEXT NOT NULL,
    environment_id    INTEGER NOT NULL REFERENCES environments(id),
    integration_id    INTEGER NOT NULL REFERENCES integrations(id),
    key_id            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('RUNNING', 'OFFLINE')),
    version           TEXT,
    node_info         TEXT NOT NULL DEFAULT '{}',
    main_artifact     TEXT,
    other_artifacts   TEXT,
    try_it_host       TEXT,
    runtime_hash      TEXT,
    artifacts_digest  TEXT,
    registered_at     INTEGER NOT NULL,
    last_heartbeat    INTEGER NOT NULL,
    last_full_heartbeat INTEGER NOT NULL
);
CREATE INDEX runtimes_by_integration ON runtimes (integration_id, environment_id, name);
CREATE INDEX runtimes_by_environment ON runtimes (environment_id);

CREATE TABLE listeners (
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    package     TEXT,
    protocol    TEXT,
    host        TEXT,
    port        INTEGER,
    state       TEXT,
    attributes  TEXT NOT NULL,
    PRIMARY KEY (runtime_id, name)
);

CREATE TABLE services (
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    base_path   TEXT,
    package     TEXT,
    state       TEXT,
    attributes  TEXT NOT NULL,
    PRIMARY KEY (runtime_id, name)
);

CREATE TABLE service_resources (
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    url         TEXT NOT NULL,
    methods     TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    PRIMARY KEY (runtime_id, service, url, methods)
);

CREATE TABLE service_listeners (
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    listener    TEXT NOT NULL,
    PRIMARY KEY (runtime_id, service, listener)
);

CREATE TABLE log_levels (
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    component   TEXT NOT NULL,
    level       TEXT NOT NULL,
    PRIMARY KEY (runtime_id, component)
);

CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX status_history_by_runtime ON status_history (runtime_id, id);
"#,
    },
    Migration {
        name: "access",
        sql: r#"
CREATE TABLE users (
    id                    INTEGER PRIMARY KEY,
    username              TEXT NOT NULL UNIQUE,
    display_name          TEXT NOT NULL DEFAULT '',
    password_hash         TEXT NOT NULL,
    must_change_password  INTEGER NOT NULL DEFAULT 0,
    failed_logins         INTEGER NOT NULL DEFAULT 0,
    locked_until          INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    client        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE roles (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    builtin      INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

CREATE TABLE role_permissions (
    role_id     INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission  TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE groups (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE role_assignments (
    id          INTEGER PRIMARY KEY,
    role_id     INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    group_id    INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    scope_type  TEXT NOT NULL CHECK (scope_type IN ('organization', 'project', 'environment', 'integration')),
    scope_id    INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    CHECK ((scope_type = 'organization') = (scope_id IS NULL))
);
CREATE INDEX role_assignments_by_user ON role_assignments (user_id);
CREATE INDEX role_assignments_by_group ON role_assignments (group_id);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL DEFAULT '',
    outcome  TEXT NOT NULL,
    client   TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_time ON audit_log (at);
"#,
    },
    Migration {
        name: "resources",
        sql: r#"
ALTER TABLE environments ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE integrations ADD COLUMN description TEXT NOT NULL DEFAULT '';

-- A project's ordered subset of environments; no rows means all of them.
CREATE TABLE project_environments (
    project_id      INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    PRIMARY KEY (project_id, environment_id)
);

CREATE INDEX runtimes_by_key ON runtimes (key_id);
CREATE INDEX secrets_by_integration ON secrets (integration_id);
CREATE INDEX secrets_by_environment ON secrets (environment_id, created_at);
"#,
    },
    Migration {
        name: "commands",
        sql: r#"
-- What operators asked for: one row per (integration, environment, kind,
-- artifact), plus optional per-runtime overrides (runtime_id <> '').
CREATE TABLE desired_states (
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('listener', 'logger')),
    artifact        TEXT NOT NULL,
    runtime_id      TEXT NOT NULL DEFAULT '',
    value           TEXT NOT NULL,
    issued_by       TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    PRIMARY KEY (integration_id, environment_id, kind, artifact, runtime_id)
);

-- Every command issued to a runtime, and what became of it.
CREATE TABLE commands (
    id              INTEGER PRIMARY KEY,
    command_id      TEXT NOT NULL UNIQUE,
    runtime_id      TEXT NOT NULL,
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('listener', 'logger')),
    action          TEXT NOT NULL CHECK (action IN ('START', 'STOP', 'SET_LOGGER_LEVEL')),
    target          TEXT NOT NULL,
    value           TEXT NOT NULL,
    payload         TEXT,
    issued_by       TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_sent_at    INTEGER,
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'CONVERGED', 'SUPERSEDED')),
    settled_at      INTEGER
);
CREATE INDEX commands_by_scope ON commands (integration_id, environment_id, id);
CREATE INDEX commands_pending ON commands (runtime_id) WHERE status = 'PENDING';
"#,
    },
    Migration {
        name: "runtime-status-index",
        sql: r#"
-- The runtime list filtered by status (e.g. every OFFLINE runtime), in
-- runtime-id order, without scanning every runtime.
CREATE INDEX runtimes_by_status ON runtimes (status, runtime_id);
"#,
    },
    Migration {
        name: "ingest-tokens",
        sql: r#"
-- Credentials for log and metric shippers that can only send a fixed
-- header (see ingest_tokens.rs). Only the SHA-256 of the token is kept; the
-- id is its public part. A token goes with the environment, project or
-- integration it is scoped to.
CREATE TABLE ingest_tokens (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    project_id      INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    integration_id  INTEGER REFERENCES integrations(id) ON DELETE CASCADE,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER,
    CHECK (integration_id IS NULL OR project_id IS NOT NULL)
);
CREATE INDEX ingest_tokens_by_environment ON ingest_tokens (environment_id, created_at);
"#,
    },
    Migration {
        name: "pipeline",
        sql: r#"
-- Data planes host environments (issue 8). Every environment sits on
-- exactly one: existing ones go to the data plane made here, the foreign
-- key refuses deleting a data plane that still holds one, and, since
-- SQLite cannot add a NOT NULL column with a foreign key, triggers refuse
-- an environment without one.
CREATE TABLE data_planes (
    id           INTEGER PRIMARY KEY,
    handle       TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('cloud', 'private')),
    region       TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL
);
INSERT INTO data_planes (handle, name, kind, description, created_at) VALUES
    ('default', 'Default', 'private', 'Holds the environments that name no other data plane',
     CAST(unixepoch('subsec') * 1000 AS INTEGER));
ALTER TABLE environments ADD COLUMN data_plane_id INTEGER REFERENCES data_planes(id);
UPDATE environments SET data_plane_id = (SELECT id FROM data_planes WHERE handle = 'default');
CREATE INDEX environments_by_data_plane ON environments (data_plane_id);
CREATE TRIGGER environments_insert_data_plane BEFORE INSERT ON environments
    WHEN NEW.data_plane_id IS NULL
    BEGIN SELECT RAISE(ABORT, 'an environment needs a data plane'); END;
CREATE TRIGGER environments_update_data_plane BEFORE UPDATE OF data_plane_id ON environments
    WHEN NEW.data_plane_id IS NULL
    BEGIN SELECT RAISE(ABORT, 'an environment needs a data plane'); END;

-- What should run where: one row per deployment of an integration to an
-- environment. The newest row (highest id) of an (integration,
-- environment) is its current record; older ones are its history.
-- promoted_from names the record a promotion copied.
CREATE TABLE deployments (
    id              INTEGER PRIMARY KEY,
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    version         TEXT NOT NULL,
    artifact        TEXT NOT NULL,
    sha256          TEXT,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    promoted_from   INTEGER REFERENCES deployments(id) ON DELETE SET NULL
);
CREATE INDEX deployments_by_scope ON deployments (integration_id, environment_id, id);

-- Configuration (Config.toml values) of an integration in an environment,
-- as immutable revisions numbered 1, 2, ... per (integration, environment).
-- Each revision holds its whole value set; a change writes a new revision.
CREATE TABLE config_revisions (
    id              INTEGER PRIMARY KEY,
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    revision        INTEGER NOT NULL CHECK (revision > 0),
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    comment         TEXT NOT NULL DEFAULT '',
    promoted_from   INTEGER REFERENCES config_revisions(id) ON DELETE SET NULL,
    UNIQUE (integration_id, environment_id, revision)
);

-- The values of one revision. A plain value is its JSON text in `value`;
-- a secret one is sealed with the master key in `sealed` (AES-256-GCM over
-- the JSON text, the context naming integration, environment, section and
-- key, so a sealed value cannot be moved to another place).
CREATE TABLE config_values (
    revision_id  INTEGER NOT NULL REFERENCES config_revisions(id) ON DELETE CASCADE,
    section      TEXT NOT NULL,
    key          TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('string', 'int', 'float', 'boolean', 'array', 'table')),
    secret       INTEGER NOT NULL,
    value        TEXT,
    sealed       BLOB,
    updated_by   TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (revision_id, section, key),
    CHECK ((secret = 1 AND sealed IS NOT NULL AND value IS NULL)
        OR (secret = 0 AND value IS NOT NULL AND sealed IS NULL))
);

-- Which revision was last handed to whom by GET /icp/config: a runtime
-- ('runtime:<id>'), a node name ('name:<name>') or a secret ('key:<key id>').
CREATE TABLE config_fetches (
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    client          TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    fetched_at      INTEGER NOT NULL,
    PRIMARY KEY (integration_id, environment_id, client)
);
CREATE TRIGGER runtimes_deleted_config_fetches AFTER DELETE ON runtimes
    BEGIN DELETE FROM config_fetches WHERE integration_id = OLD.integration_id
        AND environment_id = OLD.environment_id AND client = 'runtime:' || OLD.runtime_id; END;
"#,
    },
    Migration {
        name: "promotions",
        sql: r#"
-- How many approvals a promotion into an environment needs (issue 8).
-- NULL: the default for its criticality (1 when critical, else 0), so
-- turning an environment critical raises the default with it.
ALTER TABLE environments ADD COLUMN required_approvals INTEGER
    CHECK (required_approvals IS NULL OR required_approvals BETWEEN 0 AND 10);

-- A promotion of an integration's deployment record and configuration
-- from one environment to the next of its project's pipeline. It captures
-- at request time the source's current deployment record and configuration
-- revision and the target's, so applying it can tell whether either moved.
-- At most one promotion per (integration, target) is pending.
CREATE TABLE promotions (
    id                      INTEGER PRIMARY KEY,
    integration_id          INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    from_environment_id     INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    to_environment_id       INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    status                  TEXT NOT NULL
        CHECK (status IN ('pending', 'applied', 'rejected', 'cancelled', 'failed')),
    source_deployment_id    INTEGER NOT NULL,
    version                 TEXT NOT NULL,
    artifact                TEXT NOT NULL,
    sha256                  TEXT,
    source_config_revision  INTEGER NOT NULL,
    target_deployment_id    INTEGER,
    target_config_revision  INTEGER NOT NULL,
    required_approvals      INTEGER NOT NULL,
    requested_by            TEXT NOT NULL,
    requested_at            INTEGER NOT NULL,
    comment                 TEXT NOT NULL DEFAULT '',
    decided_by              TEXT,
    decided_at              INTEGER,
    reason                  TEXT,
    applied_deployment_id   INTEGER,
    applied_revision        INTEGER
);
CREATE UNIQUE INDEX promotions_one_pending ON promotions (integration_id, to_environment_id)
    WHERE status = 'pending';
CREATE INDEX promotions_by_integration ON promotions (integration_id, id);
CREATE INDEX promotions_by_status ON promotions (status, id);

-- The values a promotion sets in the target instead of the source's. A
-- secret one is sealed with the master key under the context of its
-- destination (the target's configuration value), never returned.
CREATE TABLE promotion_overrides (
    promotion_id  INTEGER NOT NULL REFERENCES promotions(id) ON DELETE CASCADE,
    section       TEXT NOT NULL,
    key           TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('string', 'int', 'float', 'boolean', 'array', 'table')),
    secret        INTEGER NOT NULL,
    value         TEXT,
    sealed        BLOB,
    PRIMARY KEY (promotion_id, section, key),
    CHECK ((secret = 1 AND sealed IS NOT NULL AND value IS NULL)
        OR (secret = 0 AND value IS NOT NULL AND sealed IS NULL))
);

-- One row per user who approved a promotion.
CREATE TABLE promotion_approvals (
    promotion_id  INTEGER NOT NULL REFERENCES promotions(id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    at            INTEGER NOT NULL,
    comment       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (promotion_id, username)
);
"#,
    },
    Migration {
        name: "environment-order",
        sql: r#"
-- The default pipeline (issue 13): the order in which a project that chose
-- no subset of environments promotes through them. It was creation order,
-- so an environment made after prod came after prod. Existing environments
-- keep their creation order; a new one is appended by this trigger, and
-- the catalog moves a non-critical one before the first critical one.
ALTER TABLE environments ADD COLUMN pipeline_position INTEGER;
UPDATE environments SET pipeline_position = id;
CREATE TRIGGER environments_insert_pipeline_position AFTER INSERT ON environments
    WHEN NEW.pipeline_position IS NULL
    BEGIN UPDATE environments SET pipeline_position =
        (SELECT COALESCE(MAX(pipeline_position), 0) + 1 FROM environments)
        WHERE id = NEW.id; END;
"#,
    },
    Migration {
        name: "audit-reason",
        sql: r#"
-- Why a refused or failed API request was refused: the error message its
-- client got (for a 500 only the id the server log explains, never the
-- detail). Empty for requests that succeeded and for older entries.
ALTER TABLE audit_log ADD COLUMN reason TEXT NOT NULL DEFAULT '';
"#,
    },
    Migration {
        name: "mi-artifacts",
        sql: r#"
-- Micro Integrator runtimes (issue 14): every artifact a full heartbeat
-- reports, one row per (runtime, kind, name), diff-written like the
-- bridge's listeners and services. state/tracing/statistics are what
-- control compares; detail is the entry as reported (JSON).
CREATE TABLE mi_artifacts (
    runtime_id  TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT,
    tracing     TEXT,
    statistics  TEXT,
    carbon_app  TEXT,
    error       TEXT,
    detail      TEXT NOT NULL,
    PRIMARY KEY (runtime_id, kind, name)
);
-- Where icpd reaches an MI runtime's Management API, as its last full
-- heartbeat claimed (runtimeHostname, runtimePort).
ALTER TABLE runtimes ADD COLUMN management_host TEXT;
ALTER TABLE runtimes ADD COLUMN management_port INTEGER;
"#,
    },
    Migration {
        name: "mi-commands",
        sql: r#"
-- Desired state and commands for MI runtimes (issue 14): artifact state,
-- tracing and statistics, and logger levels, carried out through MI's
-- Management API. SQLite cannot change a CHECK, so both tables are
-- rebuilt with the wider lists; every row and index is kept. last_error
-- is the last failed attempt to carry a command out (MI unreachable, a
-- refusal), shown until it converges.
CREATE TABLE desired_states_v2 (
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('listener', 'logger', 'mi-state', 'mi-tracing', 'mi-statistics', 'mi-logger')),
    artifact        TEXT NOT NULL,
    runtime_id      TEXT NOT NULL DEFAULT '',
    value           TEXT NOT NULL,
    issued_by       TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    PRIMARY KEY (integration_id, environment_id, kind, artifact, runtime_id)
);
INSERT INTO desired_states_v2 SELECT integration_id, environment_id, kind, artifact, runtime_id, value, issued_by, issued_at FROM desired_states;
DROP TABLE desired_states;
ALTER TABLE desired_states_v2 RENAME TO desired_states;

CREATE TABLE commands_v2 (
    id              INTEGER PRIMARY KEY,
    command_id      TEXT NOT NULL UNIQUE,
    runtime_id      TEXT NOT NULL,
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    environment_id  INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('listener', 'logger', 'mi-state', 'mi-tracing', 'mi-statistics', 'mi-logger')),
    action          TEXT NOT NULL CHECK (action IN ('START', 'STOP', 'SET_LOGGER_LEVEL',
                        'MI_SET_STATE', 'MI_SET_TRACING', 'MI_SET_STATISTICS', 'MI_SET_LOGGER_LEVEL')),
    target          TEXT NOT NULL,
    value           TEXT NOT NULL,
    payload         TEXT,
    issued_by       TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_sent_at    INTEGER,
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'CONVERGED', 'SUPERSEDED')),
    settled_at      INTEGER,
    last_error      TEXT
);
INSERT INTO commands_v2 (id, command_id, runtime_id, integration_id, environment_id, kind, action, target, value,
        payload, issued_by, issued_at, attempts, last_sent_at, status, settled_at)
    SELECT id, command_id, runtime_id, integration_id, environment_id, kind, action, target, value,
        payload, issued_by, issued_at, attempts, last_sent_at, status, settled_at FROM commands;
DROP TABLE commands;
ALTER TABLE commands_v2 RENAME TO commands;
CREATE INDEX commands_by_scope ON commands (integration_id, environment_id, id);
CREATE INDEX commands_pending ON commands (runtime_id) WHERE status = 'PENDING';
"#,
    },
    Migration {
        name: "mi-management",
        sql: r#"
-- How icpd reaches MI runtimes' Management API (issue 14). An environment
-- either dials its MI runtimes (mi_tunnel 0) or hands management calls to
-- them in heartbeat responses (1); a runtime may override that (NULL:
-- its environment's choice). mi_ca_pem: the CA bundle an environment's MI
-- certificates are verified against; without one icpd pins each runtime's
-- certificate on first contact (management_pin, SHA-256 hex).
ALTER TABLE environments ADD COLUMN mi_tunnel INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN mi_ca_pem TEXT;
ALTER TABLE runtimes ADD COLUMN mi_tunnel INTEGER;
ALTER TABLE runtimes ADD COLUMN management_pin TEXT;
"#,
    },
    Migration {
        name: "runtimes-by-registration",
        sql: r#"
-- ICP's GraphQL lists runtimes newest registration first (issue 15), most
-- often of one environment: indexes in that order read a page of 100 of
-- 50,000 (at any offset) without sorting them all.
CREATE INDEX runtimes_by_registration ON runtimes (registered_at DESC, runtime_id);
CREATE INDEX runtimes_by_environment_registration ON runtimes (environment_id, registered_at DESC, runtime_id);
-- A generation that moves when a runtime is added, removed or moved to
-- another integration, environment or type, never when it heartbeats:
-- GraphQL's page totals are remembered until it moves.
CREATE TABLE runtime_membership (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO runtime_membership (id, generation) VALUES (1, 0);
CREATE TRIGGER runtime_membership_insert AFTER INSERT ON runtimes
BEGIN UPDATE runtime_membership SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER runtime_membership_delete AFTER DELETE ON runtimes
BEGIN UPDATE runtime_membership SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER runtime_membership_move AFTER UPDATE OF integration_id, environment_id, runtime_type ON runtimes
WHEN OLD.integration_id IS NOT NEW.integration_id OR OLD.environment_id IS NOT NEW.environment_id
  OR OLD.runtime_type IS NOT NEW.runtime_type
BEGIN UPDATE runtime_membership SET generation = generation + 1 WHERE id = 1; END;
-- ICP's refresh tokens (GRAPHQL.md §2.3): a credential of its own per
-- session, stored as SHA-256; it only buys new console tokens for the
-- session, which keeps its absolute lifetime.
ALTER TABLE sessions ADD COLUMN refresh_hash TEXT;
CREATE UNIQUE INDEX sessions_by_refresh ON sessions (refresh_hash) WHERE refresh_hash IS NOT NULL;
"#,
    },
    Migration {
        name: "cluster",
        sql: r#"
-- Several icpd nodes on one database (issue 16; used on PostgreSQL, kept
-- here so both backends share version numbers and `icpd db copy` finds
-- the same tables). cluster_changes: the feed of changes a node made that
-- the others apply to their memory, in commit order (seq). cluster_leases:
-- who runs the OFFLINE sweep, until when by the database's clock (Unix
-- ms), and the epoch that fences a former holder's writes.
-- cluster_facts: what every node must agree on (the master key's check
-- value).
CREATE TABLE cluster_changes (
    seq  INTEGER PRIMARY KEY,
    at   INTEGER NOT NULL,
    node TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE cluster_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE cluster_facts (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    },
    Migration {
        name: "sso",
        sql: r#"
-- Single sign-on (issue 17). users.source: 'local' (password in icpd),
-- 'oidc' or 'ldap' (signed in through a directory; no password here).
-- external_id: the OIDC subject or the LDAP DN. directory_checked_at: the
-- last sign-in that read the user's groups, which bounds how long their
-- API tokens keep working. user_directory_groups: those groups, replaced
-- at each sign-in. sso_group_mappings: a directory group (for one source,
-- or '' for both) gives a role at a scope; origin 'config' rows are the
-- config file's, rewritten at each start, 'api' rows the operators'.
-- sso_logins: authorization requests in flight, by the SHA-256 of their
-- state, used once.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN directory_checked_at INTEGER;
CREATE TABLE user_directory_groups (
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_name  TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);
CREATE TABLE sso_group_mappings (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL DEFAULT '' CHECK (source IN ('', 'oidc', 'ldap')),
    group_name  TEXT NOT NULL,
    role_id     INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    scope_type  TEXT NOT NULL CHECK (scope_type IN ('organization', 'project', 'environment', 'integration')),
    scope_id    INTEGER,
    origin      TEXT NOT NULL CHECK (origin IN ('config', 'api')),
    created_at  INTEGER NOT NULL,
    CHECK ((scope_type = 'organization') = (scope_id IS NULL))
);
CREATE INDEX sso_group_mappings_by_group ON sso_group_mappings (group_name);
CREATE TABLE sso_logins (
    state_hash  TEXT PRIMARY KEY,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
"#,
    },
    Migration {
        name: "contracts",
        sql: r#"
-- Service contracts (issue 18): the OpenAPI definitions a runtime reported
-- in its last full heartbeat, one row per file name. definition is the
-- document as compact JSON text, or NULL when icpd did not keep it
-- (problem says why: too large, not JSON, not an OpenAPI document).
-- digest (SHA-256 of the runtime's text) lets a heartbeat rewrite only
-- the files that changed. service / base_path: the service the file
-- describes, when icpd could tell.
CREATE TABLE runtime_openapi_definitions (
    runtime_id   TEXT NOT NULL REFERENCES runtimes(runtime_id) ON DELETE CASCADE,
    file_name    TEXT NOT NULL,
    service      TEXT,
    base_path    TEXT,
    definition   TEXT,
    problem      TEXT,
    digest       TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (runtime_id, file_name)
);
"#,
    },
];
