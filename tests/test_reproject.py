"""The UTM warp: 10 m square pixels in the right zone, nodata kept, classes never blended."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sen12ms_build.geo import pixel_size_m, utm_epsg
from sen12ms_build.raster.io import write_raster
from sen12ms_build.products import LC, S1, S2
from sen12ms_build.raster.warp import pixel_is_square, warp_to_file
from sen12ms_build.roi import ROI


def export(tmp, roi: ROI, modality, fill):
    """A raster on the ROI's EPSG:4326 export grid, filled by ``fill(rows, cols)``."""
    g = roi.export_grid()
    rows, cols = np.mgrid[0:g.height, 0:g.width]
    data = np.stack([fill(rows, cols, b) for b in range(modality.count)]).astype(modality.dtype)
    path = tmp / f"{modality.key}_export.tif"
    write_raster(path, data, crs=g.crs, transform=g.transform, nodata=modality.nodata)
    return path, data


@pytest.mark.parametrize("lon, lat, epsg", [
    (11.57, 48.14, 32632),     # Munich, north
    (18.42, -33.92, 32734),    # Cape Town, south
    (5.98, 45.0, 32631),       # just west of the 6 E zone edge
    (6.02, 45.0, 32632),       # just east of it
    (5.9, 60.0, 32632),        # Norway exception: zone 32 from 3 E
    (-75.62, 37.67, 32618),    # the demo archive
])
def test_warp_gives_10m_square_pixels_in_local_utm(tmp_path, lon, lat, epsg):
    roi = ROI.at(1, 1, "listed", lon, lat, 3000)
    assert roi.epsg == epsg == utm_epsg(lon, lat)
    src, _ = export(tmp_path, roi, S2, lambda r, c, b: 1000 + (r + c + b) % 500)
    dst = tmp_path / "s2_utm.tif"
    warp_to_file(src, dst, roi.scene_grid(), S2)
    assert pixel_is_square(dst, 10.0)
    with rasterio.open(dst) as f:
        assert f.crs.to_epsg() == epsg
        assert (f.res, f.width, f.height) == ((10.0, 10.0), 300, 300)
        assert f.transform.c % 10 == 0 and f.transform.f % 10 == 0
        assert f.descriptions == S2.descriptions and f.nodata == 0
        assert (f.read() > 0).all()  # the export grid covers the whole UTM square
    # the export grid really is 0.0001 degrees and non-square in metres off the equator
    px, py = pixel_size_m(roi.export_grid())
    assert py == pytest.approx(11.1, abs=0.05) and px < py


def test_nodata_survives_and_land_cover_is_never_blended(tmp_path):
    roi = ROI.at(1, 1, "listed", 11.57, 48.14, 3000)
    classes = np.array([4, 12, 13, 17], np.uint16)

    def lc(r, c, b):
        v = classes[((r // 37) + (c // 53)) % 4]
        v[40:90, 40:90] = 255  # a nodata hole
        return v

    src, data = export(tmp_path, roi, LC, lc)
    dst = tmp_path / "lc_utm.tif"
    warp_to_file(src, dst, roi.scene_grid(), LC)
    with rasterio.open(dst) as f:
        out = f.read()
        assert f.nodata == 255
    assert set(np.unique(out)) <= {4, 12, 13, 17, 255}  # nearest: no new class values
    assert (out == 255).any() and (out != 255).mean() > 0.9

    def s1(r, c, b):
        v = (-12.0 - 3 * b + np.sin(r / 9.0)).astype(np.float32)
        v[40:90, 40:90] = np.nan
        return v

    src, _ = export(tmp_path, roi, S1, s1)
    dst = tmp_path / "s1_utm.tif"
    warp_to_file(src, dst, roi.scene_grid(), S1)
    with rasterio.open(dst) as f:
        out = f.read()
        assert f.dtypes[0] == "float32" and np.isnan(f.nodata)
    hole = np.isnan(out[0])
    assert 0.01 < hole.mean() < 0.2  # the hole is still there, nothing else became nodata
    assert np.nanmin(out[0]) >= -13.0 and np.nanmax(out[0]) <= -11.0  # never mixed with NaN


def test_nearest_warp_between_aligned_grids_is_a_plain_read(tmp_path):
    """An archive already on the export grid is read, not warped: the same pixels as GDAL's
    warper, inside and outside the source (nodata), and the warper on a shifted grid."""
    from affine import Affine
    from rasterio.vrt import WarpedVRT

    from sen12ms_build.geo import Grid
    from sen12ms_build.raster.warp import aligned_window, warp_array

    roi = ROI.at(1, 0, "listed", 11.57, 48.14, 2560.0)
    path, _ = export(tmp_path, roi, S2, lambda r, c, b: 1 + (r * 7 + c * 3 + b) % 4000)
    g = roi.export_grid()
    grids = {"same": g, "overhanging": Grid(g.crs, g.transform @ Affine.translation(-9, 13),
                                            g.width, g.height),
             "half-pixel shift": Grid(g.crs, g.transform @ Affine.translation(0.5, 0), 50, 40)}
    for name, grid in grids.items():
        with rasterio.open(path) as src:
            aligned = aligned_window(src, grid, S2.nodata) is not None
            with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                           height=grid.height, nodata=S2.nodata, src_nodata=S2.nodata) as vrt:
                reference = vrt.read()
        assert aligned == (name != "half-pixel shift")
        got = warp_array(path, grid, "nearest", S2.nodata, S2.dtype)
        assert np.array_equal(got, reference), name
    over = warp_array(path, grids["overhanging"], "nearest", 0, "uint16")
    assert (over[:, :, :9] == 0).all() and (over[:, -13:] == 0).all() and over[:, 0, 9:].all()


def test_a_sources_own_nodata_is_masked_when_warping(tmp_path):
    """A source that declares its own nodata (0) warped with another destination nodata
    (255): its 0 pixels are masked, so they come out as 255 and no valid pixel next to them
    is pulled towards 0."""
    from affine import Affine

    from sen12ms_build.geo import Grid
    from sen12ms_build.raster.warp import warp_array

    t = Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0)
    data = np.full((1, 40, 40), 100, np.uint8)
    data[:, 10:20, 10:20] = 0  # the source's nodata block
    src = tmp_path / "own_nodata.tif"
    write_raster(src, data, crs="EPSG:32632", transform=t, nodata=0)
    grid = Grid("EPSG:32632", t * Affine.translation(0.5, 0.5), 39, 39)  # half-pixel shift
    out = warp_array(src, grid, "bilinear", 255, "uint8")[0]
    # output pixel (r, c) blends source pixels r..r+1, c..c+1: fully inside the block
    assert (out[10:19, 10:19] == 255).all()
    # fully outside the block: exactly the valid value, never a blend with 0
    ring = np.ones((39, 39), bool)
    ring[8:20, 8:20] = False
    assert (out[ring] == 100).all()
    assert not ((out > 0) & (out < 100)).any()
