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
];
