"""Batch mode: ``Export.image.toCloudStorage`` / ``toDrive`` tasks, their recorded state,
polling, and the pull of finished exports into the local pipeline.

State lives in one JSON file (:class:`TaskStore`), one record per ``<season>/<roi>/<product>``
with the task's request id, operation name, state and Earth Engine's error message. The
request id is recorded *before* a task is started and passed to ``ee.data.exportImage``:
Earth Engine de-duplicates requests by id, so a run killed between submission and the
state write resubmits the same id instead of starting a second export. Resume never
resubmits a task that is pending, running or finished with the same request digest.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from tqdm.auto import tqdm

from ...geo import Grid
from ...raster.io import atomic_path, atomic_write_text
from .errors import BatchTaskError, EarthEngineError

log = logging.getLogger(__name__)

GCS, DRIVE = "gcs", "drive"
#: Operation states (``google.earthengine.v1.OperationMetadata.State``) plus our own
#: ``SUBMITTING`` (request id recorded, start not confirmed).
ACTIVE = frozenset({"SUBMITTING", "PENDING", "RUNNING", "CANCELLING"})
SUCCEEDED = "SUCCEEDED"
FAILED = frozenset({"FAILED", "CANCELLED"})
#: Above this many tasks to poll, one ``operations.list`` replaces per-task ``get`` calls.
LIST_THRESHOLD = 20
_DESCRIPTION_OK = re.compile(r"[^A-Za-z0-9.,:;_\-]")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def description_for(key: str) -> str:
    """An Earth Engine task description (max 100 chars of ``[A-Za-z0-9.,:;_-]``)."""
    return _DESCRIPTION_OK.sub("_", f"sen12ms_{key}")[:100]


@dataclass
class TaskRecord:
    """One export task as recorded locally (no credentials, no expression)."""

    key: str
    description: str
    request_id: str
    digest: str
    destination: str
    prefix: str
    bucket: str | None = None
    folder: str | None = None
    operation: str | None = None
    state: str = "SUBMITTING"
    error: str | None = None
    attempts: int = 1
    submitted_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    pulled: bool = False

    @property
    def task_id(self) -> str | None:
        return self.operation.rsplit("/", 1)[-1] if self.operation else None


class TaskStore:
    """The JSON file of task records; every change is written atomically. Thread-safe."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.records: dict[str, TaskRecord] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text())
            for key, rec in data.get("tasks", {}).items():
                self.records[key] = TaskRecord(**rec)

    def get(self, key: str) -> TaskRecord | None:
        with self._lock:
            return self.records.get(key)

    def put(self, record: TaskRecord) -> None:
        with self._lock:
            record.updated_at = _now()
            self.records[record.key] = record
            self._save()

    def _save(self) -> None:
        data = {"version": 1, "tasks": {k: asdict(r) for k, r in sorted(self.records.items())}}
        atomic_write_text(self.path, json.dumps(data, indent=1))

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records.values():
            out[r.state] = out.get(r.state, 0) + 1
        return out


# --- submission ------------------------------------------------------------------------------

def export_task(image: Any, grid: Grid, record: TaskRecord, *, max_pixels: int = 10**10
                ) -> Any:
    """The unstarted ``ee.batch.Task`` exporting ``image`` on exactly ``grid`` (crs,
    crsTransform, dimensions) as one GeoTIFF, to Cloud Storage or Drive."""
    import ee

    t = grid.transform
    common = dict(description=record.description, fileNamePrefix=record.prefix,
                  dimensions=f"{grid.width}x{grid.height}", crs=grid.crs,
                  crsTransform=[t.a, t.b, t.c, t.d, t.e, t.f], maxPixels=int(max_pixels),
                  fileFormat="GeoTIFF")
    if record.destination == GCS:
        return ee.batch.Export.image.toCloudStorage(image, bucket=record.bucket, **common)
    if record.destination == DRIVE:
        return ee.batch.Export.image.toDrive(image, folder=record.folder, **common)
    raise ValueError(f"unknown destination {record.destination!r}")


