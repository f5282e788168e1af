"""The warp's fast path on exports shaped like the backends': a Sentinel-2 export clipped to
the ROI grown by ``CLIP_MARGIN_PX`` export pixels (nodata beyond), as the local backend and
Earth Engine write it.

* the kernel reach is sound: every source pixel outside it set to nodata, the masked warp
  gives the same pixels (so no pixel outside it is read);
* the fast path is taken for bilinear and nearest on such an export (the clip's corners lie
  outside the reach), gives the masked warp's pixels, and GDAL runs its no-mask kernel for
  it (no destination nodata during the warp: with one GDAL uses its generic kernel), while
  the written file declares the modality's nodata;
* cubic reads farther than the clip's margin: it keeps the masked warp.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
from rasterio.features import geometry_mask
from scipy import ndimage

import sen12ms_build.raster.warp as rp
from sen12ms_build.demo.ground import load_ground
from sen12ms_build.products import CLIP_MARGIN_PX, LC, S2
from sen12ms_build.raster.io import GTIFF_PROFILE
from sen12ms_build.roi import ROI

ROI_ = ROI.at(1, 0, "listed", -75.619, 37.673, 1920.0)  # 192 x 192 px UTM scene


@pytest.fixture(scope="module")
def clipped(tmp_path_factory):
    """{modality key: export path}: the real ground on the ROI's export grid, nodata beyond
    the ROI ring grown by CLIP_MARGIN_PX pixels (binary dilation, as mosaic.engine clips)."""
    ground, _ = load_ground()
    g = ROI_.export_grid()
    roi = ~geometry_mask([{"type": "Polygon", "coordinates": [ROI_.ring()]}],
                         out_shape=g.shape, transform=g.transform)
    keep = ndimage.binary_dilation(roi, iterations=CLIP_MARGIN_PX)
    folder = tmp_path_factory.mktemp("clipped")
    out = {}
    for m in (S2, LC):
        block = ground[:, :g.height, :g.width]
        data = block if m is S2 else np.stack(
            [np.where(block[7] < 600, 17, np.where(block[7] > 2500, 4, 12))] * m.count)
        data = data.astype(m.dtype)
        data[:, ~keep] = m.nodata
        prof = {**GTIFF_PROFILE, "count": m.count, "dtype": m.dtype, "width": g.width,
                "height": g.height, "crs": g.crs, "transform": g.transform, "nodata": m.nodata}
        out[m.key] = folder / f"{m.key}.tif"
        with rasterio.open(out[m.key], "w", **prof) as dst:
            dst.write(data)
    return out


def _warp(src, dst, modality, method, fast, monkeypatch, capfd=None):
    """warp_to_file's pixels and nodata, whether the fast path ran, and GDAL's kernels (its
    debug lines, which its warp threads write to the process's stderr: ``capfd``)."""
    real = rp._warp_source
    taken = []

    def spy(s, grid, meth, nodata, *threads):
        plain, nd = real(s, grid, meth, nodata, *threads) if fast else (None, nodata)
        taken.append(plain is not None)
        return plain, nd

    monkeypatch.setattr(rp, "_warp_source", spy)
    if capfd is not None:
        capfd.readouterr()
    with rasterio.Env(CPL_DEBUG=capfd is not None):
        rp.warp_to_file(src, dst, ROI_.scene_grid(), modality, method)
    kernels = set(re.findall(r"GDALWarpKernel\(\)::(\w+)\(", capfd.readouterr().err)) \
        if capfd is not None else set()
    with rasterio.open(dst) as f:
        return f.read(), f.nodata, taken[0], kernels


@pytest.mark.parametrize("key, method, kernel", [
    ("s2", "bilinear", "GWKBilinearNoMasksOrDstDensityOnlyUShort"),
    ("lc", "nearest", "GWKNearestNoMasksOrDstDensityOnlyShort")])
def test_clipped_export_takes_the_no_mask_kernel(clipped, tmp_path, key, method, kernel,
                                                monkeypatch, capfd):
    m = {"s2": S2, "lc": LC}[key]
    fast, nd_fast, taken, k_fast = _warp(clipped[key], tmp_path / "f.tif", m, method, True,
                                         monkeypatch, capfd)
    slow, nd_slow, not_taken, k_slow = _warp(clipped[key], tmp_path / "s.tif", m, method,
                                             False, monkeypatch, capfd)
    assert taken and not not_taken
    np.testing.assert_array_equal(fast, slow)
    assert nd_fast == nd_slow == m.nodata
    assert k_fast == {kernel}
    assert k_slow and kernel not in k_slow  # the masked warp: a masked or generic kernel


def test_cubic_reads_past_the_clip_margin(clipped, tmp_path, monkeypatch):
    _, _, taken, _ = _warp(clipped["s2"], tmp_path / "c.tif", S2, "cubic", True, monkeypatch)
    assert not taken


@pytest.mark.parametrize("method", ["bilinear", "nearest", "cubic"])
def test_kernel_reach_holds_every_pixel_read(clipped, tmp_path, method, monkeypatch):
    """Set every export pixel outside the reach to nodata: the masked warp (which would
    leave out or lose any nodata pixel it read) gives the same pixels."""
    grid = ROI_.scene_grid()
    with rasterio.open(clipped["s2"]) as src:
        reach = rp.kernel_reach(src, grid, method)
        data, prof = src.read(), src.profile
    assert reach is not None
    win, inside = reach
    outside = np.ones(data.shape[1:], bool)
    r0, c0 = int(win.row_off), int(win.col_off)
    outside[r0:r0 + inside.shape[0], c0:c0 + inside.shape[1]] &= ~inside
    assert (data[:, outside] != 0).any()  # data outside the reach: the test removes some
    holed = data.copy()
    holed[:, outside] = 0
    with rasterio.open(tmp_path / "holed.tif", "w", **prof) as dst:
        dst.write(holed)
    a, _, _, _ = _warp(clipped["s2"], tmp_path / "a.tif", S2, method, False, monkeypatch)
    b, _, _, _ = _warp(tmp_path / "holed.tif", tmp_path / "b.tif", S2, method, False,
                       monkeypatch)
    np.testing.assert_array_equal(a, b)
