"""mosaic against independent, brute-force references written here (plain loops over small
arrays written by the test), and the published constants.

Each reference is written from the spec (shared/spec/mosaicking.md; Schmitt et al. 2019),
not from the module, so a planted bug in mosaic.py makes these fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sen12ms_build import mosaic
from sen12ms_build.products import S2_BANDS

P = mosaic.DEFAULT_PARAMS
B = {name: i for i, name in enumerate(S2_BANDS)}


def test_published_constants():
    """The published scripts' constants (spec sections 2-3), pinned one by one."""
    assert P.reflectance_scale == 10000.0
    assert (P.b2_range, P.b1_range, P.b1_b10_range) == ((0.1, 0.5), (0.1, 0.3), (0.15, 0.2))
    assert (P.rgb_sum_range, P.ndmi_range, P.ndsi_range) == ((0.2, 0.8), (-0.1, 0.1),
                                                             (0.8, 0.6))
    assert (P.cloud_score_floor, P.cloud_kernel_radius, P.cloud_thresh) == (0.001, 5, 0.2)
    assert (P.ir_sum_thresh, P.ndvi_thresh) == (0.3, -0.1)
    assert P.cloud_heights_m[0] == 200 and P.cloud_heights_m[-1] == 9950
    assert len(P.cloud_heights_m) == 40 and set(np.diff(P.cloud_heights_m)) == {250}
    assert (P.erode_radius_px, P.erode_iterations) == (1.5, 3)
    assert (P.dilate_radius_px, P.dilate_iterations, P.shadow_max_radius_px) == (3.0, 3, 1)
    assert (P.quality_kernel_radius, P.score_scale_m, P.keep_thresh) == (5, 20.0, 5.0)
    assert (P.scorer, P.merge) == ("paper", "paper")


def _rng_l1c(shape, seed=0, zero_share=0.2):
    rng = np.random.default_rng(seed)
    img = rng.integers(1, 65535, size=shape, dtype=np.uint16)
    holes = rng.random(shape[1:]) < zero_share
    img[:, holes] = 0
    return img


@pytest.mark.parametrize("h, w, factor", [(7, 5, 2), (9, 8, 3), (4, 6, 2), (5, 5, 1)])
def test_block_mean_equals_a_loop_over_blocks(h, w, factor):
    img = _rng_l1c((3, h, w), seed=h * w)
    img[1, 0, 0] = 0  # a zero in one band only is still data (footprint = any band)
    got = mosaic.block_mean(img, factor)
    hs, ws = math.ceil(h / factor), math.ceil(w / factor)
    assert got.shape == (3, hs, ws) and got.dtype == np.uint16
    for b in range(3):
        for i in range(hs):
            for j in range(ws):
                blk = img[:, i * factor:(i + 1) * factor, j * factor:(j + 1) * factor]
                data = np.any(blk != 0, axis=0)
                vals = blk[b][data].astype(np.float64)
                want = 0 if vals.size == 0 else int(np.rint(vals.mean()))
                assert int(got[b, i, j]) == want, (b, i, j)