def submit(store: TaskStore, key: str, image: Any, grid: Grid, *, digest: str,
           destination: str, prefix: str, bucket: str | None = None,
           folder: str | None = None) -> TaskRecord:
    """Start the export of ``image`` under ``key`` unless a task with the same ``digest`` is
    pending, running or done; a failed or cancelled one is started again (new request id)."""
    import ee

    rec = store.get(key)
    if rec is not None and rec.digest == digest:
        if rec.state in ACTIVE - {"SUBMITTING"} or rec.state == SUCCEEDED:
            log.debug("task %s already %s, not resubmitted", key, rec.state)
            return rec
        if rec.state in FAILED:
            log.info("resubmitting %s (was %s: %s)", key, rec.state, rec.error)
            rec = TaskRecord(key, rec.description, ee.data.newTaskId()[0], digest, destination,
                             prefix, bucket, folder, attempts=rec.attempts + 1)
        # SUBMITTING: start again with the same request id (de-duplicated by Earth Engine)
    else:
        if rec is not None:
            log.warning("request of %s changed since task %s; submitting a new export", key,
                        rec.task_id)
        rec = TaskRecord(key, description_for(key), ee.data.newTaskId()[0], digest,
                         destination, prefix, bucket, folder)
    rec.state, rec.error = "SUBMITTING", None
    store.put(rec)
    task = export_task(image, grid, rec)
    try:
        op = ee.data.exportImage(rec.request_id, task.config)
    except ee.EEException as exc:
        rec.state, rec.error = "FAILED", f"submission refused: {exc}"
        store.put(rec)
        raise BatchTaskError(f"Earth Engine refused export {key}: {exc}") from None
    apply_operation(rec, op)
    store.put(rec)
    log.info("submitted %s as task %s", key, rec.task_id)
    return rec


# --- status ------------------------------------------------------------------------------------

def apply_operation(rec: TaskRecord, op: dict[str, Any]) -> None:
    """Update a record from an Operation (``name``, ``metadata.state``, ``done``, ``error``)."""
    rec.operation = op.get("name", rec.operation)
    meta = op.get("metadata") or {}
    state = meta.get("state")
    if op.get("done"):
        if "error" in op:
            state = state if state in FAILED else "FAILED"
            rec.error = (op["error"] or {}).get("message", "unknown error")
        else:
            state = state or SUCCEEDED
    rec.state = state or rec.state or "PENDING"


def refresh(store: TaskStore, keys: Iterable[str]) -> list[TaskRecord]:
    """Fetch the state of the given tasks that are not finished; returns their records."""
    import ee

    recs = [r for k in keys if (r := store.get(k)) is not None]
    todo = [r for r in recs if r.state in ACTIVE and r.operation]
    if not todo:
        return recs
    ops: dict[str, dict[str, Any]] = {}
    if len(todo) > LIST_THRESHOLD:
        ops = {op["name"]: op for op in ee.data.listOperations()}
    for r in todo:
        op = ops.get(r.operation)  # type: ignore[arg-type]
        if op is None:
            try:
                op = ee.data.getOperation(r.operation)
            except ee.EEException as exc:
                log.warning("cannot read the status of %s (%s): %s", r.key, r.task_id, exc)
                continue
        before = r.state
        apply_operation(r, op)
        if r.state != before:
            log.info("task %s (%s): %s -> %s%s", r.key, r.task_id, before, r.state,
                     f": {r.error}" if r.error else "")
        store.put(r)
    return recs


