"""Writing the STAC catalog of :mod:`.stac` at dataset scale: streamed from ``manifest.csv``,
in parallel processes when it is large, each file written only when its bytes changed.

::

    manifest.csv --CHUNK rows--> make Items, write their files, Arrow part   (a process each)
                 --in order----> collections, catalog.json, items.parquet    (this process)

The Items of a chunk are independent of every other chunk's, so a dataset of more than
:data:`POOL_MIN_CHUNKS` chunks has them made by a pool of processes (one per core the
process may use, :func:`~sen12ms_build.machine.run_cores`, at most :data:`POOL_MAX`):
Python makes the Item dicts under its global lock, so threads would not share that work.
The results come back in the manifest's order, so the collections list their Items in that
order and ``items.parquet`` holds its rows in it: the files are the same bytes whatever the
number of processes (``tests/test_finalize_scale.py`` compares both with pystac's
``Catalog.save``). A smaller dataset is written in this process (starting processes costs
more than its Items).
"""

from __future__ import annotations

import filecmp
import gc
import itertools
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import layout
from .stac import (ITEM_MEDIA_TYPE, PARQUET, STAC_DIR, catalog, collection, footprints,
                   make_item, season_span)
from ..machine import run_cores
from ..products import level_of
from ..raster.io import atomic_write_bytes

log = logging.getLogger(__name__)

#: Kept manifest rows made into Items at a time (their geoparquet rows are one batch).
CHUNK = 2048
#: Threads writing one chunk's Item files (the system calls release the GIL).
WRITE_THREADS = 4
#: More chunks than this are made by a pool of processes (one per core, at most
#: :data:`POOL_MAX`).
POOL_MIN_CHUNKS = 4
#: The pool's largest size: each process holds ~270 MiB (its imports and two chunks), so
#: four keep finalize under ~1.5 GiB on a large machine (measured: docs in the README).
POOL_MAX = 4


def link(rel: str, href: str, media_type: str, title: str | None = None) -> dict[str, str]:
    """A link as pystac writes it in a self-contained catalog."""
    return {"rel": rel, "href": href, "type": media_type, **({"title": title} if title else {})}


def write_if_changed(path: Path | str, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless the file already holds exactly these
    bytes; returns whether it was written. (A resumed run rewrites only what changed.)"""
    try:
        if os.stat(path).st_size == len(data):
            with open(path, "rb") as f:
                if f.read() == data:
                    return False
    except OSError:
        pass  # absent or unreadable: written
    atomic_write_bytes(path, data)
    return True


# --- one chunk of Items (in a pool process or in this one) ---------------------------------

@dataclass(frozen=True)
class _Context:
    """What every chunk needs: the tree, the run's resolution, Level and season spans, and
    the root catalog's title (the Items' root link)."""

    root: Path
    res_m: float
    level: str
    cfg: Any
    title: str

    @property
    def out(self) -> Path:
        """The catalog's folder, ``<root>/stac``."""
        return self.root / STAC_DIR


@dataclass
class _Done:
    """A chunk's outcome: per Item (branch, id, bbox, split), the files written and left
    unchanged, every file's path, and the Arrow part (``None``: no Item)."""

    items: list[tuple[str, str, list[float], str]] = field(default_factory=list)
    written: int = 0
    unchanged: int = 0
    paths: list[str] = field(default_factory=list)
    part: Path | None = None
    schema: Any = None


_THREADS: list[ThreadPoolExecutor] = []


def _writer() -> ThreadPoolExecutor:
    """This process's pool of :data:`WRITE_THREADS` writer threads (made once)."""
    if not _THREADS:
        _THREADS.append(ThreadPoolExecutor(max_workers=WRITE_THREADS))
    return _THREADS[0]


