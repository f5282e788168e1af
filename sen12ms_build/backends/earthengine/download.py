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
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from ...geo import Grid
from ...io import atomic_path
from .assemble import verify_bytes, verify_file
from .chunks import GEOTIFF_OVERHEAD_BYTES, Chunk, Product, chunk_bytes
from .client import RestClient
from .errors import DownloadError, EarthEngineError
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

    def __post_init__(self) -> None:
        self.cache_root = Path(self.cache_root)
        self.digest = request_digest(self.expression, self.grid, self.product)

    @property
    def cache(self) -> Path:
        return self.cache_root / f"{self.key}-{self.digest[:16]}"

    def chunk_path(self, chunk: Chunk) -> Path:
        return self.cache / f"{chunk.name}.tif"

    def paths(self) -> list[Path]:
        return [self.chunk_path(c) for c in self.chunks]


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
    :class:`DownloadError` names the failures. Returns the chunk paths per product key."""
    work = [(job, chunk) for job in jobs for chunk in job.chunks]
    for job in jobs:
        job.cache.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with tqdm(total=len(work), desc=desc, unit="chunk", disable=not progress,
              leave=False) as bar, ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures: dict[Future, tuple[ProductJob, Chunk]] = {
            pool.submit(fetch_chunk, client, job, chunk): (job, chunk) for job, chunk in work}
        pending = set(futures)
        try:
            _collect(futures, pending, bar, failures)
        except BaseException:  # Ctrl-C: do not start queued chunks; cached ones stay
            for fut in futures:
                fut.cancel()
            raise
        cached = sum(bool(f.result()[1]) for f in futures if f.done() and not f.cancelled()
                     and f.exception() is None)
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