def wait_for(store: TaskStore, keys: Sequence[str], *, poll_interval: float = 30.0,
             timeout: float | None = None, progress: bool = True,
             sleep: Any = time.sleep) -> list[TaskRecord]:
    """Poll until every task of ``keys`` succeeded. Raises :class:`BatchTaskError` with
    Earth Engine's message as soon as one failed or was cancelled, or on ``timeout``."""
    start = time.monotonic()
    with tqdm(total=len(keys), desc="export tasks", unit="task", disable=not progress,
              leave=False) as bar:
        while True:
            recs = refresh(store, keys)
            missing = set(keys) - {r.key for r in recs}
            if missing:
                raise BatchTaskError(f"no task recorded for {sorted(missing)}; submit first")
            failed = [r for r in recs if r.state in FAILED]
            if failed:
                raise BatchTaskError("; ".join(
                    f"export {r.key} (task {r.task_id}) {r.state}: {r.error or 'no message'}"
                    for r in failed))
            done = sum(r.state == SUCCEEDED for r in recs)
            bar.n = done
            bar.refresh()
            if done == len(recs):
                return recs
            if timeout is not None and time.monotonic() - start > timeout:
                raise BatchTaskError(f"{len(recs) - done} export task(s) still running after "
                                     f"{timeout:.0f} s; rerun to keep waiting (nothing is "
                                     "resubmitted)")
            sleep(poll_interval)


# --- pulling finished exports --------------------------------------------------------------

def export_file_pattern(prefix: str) -> re.Pattern[str]:
    """Names Earth Engine gives a GeoTIFF export: ``<prefix>.tif``, or
    ``<prefix>-<row>-<col>.tif`` when it splits a large image into several files."""
    return re.compile(re.escape(prefix) + r"(-\d+-\d+)?\.tif$")


class ExportSource(Protocol):
    """Where finished exports are read from."""

    def fetch(self, record: TaskRecord, dest: Path) -> list[Path]:
        """Copy the record's export files into ``dest``; return their paths."""
        ...


class LocalFolderSource:
    """Exports already on local disk: a synced Drive folder, or a ``gsutil rsync`` copy of
    the bucket (files under ``root/<prefix>``)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def fetch(self, record: TaskRecord, dest: Path) -> list[Path]:
        pattern = export_file_pattern(Path(record.prefix).name)
        folder = self.root / Path(record.prefix).parent
        found = sorted(p for p in folder.glob(f"{Path(record.prefix).name}*.tif")
                       if pattern.fullmatch(p.name))
        if not found:
            raise BatchTaskError(f"export {record.key}: no file {record.prefix}*.tif under "
                                 f"{self.root}")
        return found


class GcsSource:
    """Exports in a Cloud Storage bucket, downloaded with ``google-cloud-storage``."""

    def __init__(self, project: str, credentials: Any = None, endpoint: str | None = None):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        opts = {"api_endpoint": endpoint} if endpoint else None
        self.client = storage.Client(project=project,
                                     credentials=credentials or AnonymousCredentials(),
                                     client_options=opts)

    def fetch(self, record: TaskRecord, dest: Path) -> list[Path]:
        pattern = export_file_pattern(record.prefix)
        blobs = [b for b in self.client.list_blobs(record.bucket, prefix=record.prefix)
                 if pattern.fullmatch(b.name)]
        if not blobs:
            raise BatchTaskError(f"export {record.key}: no object gs://{record.bucket}/"
                                 f"{record.prefix}*.tif")
        out = []
        for blob in blobs:
            path = Path(dest) / Path(blob.name).name
            if not path.exists() or (blob.size is not None and path.stat().st_size != blob.size):
                with atomic_path(path) as tmp:
                    blob.download_to_filename(str(tmp))
            out.append(path)
        return out


def matches(records: Iterable[TaskRecord], pattern: str) -> list[TaskRecord]:
    """Records whose key matches a shell-style ``pattern`` (e.g. ``summer/*``)."""
    return [r for r in records if fnmatch.fnmatch(r.key, pattern)]


__all__ = ["ACTIVE", "DRIVE", "FAILED", "GCS", "SUCCEEDED", "BatchTaskError",
           "EarthEngineError", "ExportSource", "GcsSource", "LocalFolderSource", "TaskRecord",
           "TaskStore", "apply_operation", "description_for", "export_task",
           "export_file_pattern", "matches", "refresh", "submit", "wait_for"]