def make_chunk(ctx: _Context, rows: list[dict[str, str]], part: Path) -> _Done:
    """Make the Items of ``rows`` (kept manifest rows), write each Item file whose bytes
    changed (by :data:`WRITE_THREADS` threads, which overlap the file system's waits with
    the making of the next Items) and the chunk's rows of ``items.parquet`` as the Arrow
    part ``part``.

    Python's cyclic garbage collector is paused meanwhile: each Item makes a hundred
    containers, and the collector, run every 700 allocations, would traverse a chunk's
    worth over and over (a third of the CPU time at 10^4 Items). The one cycle an Item makes
    (a pystac Asset's ``owner``) is broken once the Item is made, so the rest is freed as it
    goes and memory stays bounded."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pystac

    dumps = pystac.StacIO.default().json_dumps  # what Catalog.save writes with
    root_link = link("root", "../../catalog.json", "application/json", ctx.title)
    up = [link("collection", "../collection.json", "application/json"),
          link("parent", "../collection.json", "application/json")]
    done, futures, table = _Done(), [], []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for row, fp in zip(rows, footprints(rows)):
            branch, pid = row["branch"], row["patch_id"]
            item_dir = ctx.out / branch / pid
            item = make_item(row, ctx.root, item_dir, *season_span(ctx.cfg, branch),
                             ctx.res_m, ctx.level, fp)
            d = item.to_dict(include_self_link=False, transform_hrefs=False)
            for asset in item.assets.values():  # no cycle: freed without the collector
                asset.owner = None
            done.items.append((branch, pid, d["bbox"], row["split"]))
            table.append({**d, "links": [], "collection": branch})
            d["links"] = [root_link, *up]
            d["collection"] = branch
            path = f"{item_dir}{os.sep}{pid}.json"
            futures.append(_writer().submit(write_if_changed, path, dumps(d).encode("utf-8")))
            done.paths.append(path)
        if table:
            batch = items_to_arrow(table)
            pq.write_table(pa.Table.from_batches([batch]), part)
            done.part, done.schema = part, batch.schema
    finally:
        if enabled:
            gc.enable()
    for f in futures:
        if f.result():
            done.written += 1
        else:
            done.unchanged += 1
    return done


def items_to_arrow(dicts: list[dict]):
    """Item dicts (fresh: their ``geometry`` is replaced) as one stac-geoparquet Arrow
    RecordBatch, as ``stac_geoparquet.arrow.parse_stac_items_to_arrow`` makes it, without
    its deep copy of every Item (most of its time at this size: the dicts here are made
    for this call alone). Falls back to that function when stac-geoparquet's batch class
    moved."""
    import shapely
    import shapely.geometry

    try:
        import pyarrow as pa
        from stac_geoparquet.arrow._batch import StacJsonBatch
    except ImportError:  # another stac-geoparquet layout: the public path, with its copies
        import stac_geoparquet.arrow as sga

        return sga.parse_stac_items_to_arrow(dicts).read_next_batch()
    rings = [d["geometry"]["coordinates"] for d in dicts]
    if all(d["geometry"]["type"] == "Polygon" and len(r) == 1 and len(r[0]) == 5
           for d, r in zip(dicts, rings)):  # the footprints: one vectorized conversion
        geoms = shapely.polygons(np.array([r[0] for r in rings], dtype=float))
    else:
        geoms = [shapely.geometry.shape(d["geometry"]) for d in dicts]
    wkb = shapely.to_wkb(geoms, flavor="iso")
    for d, g in zip(dicts, wkb):
        d["geometry"] = g
    raw = StacJsonBatch(pa.RecordBatch.from_struct_array(pa.array(dicts)))
    return raw.to_arrow_batch(True).inner


# --- the chunks in order ---------------------------------------------------------------------

def _kept_rows(root: Path) -> Iterator[dict[str, str]]:
    path = Path(root) / "manifest.csv"
    return (r for r in layout.iter_csv(path) if r["status"] == "kept")


def _chunks(rows: Iterable[dict], n: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for r in rows:
        chunk.append(r)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def made_chunks(ctx: _Context, chunks: Iterator[list[dict]], folder: Path,
                processes: int | None = None) -> Iterator[_Done]:
    """:func:`make_chunk` of every chunk, in order. Up to :data:`POOL_MIN_CHUNKS` chunks
    are made here; once there are more, a pool of ``processes`` (default one per core,
    :func:`~sen12ms_build.machine.run_cores`, at most :data:`POOL_MAX`) makes them all, at
    most two per process in flight (memory stays bounded)."""
    head: list[list[dict]] = []
    for chunk in chunks:
        head.append(chunk)
        if len(head) > POOL_MIN_CHUNKS:
            break
    n = processes or min(run_cores(), POOL_MAX)
    parts = (folder / f"part_{i:06d}.parquet" for i in range(1 << 40))
    if len(head) <= POOL_MIN_CHUNKS or n < 2:
        for chunk in itertools.chain(head, chunks):
            yield make_chunk(ctx, chunk, next(parts))
        return
    # spawn: a fork would copy the caller's threads' locks (logging, GDAL) half-held
    with ProcessPoolExecutor(max_workers=n,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        inflight: deque[Future] = deque()
        try:
            for chunk in itertools.chain(head, chunks):
                inflight.append(pool.submit(make_chunk, ctx, chunk, next(parts)))
                if len(inflight) >= 2 * n:
                    yield inflight.popleft().result()
            while inflight:
                yield inflight.popleft().result()
        finally:
            for f in inflight:
                f.cancel()


# --- the catalog -------------------------------------------------------------------------------

class _Branch:
    """What a collection needs of its items, gathered as they stream by."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.splits: set[str] = set()
        self.bbox = [math.inf, math.inf, -math.inf, -math.inf]

    def add(self, item_id: str, bbox: list[float], split: str) -> None:
        self.ids.append(item_id)
        self.splits.add(split)
        self.bbox = [min(self.bbox[0], bbox[0]), min(self.bbox[1], bbox[1]),
                     max(self.bbox[2], bbox[2]), max(self.bbox[3], bbox[3])]


