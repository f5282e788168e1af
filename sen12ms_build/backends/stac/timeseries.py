"""The ``stac`` backend's cloud-removal exports: the ``cr`` cloudy acquisition beside the
mosaic and the ``cr-ts`` time series (:mod:`sen12ms_build.backends.cloudy`), with the
backend's own searches and readers (Sentinel-2 read straight onto the scene grid,
Sentinel-1 as sigma0 items or through the GRD chain, one item at a time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...mosaic import engine
from ...raster.io import FAST_COMPRESSION, write_raster
from .. import TimeSeriesExport, TimeSeriesRequest, cloudy
from . import sentinel1, sentinel2
from .reader import AssetProblem, SourceUnavailable, read_stack


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
    src2 = backend.options.sources["s2"]
    level = src2.level or "l1c"
    acqs, _ = backend.s2_acquisitions(request)
    reader2 = backend.reader(src2)
    failure: list[SourceUnavailable] = []

    def read_s2(acq: engine.Acquisition) -> np.ndarray | None:
        if failure:
            return None
        try:
            return sentinel2.read_acquisition(reader2, acq, grid, level)
        except AssetProblem as exc:
            backend._problem(exc)  # noqa: SLF001 (the backend's record of skipped inputs)
        except SourceUnavailable as exc:
            failure.append(exc)
        return None

    src1 = backend.options.sources["s1"]
    items = backend._search(src1, request).items  # noqa: SLF001
    items = sorted(items, key=lambda i: sentinel1.describe(i)["time"])

    def read_s1(entry: Mapping[str, Any]) -> np.ndarray | None:
        item = entry["item"]
        try:
            if src1.kind == "s1-sigma0":
                return read_stack(backend.reader(src1),
                                  sentinel1.sigma0_assets(item, src1.product.assets),
                                  grid, "float32", float("nan"))
            return backend._s1_grd(item, src1, grid, request)  # noqa: SLF001
        except AssetProblem as exc:
            backend._problem(exc)  # noqa: SLF001
            return None

    s1 = []
    for item in items:
        d = sentinel1.describe(item)
        s1.append({"id": d["product_id"], "time": d["time"], "orbit_pass": d["orbit_pass"],
                   "item": item})
    res = cloudy.export_time_series(request, acqs, read_s2, s1, read_s1, roi_mask, out,
                                    writer(grid))
    if failure:
        raise failure[0]
    res.meta["backend"] = backend.name
    return res
