"""Tiling of a UTM scene triplet into patch triplets (paper section 3.3).

Patches are ``size`` x ``size`` pixels at ``stride`` (256 and 128 in SEN12MS: 50 % overlap),
full patches only, numbered row-major from 1. A W x H scene gives
``((W - size) // stride + 1) * ((H - size) // stride + 1)`` patches.

Reading is strip by strip (``size`` rows at a time, one read per modality per patch row), so
memory stays bounded by one strip whatever the scene size.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from .geotiff import write_or_gdal
from ..products import ALL_MODALITIES, MODALITIES, Modality, s2_modality_of

log = logging.getLogger(__name__)

#: Threads writing patch files (the file write and most of numpy's copy release the GIL).
WRITE_THREADS = 2
#: Threads decoding the blocks of the warped scene's strips (GTiff open option NUM_THREADS).
READ_THREADS = "ALL_CPUS"


@dataclass(frozen=True)
class PatchWindow:
    """A patch: its 1-based id and pixel window in the scene."""

    patch: int
    row: int
    col: int
    size: int

    @property
    def window(self) -> Window:
        return Window(self.col, self.row, self.size, self.size)


def patch_count(width: int, height: int, size: int = 256, stride: int = 128) -> int:
    """Number of full patches of a width x height scene."""
    if width < size or height < size:
        return 0
    return ((width - size) // stride + 1) * ((height - size) // stride + 1)


def patch_windows(width: int, height: int, size: int = 256,
                  stride: int = 128) -> list[PatchWindow]:
    """All full patch windows, row-major, ids from 1."""
    if size <= 0 or stride <= 0:
        raise ValueError("size and stride must be positive")
    out = []
    n = 1
    for row in range(0, height - size + 1, stride):
        for col in range(0, width - size + 1, stride):
            out.append(PatchWindow(n, row, col, size))
            n += 1
    return out


def iter_patch_rows(paths: Mapping[str, Path], size: int, stride: int
                    ) -> Iterator[tuple[list[PatchWindow], dict[str, np.ndarray], dict]]:
    """Yield, for each row of patches, its windows, one (C, size, W) strip per modality
    and the scene profile. All inputs must share one grid. Each scene row is read once:
    with stride < size, consecutive strips overlap and only the new rows are read."""
    # GTiff's worker threads decode the blocks of each strip in parallel
    srcs = {k: rasterio.open(p, num_threads=READ_THREADS) for k, p in paths.items()}
    try:
        first = next(iter(srcs.values()))
        for k, s in srcs.items():
            if (s.width, s.height, s.transform, s.crs) != (first.width, first.height,
                                                            first.transform, first.crs):
                raise ValueError(f"{paths[k]} is not on the grid of the other modalities")
        windows = patch_windows(first.width, first.height, size, stride)
        profile = {"crs": first.crs, "transform": first.transform}
        rows: dict[int, list[PatchWindow]] = {}
        for w in windows:
            rows.setdefault(w.row, []).append(w)
        buf: dict[str, np.ndarray] = {}
        top = None  # first scene row held in buf
        for row, ws in rows.items():
            if top is None or row - top >= size:  # nothing to reuse: read the whole strip
                strip = Window(0, row, first.width, size)
                buf = {k: s.read(window=strip) for k, s in srcs.items()}
            else:  # keep the overlap with the previous strip, read only the new rows
                keep = top + size - row
                new = Window(0, top + size, first.width, size - keep)
                buf = {k: np.concatenate([buf[k][:, size - keep:], s.read(window=new)], 1)
                       for k, s in srcs.items()}
            top = row
            yield ws, buf, profile
    finally:
        for s in srcs.values():
            s.close()


def write_patch(path: Path, data: np.ndarray, key: str, crs, transform,
                tags: Mapping[str, str] | None = None, *, gdal: bool = False,
                modality: Modality | None = None) -> None:
    """Write one patch GeoTIFF as in the published dataset: uncompressed, the modality's
    dtype, band descriptions and nodata, CRS and geotransform, and ``tags`` (provenance,
    GDAL default metadata domain); atomic.

    The file is assembled in numpy (:func:`geotiff.write_or_gdal`: what GDAL would write,
    several times faster than opening the file through GDAL). rasterio writes it when that
    writer does not cover the raster (e.g. a rotated transform), or with ``gdal=True`` (the
    reference the fast writer is tested and benchmarked against)."""
    if modality is not None:
        m = modality
    else:
        m = s2_modality_of(data.shape[0]) if key == "s2" else ALL_MODALITIES[key]
    write_or_gdal(path, data, crs=crs, transform=transform, nodata=m.nodata, dtype=m.dtype,
                  descriptions=m.descriptions, tags=tags, gdal=gdal)

Decision = tuple[bool, str, dict[str, float]]


def tile_scene(paths: Mapping[str, Path], name_for: Callable[[str, int], Path],
               decide: Callable[[dict[str, np.ndarray]], Decision],
               size: int = 256, stride: int = 128,
               progress: Callable[[int], None] | None = None,
               tags_for: Callable[[Mapping[str, np.ndarray]], dict[str, str]] | None = None,
               extra_for: Callable[[int, Mapping[str, np.ndarray], Any, Affine,
                                    dict[str, str], bool], dict[str, Path]] | None = None,
               modalities: Mapping[str, Modality] | None = None,
               ) -> list[dict]:
    """Cut a scene triplet into patches and write the accepted ones.

    Args:
        paths: modality key (``s1``, ``s2``, ``lc``, optionally ``aux``) -> scene GeoTIFF,
            all on one grid.
        name_for: (modality key, patch id) -> output path.
        decide: patch arrays -> (keep, reason, measured values); the patch round of curation.
        progress: called with the number of patches done after each patch row.
        tags_for: patch arrays -> GeoTIFF tags written into each patch file (kept in the
            record as ``tags``).
        extra_for: (patch id, arrays, crs, transform, tags, keep) -> extra files written
            (or removed when not kept) beside the triplet, e.g. the quality layer.
        modalities: the patch files to write, data id -> modality, in order (default the
            triplet ``s1``, ``s2``, ``lc``; a run with labels adds ``wc`` or ``dw``); every
            key needs its scene in ``paths``.
    Returns:
        one record per patch: id, window, bounds, kept, reason, values, files.
    """
    records = []
    mods: Mapping[str, Modality | None] = modalities or {k: None for k in MODALITIES}
    # the triplet's files take their modality from the data (s2: the level by band count)
    added = {k: m for k, m in mods.items() if k not in MODALITIES}
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        # a row's writes: (the record's files to add the result to, or None; the future)
        pending: list[tuple[dict | None, Future]] = []
        previous: list[tuple[dict | None, Future]] = []
        for ws, strips, prof in iter_patch_rows(paths, size, stride):
            for w in ws:
                arrays = {k: a[:, :, w.col:w.col + size] for k, a in strips.items()}
                keep, reason, values = decide(arrays)
                tags = tags_for(arrays) if tags_for else {}
                t = prof["transform"] @ Affine.translation(w.col, w.row)
                bounds = (t.c, t.f + size * t.e, t.c + size * t.a, t.f)
                files = {}
                for k in mods:
                    path = name_for(k, w.patch)
                    if keep:  # same bytes on re-runs
                        pending.append((None, pool.submit(write_patch, path, arrays[k], k,
                                                          prof["crs"], t, tags,
                                                          modality=added.get(k))))
                        files[k] = path
                    else:  # a re-run with stricter rules removes it
                        path.unlink(missing_ok=True)
                if extra_for:  # in the pool too; its files join the record when done
                    pending.append((files, pool.submit(extra_for, w.patch, arrays,
                                                       prof["crs"], t, tags, keep)))
                records.append({"patch": w.patch, "row": w.row, "col": w.col,
                                "bounds": bounds, "kept": keep, "reason": reason,
                                "values": values, "files": files, "tags": tags})
            # bound the queue (and the strips it holds) to about two rows of patches: the
            # previous row's files finish while this row's are queued and the next strip is
            # read and decoded
            _finish(previous)
            previous, pending = pending, []
            if progress:
                progress(len(ws))
        _finish(previous)
    return records


def _finish(writes: list[tuple[dict | None, Future]]) -> None:
    """Wait for a row's writes (raising their errors); the files an ``extra_for`` write made
    join its record."""
    for files, fut in writes:
        made = fut.result()
        if files is not None:
            files.update(made)
