"""The numpy mosaicking algorithm against values worked out by hand from the spec."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sen12ms_build import mosaic
from sen12ms_build.mosaic import scores as mosaic_scores
from sen12ms_build.methods import MergeMethod
from sen12ms_build.mosaic import DEFAULT_PARAMS, MosaicParams
from sen12ms_build.products import S2_BANDS

B = {b: i for i, b in enumerate(S2_BANDS)}
# A moist bright surface where every cloud indicator saturates at >= 1
BASE = {"B1": 0.4, "B2": 0.5, "B3": 0.3, "B4": 0.3, "B8": 0.5, "B10": 0.05, "B11": 0.3,
        "B12": 0.2}


def image(refl: dict[str, float], shape=(40, 40)) -> np.ndarray:
    """(13, H, W) uint16 L1C with uniform reflectances (others 0.2)."""
    arr = np.full((13, *shape), 2000, np.uint16)
    for band, r in refl.items():
        arr[B[band]] = round(r * 10000)
    return arr


@pytest.mark.parametrize("change, expected", [
    ({}, 1.0),                                     # every indicator >= 1
    ({"B2": 0.3}, 0.5),                            # (0.3 - 0.1) / 0.4
    ({"B1": 0.2}, 0.5),                            # (0.2 - 0.1) / 0.2
    ({"B1": 0.16, "B10": 0.0}, 0.2),               # B1: 0.3, B1+B10: (0.16-0.15)/0.05
    ({"B3": 0.05, "B4": 0.05}, (0.6 - 0.2) / 0.6),  # B4+B3+B2 = 0.6
    ({"B8": 0.33}, ((0.03 / 0.63) + 0.1) / 0.2),   # NDMI = nd(0.33, 0.3)
    ({"B3": 0.6, "B11": 0.1}, (0.5 / 0.7 - 0.8) / (0.6 - 0.8)),  # NDSI = nd(0.6, 0.1)
    ({"B2": 0.05}, 0.001),                         # negative indicator -> floor
])
def test_cloud_score_indicators(change, expected):
    score = mosaic.cloud_score(image({**BASE, **change}))
    assert score.dtype == np.float32
    np.testing.assert_allclose(score, expected, rtol=1e-4)


def test_cloud_score_is_mean_over_radius_5_square():
    img = image({**BASE, "B2": 0.05})  # floor 0.001 everywhere...
    img[B["B2"], 20, 20] = 5000  # ...but one pixel scores 1.0
    score = mosaic.cloud_score(img)
    inside = 0.001 + (1.0 - 0.001) / 121  # 11 x 11 kernel
    assert score[20, 20] == pytest.approx(inside, rel=1e-4)
    assert score[25, 25] == pytest.approx(inside, rel=1e-4)  # corner of the 11 x 11 square
    assert score[26, 20] == pytest.approx(0.001, rel=1e-4)  # just outside


def test_cloud_mask_threshold_is_strict():
    s = np.array([[0.2, 0.2001, 0.19]], np.float32)
    assert mosaic.cloud_mask(s).tolist() == [[False, True, False]]


def test_shadow_offsets_point_towards_the_sun():
    # sun in the south-east (135 deg), zenith 45 deg, cloud at 1000 m: shadow 1000 m to
    # the north-west, so a shadowed pixel finds its cloud 1000 m to the south-east
    (dr, dc), = mosaic.shadow_offsets_px((20.0, 20.0), 135.0, 45.0, [1000])
    assert (dr, dc) == (35, 35)  # round(1000 * sin(45) / 20) rows south, cols east
    (dr, dc), = mosaic.shadow_offsets_px((10.0, 20.0), 90.0, 60.0, [100])
    assert (dr, dc) == (0, round(math.tan(math.radians(60)) * 100 / 10))  # sun east


def test_project_clouds_averages_over_heights():
    score = np.zeros((200, 200), np.float32)
    score[100:120, 100:120] = 1.0
    valid = np.ones_like(score, bool)
    proj = mosaic.project_clouds(score, valid, (20.0, 20.0), 135.0, 45.0, [1000])
    ys, xs = np.nonzero(proj)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (65, 84, 65, 84)  # 35 px north-west
    proj2 = mosaic.project_clouds(score, valid, (20.0, 20.0), 135.0, 45.0, [1000, 2000])
    assert proj2[70, 70] == pytest.approx(0.5)  # hit at 1000 m only, mean over 2 heights
    assert proj2[30, 30] == pytest.approx(0.5)  # hit at 2000 m only (70 px)


def test_shadow_candidates_dark_not_water_not_cloud():
    dark_land = image({"B4": 0.05, "B8": 0.15, "B11": 0.08, "B12": 0.05, "B2": 0.05,
                       "B1": 0.05, "B3": 0.05})  # B8+B11+B12 = 0.28, NDVI 0.5
    water = image({"B4": 0.2, "B8": 0.15, "B11": 0.08, "B12": 0.05, "B2": 0.05,
                   "B1": 0.05, "B3": 0.05})  # NDVI = nd(0.15, 0.2) = -0.14
    bright = image({"B4": 0.05, "B8": 0.2, "B11": 0.08, "B12": 0.05, "B2": 0.05,
                    "B1": 0.05, "B3": 0.05})  # sum 0.33
    no_cloud = np.zeros((40, 40), np.float32)
    assert mosaic.shadow_candidates(dark_land, no_cloud).all()
    assert not mosaic.shadow_candidates(water, no_cloud).any()
    assert not mosaic.shadow_candidates(bright, no_cloud).any()
    cloudy = np.full((40, 40), 0.5, np.float32)
    assert not mosaic.shadow_candidates(dark_land, cloudy).any()


@pytest.mark.parametrize("over_water", [False, True])
def test_shadow_over_water_switch(water_scene, over_water):
    """The paper never flags a cloud shadow on water (water is not a shadow candidate);
    ``shadow_over_water`` keeps dark water under the projected cloud as a candidate. Dark
    land under the same shadow is flagged either way, bright land never."""
    l1c, cloud, water, dark_land, (pixel, azimuth, zenith) = water_scene
    p = MosaicParams(shadow_over_water=over_water)
    candidates = mosaic.shadow_candidates(l1c, cloud, p)
    np.testing.assert_array_equal(candidates, dark_land | (water if over_water else False))
    s = mosaic.shadow_score(l1c, cloud, pixel, azimuth, zenith, p)
    _, shadow = mosaic.cloud_shadow_masks(cloud, s, p)
    assert shadow[dark_land].all()
    # water far (> 10 px) from the dark land, beyond the reach of the opening's dilation
    far = water.copy()
    far[:, 22:] = False
    assert shadow[far].all() if over_water else not shadow[far].any()
    assert not shadow[28:].any()  # under the cloud: cloud, not shadow
    # the switch touches nothing but the water: the dark land's scores are the same
    paper = mosaic.shadow_score(l1c, cloud, pixel, azimuth, zenith, MosaicParams())
    np.testing.assert_array_equal(s[:, 40:], paper[:, 40:])


def test_shadow_opening_removes_specks_and_keeps_blobs():
    h = w = 120
    dark = {"B4": 0.05, "B8": 0.15, "B11": 0.08, "B12": 0.05, "B2": 0.05, "B1": 0.05,
            "B3": 0.05}
    img = image({**dark, "B8": 0.3}, (h, w))  # bright land: no candidates...
    img[B["B8"], 60:80, 60:80] = 1500  # ...but a 20 x 20 dark block
    img[B["B8"], 20, 100] = 1500  # and a dark speck
    # a thin haze (score 0.1, under the cloud threshold) everywhere; with the sun at the
    # zenith the projected cloud is the pixel's own score, 0.1
    cloud = np.full((h, w), 0.1, np.float32)
    s = mosaic.shadow_score(img, cloud, (20.0, 20.0), 180.0, 0.0,
                            MosaicParams(cloud_heights_m=(0,)))
    assert s[20, 100] == 0.0  # the speck is eroded away
    assert s[70, 70] == pytest.approx(0.1)
    # rows 60..79: 3 erosions by the 3 x 3 disk -> 63..76, 3 dilations by the radius-3
    # disk -> 54..85, the 3 x 3 maximum -> 53..86
    ys = np.nonzero(s[:, 70])[0]
    assert (ys.min(), ys.max()) == (53, 86)


def test_quality_score_and_poor_mask():
    cloud = np.zeros((30, 30), np.float32)
    shadow = np.zeros((30, 30), np.float32)
    cloud[:, :15] = 0.6
    shadow[:, 15:] = 0.1
    valid = np.ones((30, 30), bool)
    q = mosaic.quality_score(cloud, shadow, valid)
    assert q[15, 2] == pytest.approx(-0.6, rel=1e-5)
    assert q[15, 27] == pytest.approx(-0.1, rel=1e-5)
    assert q[15, 15] == pytest.approx(-(5 * 0.6 + 6 * 0.1) / 11, rel=1e-5)
    poor = mosaic.poor_mask(q)
    assert poor[15, 2] and not poor[15, 27]
    valid[0, 0] = False
    assert mosaic.quality_score(cloud, shadow, valid)[0, 0] == -np.inf


def test_cloudy_percentage_over_clipped_footprint():
    cloud = np.zeros((10, 10), np.float32)
    cloud[:2] = 0.5  # 20 cloudy pixels
    valid = np.ones((10, 10), bool)
    valid[:, 5:] = False  # image covers the left half only
    roi = np.ones((10, 10), bool)
    assert mosaic.cloudy_percentage(cloud, valid, roi) == pytest.approx(100 * 10 / 50)
    assert mosaic.roi_coverage_percent(valid, roi) == pytest.approx(50.0)
    assert mosaic.cloudy_percentage(cloud, np.zeros_like(valid), roi) == 100.0


def test_merge_best_on_top_of_quality_mosaic():
    n, h, w = 3, 4, 6
    images = np.stack([np.full((13, h, w), 1000 * (i + 1), np.uint16) for i in range(n)])
    quality = np.stack([np.full((h, w), q, np.float32) for q in (-0.1, -0.5, -0.15)])
    quality[0, :, 3:] = -0.9  # image 0 is cloudy on the right
    valid = np.ones((n, h, w), bool)
    valid[2, :, :2] = False  # image 2 misses the left columns
    # no image under the keep threshold: pure quality mosaic
    res = mosaic.merge(images, quality, valid, [20.0, 30.0, 10.0])
    assert res.best == []
    assert res.source[:, :3].tolist() == [[0, 0, 0]] * h
    assert res.source[:, 3:].tolist() == [[2, 2, 2]] * h  # -0.15 beats -0.5
    assert (res.mosaic[:, :, 4] == 3000).all()
    # images 1 and 2 under 5 %: sorted descending, the clearest (2) on top where it has data
    res = mosaic.merge(images, quality, valid, [20.0, 4.0, 1.0])
    assert res.best == [1, 2]
    assert res.source[:, 2:].tolist() == [[2] * 4] * h
    assert res.source[:, :2].tolist() == [[1, 1]] * h  # image 1 fills where 2 has no data
    # poor share: pixels taken from image 1 are poor where its quality says so
    res = mosaic.merge(images, quality, valid, [20.0, 4.0, 1.0])
    assert res.poor_share == pytest.approx(2 / 6)  # image 1 (-0.5) is poor, 2 (-0.15) is not
    assert mosaic.merge(images, quality, valid, [20.0, 4.0, 1.0],
                        poor=np.zeros((n, h, w), bool)).poor_share == 0.0


@pytest.mark.parametrize("merge", list(MergeMethod))
@pytest.mark.parametrize("feed", ["finish", "on_top"])
def test_running_merge_equals_merge_sources(merge, feed):
    """Both ways of feeding RunningMerge give merge_sources' result; ``on_top`` also
    returns, per image, the pixels it holds, whose last holder is the merge's choice."""
    rng = np.random.default_rng(7)
    n, h, w = 6, 40, 50
    valid = rng.random((n, h, w)) > 0.3
    quality = np.where(valid, -rng.random((n, h, w)).round(1), -np.inf).astype(np.float32)
    poor = mosaic.poor_mask(quality)
    params = DEFAULT_PARAMS.with_overrides({"merge": merge})
    # no best image; best images with ties in CLOUDY_PERCENTAGE (4.0 twice, later on top);
    # the clearest first (later best images go below it)
    for cloudy in ([50.0] * n, [9.0, 4.0, 30.0, 1.0, 4.0, 2.5], [0.5, 4.0, 2.0, 4.0, 9, 1.0]):
        source, best = mosaic.merge_sources(quality, valid, cloudy, params)
        rm = mosaic.RunningMerge((h, w))
        held_by = np.full((h, w), -1)
        for i in range(n):
            if feed == "finish":
                assert rm.add(quality[i], poor[i]) == i
            else:
                held_by[rm.add_on_top(quality[i], poor[i], valid[i], cloudy[i], params)] = i
        if feed == "finish":
            rsource, rpoor, rbest = rm.finish(cloudy, lambda i: (valid[i], poor[i]), params)
        else:
            rsource, rpoor, rbest = rm.finish_on_top(params)
            np.testing.assert_array_equal(held_by, source)
        assert rbest == best
        np.testing.assert_array_equal(rsource, source)  # ties (rounded scores) included
        chosen = np.take_along_axis(poor, np.clip(source, 0, None)[None].astype(np.intp), 0)[0]
        np.testing.assert_array_equal(rpoor, chosen & (source >= 0))


