"""EGM96 geoid undulations, offline: DEM heights above the geoid to heights above the WGS 84
ellipsoid (h = H + N).

SRTM (Earth Engine's DEM for COPERNICUS/S1_GRD) is referenced to EGM96 and the Copernicus
DEM to EGM2008; range-Doppler geocoding needs ellipsoidal heights. N reaches -107..+85 m; a
height error dh moves a pixel by dh / tan(incidence) on the ground (about 1.4 dh at 35
degrees), so skipping the step would misplace pixels by up to ~150 m (48.6 m of N at Rome:
~50-70 m). The grid ships with the package (``data/egm96_30min.npz``, 0.3 MB): the NGA
EGM96 15' grid (public domain) decimated to 0.5 degrees (``scripts/make_geoid_grid.py``),
which interpolates bilinearly within 0.13 m RMS (0.54 m at the 99th percentile, 3.9 m at
worst) of the 15' grid. For the Copernicus DEM, EGM96 stands in for EGM2008: the two models
differ by a few decimetres RMS (metres at worst, in rugged terrain), i.e. well under a 10 m
pixel on the ground.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

GRID_FILE = "egm96_30min.npz"


@functools.lru_cache(maxsize=1)
def _grid() -> tuple[np.ndarray, float, float, float]:
    with resources.files("sen12ms_build.sar").joinpath("data", GRID_FILE).open("rb") as f:
        z = np.load(f)
        cm = np.cumsum(z["undulation_cm_delta"].astype(np.int32), axis=1)
        lat0, lon0, step = float(z["lat0"]), float(z["lon0"]), float(z["step"])
    n = cm.astype(np.float64) / 100.0
    return np.concatenate([n, n[:, :1]], axis=1), lat0, lon0, step  # wrap column at 180 E


def undulation(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """EGM96 geoid height N (metres above the WGS 84 ellipsoid), bilinear in the 0.5 degree
    grid.

    Args:
        lat, lon: degrees (any shape, broadcast together).
    Returns:
        float64 array of the broadcast shape.
    """
    grid, lat0, lon0, step = _grid()
    lat, lon = np.broadcast_arrays(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
    y = np.clip((lat0 - lat) / step, 0.0, grid.shape[0] - 1.000001)
    x = np.mod(lon - lon0, 360.0) / step
    i = np.floor(y).astype(np.int64)
    j = np.minimum(np.floor(x).astype(np.int64), grid.shape[1] - 2)
    fy, fx = y - i, x - j
    return ((grid[i, j] * (1 - fx) + grid[i, j + 1] * fx) * (1 - fy)
            + (grid[i + 1, j] * (1 - fx) + grid[i + 1, j + 1] * fx) * fy)
