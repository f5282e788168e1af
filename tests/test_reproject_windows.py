"""reproject's fast path (aligned_window/_read_aligned) against GDAL's warper on small
rasters written here, and warp_to_file's profile and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sen12ms_build.geo import Grid
from sen12ms_build.raster.io import InputError
from sen12ms_build.products import LC
from sen12ms_build.raster.warp import (aligned_window, pixel_is_square, resampling, strips,
                                     warp_array, warp_to_file)

CRS = "EPSG:32632"
T0 = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5300000.0)


def _raster(path: Path, data: np.ndarray, transform=T0, crs=CRS, nodata=255) -> Path:
    c, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", count=c, height=h, width=w,
                       dtype=data.dtype.name, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(data)
    return path


@pytest.fixture()
def lc_file(tmp_path):
    data = (np.arange(4 * 12 * 15).reshape(4, 12, 15) % 200 + 1).astype(np.uint16)
    return _raster(tmp_path / "lc.tif", data)


def _gdal(path, grid, nodata):
    with rasterio.open(path) as src, WarpedVRT(
            src, crs=grid.crs, transform=grid.transform, width=grid.width,
            height=grid.height, nodata=nodata, src_nodata=nodata) as vrt:
        return vrt.read()


@pytest.mark.parametrize("dcol, drow, w, h", [
    (0, 0, 15, 12), (3, 2, 5, 4), (-4, 0, 8, 5), (0, -3, 6, 6), (10, 9, 9, 7),
    (-2, -2, 20, 17), (20, 0, 4, 4), (0, 15, 3, 3)])
def test_aligned_read_equals_gdal_warp(lc_file, dcol, drow, w, h):
    grid = Grid(CRS, T0 @ Affine.translation(dcol, drow), w, h)
    with rasterio.open(lc_file) as src:
        win = aligned_window(src, grid, 255)
    assert win == Window(dcol, drow, w, h)
    got = warp_array(lc_file, grid, "nearest", 255)
    np.testing.assert_array_equal(got, _gdal(lc_file, grid, 255))
    assert got.shape == (4, h, w)
    two = warp_array(lc_file, grid, "nearest", 255, bands=[2, 4])
    np.testing.assert_array_equal(two, got[[1, 3]])


def test_not_aligned_means_the_warper(lc_file, tmp_path):
    cases = {
        "other crs": Grid("EPSG:32633", T0, 5, 5),
        "other pixel size": Grid(CRS, Affine(20.0, 0, T0.c, 0, -20.0, T0.f), 5, 5),
        "other y pixel size": Grid(CRS, Affine(10.0, 0, T0.c, 0, -20.0, T0.f), 5, 5),
        "sub-pixel column": Grid(CRS, T0 @ Affine.translation(0.3, 0), 5, 5),
        "sub-pixel row": Grid(CRS, T0 @ Affine.translation(0, 0.3), 5, 5),
        "rotated": Grid(CRS, Affine(10.0, 0.5, T0.c, 0, -10.0, T0.f), 5, 5),
    }
    with rasterio.open(lc_file) as src:
        for name, grid in cases.items():
            assert aligned_window(src, grid, 255) is None, name
        # a tiny offset below the tolerance is still a whole pixel
        near = Grid(CRS, T0 @ Affine.translation(2 + 1e-9, 1 - 1e-9), 5, 5)
        assert aligned_window(src, near, 255) == Window(2, 1, 5, 5)
        assert aligned_window(src, Grid(CRS, T0, 5, 5), 0) is None  # other nodata
    nan = _raster(tmp_path / "nan.tif", np.ones((1, 4, 4), np.float32), nodata=float("nan"))
    undeclared = _raster(tmp_path / "none.tif", np.ones((1, 4, 4), np.uint16), nodata=None)
    nocrs = _raster(tmp_path / "nocrs.tif", np.ones((1, 4, 4), np.uint16), crs=None)
    g = Grid(CRS, T0, 4, 4)
    with rasterio.open(nan) as src:
        assert aligned_window(src, g, float("nan")) == Window(0, 0, 4, 4)
        assert aligned_window(src, g, 0.0) is None
    with rasterio.open(undeclared) as src:  # no nodata declared: the caller's applies
        assert aligned_window(src, g, 7) == Window(0, 0, 4, 4)
    with rasterio.open(nocrs) as src:
        assert aligned_window(src, g, 255) is None


def test_outside_the_source_is_nodata_or_zero(lc_file):
    grid = Grid(CRS, T0 @ Affine.translation(13, 10), 4, 4)
    got = warp_array(lc_file, grid, "nearest", 255)
    assert (got[:, :2, :2] != 255).all() and (got[:, 2:] == 255).all()
    assert (got[:, :, 2:] == 255).all()
    out = warp_array(lc_file, grid, "nearest", None, dtype="int32")
    assert out.dtype == np.int32


def test_strips_cover_the_raster():
    got = list(strips(1100, 30))  # 512 rows by default
    assert got == [Window(0, 0, 30, 512), Window(0, 512, 30, 512), Window(0, 1024, 30, 76)]
    assert list(strips(512, 7, rows=512)) == [Window(0, 0, 7, 512)]


def test_resampling_names():
    assert resampling("bilinear") == rasterio.enums.Resampling.bilinear
    with pytest.raises(ValueError, match="unknown resampling 'cubicly'"):
        resampling("cubicly")


def test_warp_to_file_small_grid_profile_and_errors(lc_file, tmp_path):
    grid = Grid(CRS, T0 @ Affine.translation(1, 1), 10, 8)
    dst = warp_to_file(lc_file, tmp_path / "out" / "lc.tif", grid, LC, threads=1)
    with rasterio.open(dst) as f:
        assert (f.width, f.height, f.count, f.dtypes[0], f.nodata) == (10, 8, 4, "uint16", 255)
        assert not f.profile.get("tiled", False)
        assert f.descriptions == LC.descriptions
        assert f.tags()["RESAMPLING"] == "nearest" and f.tags()["SOURCE"] == "lc.tif"
        np.testing.assert_array_equal(f.read(), _gdal(lc_file, grid, 255))
    assert pixel_is_square(dst, 10.0) and not pixel_is_square(dst, 20.0)
    # a grid wide enough for 256 x 256 blocks but only 8 rows high is not tiled either
    wide = Grid(CRS, T0, 300, 8)
    src = _raster(tmp_path / "wide_src.tif", np.ones((4, 8, 300), np.uint16))
    with rasterio.open(warp_to_file(src, tmp_path / "wide.tif", wide, LC, threads=1)) as f:
        assert (f.width, f.height) == (300, 8) and not f.profile.get("tiled", False)
    two = _raster(tmp_path / "two.tif", np.ones((2, 4, 4), np.uint16))
    with pytest.raises(InputError, match="expected 4 bands for lc, found 2"):
        warp_to_file(two, tmp_path / "x.tif", grid, LC)
    assert not (tmp_path / "x.tif").exists()
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00 truncated")
    with pytest.raises(InputError, match="unreadable or truncated"):
        warp_to_file(bad, tmp_path / "y.tif", grid, LC)
    with pytest.raises(InputError, match="unreadable or truncated"):
        warp_array(bad, grid, "nearest", 255)


def test_pixel_is_square_needs_a_projected_north_up_grid(tmp_path):
    geo = _raster(tmp_path / "geo.tif", np.ones((1, 2, 2), np.uint16), crs="EPSG:4326",
                  transform=Affine(10.0, 0, 0, 0, -10.0, 0))
    assert not pixel_is_square(geo, 10.0)
    rect = _raster(tmp_path / "rect.tif", np.ones((1, 2, 2), np.uint16),
                   transform=Affine(10.0, 0, 0, 0, -10.5, 0))
    assert not pixel_is_square(rect, 10.0)


def test_warp_to_file_256_grid_is_tiled_and_source_nodata_wins(tmp_path):
    """A 256 x 256 scene gets 256 x 256 blocks; the source's own nodata (0 here, where
    land cover's is 255) marks its holes, which become 255 in the output."""
    data = np.full((4, 256, 256), 7, np.uint16)
    data[:, :10] = 0  # hole in the source, declared by its nodata 0
    src = _raster(tmp_path / "src.tif", data, nodata=0)
    grid = Grid(CRS, T0, 256, 256)
    with rasterio.open(warp_to_file(src, tmp_path / "o.tif", grid, LC, threads=1)) as f:
        assert f.block_shapes[0] == (256, 256)  # (reads back as untiled: one block wide)
        out = f.read()
    assert (out[:, :10] == 255).all() and (out[:, 10:] == 7).all()


