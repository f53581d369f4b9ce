-- gantry's PostgreSQL schema: the SQLite schema (migrations/sqlite) with PostgreSQL types. Times
-- are unix milliseconds (UTC) in BIGINT; flags are BOOLEAN. Every write that clients can see
-- appends its change_log rows in the same transaction.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    hash       TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    label      TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE repos (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs(id),
    name               TEXT NOT NULL,
    remote_url         TEXT NOT NULL,
    trunk              TEXT NOT NULL,
    branch_sync_status TEXT NOT NULL,
    branch_sync_at     BIGINT,
    branch_sync_error  TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    -- A per-repo secret for verifying GitHub webhook signatures (X-Hub-Signature-256).
    webhook_secret     TEXT,
    UNIQUE (org_id, name)
);
CREATE INDEX repos_by_remote_url ON repos (remote_url);

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
    progress_step    BIGINT,
    progress_total   BIGINT,
    progress_text    TEXT,
    progress_seq     BIGINT NOT NULL DEFAULT 0,
    attempt          BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    run_at           BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    idempotency_key  TEXT,
    result           TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT
);

-- Git work on one repo is serialised: the database, not memory, refuses a second running job,
-- whichever node claims it.
CREATE UNIQUE INDEX jobs_one_running_per_repo ON jobs (repo_id) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_one_queued_per_target ON jobs (repo_id, target_key) WHERE status = 'queued';
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (repo_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The claim scans queued jobs in due order; a partial index keeps finished history out of it.
CREATE INDEX jobs_claimable ON jobs (run_at, created_at) WHERE status = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_by_repo ON jobs (repo_id, created_at);

CREATE TABLE job_progress (
    job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    step    BIGINT NOT NULL,
    total   BIGINT NOT NULL,
    text    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE branches (
    repo_id              TEXT NOT NULL REFERENCES repos(id),
    name                 TEXT NOT NULL,
    head_sha             TEXT NOT NULL,
    parent               TEXT,
    base_sha             TEXT,
    tracked              BOOLEAN NOT NULL,
    ahead                BIGINT NOT NULL,
    behind               BIGINT NOT NULL,
    needs_restack        BOOLEAN NOT NULL,
    conflicts_with_trunk BOOLEAN NOT NULL,
    files_changed        BIGINT NOT NULL,
    insertions           BIGINT NOT NULL,
    deletions            BIGINT NOT NULL,
    active_job_id        TEXT,
    -- JSON: the conflict the last restack of this branch stopped on, if any.
    conflict             TEXT,
    first_seen_at        BIGINT NOT NULL,
    last_seen_at         BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
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
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX tasks_by_repo ON tasks (repo_id, created_at);
CREATE INDEX tasks_by_attach_job ON tasks (attach_job_id);

-- The outbox the projections read. One row = the ops of one transaction on one topic.
-- Positions are not from a sequence: a sequence value taken before commit can become visible
-- after a larger one, and a reader would skip it. Each writing transaction instead takes its
-- positions from the single change_counter row just before it commits; the row lock serialises
-- those last steps, so positions are assigned in commit order.
CREATE TABLE change_log (
    position     BIGINT PRIMARY KEY,
    topic        TEXT NOT NULL,
    ops          TEXT NOT NULL,
    committed_at BIGINT NOT NULL
);
CREATE INDEX change_log_by_topic ON change_log (topic, position);

CREATE TABLE change_counter (
    -- Always exactly one row.
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    position BIGINT NOT NULL
);
INSERT INTO change_counter (id, position) VALUES (TRUE, 0);
