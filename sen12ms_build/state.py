"""The run's state file: per scene and stage, what is done, with which settings and outputs.

``<root>/.work/state.sqlite`` (SQLite, WAL journal so parallel workers can write) holds one
row per (branch, scene, stage): the settings fingerprint the stage ran with, its record
(JSON) and the SHA-256 and size of each output file. A stage counts as done only when its
fingerprint matches and every output still has its recorded size, so a re-run skips
finished work, redoes unfinished or changed work, and redoes a stage whose output was
deleted or truncated.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from .raster.io import OutputError, sha256

#: The run's folder of intermediates and bookkeeping below a dataset root.
WORK_DIR = ".work"


def state_path(root: Path | str) -> Path:
    """The run's SQLite state file, ``<root>/.work/state.sqlite``."""
    return Path(root) / WORK_DIR / "state.sqlite"

STAGES = ("export", "warp", "tile")
SCHEMA = """
CREATE TABLE IF NOT EXISTS stages (
    branch TEXT NOT NULL,
    scene INTEGER NOT NULL,
    stage TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    record TEXT NOT NULL,
    outputs TEXT NOT NULL,
    finished REAL NOT NULL,
    PRIMARY KEY (branch, scene, stage)
)
"""


class State:
    """Stage bookkeeping of one dataset root (open per process; cheap)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"cannot open the state file {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "State":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def done(self, branch: str, scene: int, stage: str, fingerprint: str) -> dict | None:
        """The stage's record if it finished with ``fingerprint`` and its outputs are intact
        (present, recorded size); else None."""
        row = self._db.execute(
            "SELECT fingerprint, record, outputs FROM stages WHERE branch=? AND scene=? "
            "AND stage=?", (branch, scene, stage)).fetchone()
        if row is None or row[0] != fingerprint:
            return None
        for path, (size, _digest) in json.loads(row[2]).items():
            p = Path(path)
            if not p.exists() or p.stat().st_size != size:
                return None
        return json.loads(row[1])

    def finish(self, branch: str, scene: int, stage: str, fingerprint: str,
               record: dict[str, Any], outputs: Iterable[Path] = ()) -> dict:
        """Record a finished stage with the checksum and size of each output."""
        outs = {str(p): (Path(p).stat().st_size, sha256(p)) for p in outputs}
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?, ?)",
                (branch, scene, stage, fingerprint, json.dumps(record, default=str),
                 json.dumps(outs), time.time()))
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc
        return record

    def set_outputs(self, branch: str, scene: int, stage: str,
                    outputs: Iterable[Path]) -> bool:
        """Re-record the outputs of a finished stage after they were changed on purpose
        (a reviewer removed or re-admitted patches), keeping its fingerprint and record.
        Returns False when the stage is not recorded."""
        outs = {str(p): (Path(p).stat().st_size, sha256(p)) for p in outputs}
        try:
            cur = self._db.execute("UPDATE stages SET outputs=? WHERE branch=? AND scene=? "
                                   "AND stage=?", (json.dumps(outs), branch, scene, stage))
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc
        return cur.rowcount == 1

    def forget(self, branch: str, scene: int | None = None,
               stages: Iterable[str] = STAGES) -> int:
        """Forget stages of one scene (or of every scene of a branch); returns rows removed."""
        n = 0
        for stage in stages:
            if scene is None:
                cur = self._db.execute("DELETE FROM stages WHERE branch=? AND stage=?",
                                       (branch, stage))
            else:
                cur = self._db.execute("DELETE FROM stages WHERE branch=? AND scene=? AND "
                                       "stage=?", (branch, scene, stage))
            n += cur.rowcount
        return n

    def records(self, stage: str = "tile") -> list[tuple[str, int, dict]]:
        """(branch, scene, record) of every scene that finished ``stage``, sorted."""
        rows = self._db.execute("SELECT branch, scene, record FROM stages WHERE stage=? "
                                "ORDER BY branch, scene", (stage,)).fetchall()
        return [(b, s, json.loads(r)) for b, s, r in rows]


def downstream(stage: str) -> tuple[str, ...]:
    """``stage`` and every stage after it."""
    return STAGES[STAGES.index(stage):]
