-- rotor embedded store, schema version 1.
-- Append-only: never edit a released migration; add 0002_*.sql instead.
-- Timestamps are jiff RFC 3339 strings with full precision (they round-trip exactly,
-- which the audit hash needs). Ordering uses integer rowids (insertion order), never text.

-- Store-wide facts: 'format' = 'rotor-store', 'key_check' (rotor-seal KeyCheck bytes),
-- 'kdf_params' (JSON, only for passphrase-derived keys), 'created_at'.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- One row per version. `sealed` is rotor-seal's Sealed::to_bytes, bound to (secret, id).
CREATE TABLE versions (
    vid        INTEGER PRIMARY KEY,
    secret     TEXT NOT NULL,
    id         TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    UNIQUE (secret, id)
);

-- Stage labels. The primary key is the invariant "each stage labels at most one version
-- of a secret"; the foreign key keeps labels on existing versions only.
CREATE TABLE stages (
    secret     TEXT NOT NULL,
    stage      TEXT NOT NULL CHECK (stage IN ('pending', 'current', 'previous')),
    version_id TEXT NOT NULL,
    PRIMARY KEY (secret, stage),
    FOREIGN KEY (secret, version_id) REFERENCES versions (secret, id)
) WITHOUT ROWID;
CREATE INDEX stages_by_version ON stages (secret, version_id);

-- Rotation records: the searched fields as columns, the whole record as JSON (`record` is
-- the source of truth; the columns are kept equal to it on every write).
CREATE TABLE rotations (
    rid         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    secret      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'grace', 'completed', 'failed', 'aborted')),
    step        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    lease_owner TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0,
    record      TEXT NOT NULL
);
CREATE INDEX rotations_by_secret ON rotations (secret, rid);
CREATE INDEX rotations_open ON rotations (status) WHERE status IN ('running', 'grace');
-- At most one running rotation per secret, enforced by the schema as well as by the code.
CREATE UNIQUE INDEX rotations_one_running ON rotations (secret) WHERE status = 'running';

-- The hash-chained audit log (rotor_core::audit). Append-only by convention; any edit is
-- detected by rotor_core::audit::verify_chain.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    secret    TEXT,
    versions  TEXT NOT NULL,
    rotation  TEXT,
    reason    TEXT,
    outcome   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
