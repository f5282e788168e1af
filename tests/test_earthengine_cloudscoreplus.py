"""The Earth Engine graphs of the pluggable methods, built offline: the Cloud Score+ scorer
(``GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED`` ``cs_cdf`` linked per image by
``system:index``) and the masked merge."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ee")

import ee  # noqa: E402

from ee_helpers import calls, constants, offline_ee  # noqa: E402
from sen12ms_build.mosaic import scorers  # noqa: E402
from sen12ms_build.backends.earthengine import graphs, s2_mosaic  # noqa: E402
from sen12ms_build.methods import MergeMethod, Scorer  # noqa: E402
from sen12ms_build.mosaic import MosaicParams  # noqa: E402
from sen12ms_build.roi import ROI  # noqa: E402

START, END = "2017-06-01", "2017-08-31"
CSP = MosaicParams(scorer="cloudscoreplus")


@pytest.fixture(scope="module")
def region():
    with offline_ee():
        yield graphs.region_of(ROI.at(7, 1868, "land", 11.5, 48.1, 38400.0).ring())


@pytest.fixture(scope="module")
def csp_expr(region):
    return graphs.encode(s2_mosaic(region, START, END, CSP, with_aux=True))


def test_cloud_score_plus_is_linked_per_image_by_system_index(csp_expr):
    loads = {a["id"] for a in calls(csp_expr, "ImageCollection.load")}
    assert loads == {"COPERNICUS/S2_HARMONIZED", "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"}
    # earthengine-api maps ImageCollection.linkCollection to Image.linkCollection per image
    (link,) = calls(csp_expr, "Image.linkCollection")
    assert link["linkedBands"] == ["cs_cdf"]
    assert link.get("matchPropertyName") in (None, "system:index")  # the default
    assert link["imageCollection"]["__call__"] == "ImageCollection.load"
    assert link["imageCollection"]["id"] == graphs.CLOUD_SCORE_PLUS
    assert "__arg__" in link["input"]  # each image of the mapped L1C query


def test_cloud_score_plus_threshold_and_no_paper_indicators(csp_expr):
    p = CSP
    assert ["cs_cdf"] in [a["bandSelectors"] for a in calls(csp_expr, "Image.select")]
    lts = [a["image2"].get("value") for a in calls(csp_expr, "Image.lt")
           if isinstance(a["image2"], dict)]
    assert p.cloudscoreplus_clear_thresh in lts  # cs_cdf < 0.6 is occluded
    # an image without a Cloud Score+ match counts as occluded, not as clear
    fills = [a for a in calls(csp_expr, "Image.unmask") if a["input"].get("__call__") ==
             "Image.select" and a["input"]["bandSelectors"] == ["cs_cdf"]]
    assert len(fills) == 1 and fills[0]["value"] == {"__call__": "Image.constant", "value": 0}
    assert not calls(csp_expr, "Image.unitScale")  # no paper indicator
    assert not calls(csp_expr, "Image.displace")  # Cloud Score+ includes shadows
    # the downstream quality score and statistics are the paper's
    (qm,) = calls(csp_expr, "ImageCollection.qualityMosaic")
    assert qm["qualityBand"] == "quality"
    assert calls(csp_expr, "Image.reduceRegion")
    assert p.cloud_thresh in [v for v in constants(csp_expr) if isinstance(v, float)]
    for r in calls(csp_expr, "Image.reproject"):
        assert r["scale"] == p.score_scale_m


def test_statistics_graph_links_cloud_score_plus_too(region):
    expr = graphs.encode(graphs.scene_summary(region, START, END, CSP))
    assert calls(expr, "Image.linkCollection")
    paper = graphs.encode(graphs.scene_summary(region, START, END, MosaicParams()))
    assert not calls(paper, "Image.linkCollection")


def test_s2cloudless_has_no_earth_engine_graph(region):
    with pytest.raises(ValueError, match="local or stac backend only"):
        graphs.cloud_band(ee.Image(0), MosaicParams(scorer="s2cloudless"))


@pytest.mark.parametrize("merge", list(MergeMethod))
def test_masked_merge_masks_the_best_images_poor_pixels(region, merge):
    expr = graphs.encode(s2_mosaic(region, START, END, MosaicParams(merge=merge.value)))
    masks = [a for a in calls(expr, "Image.updateMask")
             if a["mask"].get("__call__") == "Image.not"]
    if merge is MergeMethod.MASKED:
        (m,) = masks
        sel = m["mask"]["value"]
        assert sel["__call__"] == "Image.select" and sel["bandSelectors"] == ["poor"]
    else:
        assert not masks
    (pair,) = [a for a in calls(expr, "ImageCollection.fromImages")
               if isinstance(a["images"], list)]
    assert pair["images"][0]["__call__"] == "ImageCollection.qualityMosaic"


@pytest.mark.parametrize("scorer", list(Scorer))
def test_every_scorer_is_either_an_earth_engine_graph_or_refused(region, scorer):
    params = MosaicParams(scorer=scorer.value)
    if "earthengine" in scorers.get(scorer).backends:
        assert graphs.encode(s2_mosaic(region, START, END, params))
    else:
        with pytest.raises(ValueError):
            s2_mosaic(region, START, END, params)


def test_cloud_score_plus_calibration_matches_numpy():
    """The graph's cs_cdf mapping is scorers.calibrate(1 - cs_cdf, 1 - clear, cloud_thresh):
    same breakpoints, evaluated here from the formula the graph encodes."""
    clear, ct = CSP.cloudscoreplus_clear_thresh, CSP.cloud_thresh
    cs = np.linspace(0, 1, 101, dtype=np.float32)
    graph_side = np.where(cs < clear, (clear - cs) * (1 - ct) / clear + ct,
                          (1 - cs) * ct / (1 - clear))
    np.testing.assert_allclose(graph_side, scorers.calibrate(1 - cs, 1 - clear, ct),
                               atol=1e-6)
    assert ((graph_side > ct) == (cs < clear)).all()
