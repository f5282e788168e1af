"""Direct download: the chunks of every product of a scene through ``computePixels``, in
parallel with bounded concurrency, verified and cached on disk so that an interrupted run
resumes where it stopped.

Cache layout: ``<cache>/<product>-<digest>/<chunk>.tif`` where ``digest`` hashes the request
(expression and grid): a changed graph or grid never reuses stale chunks. Every chunk file
is written atomically after verification, so a file present in the cache is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from ...geo import Grid
from ...raster.io import atomic_path
from .assemble import verify_bytes, verify_file
from .chunks import GEOTIFF_OVERHEAD_BYTES, Chunk, Product, chunk_bytes
from .client import RestClient
from .errors import (BatchFallback, ComputeLimitError, DownloadError, EarthEngineError,
                     QuotaExhaustedError)
from .graphs import pixel_grid

log = logging.getLogger(__name__)


def request_digest(expression: dict, grid: Grid, product: Product) -> str:
    """Hex digest identifying a product request (expression, grid, bands, dtype)."""
    h = hashlib.sha256()
    h.update(json.dumps(expression, sort_keys=True, separators=(",", ":")).encode())
    h.update(json.dumps(pixel_grid(grid), sort_keys=True).encode())
    h.update(json.dumps([product.bands, product.dtype]).encode())
    return h.hexdigest()


@dataclass
class ProductJob:
    """The chunked download of one product of a scene.

    Attributes:
        key: ``s2``, ``s1`` or ``lc``.
        product: bands and dtype of the response.
        expression: Cloud API expression (``graphs.encode``).
        grid: the scene's export grid (EPSG:4326, 0.0001 degrees).
        chunks: windows of ``grid``, one request each.
        cache_root: parent of the product's cache folder.
    """

    key: str
    product: Product
    expression: dict
    grid: Grid
    chunks: Sequence[Chunk]
    cache_root: Path

    #: smallest chunk side (pixels) a compute-limited chunk is split down to; below it the
    #: scene falls back to a batch export (:class:`BatchFallback`)
    min_side: int = 128

    def __post_init__(self) -> None:
        self.cache_root = Path(self.cache_root)
        self.digest = request_digest(self.expression, self.grid, self.product)
        self._lock = threading.Lock()
        self.reused = 0  # chunks found complete in the cache
        self.splits: dict[str, list[Chunk]] = self._load_layout()

    # -- splits, persisted so that a resumed run never repeats the big request -------------

    @property
    def layout_path(self) -> Path:
        """``layout.json`` in the product's cache folder: every chunk that hit a compute
        limit, with the four chunks that replaced it."""
        return self.cache / "layout.json"

    def _load_layout(self) -> dict[str, list[Chunk]]:
        try:
            raw = json.loads(self.layout_path.read_text())
        except (OSError, ValueError):
            return {}
        return {name: [Chunk(*c) for c in parts] for name, parts in raw.get("splits", {}).items()}

    def record_split(self, chunk: Chunk, parts: Sequence[Chunk], reason: str) -> None:
        """Remember (atomically, on disk) that ``chunk`` is replaced by ``parts``."""
        with self._lock:
            self.splits[chunk.name] = list(parts)
            self.cache.mkdir(parents=True, exist_ok=True)
            data = {"splits": {k: [[c.row_off, c.col_off, c.height, c.width] for c in v]
                               for k, v in self.splits.items()}}
            with atomic_path(self.layout_path) as tmp:
                tmp.write_text(json.dumps(data, indent=1))
        log.warning("%s chunk %s (%dx%d px): %s; split into 4", self.key, chunk.name,
                    chunk.height, chunk.width, reason)

    def leaves(self, chunk: Chunk) -> list[Chunk]:
        """The chunks that stand for ``chunk`` after the recorded splits."""
        parts = self.splits.get(chunk.name)
        if not parts:
            return [chunk]
        return [leaf for p in parts for leaf in self.leaves(p)]

    @property
    def cache(self) -> Path:
        return self.cache_root / f"{self.key}-{self.digest[:16]}"

    def chunk_path(self, chunk: Chunk) -> Path:
        return self.cache / f"{chunk.name}.tif"

    def paths(self) -> list[Path]:
        return [self.chunk_path(leaf) for c in self.chunks for leaf in self.leaves(c)]


def quarter(chunk: Chunk) -> list[Chunk]:
    """``chunk`` cut into four (two rows by two columns; odd sides split one pixel apart)."""
    h1, w1 = chunk.height // 2, chunk.width // 2
    out = []
    for r, h in ((0, h1), (h1, chunk.height - h1)):
        for c, w in ((0, w1), (w1, chunk.width - w1)):
            if h > 0 and w > 0:
                out.append(Chunk(chunk.row_off + r, chunk.col_off + c, h, w))
    return out


def fetch_split(client: RestClient, job: ProductJob, chunk: Chunk) -> list[Path]:
    """Fetch ``chunk``; on a compute limit split it in four and fetch those (recursively),
    down to ``job.min_side`` pixels. Returns the paths of the chunks that cover it.

    Raises:
        BatchFallback: a chunk at the floor still hit a compute limit.
        QuotaExhaustedError, DownloadError, EarthEngineRequestError: as :func:`fetch_chunk`.
    """
    if chunk.name in job.splits:  # a resumed run: go straight to the recorded pieces
        return [p for part in job.splits[chunk.name] for p in fetch_split(client, job, part)]
    try:
        path, cached = fetch_chunk(client, job, chunk)
        if cached:
            with job._lock:
                job.reused += 1
        return [path]
    except ComputeLimitError as exc:
        if min(chunk.height, chunk.width) // 2 < job.min_side:
            raise BatchFallback(
                f"{job.key} chunk {chunk.name} ({chunk.height}x{chunk.width} px) still hit a "
                f"compute limit at the smallest chunk side ({job.min_side} px): "
                f"{exc.ee_message}") from None
        parts = quarter(chunk)
        job.record_split(chunk, parts, exc.ee_message)
        return [p for part in parts for p in fetch_split(client, job, part)]


def fetch_chunk(client: RestClient, job: ProductJob, chunk: Chunk) -> tuple[Path, bool]:
    """Download (or reuse from the cache) one chunk; returns its path and whether it came
    from the cache. Raises :class:`DownloadError` after the retries."""
    path = job.chunk_path(chunk)
    cgrid = chunk.grid(job.grid)
    if path.exists():
        if verify_file(path, job.product, cgrid):
            return path, True
        path.unlink(missing_ok=True)
    what = f"{job.key} chunk {chunk.name}"
    limit = chunk_bytes(chunk, job.product) * 2 + GEOTIFF_OVERHEAD_BYTES * 4
    data = client.compute_pixels(
        job.expression, pixel_grid(cgrid), what=what, limit=limit,
        check=lambda d: verify_bytes(d, job.product, cgrid, what))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path, False


def _collect(futures: dict[Future, tuple[ProductJob, Chunk]], pending: set[Future],
             bar: tqdm, failures: list[str]) -> None:
    """Wait for the chunk futures; on the first failure cancel the queued ones and wait for
    the running ones (their chunks stay cached)."""
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for fut in done:
            job, chunk = futures[fut]
            try:
                fut.result()
                bar.update(1)
            except (BatchFallback, QuotaExhaustedError):
                for other in pending:
                    other.cancel()
                wait(pending)
                raise
            except EarthEngineError as exc:
                failures.append(f"{job.key} {chunk.name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - reported with the chunk's name
                failures.append(f"{job.key} {chunk.name}: {type(exc).__name__}: {exc}")
        if failures:
            for fut in pending:
                fut.cancel()
            wait(pending)
            return


def download(client: RestClient, jobs: Sequence[ProductJob], *, max_workers: int = 8,
             progress: bool = True, desc: str = "chunks") -> dict[str, list[Path]]:
    """Fetch every chunk of ``jobs`` with at most ``max_workers`` threads (the client's
    semaphore bounds the requests in flight as well). On the first chunk that fails for
    good, pending chunks are cancelled, running ones finish (and stay cached), and
    :class:`DownloadError` names the failures. A chunk that hits a compute limit is split
    in four (:func:`fetch_split`, recorded in the product's ``layout.json``);
    :class:`BatchFallback` and :class:`QuotaExhaustedError` cancel the rest and propagate.
    Returns the chunk paths per product key."""
    work = [(job, chunk) for job in jobs for chunk in job.chunks]
    for job in jobs:
        job.cache.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with tqdm(total=len(work), desc=desc, unit="chunk", disable=not progress,
              leave=False) as bar, ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures: dict[Future, tuple[ProductJob, Chunk]] = {
            pool.submit(fetch_split, client, job, chunk): (job, chunk) for job, chunk in work}
        pending = set(futures)
        try:
            _collect(futures, pending, bar, failures)
        except BaseException:  # Ctrl-C: do not start queued chunks; cached ones stay
            for fut in futures:
                fut.cancel()
            raise
        cached = sum(job.reused for job in jobs)
    if failures:
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        raise DownloadError(f"{desc}: {len(failures)} chunk(s) failed: "
                            + "; ".join(failures[:3]) + more
                            + ". Chunks already downloaded stay cached; rerun to resume.")
    if cached:
        log.info("%s: %d of %d chunk(s) reused from the cache", desc, cached, len(work))
    return {job.key: job.paths() for job in jobs}


def clear_cache(jobs: Sequence[ProductJob]) -> None:
    """Remove the chunk folders of ``jobs`` (after their outputs were written)."""
    for job in jobs:
        shutil.rmtree(job.cache, ignore_errors=True)
    for root in {job.cache_root for job in jobs}:
        try:
            root.rmdir()
        except OSError:
            pass
