"""Patch windows at their edges (tiling.patch_windows / patch_count): survivors of the
mutation gate in tiling.py."""

from __future__ import annotations

import pytest

from sen12ms_build.raster import tiling


@pytest.mark.parametrize("size, stride", [(0, 128), (256, 0), (-1, 1), (1, -1), (0, 0)])
def test_non_positive_size_or_stride_is_refused(size, stride):
    with pytest.raises(ValueError, match="positive"):
        tiling.patch_windows(512, 512, size, stride)


def test_smallest_valid_size_and_stride():
    ws = tiling.patch_windows(3, 2, 1, 1)
    assert [(w.patch, w.row, w.col, w.size) for w in ws] == [
        (1, 0, 0, 1), (2, 0, 1, 1), (3, 0, 2, 1), (4, 1, 0, 1), (5, 1, 1, 1), (6, 1, 2, 1)]
    assert tiling.patch_count(3, 2, 1, 1) == 6


@pytest.mark.parametrize("width, height, size, stride", [
    (512, 512, 256, 128), (640, 384, 256, 128), (255, 512, 256, 128), (256, 256, 256, 128),
    (1000, 700, 256, 256), (600, 600, 200, 150),
])
def test_count_matches_the_windows(width, height, size, stride):
    ws = tiling.patch_windows(width, height, size, stride)
    assert len(ws) == tiling.patch_count(width, height, size, stride)
    assert [w.patch for w in ws] == list(range(1, len(ws) + 1))
    assert all(w.row + size <= height and w.col + size <= width for w in ws)


def test_patch_records_carry_their_bounds(tmp_path):
    """Each record's bounds (left, bottom, right, top) are its window on the scene grid."""
    import numpy as np
    from affine import Affine

    from sen12ms_build.raster.io import write_raster
    from sen12ms_build.products import LC, S1, S2

    t = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5300000.0)
    paths = {}
    for m in (S1, S2, LC):
        data = np.ones((m.count, 320, 384), m.dtype)
        paths[m.key] = tmp_path / f"{m.key}.tif"
        write_raster(paths[m.key], data, crs="EPSG:32632", transform=t, nodata=m.nodata)
    recs = tiling.tile_scene(paths, lambda dd, p: tmp_path / "out" / f"{dd}_{p}.tif",
                             lambda a: (False, "test", {}), 256, 64)
    assert len(recs) == 2 * 3
    for r in recs:
        left, bottom, right, top = r["bounds"]
        assert left == 600000.0 + 10.0 * r["col"] and right == left + 2560.0
        assert top == 5300000.0 - 10.0 * r["row"] and bottom == top - 2560.0
