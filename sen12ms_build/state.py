"""The run's state file: per scene and stage, what is done, with which settings and outputs;
and the record of every file the tool wrote.

``<root>/.work/state.sqlite`` (SQLite, WAL journal so parallel workers can write) holds one
row per (branch, scene, stage): the settings fingerprint the stage ran with, its record
(JSON) and the size, SHA-256 and modification time of each output file. A stage counts as
done only when its fingerprint matches and every output is still the one written: present,
of its recorded size, and, when its modification time changed, of its recorded SHA-256. So
a re-run skips finished work, redoes unfinished or changed work, and redoes a stage whose
output was deleted, cut short or changed.

The ``files`` table records every file the tool wrote below the root (stage outputs, the
dataset's metadata and descriptions, review pages): removing stale files deletes only
recorded ones, so a file the user put into the tree is never touched
(:meth:`State.written`). Paths are stored relative to the root, so a copied or moved tree
resumes as itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

log = logging.getLogger(__name__)

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
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT NOT NULL PRIMARY KEY
);
"""


def is_state_file(path: Path | str) -> bool:
    """Whether ``path`` is a state file this tool wrote (an SQLite file with its ``stages``
    table); opened read-only, so a foreign file is not changed."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                              "name='stages'").fetchone() is not None
        finally:
            db.close()
    except sqlite3.Error:
        return False


class State:
    """Stage bookkeeping of one dataset root (open per process; cheap).

    Args:
        path: the state file, normally ``<root>/.work/state.sqlite`` (:func:`state_path`).
        root: the folder output paths are recorded relative to; default: the folder above
            ``.work`` (else the state file's own folder).
    """

    def __init__(self, path: Path | str, root: Path | str | None = None):
        self.path = Path(path)
        if root is None:
            root = self.path.parent.parent if self.path.parent.name == WORK_DIR else \
                self.path.parent
        self.root = Path(os.path.abspath(root))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._adopt_outputs()
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"cannot open the state file {self.path}: {exc}") from exc

    def _adopt_outputs(self) -> None:
        """A state file of an earlier version has no record of written files: its stages'
        outputs are the files it knows the tool wrote (recorded as given: absolute, or
        relative to the working folder of that run)."""
        if self._db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is not None:
            return
        rows = self._db.execute("SELECT outputs FROM stages").fetchall()
        self._record(path if len(entry) > 2 else self.rel(path)
                     for (outs,) in rows for path, entry in json.loads(outs).items())

    # -- paths: relative to the root when below it -------------------------------------------

    def rel(self, path: Path | str) -> str:
        """``path`` as recorded: relative to the root when below it, else absolute."""
        full = os.path.abspath(path)
        root = str(self.root)
        if full.startswith(root + os.sep):
            return full[len(root) + 1:]
        return full

    def abs(self, recorded: str) -> Path:
        """A recorded path as a path to open (an absolute record stays as it is)."""
        return self.root / recorded

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "State":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check(self, branch: str, scene: int, stage: str,
              fingerprint: str) -> tuple[dict | None, list[str]]:
        """``(record, [])`` when the stage finished with ``fingerprint`` and its outputs are
        the ones written; ``(None, damaged)`` when it finished but outputs are missing, of
        another size or (modification time changed) of another SHA-256: one line per file;
        ``(None, [])`` when it did not finish with ``fingerprint``."""
        row = self._db.execute(
            "SELECT fingerprint, record, outputs FROM stages WHERE branch=? AND scene=? "
            "AND stage=?", (branch, scene, stage)).fetchone()
        if row is None or row[0] != fingerprint:
            return None, []
        damaged = []
        for path, (size, digest, *mtime) in json.loads(row[2]).items():
            p = self.abs(path) if mtime else Path(path)  # (an earlier version's: as given)
            try:
                st = p.stat()
            except OSError:
                damaged.append(f"{p} is missing")
                continue
            if st.st_size != size:
                damaged.append(f"{p} has {st.st_size} bytes, {size} were written")
            elif mtime and st.st_mtime_ns != mtime[0] and sha256(p) != digest:
                damaged.append(f"{p} was changed after it was written")
        return (None, damaged) if damaged else (json.loads(row[1]), [])

    def done(self, branch: str, scene: int, stage: str, fingerprint: str) -> dict | None:
        """The stage's record if it finished with ``fingerprint`` and its outputs are intact
        (:meth:`check`); else None."""
        return self.check(branch, scene, stage, fingerprint)[0]

    def _outputs(self, outputs: Iterable[Path]) -> dict[str, tuple[int, str, int]]:
        outs = {}
        for p in outputs:
            st = Path(p).stat()
            outs[self.rel(p)] = (st.st_size, sha256(p), st.st_mtime_ns)
        return outs

    def finish(self, branch: str, scene: int, stage: str, fingerprint: str,
               record: dict[str, Any], outputs: Iterable[Path] = ()) -> dict:
        """Record a finished stage with the size, checksum and modification time of each
        output (and each output as a file the tool wrote)."""
        outs = self._outputs(outputs)
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?, ?)",
                (branch, scene, stage, fingerprint, json.dumps(record, default=str),
                 json.dumps(outs), time.time()))
            self._record(outs)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc
        return record

    def set_outputs(self, branch: str, scene: int, stage: str,
                    outputs: Iterable[Path]) -> bool:
        """Re-record the outputs of a finished stage after they were changed on purpose
        (a reviewer removed or re-admitted patches), keeping its fingerprint and record.
        Returns False when the stage is not recorded."""
        outs = self._outputs(outputs)
        try:
            cur = self._db.execute("UPDATE stages SET outputs=? WHERE branch=? AND scene=? "
                                   "AND stage=?", (json.dumps(outs), branch, scene, stage))
            self._record(outs)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc
        return cur.rowcount == 1

    # -- the record of the files the tool wrote ----------------------------------------------

    def _record(self, recorded: Iterable[str]) -> None:
        rows = [(r,) for r in recorded]
        if len(rows) < 2 or self._db.in_transaction:
            self._db.executemany("INSERT OR IGNORE INTO files VALUES (?)", rows)
            return
        with self._transaction():  # one commit for the lot (a catalog: 10^5 files)
            self._db.executemany("INSERT OR IGNORE INTO files VALUES (?)", rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def wrote(self, paths: Iterable[Path | str]) -> None:
        """Record files the tool wrote (so that removing stale files may delete them)."""
        try:
            self._record(self.rel(p) for p in paths)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc

    def unwrote(self, paths: Iterable[Path | str]) -> None:
        """Drop files from the record (after the tool removed them)."""
        try:
            self._db.executemany("DELETE FROM files WHERE path=?",
                                 [(self.rel(p),) for p in paths])
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc

    def written(self, under: Path | str | None = None) -> list[Path]:
        """Every recorded file (that the tool wrote), or those below the folder ``under``;
        sorted."""
        if under is None:
            rows = self._db.execute("SELECT path FROM files ORDER BY path").fetchall()
        else:
            prefix = self.rel(under).rstrip(os.sep) + os.sep
            # a range on the primary key: every path starting with the prefix
            rows = self._db.execute(
                "SELECT path FROM files WHERE path >= ? AND path < ? ORDER BY path",
                (prefix, prefix[:-1] + chr(ord(os.sep) + 1))).fetchall()
        return [self.abs(r[0]) for r in rows]

    def replace_written(self, under: Path | str, paths: Iterable[Path | str]) -> int:
        """Make the record below the folder ``under`` exactly ``paths`` (files the tool just
        wrote or found unchanged there): record them, and remove (:meth:`discard`) the
        recorded files below ``under`` that are not among them. Paths stay strings
        throughout (a STAC catalog: 10^5 files). Returns the number of files removed."""
        now = {self.rel(p) for p in paths}
        prefix = self.rel(under).rstrip(os.sep) + os.sep
        stale = [r for (r,) in self._db.execute(
            "SELECT path FROM files WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + chr(ord(os.sep) + 1))) if r not in now]
        try:
            removed = self.discard([self.abs(r) for r in stale]) if stale else 0
            self._record(sorted(now))
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the state file {self.path}: {exc}") from exc
        return removed

    def discard(self, paths: Iterable[Path | str]) -> int:
        """Remove files the tool wrote: each of ``paths`` that is in the record is deleted
        and dropped from it, and the folders this leaves empty are removed (up to the
        root, never the root). A path not in the record is left alone. Returns the number
        of files deleted."""
        recorded = [self.rel(p) for p in paths]
        if not recorded:
            return 0
        mine = set()
        for i in range(0, len(recorded), 500):
            chunk = recorded[i:i + 500]
            mine |= {r for (r,) in self._db.execute(
                f"SELECT path FROM files WHERE path IN ({','.join('?' * len(chunk))})",
                chunk)}
        n, folders = 0, set()
        for r in sorted(mine):
            p = self.abs(r)
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
            folders.add(p.parent)
        with self._transaction():
            self._db.executemany("DELETE FROM files WHERE path=?", [(r,) for r in mine])
        for folder in sorted(folders, key=lambda f: -len(f.parts)):
            while folder != self.root and self.root in folder.parents:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
                folder = folder.parent
        return n

    def scenes(self) -> list[tuple[str, int]]:
        """(branch, scene) of every scene with a recorded stage, sorted."""
        return [(b, s) for b, s in self._db.execute(
            "SELECT DISTINCT branch, scene FROM stages ORDER BY branch, scene")]

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
        return list(self.iter_records(stage))

    def iter_records(self, stage: str = "tile", without: str | None = None
                     ) -> Iterator[tuple[str, int, dict]]:
        """:meth:`records` one scene at a time (a full reproduction's tile records hold
        every patch's record: hundreds of MB of JSON), sorted; ``without``: a top-level key
        left out of each record by SQLite (e.g. ``patch_records``) before it is parsed."""
        col, args = "record", [stage]
        if without is not None:
            try:  # SQLite's JSON functions (built in since 3.38)
                self._db.execute("SELECT json_remove('{}', '$.x')")
                col, args = "json_remove(record, ?)", [f"$.{without}", stage]
            except sqlite3.OperationalError:
                pass
        cur = self._db.execute(f"SELECT branch, scene, {col} FROM stages WHERE stage=? "
                               "ORDER BY branch, scene", args)
        for b, s, r in cur:
            rec = json.loads(r)
            if without is not None:
                rec.pop(without, None)
            yield b, s, rec


def record_written(root: Path | str, paths: Iterable[Path | str]) -> None:
    """Record files the tool wrote below ``root`` in its state file (nothing when the root
    has none: a tree copied without ``.work``)."""
    path = state_path(root)
    if path.exists():
        with State(path) as st:
            st.wrote(paths)


def written_files(root: Path | str, under: Path | str | None = None) -> list[Path] | None:
    """The files the tool wrote below ``root`` (or below ``under``), from its state file;
    ``None`` when the root has no state file (then nothing is known to be the tool's)."""
    path = state_path(root)
    if not path.exists():
        return None
    with State(path) as st:
        return st.written(under)


def downstream(stage: str) -> tuple[str, ...]:
    """``stage`` and every stage after it."""
    return STAGES[STAGES.index(stage):]
