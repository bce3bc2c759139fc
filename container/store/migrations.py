"""The database's schema, as numbered migrations applied in order, each exactly once.

A migration is never edited once it has shipped: a change to the schema is a new one at
the end. `PRAGMA user_version` holds the number of the last one applied, so a database
made by an older container is brought forward on open, and one made by a newer
container (a version we do not know) is refused rather than misread.
"""

from __future__ import annotations

# Migration N is MIGRATIONS[N - 1]. Each runs in one transaction with the version bump.
MIGRATIONS: list[str] = [
    # 1: settings (the admin password hash, the panel's session key), clusters, the audit log.
    """
    CREATE TABLE settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE clusters (
        name                TEXT PRIMARY KEY,
        size                INTEGER NOT NULL,
        flavour             TEXT NOT NULL,
        network             TEXT NOT NULL,
        discovery_url       TEXT NOT NULL DEFAULT '',
        endpoints           TEXT NOT NULL DEFAULT '',
        prefix              TEXT NOT NULL DEFAULT '/vulcano/',
        created_at          REAL NOT NULL,
        etcd_size           INTEGER NOT NULL DEFAULT 0,
        network_config      TEXT NOT NULL DEFAULT '',
        network_written_at  REAL NOT NULL DEFAULT 0,
        node_ips            TEXT NOT NULL DEFAULT '',
        agent_bundle_url    TEXT NOT NULL DEFAULT '',
        join_token_hash     TEXT NOT NULL DEFAULT '',
        join_token_expires  REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      REAL NOT NULL,
        actor   TEXT NOT NULL,
        face    TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        cluster TEXT NOT NULL DEFAULT '',
        detail  TEXT NOT NULL DEFAULT '',
        diff    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_at ON audit (at);
    CREATE INDEX audit_target ON audit (target);
    """,
    # 2: the relay's outbox (summaries not yet acknowledged by the installer) and the
    # heartbeat sequence (the last seq handed out; never reused, even across restarts).
    """
    CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY,
        first_seq  INTEGER NOT NULL,
        folded     INTEGER NOT NULL DEFAULT 1,
        queued_at  REAL NOT NULL,
        summary    TEXT NOT NULL
    );
    INSERT INTO settings (name, value) VALUES ('relay.last_seq', '0')
        ON CONFLICT (name) DO NOTHING;
    """,
    # 3: clusters on mutual TLS (each with its own CA, kept beside the database) and every
    # certificate the container issued from them: what `machine remove` revokes and
    # renewal replaces. Serials are hex text (up to 159 bits, past SQLite's integers).
    """
    ALTER TABLE clusters ADD COLUMN tls INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE certificates (
        cluster     TEXT NOT NULL,
        serial      TEXT NOT NULL,
        subject     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        issued_at   REAL NOT NULL,
        not_after   REAL NOT NULL,
        revoked_at  REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (cluster, serial)
    );
    CREATE INDEX certificates_subject ON certificates (cluster, subject);
    """,
    # 4: enrolment tokens: a TLS cluster's member whose address is found at boot gets its
    # certificate then, from the panel, for a CSR of a key it made itself. Each token is
    # one node's, kept as its SHA-256, expiring; once used it signs only for that key.
    """
    CREATE TABLE enrolments (
        token_hash  TEXT PRIMARY KEY,
        cluster     TEXT NOT NULL,
        node        INTEGER NOT NULL,
        made_at     REAL NOT NULL,
        expires     REAL NOT NULL,
        used_key    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX enrolments_cluster ON enrolments (cluster, node);
    """,
    # 5: which address each node's user-data went to under a join token: a node's #include
    # URL (with the token) lands in its cloud-init log, so a token serves each node once,
    # to one address (a retry from there is served again).
    """
    CREATE TABLE join_fetches (
        cluster     TEXT NOT NULL,
        token_hash  TEXT NOT NULL,
        node        INTEGER NOT NULL,
        address     TEXT NOT NULL,
        at          REAL NOT NULL,
        PRIMARY KEY (cluster, token_hash, node)
    );
    """,
]
