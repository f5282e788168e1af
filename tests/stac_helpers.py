"""Helpers of the stac backend's tests: a one-ROI config over the loopback demo services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml
from pyproj import Transformer

REPO = Path(__file__).resolve().parent.parent
#: One ROI of 2560 m (one 256 px patch at 10 m), winter (the demo's 3 acquisitions).
ROI_SIZE_M = 2560


def archive_centre(archive: Path) -> tuple[float, float]:
    meta = json.loads((archive / "archive.json").read_text())["demo"]
    left, bottom, right, top = meta["bounds"]
    to = Transformer.from_crs(meta["crs"], "EPSG:4326", always_xy=True)
    lon, lat = to.transform((left + right) / 2, (bottom + top) / 2)
    return round(lon, 5), round(lat, 5)


def write_config(folder: Path, archive: Path, backend: dict[str, Any],
                 seasons: tuple[str, ...] = ("winter",), rois: int = 1,
                 **extra: Any) -> Path:
    """A run config of ``rois`` listed ROIs (the first at the archive's centre, the second
    500 m east) over the demo's ``seasons``."""
    folder.mkdir(parents=True, exist_ok=True)
    lon, lat = archive_centre(archive)
    lines = ["lon,lat,scene"] + [f"{lon + 0.0056 * k:.5f},{lat:.5f},{k + 1}"
                                 for k in range(rois)]
    (folder / "rois.csv").write_text("\n".join(lines) + "\n")
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["seasons"] = {k: data["seasons"][k] for k in seasons}
    data["sampling"].update(rois_file=str(folder / "rois.csv"), roi_size_m=ROI_SIZE_M)
    data["backend"] = backend
    data["out"] = str(folder / "out")
    data["quicklooks"] = False
    data.update(extra)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def patches(root: Path) -> dict[str, np.ndarray]:
    """Patch path (relative) -> its array, for every data patch of a tree."""
    out = {}
    for p in sorted(Path(root).glob("ROIs*/*_*/*.tif")):
        if p.parent.name.startswith("qa_"):
            continue
        with rasterio.open(p) as f:
            out[str(p.relative_to(root))] = f.read()
    return out


def clear_gdal_cache() -> None:
    """Drop GDAL's /vsicurl/ cache of fetched bytes (``VSICurlClearCache``, through the
    libgdal that rasterio loaded), so that a test's reads reach the loopback servers again
    instead of bytes an earlier test fetched."""
    import ctypes
    import glob
    import os

    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__), "..", "rasterio.libs",
                                  "libgdal*"))
    if libs:
        ctypes.CDLL(libs[0]).VSICurlClearCache()
