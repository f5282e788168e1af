"""variant cr on the Earth Engine backend, against the loopback emulator
(tests/ee_helpers.FakeEarthEngine): after the mosaic, the cloudy acquisition is requested
with the graph of the pick (graphs.cloudy_pick, its dominant image from the mosaic's source
counts) and assembled as s2_cloudy.tif; the metadata names the image the rule picks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest

pytest.importorskip("ee")

import ee  # noqa: E402

from ee_helpers import FakeEarthEngine, expected, fixture, read  # noqa: E402
from sen12ms_build.backends import CloudyOptions, NoDataError, SceneRequest  # noqa: E402
from sen12ms_build.backends import get_backend  # noqa: E402
from sen12ms_build.roi import ROI  # noqa: E402

ROI_SMALL = ROI.at(7, 1868, "land", 11.5, 48.1, 3000.0)
REQUEST = SceneRequest(ROI_SMALL, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31),
                       variant="cr", cloudy=CloudyOptions((10.0, 90.0), 99.0))
SUMMARY = fixture("value_compute_summary.json")


@pytest.fixture
def fake():
    def responder(body: dict):
        text = json.dumps(body["expression"])
        if "CLOUDY_PERCENTAGE" not in text:
            return {"s2": len(SUMMARY["s2"]), "s1": len(SUMMARY["s1"]), "lc": 1}
        return SUMMARY

    with FakeEarthEngine() as server:
        server.value = responder
        yield server
    ee.Reset()


def _options(fake, tmp_path, **extra):
    return {"credentials": "none", "project": "test-project", "request_url_base": fake.url,
            "cache_dir": str(tmp_path / "cache"), "max_request_bytes": 256 * 256 * 30,
            "progress": False, "backoff_base": 0.01, "backoff_max": 0.05,
            "max_concurrency": 4, **extra}


def test_cloudy_acquisition_is_picked_by_the_graph_and_downloaded(fake, tmp_path):
    backend = get_backend("earthengine", **_options(fake, tmp_path))
    res = backend.export_scene(REQUEST, tmp_path / "scene")
    grid = ROI_SMALL.export_grid()
    cloudy, prof = read(tmp_path / "scene" / "s2_cloudy.tif")
    assert res.s2_cloudy == tmp_path / "scene" / "s2_cloudy.tif"
    assert prof["transform"] == grid.transform and cloudy.shape == (13, grid.height,
                                                                     grid.width)
    np.testing.assert_array_equal(
        cloudy, expected("s2", grid.transform, grid.width, grid.height, aux=False))
    # the dominant image: most pixels in the mosaic's source band (the emulator's aux)
    source = expected("s2", grid.transform, grid.width, grid.height)[13]
    dom = int(np.argmax(np.bincount(source.ravel(), minlength=6)))
    # by hand: other images with the whole ROI covered and 10..90 % cloudy, nearest in
    # time to the dominant one
    s2 = SUMMARY["s2"]
    ok = [i for i, im in enumerate(s2) if i != dom and im["roi_coverage_percent"] >= 99
          and 10 <= im["cloudy_percentage"] <= 90]
    want = min(ok, key=lambda i: (abs(s2[i]["time_start"] - s2[dom]["time_start"]), i))
    pick = res.meta["s2_cloudy"]
    assert pick["product_id"] == s2[want]["id"]
    assert pick["dominant"]["product_id"] == s2[dom]["id"]
    assert pick["gap_days"] == pytest.approx(
        abs(s2[want]["time_start"] - s2[dom]["time_start"]) / 86400e3, abs=1e-3)
    assert prof["tags"]["PRODUCT_ID"] == s2[want]["id"]
    # the request's graph carries the pick's inputs: the dominant id and time, the band
    bodies = [b for b in fake.pixel_requests() if "CLOUDY_PICK_KEY" in json.dumps(b)]
    assert bodies
    text = json.dumps(bodies[0]["expression"])
    assert s2[dom]["id"] in text and str(float(s2[dom]["time_start"])) in text


def test_cloudy_needs_download_mode_and_aux(fake, tmp_path):
    backend = get_backend("earthengine", **_options(fake, tmp_path, export_aux=False))
    with pytest.raises(NoDataError, match="export_aux"):
        backend.export_scene(REQUEST, tmp_path / "a")
    other = dataclasses.replace(REQUEST, variant="sen12ms")
    res = backend.export_scene(other, tmp_path / "b")  # the paper's scene: no cloudy file
    assert res.s2_cloudy is None
