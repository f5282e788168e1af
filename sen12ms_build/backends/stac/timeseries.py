"""The ``stac`` backend's cloud-removal exports: the ``cr`` cloudy acquisition beside the
mosaic and the ``cr-ts`` time series (:mod:`sen12ms_build.backends.cloudy`), with the
backend's own searches and readers (Sentinel-2 read straight onto the scene grid,
Sentinel-1 through the GRD chain, one item at a time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...raster.io import FAST_COMPRESSION, write_raster
from .. import TimeSeriesExport, TimeSeriesRequest, cloudy
from . import sentinel1
from .reader import AssetProblem


def writer(grid: Any) -> cloudy.Writer:
    """An export writer on the scene grid (:data:`cloudy.Writer`)."""
    def write(path: Path, data: np.ndarray, **kw: Any) -> None:
        write_raster(path, data, crs=grid.crs, transform=grid.transform, **kw,
                     **FAST_COMPRESSION)
    return write


def export_time_series(backend: Any, request: TimeSeriesRequest,
                       out_dir: Path) -> TimeSeriesExport:
    """See :meth:`sen12ms_build.backends.Backend.export_time_series` (``backend``: the
    :class:`~sen12ms_build.backends.stac.StacBackend`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = request.grid(backend.export_grid)
    roi_mask = np.ones(grid.shape, bool)  # the scene grid is the ROI square itself
    acqs, info = backend.s2_acquisitions(request)
    read_s2, failure = backend.s2_reader(grid, info["skipped"])

    src1 = backend.options.sources["s1"]
    found = backend._search(src1, request)  # noqa: SLF001 (the backend's own search)
    items, problems, _ = sentinel1.painting_order(found.items, request.start, request.end,
                                                  request.roi.ring())  # oldest first
    for line in problems:
        backend._problem_line(line)  # noqa: SLF001
    dem: dict[str, np.ndarray] = {}

    def read_s1(entry: Mapping[str, Any]) -> np.ndarray | None:
        """One GRD item through the chain (sigma0 dB, 2 x H x W float32, NaN outside)."""
        try:
            if "heights" not in dem:
                dem["heights"], _ = backend._dem(grid, request)  # noqa: SLF001
            return backend._s1_grd(entry["item"], src1, grid, dem["heights"])[0]  # noqa: SLF001
        except AssetProblem as exc:
            backend._problem(exc)  # noqa: SLF001
            return None

    s1 = []
    for item in items:
        c = sentinel1.candidate(item)
        s1.append({"id": c.product_id, "time": c.start.isoformat(),
                   "orbit_pass": c.orbit_pass.upper(), "item": item})
    res = cloudy.export_time_series(request, acqs, read_s2, s1, read_s1, roi_mask, out,
                                    writer(grid))
    if failure:
        raise failure[0]
    res.meta["backend"] = backend.name
    return res
