"""A cache of model answers shared by runs and processes: an identical request (same model, API
base, prompt, settings and seed) is answered from it instead of calling the model again.

In: requests as dicts; out: the answer text of an earlier identical request, or None. Only
repeatable requests are kept: temperature 0, or a seed (which `LM` derives from the request).
The store is a SQLite file (WAL mode, so several processes can share it) under
`$PROMPTOMATIX_CACHE` (a folder), else `~/.cache/promptomatix` (`$XDG_CACHE_HOME` respected).
`PROMPTOMATIX_CACHE=off` turns it off everywhere; `--no-cache` for one optimization.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)
OFF = ("off", "0", "false", "no")


class ResponseCache:
    """One connection, shared by the threads of a run under a lock.

    Why not a connection per thread: several writers on one SQLite file wait for each other in
    SQLite's busy handler, which sleeps in steps of milliseconds; with 16 threads answering at
    once, a write took ~30 ms and kept its thread from its next model call. Under a Python lock a
    write takes well under a millisecond (`synchronous=NORMAL`: in WAL mode a commit is not
    flushed to disk each time, and a power cut may lose the last answers, never corrupt the file).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    @staticmethod
    def key(request: dict) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, request: dict) -> str | None:
        try:
            with self._lock:
                row = self._db().execute("SELECT answer FROM answers WHERE key = ?", (self.key(request),)).fetchone()
        except sqlite3.Error as exc:  # a cache that fails is no cache: say so, call the model
            log.warning("model answer cache %s unusable (%s); calling the model", self.path, exc)
            return None
        return row[0] if row else None

    def put(self, request: dict, answer: str) -> None:
        try:
            with self._lock, self._db() as db:
                db.execute("INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)", (self.key(request), answer))
        except sqlite3.Error as exc:
            log.warning("model answer cache %s unusable (%s); answer not kept", self.path, exc)

    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use (called under `_lock`)."""
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
            self._connection = db
        return self._connection


def default_cache() -> ResponseCache | None:
    """The cache the environment asks for (see the module's doc), or None when it is off."""
    setting = os.environ.get("PROMPTOMATIX_CACHE", "").strip()
    if setting.lower() in OFF:
        return None
    base = Path(setting) if setting else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "promptomatix"
    return ResponseCache(base / "answers.sqlite")
