"""Cloud/shadow detection and merging on the demo archive, against the injected truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from rasterio.features import geometry_mask
from scipy import ndimage

from sen12ms_build import mosaic
from sen12ms_build.demo.ground import water_truth
from sen12ms_build.backends import SceneRequest
from sen12ms_build.backends.local import LocalBackend, query
from sen12ms_build.geo import pixel_size_m
from sen12ms_build.products import CLIP_MARGIN_PX
from sen12ms_build.raster.warp import warp_array
from sen12ms_build.roi import ROI

PERIODS = {
    "winter": (dt.date(2016, 12, 1), dt.date(2017, 2, 28)),
    "spring": (dt.date(2017, 3, 1), dt.date(2017, 5, 30)),
    "summer": (dt.date(2017, 6, 1), dt.date(2017, 8, 31)),
    "fall": (dt.date(2017, 9, 1), dt.date(2017, 11, 30)),
}
# a 10 km ROI in the middle of the archive's footprint (Virginia's Eastern Shore)
ROI_CENTRE = ROI.at(1, 0, "listed", -75.619, 37.673, 10000)


def roi_mask(roi: ROI) -> np.ndarray:
    g = roi.export_grid()
    return ~geometry_mask([{"type": "Polygon", "coordinates": [roi.ring()]}],
                          out_shape=g.shape, transform=g.transform)


def truth(archive, acq, grid) -> np.ndarray:
    """Injected cloud | shadow of an acquisition on the export grid (nearest)."""
    masks = [warp_array(archive / "truth" / f"{acq.path.stem}_{k}.tif", grid, "nearest", None)
             [0].astype(bool) for k in ("cloud", "shadow")]
    return masks[0] | masks[1]


def season_scores(archive, season, roi=ROI_CENTRE):
    backend = LocalBackend(archive)
    grid = roi.export_grid()
    mask = roi_mask(roi)
    out = []
    clip = ndimage.binary_dilation(mask, iterations=CLIP_MARGIN_PX)  # as the backend clips
    for acq in query(backend.index("s2"), roi.ring(), *PERIODS[season]):
        l1c = warp_array(acq.path, grid, "nearest", 0, "uint16")
        l1c[:, ~clip] = 0
        s = mosaic.score_image(l1c, pixel_size_m(grid),
                               float(acq.tags["MEAN_SOLAR_AZIMUTH_ANGLE"]),
                               float(acq.tags["MEAN_SOLAR_ZENITH_ANGLE"]), mask)
        out.append((acq, s, truth(archive, acq, grid) & mask))
    return out, mask


@pytest.fixture(scope="module")
def all_scores(demo_archive):
    return {season: season_scores(demo_archive, season) for season in PERIODS}


def test_cloud_and_shadow_mask_recall_and_precision(all_scores):
    tp = fp = fn = 0
    for season, (scores, mask) in all_scores.items():
        for acq, s, t in scores:
            p = s.poor & mask
            tp += int((p & t).sum())
            fp += int((p & ~t).sum())
            fn += int((~p & t).sum())
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    print(f"cloud+shadow mask: recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.9
    assert precision >= 0.8


def test_shadows_on_land_are_found(demo_archive, all_scores):
    """The shadow truth alone, on land by the demo's own land/water truth (the clear spring
    acquisition's classes, not the detector's water test), pooled over the seasons: the
    poor mask finds most of it. With the shadow direction reversed it finds far less."""
    grid = ROI_CENTRE.export_grid()
    clear = [acq for acq, s, _ in all_scores["spring"][0] if s.cloudy_percentage < 1.0]
    assert len(clear) == 1
    land = ~water_truth(warp_array(clear[0].path, grid, "nearest", 0, "uint16"))
    tp = n = 0
    for season, (scores, mask) in all_scores.items():
        for acq, s, _ in scores:
            shadow = warp_array(demo_archive / "truth" / f"{acq.path.stem}_shadow.tif", grid,
                                "nearest", None)[0].astype(bool) & mask & land
            n += int(shadow.sum())
            tp += int((s.poor & shadow).sum())
    print(f"land shadow recall {tp / n:.3f} of {n} px")
    assert n > 5000
    assert tp / n >= 0.75


def test_winter_quality_mosaic_leaves_at_most_one_percent_cloud(demo_archive, all_scores):
    scores, mask = all_scores["winter"]
    # the premise: every winter acquisition is cloudier than the keep threshold
    assert len(scores) >= 3
    assert all(s.cloudy_percentage >= mosaic.DEFAULT_PARAMS.keep_thresh for _, s, _ in scores)
    source, best = mosaic.merge_sources(np.stack([s.quality for _, s, _ in scores]),
                                        np.stack([s.valid for _, s, _ in scores]),
                                        [s.cloudy_percentage for _, s, _ in scores])
    assert best == []
    truths = np.stack([t for _, _, t in scores])
    chosen = np.take_along_axis(truths, np.clip(source, 0, None)[None].astype(np.intp), 0)[0]
    residual = float((chosen & mask).sum() / mask.sum())
    worst_single = min(float(t.sum() / mask.sum()) for _, _, t in scores)
    print(f"winter residual cloud+shadow share {residual:.4f} "
          f"(clearest single image {worst_single:.3f})")
    assert residual <= 0.01
    # the backend gives the same mosaic
    req = SceneRequest(ROI_CENTRE, "winter", *PERIODS["winter"])
    exp = LocalBackend(demo_archive).export_scene(req, demo_archive.parent / "winter_export")
    with rasterio.open(exp.aux) as f:
        aux_source = f.read(1)
    np.testing.assert_array_equal(np.where(source >= 0, source, 255)[mask], aux_source[mask])
    assert exp.meta["poor_share"] <= 0.01


def test_clearest_image_is_chosen_when_one_is_under_the_keep_threshold(all_scores):
    scores, mask = all_scores["spring"]
    pct = [s.cloudy_percentage for _, s, _ in scores]
    clearest = int(np.argmin(pct))
    assert pct[clearest] < mosaic.DEFAULT_PARAMS.keep_thresh <= sorted(pct)[1]
    source, best = mosaic.merge_sources(np.stack([s.quality for _, s, _ in scores]),
                                        np.stack([s.valid for _, s, _ in scores]), pct)
    assert best[-1] == clearest
    covered = scores[clearest][1].valid & mask
    assert (source[covered] == clearest).all()
    # summer: a nearly clear image under the threshold wins over the cloudier ones
    scores, mask = all_scores["summer"]
    pct = [s.cloudy_percentage for _, s, _ in scores]
    source, best = mosaic.merge_sources(np.stack([s.quality for _, s, _ in scores]),
                                        np.stack([s.valid for _, s, _ in scores]), pct)
    assert best and best[-1] == int(np.argmin(pct))
    assert sorted(pct, reverse=True)[-len(best):] == [pct[i] for i in best]