def test_merge_no_coverage_is_nodata():
    images = np.ones((2, 13, 3, 3), np.uint16)
    valid = np.zeros((2, 3, 3), bool)
    valid[0, 0, 0] = True
    q = np.where(valid, -0.1, -np.inf).astype(np.float32)
    res = mosaic.merge(images, q, valid, [50.0, 50.0])
    assert res.source[0, 0] == 0 and (res.source.ravel()[1:] == -1).all()
    assert (res.mosaic[:, 1:, :] == 0).all()


def test_score_image_computes_at_20m():
    assert mosaic.score_factor((10.0, 10.0)) == 2
    assert mosaic.score_factor((8.8, 11.1)) == 2
    assert mosaic.score_factor((20.0, 20.0)) == 1
    img = image(BASE, (64, 64))
    s = mosaic.score_image(img, (10.0, 10.0), 150.0, 40.0)
    assert s.cloud.shape == (64, 64)
    assert s.cloudy_percentage == pytest.approx(100.0)
    assert s.poor.all()


def test_params_overrides_and_unknown_names():
    p = DEFAULT_PARAMS.with_overrides({"keep_thresh": 10, "cloud_heights_m": [500, 1000]})
    assert p.keep_thresh == 10.0 and p.cloud_heights_m == (500, 1000)
    assert DEFAULT_PARAMS.cloud_heights_m == tuple(range(200, 10000, 250))
    with pytest.raises(KeyError, match="cloud_treshold"):
        DEFAULT_PARAMS.with_overrides({"cloud_treshold": 0.3})


