"""Tiler: counts, names, dtypes, band order and identical triplet geotransforms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build.dataset import layout
from sen12ms_build.raster.io import write_raster
from sen12ms_build.products import LC, S1, S2
from sen12ms_build.raster.tiling import patch_count, patch_windows, tile_scene


def scene(tmp: Path, width: int, height: int, epsg: int = 32632) -> dict[str, Path]:
    """A UTM triplet with position-coded values so patches can be checked."""
    t = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5300000.0)
    rows, cols = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    s2 = np.stack([(rows * 7 + cols + b) % 60000 + 1 for b in range(13)]).astype(np.uint16)
    s1 = np.stack([-10 - rows / 1000.0, -17 - cols / 1000.0]).astype(np.float32)
    lc = rng.choice([4, 12, 13, 17], size=(4, height, width)).astype(np.uint16)
    paths = {}
    for m, data in ((S1, s1), (S2, s2), (LC, lc)):
        paths[m.key] = tmp / f"{m.key}.tif"
        write_raster(paths[m.key], data, crs=f"EPSG:{epsg}", transform=t, nodata=m.nodata,
                     descriptions=m.descriptions)
    return paths


@pytest.mark.parametrize("w, h", [(700, 600), (256, 256), (640, 640), (1000, 300), (255, 900)])
def test_patch_count_formula(w, h):
    expected = ((w - 256) // 128 + 1) * ((h - 256) // 128 + 1) if min(w, h) >= 256 else 0
    assert patch_count(w, h) == expected == len(patch_windows(w, h))


def test_windows_row_major_from_one():
    ws = patch_windows(512, 384, 256, 128)
    assert [(w.patch, w.row, w.col) for w in ws] == [
        (1, 0, 0), (2, 0, 128), (3, 0, 256), (4, 128, 0), (5, 128, 128), (6, 128, 256)]


def test_tile_scene_writes_sen12ms_patches(tmp_path):
    paths = scene(tmp_path, 700, 600)
    root = tmp_path / "ds"

    def name_for(dd, patch):
        return layout.patch_path(root, 1158, "spring", dd, 7, patch)

    recs = tile_scene(paths, name_for, lambda a: (True, "", {}), 256, 128)
    assert len(recs) == 4 * 3 == sum(r["kept"] for r in recs)
    folder = root / "ROIs1158_spring"
    assert sorted(p.name for p in folder.iterdir()) == ["lc_7", "s1_7", "s2_7"]
    names = sorted(p.name for p in (folder / "s2_7").iterdir())
    assert names == sorted(f"ROIs1158_spring_s2_7_p{i}.tif" for i in range(1, 13))
    with rasterio.open(paths["s2"]) as src:
        full_s2 = src.read()
    mask = os.umask(0)
    os.umask(mask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~mask for p in folder.rglob("*.tif"))
    for rec in recs:
        metas = {}
        for dd, m in (("s1", S1), ("s2", S2), ("lc", LC)):
            with rasterio.open(rec["files"][dd]) as f:
                assert (f.count, f.dtypes[0], f.width, f.height) == (m.count, m.dtype, 256, 256)
                assert f.descriptions == m.descriptions
                assert f.crs.to_epsg() == 32632
                assert (np.isnan(f.nodata) if dd == "s1" else f.nodata == m.nodata)
                metas[dd] = f.transform
                if dd == "s2":
                    np.testing.assert_array_equal(
                        f.read(), full_s2[:, rec["row"]:rec["row"] + 256,
                                          rec["col"]:rec["col"] + 256])
        assert metas["s1"] == metas["s2"] == metas["lc"]  # identical, not just close
        assert metas["s2"].c == 600000.0 + 10 * rec["col"]
        assert metas["s2"].f == 5300000.0 - 10 * rec["row"]


def test_rejected_patches_are_not_written(tmp_path):
    paths = scene(tmp_path, 512, 256)
    root = tmp_path / "ds"
    recs = tile_scene(paths, lambda dd, p: layout.patch_path(root, 1, "fall", dd, 2, p),
                      lambda a: ((a["s2"][0, 0, 0] // 128) % 2 == 0, "test", {}), 256, 128)
    kept = {r["patch"] for r in recs if r["kept"]}
    files = {layout.parse_patch_filename(p.name).patch
             for p in (root / "ROIs1_fall" / "s2_2").glob("*.tif")}
    assert files == kept and 0 < len(kept) < len(recs)


def test_triplet_must_share_a_grid(tmp_path):
    paths = scene(tmp_path, 300, 300)
    with rasterio.open(paths["lc"]) as src:
        data, prof = src.read(), src.profile
    write_raster(paths["lc"], data, crs=prof["crs"], nodata=255,
                 transform=prof["transform"] @ Affine.translation(1, 0))
    with pytest.raises(ValueError, match="not on the grid"):
        tile_scene(paths, lambda dd, p: tmp_path / f"{dd}_{p}.tif", lambda a: (True, "", {}))


def test_patch_names_round_trip():
    name = layout.patch_filename(2017, "winter", "lc", 146, 202)
    assert name == "ROIs2017_winter_lc_146_p202.tif"
    assert layout.parse_patch_filename(name) == layout.PatchName(2017, "winter", "lc", 146, 202)
    with pytest.raises(ValueError):
        layout.parse_patch_filename("ROIs2017_monsoon_lc_1_p2.tif")
