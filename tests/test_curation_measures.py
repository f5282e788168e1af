"""curation's measures against brute-force references and hand-worked cases on small arrays
written here (the patch-round arithmetic: shares, stripes, ranges, border noise, seams,
haze block floors)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sen12ms_build.curation import rounds as curation
from sen12ms_build.products import S2_BANDS

B = {n: i for i, n in enumerate(S2_BANDS)}


def test_empty_arrays_are_all_nodata():
    assert curation.nodata_share("s2", np.zeros((13, 0, 0), np.uint16)) == 1.0


def test_poor_shares_ignore_uncovered_pixels():
    aux = np.zeros((2, 3, 4), np.uint8)
    aux[1] = [[1, 1, 0, 255],
              [1, 0, 0, 255],
              [0, 0, 1, 255]]
    assert curation.poor_share(aux) == pytest.approx(4 / 9)
    # largest 8-connected poor region: the 3 pixels top left (the lone one is apart)
    assert curation.poor_blob_share(aux) == pytest.approx(3 / 9)
    aux[1, 1, 1] = 1  # joins the lone pixel diagonally at (2, 2)
    assert curation.poor_blob_share(aux) == pytest.approx(5 / 9)
    assert curation._count("aux")({"aux": aux}) == 9.0
    none = np.full((2, 2, 2), 255, np.uint8)
    assert curation.poor_share(none) == 0.0 and curation.poor_blob_share(none) == 0.0


def _runs_reference(flat_row: np.ndarray, run: int) -> np.ndarray:
    """Pixels inside >= run consecutive pixels whose neighbour pairs are all flat (loop)."""
    w = flat_row.size + 1
    out = np.zeros(w, bool)
    i = 0
    while i < flat_row.size:
        if flat_row[i]:
            j = i
            while j < flat_row.size and flat_row[j]:
                j += 1
            if j - i + 1 >= run:  # pairs i..j-1 cover pixels i..j
                out[i:j + 1] = True
            i = j
        else:
            i += 1
    return out


def test_flat_runs_equal_a_loop():
    rng = np.random.default_rng(2)
    flat = rng.random((40, 60)) < 0.9  # long flat runs, some broken
    flat[0] = True
    flat[1, :] = False
    flat[1, 5:20] = True  # 15 pairs: 16 pixels, exactly one run
    flat[2, :] = False
    flat[2, 5:19] = True  # 14 pairs: 15 pixels, too short
    got = curation._flat_runs(flat, 16)
    assert got.shape == (40, 61)
    for r in range(40):
        np.testing.assert_array_equal(got[r], _runs_reference(flat[r], 16), err_msg=str(r))
    assert got[1].sum() == 16 and not got[2].any() and got[0].all()


def test_s1_stripe_share_rows_and_columns():
    rng = np.random.default_rng(1)
    s1 = rng.normal(-12, 2, (2, 30, 30)).astype(np.float32)
    s1[:, 3, 2:18] = -20.0  # a 16-pixel constant run along a row
    s1[:, 10:27, 25] = 0.0  # a 17-pixel one along a column
    s1[:, 20, 0:15] = 1.0  # 15 pixels: too short
    s1[0, 29, 29] = np.nan  # one invalid pixel
    assert curation.s1_stripe_share(s1) == pytest.approx((16 + 17) / (900 - 1))
    assert curation.s1_stripe_share(np.full((2, 4, 4), np.nan, np.float32)) == 0.0


def test_s1_range_share_limits():
    vv = np.array([[-10.0, -50.0, -50.5, 25.0, 25.5, -10.0, -10.0, np.nan]], np.float32)
    vh = np.array([[-16.0, -55.0, -55.0, 20.0, 20.0, -4.0, -3.5, -10.0]], np.float32)
    s1 = np.stack([vv, vh])
    # bad: pixel 1 (VH -55), 2 (VV -50.5), 4 (VV 25.5), 6 (VH - VV = 6.5)
    # ok: 0, 3 (VV 25 exactly), 5 (VH - VV = 6 exactly); the NaN pixel is not counted
    assert curation.s1_range_share(s1) == pytest.approx(4 / 7)
    assert curation.s1_range_share(np.full((2, 1, 1), np.nan, np.float32)) == 0.0


@pytest.mark.parametrize("vv_db, share", [(-30.0, 50 / 55), (-27.0, 0.0)])
def test_s1_border_share_within_50_px_and_below_the_floor(vv_db, share):
    s1 = np.full((2, 8, 60), vv_db, np.float32)
    s1[:, :, :5] = np.nan  # swath edge: columns 0..4
    # valid columns 5..59; distance to no-data c - 4 <= 50 for columns 5..54
    assert curation.s1_border_share(s1) == pytest.approx(share)
    assert curation.s1_border_share(np.full((2, 3, 3), -30.0, np.float32)) == 0.0


def test_seam_step_counts_pairs_from_min_pairs_on():
    keys = np.full(32, 1, np.int32)
    diffs = np.full(32, math.log(1.25), np.float32)
    assert curation.seam_step_of(keys, diffs) == pytest.approx(0.25, rel=1e-6)
    assert curation.seam_step_of(keys[:31], diffs[:31]) == 0.0
    assert curation.seam_scene_step(keys, diffs) == pytest.approx(0.25, rel=1e-6)
    assert curation.seam_scene_step(keys[:31], diffs[:31]) == 0.0


def test_seam_samples_of_a_vertical_boundary():
    s2 = np.full((13, 4, 12), 1000, np.uint16)
    s2[:, :, 6:] = 1250
    aux = np.zeros((2, 4, 12), np.uint8)
    aux[0, :, 6:] = 1
    keys, diffs = curation.seam_samples(s2, aux)
    # one pair (cols 4, 5 | 6, 7) per row; the outer pixels 4 and 7, 3 apart
    assert keys.tolist() == [1] * 4
    np.testing.assert_allclose(diffs, math.log(1.25), rtol=1e-5)
    aux[0] = 1 - aux[0]  # sources swapped: oriented from the lower index, sign flips
    _, diffs = curation.seam_samples(s2, aux)
    np.testing.assert_allclose(diffs, -math.log(1.25), rtol=1e-5)


def test_block_floors_percentile_aux_and_water():
    blk = 4
    s2 = np.full((13, blk, 2 * blk), 1000, np.uint16)
    s2[B["B2"], :, :blk] = np.arange(16).reshape(4, 4) * 10 + 300  # 300..450 DN
    s2[B["B8"], :, :blk] = 3000  # land
    s2[B["B4"], :, :blk] = 500
    # right block: 7 of 16 pixels wet (NIR < red): not a majority
    s2[B["B8"], :, blk:] = 3000
    s2[B["B4"], :, blk:] = 500
    wet = np.zeros((blk, blk), bool)
    wet.flat[:7] = True
    s2[B["B8"], :, blk:][wet] = 100
    floors, water = curation.block_floors(s2, None, blk)
    want = np.percentile((np.arange(16) * 10 + 300) / 10000.0, 5.0)
    assert floors[0, 0] == pytest.approx(want)
    assert water.tolist() == [[False, False]]
    s2[B["B8"], :, blk:].flat[7:9] = 100  # 9 of 16 wet now
    assert curation.block_floors(s2, None, blk)[1].tolist() == [[False, True]]
    aux = np.zeros((2, blk, 2 * blk), np.uint8)
    aux[1, :2, :blk] = 1  # the darker half of the left block is poor: not clear
    floors, _ = curation.block_floors(s2, aux, blk)
    want = np.percentile((np.arange(8, 16) * 10 + 300) / 10000.0, 5.0)
    assert floors[0, 0] == pytest.approx(want)
    aux[1, :3, :blk] = 1  # fewer than half clear: no floor
    assert np.isnan(curation.block_floors(s2, aux, blk)[0][0, 0])


def test_weights_and_checks_are_fixed():
    assert curation._area({"s2": np.zeros((13, 3, 5))}) == 15.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        curation.CHECKS[0].name = "x"  # type: ignore[misc]
    assert curation.CHECKS[2].sees == "no-data pixels in lc (class 255)"


def test_flat_runs_over_leading_axes():
    """``flat`` is (..., W - 1): a stack of rows gives the rows' results."""
    rng = np.random.default_rng(6)
    flat = rng.random((2, 3, 50)) < 0.93
    got = curation._flat_runs(flat, 16)
    assert got.shape == (2, 3, 51)
    for i in range(2):
        for r in range(3):
            np.testing.assert_array_equal(got[i, r], _runs_reference(flat[i, r], 16))
    assert got.any()
