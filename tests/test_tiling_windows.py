"""Patch windows at their edges (tiling.patch_windows / patch_count): survivors of the
mutation gate in tiling.py."""

from __future__ import annotations

import pytest

from sen12ms_build import tiling


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