def test_warper_settings_and_when_it_is_skipped(lc_file, tmp_path, monkeypatch):
    """GDAL's warper runs with a bounded memory (256 MB by default) and, from file to file,
    on 2 threads for ``ALL_CPUS``; a nearest-neighbour read of an aligned grid skips it,
    a bilinear one does not."""
    import sen12ms_build.raster.warp as rp

    vrts, warps = [], []
    real_vrt, real_reproject = rp.WarpedVRT, rp.reproject

    def vrt(*a, **k):
        vrts.append(k)
        return real_vrt(*a, **k)

    def warp(*a, **k):
        warps.append(k)
        return real_reproject(*a, **k)

    monkeypatch.setattr(rp, "WarpedVRT", vrt)
    monkeypatch.setattr(rp, "reproject", warp)
    aligned = Grid(CRS, T0 @ Affine.translation(2, 3), 6, 5)
    plain = warp_array(lc_file, aligned, "nearest", 255)
    assert vrts == []  # a plain read
    warped = warp_array(lc_file, aligned, "bilinear", 255)
    assert len(vrts) == 1 and vrts[0]["warp_mem_limit"] == 256
    assert vrts[0]["resampling"] == rasterio.enums.Resampling.bilinear
    np.testing.assert_array_equal(warped, plain)  # whole-pixel shift: same values
    warp_to_file(lc_file, tmp_path / "a.tif", aligned, LC)
    warp_to_file(lc_file, tmp_path / "b.tif", aligned, LC, threads=3)
    assert [w["num_threads"] for w in warps] == [2, 3]
    # the destination starts as nodata: declared (masked warp), or given (fast path)
    assert all(w["warp_mem_limit"] == 256 and (w["init_dest_nodata"] or
                                               w.get("INIT_DEST") == LC.nodata) for w in warps)
