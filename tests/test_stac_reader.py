"""The stac reader's fast path (``reader.aligned_read``): where the scene grid lines up with
a source's pixels, reading the window and repeating whole pixels must give exactly what
GDAL's warper gives (the truth here), and the fast path must step aside everywhere else."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from sen12ms_build.backends.stac.reader import aligned_read
from sen12ms_build.geo import Grid

CRS = "EPSG:32618"
X0, Y0 = 435_700.0, 4_179_500.0


def _source(path, res: float, dtype: str, nodata, shape=(60, 50)) -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(1, 5000, shape).astype(dtype)
    data[:5, :7] = nodata  # a corner of no data
    if np.issubdtype(np.dtype(dtype), np.floating):
        data[10, 10] = np.nan if nodata is None or np.isnan(nodata) else data[10, 10]
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype=dtype, crs=CRS, transform=Affine(res, 0, X0, 0, -res, Y0),
                       nodata=nodata, tiled=True, blockxsize=16, blockysize=16) as dst:
        dst.write(data, 1)


def _warped(src, grid: Grid, method: str, dtype: str, nodata) -> np.ndarray:
    with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                   height=grid.height, resampling=Resampling[method],
                   src_nodata=src.nodata if src.nodata is not None else nodata,
                   nodata=nodata, dtype=dtype, warp_extras={"INIT_DEST": "NO_DATA"}) as vrt:
        return vrt.read(1)


@pytest.mark.parametrize("res,method,dx,dy,size", [
    (10.0, "nearest", 3, 4, (40, 30)),     # a copy
    (10.0, "bilinear", -5, 7, (40, 30)),   # bilinear at pixel centres: a copy; off the west edge
    (20.0, "nearest", 1, 3, (70, 90)),     # 20 m bands, odd offsets, past the east and south
    (60.0, "nearest", 11, 5, (64, 64)),    # 60 m bands
    (60.0, "nearest", -13, -8, (80, 100)),  # off the north-west corner
])
def test_the_fast_path_gives_the_warpers_pixels(tmp_path, res, method, dx, dy, size):
    path = tmp_path / "src.tif"
    _source(path, res, "uint16", 0)
    grid = Grid(CRS, Affine(10.0, 0, X0 + 10.0 * dx, 0, -10.0, Y0 - 10.0 * dy), size[1],
                size[0])
    with rasterio.open(path) as src:
        fast = aligned_read(src, grid, method, "uint16", 0)
        want = _warped(src, grid, method, "uint16", 0)
    assert fast is not None and fast.dtype == want.dtype
    np.testing.assert_array_equal(fast, want)
    assert (fast == 0).any() and (fast != 0).any()  # the case has both


def test_float_with_nan_nodata_and_a_wider_output_dtype(tmp_path):
    path = tmp_path / "dem.tif"
    _source(path, 20.0, "float32", float("nan"))
    grid = Grid(CRS, Affine(10.0, 0, X0 - 30.0, 0, -10.0, Y0 + 20.0), 50, 40)
    with rasterio.open(path) as src:
        fast = aligned_read(src, grid, "nearest", "float64", float("nan"))
        want = _warped(src, grid, "nearest", "float64", float("nan"))
    np.testing.assert_array_equal(fast, want)  # NaN where NaN
    assert np.isnan(fast).any()


def test_a_source_nodata_other_than_the_outputs_becomes_the_outputs(tmp_path):
    path = tmp_path / "src.tif"
    _source(path, 10.0, "uint16", 65535)
    grid = Grid(CRS, Affine(10.0, 0, X0, 0, -10.0, Y0), 20, 20)
    with rasterio.open(path) as src:
        fast = aligned_read(src, grid, "nearest", "uint16", 0)
        want = _warped(src, grid, "nearest", "uint16", 0)
    np.testing.assert_array_equal(fast, want)
    assert (fast[:5, :7] == 0).all()


@pytest.mark.parametrize("why,grid,method,dtype", [
    ("half a pixel off", Grid(CRS, Affine(10.0, 0, X0 + 5.0, 0, -10.0, Y0), 10, 10),
     "nearest", "uint16"),
    ("another CRS", Grid("EPSG:32617", Affine(10.0, 0, X0, 0, -10.0, Y0), 10, 10),
     "nearest", "uint16"),
    ("bilinear up-sampling", Grid(CRS, Affine(10.0, 0, X0, 0, -10.0, Y0), 10, 10),
     "bilinear", "uint16"),
    ("a narrowing dtype", Grid(CRS, Affine(10.0, 0, X0, 0, -10.0, Y0), 10, 10),
     "nearest", "uint8"),
    ("a finer source", Grid(CRS, Affine(40.0, 0, X0, 0, -40.0, Y0), 10, 10),
     "nearest", "uint16"),
])
def test_the_fast_path_steps_aside_when_the_grids_do_not_line_up(tmp_path, why, grid, method,
                                                                 dtype):
    path = tmp_path / "src.tif"
    _source(path, 20.0, "uint16", 0)
    with rasterio.open(path) as src:
        assert aligned_read(src, grid, method, dtype, 0) is None, why