def write_catalog(root: Path, cfg: Any, processes: int | None = None) -> dict[str, int]:
    """(Re)write ``<root>/stac/`` from ``manifest.csv``: one Item file per kept patch, one
    Collection per branch, the root Catalog and ``items.parquet``; the files of Items no
    longer kept go. A file is written only when its content changed, so a resumed run that
    adds a scene writes that scene's Items and the index files (collections, catalog,
    geoparquet), not the dataset's.

    The manifest is read once, :data:`CHUNK` rows at a time, and the chunks' Items are made
    by :func:`made_chunks` (a pool of ``processes``, default one per core, for more than
    :data:`POOL_MIN_CHUNKS` chunks): memory is flat and the time linear in the patches. The
    files are byte for byte those pystac's ``Catalog.save(SELF_CONTAINED)`` writes for the
    same objects (``tests/stac_reference`` checks it), without its link resolution, whose
    cost grows with the square of the items per collection.

    Returns:
        counts: ``items``, ``written`` (files written), ``unchanged``, ``removed``.
    """
    import pyarrow as pa
    import pystac

    root = Path(root)
    cat = catalog(cfg)
    ctx = _Context(root, cfg.reproject.resolution_m if cfg is not None else 10.0,
                   level_of(cfg), cfg, cat.title)
    out = ctx.out
    dumps = pystac.StacIO.default().json_dumps
    branches: dict[str, _Branch] = {}
    counts = {"items": 0, "written": 0, "unchanged": 0, "removed": 0}
    current: list[str] = []  # every file of the catalog (strings: 10^5 Paths slow the gc)
    parts: list[Path] = []
    schema = None

    def put(path: Path, obj: dict) -> None:
        counts["written" if write_if_changed(path, dumps(obj).encode("utf-8"))
               else "unchanged"] += 1
        current.append(os.fspath(path))

    (root / layout.WORK_DIR).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stac_parquet_", dir=root / layout.WORK_DIR))
    try:
        for done in made_chunks(ctx, _chunks(_kept_rows(root), CHUNK), tmp, processes):
            for branch, pid, bbox, split in done.items:
                b = branches.get(branch) or branches.setdefault(branch, _Branch())
                b.add(pid, bbox, split)
            counts["items"] += len(done.items)
            counts["written"] += done.written
            counts["unchanged"] += done.unchanged
            current += done.paths
            if done.part is not None:
                parts.append(done.part)
                schema = done.schema if schema is None else pa.unify_schemas(
                    [schema, done.schema], promote_options="permissive")
        cat_dict = cat.to_dict(include_self_link=False, transform_hrefs=False)
        cat_dict["links"] = [link("root", "./catalog.json", "application/json", cat.title),
                             *cat_dict["links"]]
        for branch in sorted(branches):
            b = branches[branch]
            coll = collection(branch, cfg, b.bbox, len(b.ids), sorted(b.splits))
            d = coll.to_dict(include_self_link=False, transform_hrefs=False)
            d["links"] = [link("root", "../catalog.json", "application/json", cat.title),
                          *(link("item", f"./{i}/{i}.json", ITEM_MEDIA_TYPE) for i in b.ids),
                          link("parent", "../catalog.json", "application/json", cat.title)]
            put(out / branch / "collection.json", d)
            cat_dict["links"].append(link("child", f"./{branch}/collection.json",
                                          "application/json"))
        put(out / "catalog.json", cat_dict)
        if parts:
            target = out / PARQUET
            _write_parquet(parts, schema, tmp / PARQUET)  # beside, moved in when it changed
            same = target.is_file() and filecmp.cmp(tmp / PARQUET, target, shallow=False)
            if not same:
                os.replace(tmp / PARQUET, target)
            counts["unchanged" if same else "written"] += 1
            current.append(os.fspath(target))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the folder this call made
    counts["removed"] = replace_record(root, out, current)
    log.info("stac: %d item(s); %d file(s) written, %d unchanged, %d removed",
             counts["items"], counts["written"], counts["unchanged"], counts["removed"])
    return counts


def _write_parquet(parts: list[Path], schema: Any, path: Path) -> None:
    """``items.parquet`` from the chunks' Arrow parts: streamed in order, read as the
    unified ``schema`` says (an optional field absent from a part), with stac-geoparquet's
    metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow as sga

    logging.getLogger("stac_geoparquet").setLevel(logging.WARNING)

    def batches() -> Iterator:  # one part at a time
        for f in parts:
            yield from pq.read_table(f, schema=schema).to_batches()

    sga.to_parquet(pa.RecordBatchReader.from_batches(schema, batches()), path)


def replace_record(root: Path, out: Path, current: list[str]) -> int:
    """The catalog's files in the record of written files; files of an earlier catalog
    that this one no longer has (items of removed patches) go. A file the tool did not
    write is left in ``stac/``. Returns the number of files removed."""
    from ..state import State, state_path

    if not state_path(root).exists():
        return 0
    with State(state_path(root)) as st:
        return st.replace_written(out, current)


__all__ = ["CHUNK", "POOL_MAX", "POOL_MIN_CHUNKS", "WRITE_THREADS", "items_to_arrow", "link",
           "made_chunks", "make_chunk", "replace_record", "write_catalog", "write_if_changed"]
