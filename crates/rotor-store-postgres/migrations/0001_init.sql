-- rotor PostgreSQL store, schema version 1: the embedded store's data model.
-- Append-only: never edit a released migration (its SHA-256 is recorded in
-- rotor_schema_migrations and checked on every open); add 0002_*.sql instead.
-- Timestamps are jiff RFC 3339 text with full (nanosecond) precision: they round-trip
-- exactly, which the audit hash needs (timestamptz keeps only microseconds).
-- Ordering uses identity columns (insertion order), never text.

-- Store-wide facts: 'format' = 'rotor-store', 'key_check' (rotor-seal KeyCheck bytes),
-- 'created_at'.
CREATE TABLE rotor_meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- One row per version. `sealed` is rotor-seal's Sealed::to_bytes, bound to (secret, id);
-- `key_id` is the id of the master key that wrapped its data key (master-key rotation
-- finds the rows still under the old key by it).
CREATE TABLE rotor_versions (
    vid        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret     TEXT NOT NULL,
    id         TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    UNIQUE (secret, id)
);
CREATE INDEX rotor_versions_by_key ON rotor_versions (key_id, vid);

-- Stage labels. The primary key is the invariant "each stage labels at most one version
-- of a secret"; the foreign key keeps labels on existing versions only.
CREATE TABLE rotor_stages (
    secret     TEXT NOT NULL,
    stage      TEXT NOT NULL CHECK (stage IN ('pending', 'current', 'previous')),
    version_id TEXT NOT NULL,
    PRIMARY KEY (secret, stage),
    FOREIGN KEY (secret, version_id) REFERENCES rotor_versions (secret, id)
);
CREATE INDEX rotor_stages_by_version ON rotor_stages (secret, version_id);

-- Rotation records: the searched fields as columns, the whole record as JSON (`record` is
-- the source of truth; the columns are kept equal to it on every write).
CREATE TABLE rotor_rotations (
    rid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    secret      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'grace', 'completed', 'failed', 'aborted')),
    step        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    lease_owner TEXT,
    lease_token BIGINT NOT NULL DEFAULT 0,
    record      TEXT NOT NULL
);
CREATE INDEX rotor_rotations_by_secret ON rotor_rotations (secret, rid);
CREATE INDEX rotor_rotations_open ON rotor_rotations (status) WHERE status IN ('running', 'grace');
-- At most one running rotation per secret, enforced by the schema as well as by the code.
CREATE UNIQUE INDEX rotor_rotations_one_running ON rotor_rotations (secret) WHERE status = 'running';

-- The hash-chained audit log (rotor_core::audit). Append-only by convention; any edit is
-- detected by rotor_core::audit::verify_chain.
CREATE TABLE rotor_audit (
    seq       BIGINT PRIMARY KEY,
    time      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    secret    TEXT,
    versions  TEXT[] NOT NULL,
    rotation  TEXT,
    reason    TEXT,
    outcome   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- The chain's head: the last seq and hash, in one row. Every append locks it
-- (SELECT ... FOR UPDATE) first, so appends from all replicas form one total order:
-- seq and prev_hash never fork.
CREATE TABLE rotor_audit_head (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL
);
INSERT INTO rotor_audit_head (singleton, seq, hash)
VALUES (TRUE, 0, '0000000000000000000000000000000000000000000000000000000000000000');
