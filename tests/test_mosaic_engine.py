"""The mosaicking engine (mosaic/engine.py, issue 19) against the batch path: every image
scored on its own, the per-pixel sources of the whole stack (``merge_sources``) and the
assembly; the engine reads one image at a time and merges as it goes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sen12ms_build import mosaic
from sen12ms_build.mosaic import engine
from sen12ms_build.mosaic.params import MosaicParams

H = W = 96
PX = (10.0, 10.0)


def _images(seed: int = 3) -> list[np.ndarray]:
    """Four 13-band L1C images of one ground (a gradient field plus noise) with bright,
    moist clouds at different places, and a footprint edge in the last one."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    ground = (800 + 6 * xx + 4 * yy).astype(np.float32)
    out = []
    for k, (cy, cx, r) in enumerate([(30, 30, 18), (60, 70, 22), (20, 75, 10), (70, 20, 0)]):
        img = np.stack([ground * (0.8 + 0.03 * b) for b in range(13)])
        img += rng.normal(0, 15, img.shape).astype(np.float32)
        if r:
            cloud = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[:, cloud] = 6000 + 200 * k
            img[11:13, cloud] = 1500  # SWIR low: moist
        img = np.clip(img, 1, 65535).astype(np.uint16)
        if k == 3:
            img[:, :, :12] = 0  # outside this acquisition's footprint
        out.append(img)
    return out


def _acqs(n: int) -> list[engine.Acquisition]:
    t0 = dt.datetime(2017, 6, 1, 10, 30, tzinfo=dt.UTC)
    return [engine.Acquisition(name=f"img{i}.tif", time=t0 + dt.timedelta(days=5 * i),
                               solar_azimuth=140.0 + i, solar_zenith=30.0 + i,
                               product_id=f"S2A_TEST_{i}") for i in range(n)]


@pytest.mark.parametrize("merge_method", ["paper", "masked"])
def test_engine_equals_the_batch_merge(merge_method):
    params = MosaicParams(merge=merge_method)
    images = _images()
    acqs = _acqs(len(images))
    roi = np.ones((H, W), bool)
    scored = [mosaic.score_image(img.copy(), PX, a.solar_azimuth, a.solar_zenith, roi, params,
                                 components=False) for img, a in zip(images, acqs)]
    source, best = mosaic.merge_sources(
        np.stack([s.quality for s in scored]), np.stack([s.valid for s in scored]),
        [s.cloudy_percentage for s in scored], params, np.stack([s.poor for s in scored]))
    expected = mosaic.assemble(images, source)

    by_name = dict(zip((a.name for a in acqs), images))
    res = engine.mosaic_acquisitions(acqs, lambda a: by_name[a.name].copy(), PX, roi, params)
    assert res is not None
    assert np.array_equal(res.mosaic, expected)
    covered = source >= 0
    assert np.array_equal(res.aux[0][covered], source[covered])
    assert (res.aux[:, ~covered] == 255).all()
    assert res.meta["s2_best"] == [acqs[i].name for i in best]
    assert [u["product_id"] for u in res.meta["s2_images"]] == [a.product_id for a in acqs]
    counts = np.bincount(source[covered], minlength=len(acqs))
    assert [u["pixels_in_mosaic"] for u in res.meta["s2_images"]] == counts.tolist()
    assert res.meta["mosaic_coverage"] == 1.0


def test_an_unreadable_acquisition_is_skipped_and_none_left_is_none():
    images = _images()
    acqs = _acqs(len(images))
    roi = np.ones((H, W), bool)
    res = engine.mosaic_acquisitions(
        acqs, lambda a: None if a.name == "img1.tif" else images[int(a.name[3])].copy(),
        PX, roi)
    assert [u["file"] for u in res.meta["s2_images"]] == ["img0.tif", "img2.tif", "img3.tif"]
    assert engine.mosaic_acquisitions(acqs, lambda a: None, PX, roi) is None


def test_the_clip_zeroes_pixels_beyond_the_margin_only():
    images = _images()[:1]
    roi = np.zeros((H, W), bool)
    roi[20:60, 20:60] = True
    res = engine.mosaic_acquisitions(_acqs(1), lambda a: images[0].copy(), PX, roi,
                                     clip_margin_px=3)
    kept = res.mosaic.any(axis=0)
    # the ROI grown by 3 px (a city-block dilation, as ee's clip margin): nothing beyond
    assert kept[17:63, 20:60].all() and kept[20:60, 17:63].all()
    assert not kept[:17].any() and not kept[63:].any() and not kept[:, 63:].any()
    assert not kept[17, 17]  # the grown square's corner is cut (city-block distance 6)
