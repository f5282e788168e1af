"""Live test of the stac backend against the real Planetary Computer (``pytest -m live``;
docs/stac.md), anonymous: one 600 m ROI's Sentinel-2 Level-2A mosaic through the real search,
SAS signing and COG reads, with the scl scorer.

Runs only when live tests are asked for (``-m live``), never in CI (``CI`` set), and skips
when planetarycomputer.microsoft.com cannot be reached. Sentinel-1 (the GRD chain is another
part of this project) and MODIS (an Earthdata account) are not in it: they need more than
an anonymous connection.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import numpy as np
import pytest

pytestmark = pytest.mark.live

HOST = "planetarycomputer.microsoft.com"


@pytest.fixture(scope="module")
def online(request):
    if "live" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("live test: run with -m live")
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.skip("live tests never run in CI")
    try:
        socket.create_connection((HOST, 443), timeout=5).close()
    except OSError:
        pytest.skip(f"no network to {HOST}")


def test_a_600m_roi_from_the_real_planetary_computer(online):
    from sen12ms_build.backends import SceneRequest
    from sen12ms_build.backends.stac import StacBackend
    from sen12ms_build.backends.stac.options import parse
    from sen12ms_build.geo import pixel_size_m
    from sen12ms_build.mosaic import MosaicParams
    from sen12ms_build.products import S2_BANDS, S2_L2A_BANDS
    from sen12ms_build.roi import ROI

    options = parse({"s2": {"profile": "planetary-computer", "level": "l2a"}}, "scl",
                    check_credentials=False)
    backend = StacBackend(options, scorer="scl")
    roi = ROI.at(7, 1868, "land", 11.5, 48.1, 600.0)  # farmland near Munich
    req = SceneRequest(roi, "summer", dt.date(2017, 6, 1), dt.date(2017, 6, 30),
                       params=MosaicParams(scorer="scl"))
    grid = req.grid(backend.export_grid)
    assert grid.shape == (60, 60) and pixel_size_m(grid) == (10.0, 10.0)
    res, info = backend.s2_mosaic(req, grid, np.ones(grid.shape, bool))
    assert res.meta["s2_images"] and not backend.problems
    keep = [S2_BANDS.index(b) for b in S2_L2A_BANDS]
    mosaic = res.mosaic[keep]
    assert (mosaic != 0).all(axis=0).mean() > 0.99  # covered
    assert 100 < np.median(mosaic[S2_L2A_BANDS.index("B8")]) < 6000  # vegetation NIR
    assert info["offset_rules"]  # every item said which offset rule applied