@pytest.mark.parametrize("radius", [1.0, 1.5, 2.0, 3.0, 4.5])
@pytest.mark.parametrize("iterations", [1, 3])
def test_focal_extremes_equal_grey_erosion_and_dilation(radius, iterations):
    """The separable erosion / dilation of shadow_score gives ndimage's results bit for bit."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    x = (rng.random((61, 47)) * (rng.random((61, 47)) > 0.4)).astype(np.float32)
    ero, dil = x, x
    for _ in range(iterations):
        ero = ndimage.grey_erosion(ero, footprint=mosaic.disk(radius), mode="nearest")
        dil = ndimage.grey_dilation(dil, footprint=mosaic.disk(radius), mode="nearest")
    assert np.array_equal(mosaic_scores._focal_extreme(x, radius, iterations, np.minimum), ero)
    assert np.array_equal(mosaic_scores._focal_extreme(x, radius, iterations, np.maximum), dil)


def test_block_mean_ignores_nodata_in_partial_blocks():
    """Block means over valid pixels only, odd sizes (partial edge blocks), rounded."""
    img = np.zeros((2, 5, 7), np.uint16)
    img[:, :4, :6] = np.arange(24, dtype=np.uint16).reshape(4, 6) + 1
    img[:, 4, 6] = 9
    out = mosaic.block_mean(img, 2)
    assert out.shape == (2, 3, 4)
    assert out[0, 0, 0] == round((1 + 2 + 7 + 8) / 4)
    assert out[0, 2, 3] == 9 and out[0, 2, 0] == 0 and out[0, 0, 3] == 0