def test_expand_repeats_and_crops():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = mosaic.expand(x, 2, (3, 5))
    want = np.array([[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]], np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(mosaic.expand(x, 1, (1, 2)), x[:1, :2])


@pytest.mark.parametrize("pixel, factor", [((10.0, 10.0), 2), ((6.0, 6.0), 3),
                                           ((5.0, 5.0), 4), ((4.0, 9.0), 3),
                                           ((60.0, 60.0), 1), ((13.0, 13.0), 2)])
def test_score_factor_nearest_integer(pixel, factor):
    assert mosaic.score_factor(pixel) == factor


def test_rescale_and_normalized_difference_values():
    np.testing.assert_allclose(mosaic.rescale(np.array([0.1, 0.3, 0.5]), (0.1, 0.5)),
                               [0.0, 0.5, 1.0])
    np.testing.assert_allclose(mosaic.rescale(np.array([0.8, 0.7, 0.6]), (0.8, 0.6)),
                               [0.0, 0.5, 1.0])
    nd = mosaic.normalized_difference(np.array([3.0, 1.0, 0.0]), np.array([1.0, 3.0, 0.0]))
    assert nd.dtype == np.float32
    np.testing.assert_allclose(nd, [0.5, -0.5, 0.0])


def test_footprint_any_band():
    img = np.zeros((3, 2, 2), np.uint16)
    img[2, 0, 1] = 5
    img[0, 1, 1] = 1
    np.testing.assert_array_equal(mosaic.footprint(img), [[False, True], [False, True]])


def test_disk_counts():
    # offsets within the radius: r=1.5 -> 3x3 (corners at sqrt 2), r=3 -> 29 offsets
    assert mosaic.disk(1.5).shape == (3, 3) and mosaic.disk(1.5).all()
    d = mosaic.disk(3.0)
    assert d.shape == (7, 7) and int(d.sum()) == 29
    assert d[3, 0] and not d[0, 0] and not d[1, 0]
    assert int(mosaic.disk(1.0).sum()) == 5


def test_focal_mean_over_valid_equals_a_loop():
    rng = np.random.default_rng(3)
    x = rng.random((6, 7)).astype(np.float32)
    valid = rng.random((6, 7)) > 0.3
    valid[0:3, 0:3] = False  # a corner with no valid neighbour at radius 1
    got = mosaic.focal_mean(x, 1, valid)
    for i in range(6):
        for j in range(7):
            win = (slice(max(0, i - 1), i + 2), slice(max(0, j - 1), j + 2))
            v = valid[win]
            want = x[win][v].mean() if v.any() else 0.0
            assert got[i, j] == pytest.approx(want, abs=1e-6), (i, j)
    # without a mask: edges repeat the nearest value
    flat = mosaic.focal_mean(np.array([[0.0, 3.0, 6.0]]), 1)
    np.testing.assert_allclose(flat, [[1.0, 3.0, 5.0]], atol=1e-6)


def _indicator_min(r):
    """The cloud score before smoothing, from the spec's table, one pixel."""
    def resc(x, a, b):
        return (x - a) / (b - a)

    def nd(p, q):
        return 0.0 if p + q == 0 else (p - q) / (p + q)

    s = min(1.0, resc(r["B2"], 0.1, 0.5), resc(r["B1"], 0.1, 0.3),
            resc(r["B1"] + r["B10"], 0.15, 0.2), resc(r["B4"] + r["B3"] + r["B2"], 0.2, 0.8),
            resc(nd(r["B8"], r["B11"]), -0.1, 0.1), resc(nd(r["B3"], r["B11"]), 0.8, 0.6))
    return max(s, 0.001)


def test_cloud_score_equals_the_spec_per_pixel():
    rng = np.random.default_rng(11)
    img = rng.integers(500, 6000, size=(13, 4, 4), dtype=np.uint16)
    big = P.with_overrides({"cloud_kernel_radius": 0})  # no smoothing: per pixel
    got = mosaic.cloud_score(img, big)
    assert got.dtype == np.float32
    for i in range(4):
        for j in range(4):
            r = {n: img[k, i, j] / 10000.0 for n, k in B.items()}
            assert got[i, j] == pytest.approx(_indicator_min(r), abs=1e-5), (i, j)
    assert (got > 0.001 * 0.999).all() and (got <= 1.0).all()


def test_project_clouds_equals_a_loop():
    rng = np.random.default_rng(5)
    score = rng.random((9, 10)).astype(np.float32)
    valid = rng.random((9, 10)) > 0.2
    heights = [300.0, 900.0, 2000.0]
    px = (20.0, 20.0)
    az, zen = 135.0, 40.0  # sun in the south-east
    got = mosaic.project_clouds(score, valid, px, az, zen, heights)
    offs = []
    for h in heights:  # towards the sun: east = sin(az) d, north = cos(az) d
        d = math.tan(math.radians(zen)) * h
        east, north = math.sin(math.radians(az)) * d, math.cos(math.radians(az)) * d
        offs.append((round(-north / px[1]), round(east / px[0])))
    assert all(dr > 0 and dc > 0 for dr, dc in offs)  # south (rows down) and east
    for i in range(9):
        for j in range(10):
            vals = [score[i + dr, j + dc] for dr, dc in offs
                    if 0 <= i + dr < 9 and 0 <= j + dc < 10 and valid[i + dr, j + dc]]
            want = float(np.mean(vals)) if vals else 0.0
            assert got[i, j] == pytest.approx(want, abs=1e-6), (i, j)


def test_shadow_candidates_thresholds_per_pixel():
    img = np.full((13, 1, 5), 1000, np.uint16)
    img[B["B4"]] = 200  # red low: NDVI > 0 (land)
    # 0: dark land (IR sum 0.15, NDVI > 0); 1: bright (IR sum 0.33); 2: water (NDVI < -0.1)
    # 3: cloud (score above 0.2); 4: nodata
    img[[B["B8"], B["B11"], B["B12"]], 0, 0] = 500
    img[[B["B8"], B["B11"], B["B12"]], 0, 1] = 1100
    img[B["B4"], 0, 2] = 2000
    img[[B["B8"], B["B11"], B["B12"]], 0, 2] = (500, 500, 500)
    img[[B["B8"], B["B11"], B["B12"]], 0, 3] = 500
    img[:, 0, 4] = 0
    cloud = np.array([[0.1, 0.1, 0.1, 0.25, 0.0]], np.float32)
    got = mosaic.shadow_candidates(img, cloud)
    np.testing.assert_array_equal(got, [[True, False, False, False, False]])
    # just below and above the IR sum threshold 0.3
    img[[B["B8"], B["B11"], B["B12"]], 0, 0] = 990
    assert mosaic.shadow_candidates(img, cloud)[0, 0]
    img[[B["B8"], B["B11"], B["B12"]], 0, 0] = 1010
    assert not mosaic.shadow_candidates(img, cloud)[0, 0]


def test_quality_poor_and_percentages():
    cloud = np.array([[0.5, 0.1], [0.0, 0.3]], np.float32)
    shadow = np.array([[0.0, 0.4], [0.0, 0.0]], np.float32)
    valid = np.array([[True, True], [False, True]])
    q = mosaic.quality_score(cloud, shadow, valid, P.with_overrides(
        {"quality_kernel_radius": 0}))
    np.testing.assert_allclose(q, [[-0.5, -0.4], [-np.inf, -0.3]])
    np.testing.assert_array_equal(mosaic.poor_mask(q), [[True, True], [False, True]])
    np.testing.assert_array_equal(mosaic.poor_mask(np.array([-0.2], np.float32)), [False])
    assert mosaic.cloudy_percentage(cloud, valid) == pytest.approx(100 * 2 / 3)
    assert mosaic.roi_coverage_percent(valid) == pytest.approx(75.0)
    assert mosaic.roi_coverage_percent(valid[:0]) == 0.0
    assert mosaic.roi_coverage_percent(valid, np.zeros_like(valid)) == 0.0


def test_best_images_order_and_threshold():
    pct = [4.0, 5.0, 1.0, 4.0, 0.0, 7.0]
    # under 5 (strict), cloudiest at the bottom, ties in acquisition order, clearest on top
    assert mosaic.best_images(pct) == [0, 3, 2, 4]
    assert mosaic.merge_order_key(3.0, 2) == (-3.0, 2)


def test_merge_sources_and_poor_share_small_case():
    quality = np.array([[[-0.1, -0.5, -np.inf]], [[-0.3, -0.2, -0.4]]], np.float32)
    valid = np.isfinite(quality)
    # no best image: highest quality wins; ties impossible here
    src, best = mosaic.merge_sources(quality, valid, [50.0, 60.0])
    np.testing.assert_array_equal(src, [[0, 1, 1]])
    assert best == []
    # image 1 is best: on top wherever it has data (paper merge)
    src, best = mosaic.merge_sources(quality, valid, [50.0, 1.0])
    np.testing.assert_array_equal(src, [[1, 1, 1]])
    assert best == [1]
    poor = np.array([[[False, True, False]], [[True, False, False]]])
    assert mosaic.final_poor_share(np.array([[0, 1, -1]], np.int16), poor) == 0.0
    assert mosaic.final_poor_share(np.array([[1, 0, -1]], np.int16), poor) == 1.0
    assert mosaic.poor_share_of(np.array([[0, 0, -1]], np.int16),
                                np.array([[True, False, True]])) == 0.5
    assert mosaic.poor_share_of(np.full((1, 2), -1, np.int16), np.ones((1, 2), bool)) == 0.0


def test_merge_of_no_images_is_refused():
    with pytest.raises(ValueError, match="no images to merge"):
        mosaic.merge_sources(np.zeros((0, 2, 3), np.float32), np.zeros((0, 2, 3), bool), [])


def test_score_image_outside_the_footprint():
    """Outside the footprint: quality -inf (never wins a merge), cloud and shadow 0, not
    poor; percentages over the footprint only."""
    img = _rng_l1c((13, 12, 10), seed=8, zero_share=0.0)
    img[:, :, :4] = 0  # west strip without data
    s = mosaic.score_image(img, (10.0, 10.0), 150.0, 40.0)
    valid = np.zeros((12, 10), bool)
    valid[:, 4:] = True
    np.testing.assert_array_equal(s.valid, valid)
    assert np.isneginf(s.quality[~valid]).all() and np.isfinite(s.quality[valid]).all()
    assert (s.cloud[~valid] == 0).all() and (s.shadow[~valid] == 0).all()
    assert not s.poor[~valid].any()
    assert s.roi_coverage_percent == pytest.approx(60.0)
    assert s.cloudy_percentage == pytest.approx(100.0 * (s.cloud[valid] > 0.2).mean())
    run = mosaic.RunningMerge((12, 10))
    run.add(np.full((12, 10), -0.9, np.float32), np.zeros((12, 10), bool))
    run.add(s.quality, s.poor)  # image 1 cannot win where it has no data
    assert (run.source[~valid] == 0).all()


def test_project_clouds_takes_an_integer_footprint_as_well():
    rng = np.random.default_rng(9)
    score = rng.random((6, 6)).astype(np.float32)
    valid = rng.random((6, 6)) > 0.3
    args = ((20.0, 20.0), 200.0, 45.0, [20.0, 40.0])  # 1 and 2 pixels away
    want = mosaic.project_clouds(score, valid, *args)
    assert (want > 0).mean() > 0.5
    for dtype in (np.uint8, np.int64):
        np.testing.assert_array_equal(
            mosaic.project_clouds(score, valid.astype(dtype), *args), want)
