"""warp_to_file's fast path: when the source pixels the warp reads hold no nodata, GDAL's
warper reads the export through a VRT without nodata (no per-band validity masks). It must
give the same bytes as the masked warp, and step aside whenever nodata lies in reach.

The export is the demo's real Sentinel-2 ground (13 bands, uint16 L1C) on a ROI's EPSG:4326
export grid, warped to the ROI's UTM scene grid, as the pipeline does."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import sen12ms_build.raster.warp as rp
from sen12ms_build.demo.ground import load_ground
from sen12ms_build.raster.io import GTIFF_PROFILE
from sen12ms_build.products import LC, S1, S2
from sen12ms_build.roi import ROI

ROI_ = ROI.at(1, 0, "listed", -75.619, 37.673, 1920.0)  # 192 x 192 px UTM scene


@pytest.fixture(scope="module")
def ground():
    g, _grid = load_ground()
    return g


def _export(path, ground, modality, holes=None):
    """The ROI's export grid filled from the real ground (S1 and land cover derived from
    B8, as the benchmark does), ``holes`` (row slice, col slice) set to the nodata."""
    g = ROI_.export_grid()
    block = ground[:, :g.height, :g.width]
    if modality is S2:
        data = block
    elif modality is S1:
        vv = -20 + 12 * np.clip(block[7] / 4000, 0, 1)
        data = np.stack([vv, vv - 7])
    else:
        cls = np.where(block[7] < 600, 17, np.where(block[7] > 2500, 4, 12))
        data = np.stack([cls] * modality.count)
    data = data.astype(modality.dtype)
    if holes is not None:
        data[(slice(None), *holes)] = modality.nodata
    prof = {**GTIFF_PROFILE, "count": modality.count, "dtype": modality.dtype,
            "width": g.width, "height": g.height, "crs": g.crs, "transform": g.transform,
            "nodata": modality.nodata}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return path


def _warp(tmp_path, src, name, modality, method, fast, monkeypatch):
    """warp_to_file's output array, with the fast path allowed or not; and whether it ran."""
    real = rp._warp_source
    taken = []

    def spy(s, grid, method, nodata, *threads):
        plain, nd = real(s, grid, method, nodata, *threads) if fast else (None, nodata)
        taken.append(plain is not None)
        return plain, nd

    monkeypatch.setattr(rp, "_warp_source", spy)
    out = rp.warp_to_file(src, tmp_path / name, ROI_.scene_grid(), modality, method)
    with rasterio.open(out) as f:
        return f.read(), taken[0]


@pytest.mark.parametrize("method", ["bilinear", "cubic", "nearest"])
def test_fast_path_gives_the_masked_warps_bytes(tmp_path, ground, method, monkeypatch):
    src = _export(tmp_path / "s2.tif", ground, S2)
    fast, taken = _warp(tmp_path, src, "fast.tif", S2, method, True, monkeypatch)
    slow, not_taken = _warp(tmp_path, src, "slow.tif", S2, method, False, monkeypatch)
    # cubic reads 2 px around a sampled position (its centre-to-centre radius), the
    # position half a scene pixel inside the outline: within the export's 2 px margin
    assert taken and not not_taken
    assert (fast != 0).all()  # the scene lies inside the export: no nodata out
    np.testing.assert_array_equal(fast, slow)


def test_nodata_in_reach_keeps_the_masked_warp(tmp_path, ground, monkeypatch):
    """A hole in the middle of the export: the masks are needed, so no fast path, and the
    hole comes out as nodata."""
    g = ROI_.export_grid()
    rows, cols = slice(g.height // 2 - 5, g.height // 2 + 5), slice(g.width // 2 - 5,
                                                                      g.width // 2 + 5)
    src = _export(tmp_path / "s2.tif", ground, S2, holes=(rows, cols))
    with rasterio.open(src) as s:
        win, inside = rp.kernel_reach(s, ROI_.scene_grid(), "bilinear")
        assert rp.has_nodata(s, win, 0.0, inside)
    out, taken = _warp(tmp_path, src, "o.tif", S2, "bilinear", True, monkeypatch)
    assert not taken
    assert (out == 0).all(axis=0).sum() >= 64  # the ~10 x 8 m... hole, 10 m pixels
    assert ((out == 0).any(axis=0) == (out == 0).all(axis=0)).all()


def test_hole_outside_the_warps_reach_does_not_matter(tmp_path, ground, monkeypatch):
    """Nodata in the export's corner, outside the pixels the warp reads (the clip's corners
    in a real export): the fast path runs and gives the masked warp's bytes."""
    src = _export(tmp_path / "s2.tif", ground, S2, holes=(slice(0, 2), slice(0, 2)))
    with rasterio.open(src) as s:
        win, inside = rp.kernel_reach(s, ROI_.scene_grid(), "bilinear")
        assert rp.has_nodata(s, win, 0.0) and not rp.has_nodata(s, win, 0.0, inside)
    fast, taken = _warp(tmp_path, src, "fast.tif", S2, "bilinear", True, monkeypatch)
    slow, _ = _warp(tmp_path, src, "slow.tif", S2, "bilinear", False, monkeypatch)
    assert taken
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("modality", [S1, LC], ids=["s1", "lc"])
def test_other_modalities(tmp_path, ground, modality, monkeypatch):
    """Float SAR keeps the masked warp (its NaN kernels gain nothing); integer land cover
    takes the fast path. Both give the masked warp's values."""
    src = _export(tmp_path / f"{modality.key}.tif", ground, modality)
    fast, taken = _warp(tmp_path, src, "fast.tif", modality, None, True, monkeypatch)
    slow, _ = _warp(tmp_path, src, "slow.tif", modality, None, False, monkeypatch)
    assert taken == (modality is LC)
    np.testing.assert_array_equal(fast, slow)


def test_source_window_outside_the_source_is_none(tmp_path, ground):
    """A scene grid reaching past the export's edge: no window, so the masked warp runs."""
    src = _export(tmp_path / "s2.tif", ground, S2)
    big = ROI.at(1, 0, "listed", -75.619, 37.673, 1920.0 * 3).scene_grid()
    with rasterio.open(src) as s:
        assert rp.kernel_reach(s, big, "bilinear") is None
        assert rp._warp_source(s, big, "bilinear", 0.0) == (None, 0.0)
