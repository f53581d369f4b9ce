-- gantry's SQLite schema. Times are unix milliseconds (UTC). Every write that clients can see
-- appends its change_log rows in the same transaction.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    hash       TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    label      TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE repos (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs(id),
    name               TEXT NOT NULL,
    remote_url         TEXT NOT NULL,
    trunk              TEXT NOT NULL,
    branch_sync_status TEXT NOT NULL,
    branch_sync_at     INTEGER,
    branch_sync_error  TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    repo_id          TEXT NOT NULL REFERENCES repos(id),
    kind             TEXT NOT NULL,
    branch           TEXT,
    parent           TEXT,
    -- kind, branch and parent in one string: at most one queued job per target.
    target_key       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'error', 'cancelled')),
    message          TEXT,
    progress_step    INTEGER,
    progress_total   INTEGER,
    progress_text    TEXT,
    progress_seq     INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    idempotency_key  TEXT,
    result           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER
);

-- Git work on one repo is serialised: the database, not memory, refuses a second running job.
CREATE UNIQUE INDEX jobs_one_running_per_repo ON jobs (repo_id) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_one_queued_per_target ON jobs (repo_id, target_key) WHERE status = 'queued';
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (repo_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_claimable ON jobs (status, run_at);
CREATE INDEX jobs_by_repo ON jobs (repo_id, created_at);

CREATE TABLE job_progress (
    job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    step    INTEGER NOT NULL,
    total   INTEGER NOT NULL,
    text    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE branches (
    repo_id              TEXT NOT NULL REFERENCES repos(id),
    name                 TEXT NOT NULL,
    head_sha             TEXT NOT NULL,
    parent               TEXT,
    base_sha             TEXT,
    tracked              INTEGER NOT NULL,
    ahead                INTEGER NOT NULL,
    behind               INTEGER NOT NULL,
    needs_restack        INTEGER NOT NULL,
    conflicts_with_trunk INTEGER NOT NULL,
    files_changed        INTEGER NOT NULL,
    insertions           INTEGER NOT NULL,
    deletions            INTEGER NOT NULL,
    active_job_id        TEXT,
    -- JSON: the conflict the last restack of this branch stopped on, if any.
    conflict             TEXT,
    first_seen_at        INTEGER NOT NULL,
    last_seen_at         INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name)
);

CREATE TABLE tasks (
    id             TEXT PRIMARY KEY,
    repo_id        TEXT NOT NULL REFERENCES repos(id),
    title          TEXT NOT NULL,
    branch         TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_message TEXT,
    attach_job_id  TEXT,
    head_sha       TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX tasks_by_repo ON tasks (repo_id, created_at);
CREATE INDEX tasks_by_attach_job ON tasks (attach_job_id);

-- The outbox the projections read. One row = the ops of one transaction on one topic. With one
-- writer connection, AUTOINCREMENT positions follow commit order.
CREATE TABLE change_log (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    ops          TEXT NOT NULL,
    committed_at INTEGER NOT NULL
);
CREATE INDEX change_log_by_topic ON change_log (topic, position);
