"""The provisioning container's memory: one SQLite database in the state directory.

Everything the container must keep across restarts lives in the state directory
(`--state-dir` / ``VULCANO_STATE_DIR``, ``/var/lib/vulcano`` in the image): this
database (``vulcano.db``), the container's SSH key (``id_ed25519``) and ``known_hosts``.
The CLI run outside the container uses the same layout.

    db          opening the database (WAL, foreign keys, a busy timeout), transactions
    migrations  the numbered schema changes, applied in order, each once
"""

from container.store.db import DATABASE_NAME, Store, open_store

__all__ = ["DATABASE_NAME", "Store", "open_store"]
