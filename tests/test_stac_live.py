"""Live test of the stac backend against the real Planetary Computer (``pytest -m live``;
docs/stac.md), anonymous: one 600 m ROI's Sentinel-2 Level-2A mosaic through the real search,
SAS signing and COG reads, with the scl scorer; and the same ROI's Sentinel-1 from raw GRD
products (``sentinel-1-grd``) through the GRD chain with Copernicus DEM heights
(``cop-dem-glo-30``).

Runs only when live tests are asked for (``-m live``), never in CI (``CI`` set), and skips
when planetarycomputer.microsoft.com cannot be reached. MODIS (an Earthdata account) is not
in it: it needs more than an anonymous connection.
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


def test_a_600m_roi_of_sentinel1_from_real_grd_products(online):
    """Real GRD products (measurement COGs with GCPs, the SAFE's XML found through
    safe-manifest) and the real DEM through the chain: plausible sigma0 over farmland, and
    the products' facts from their manifests."""
    from sen12ms_build.backends import SceneRequest
    from sen12ms_build.backends.stac import StacBackend
    from sen12ms_build.backends.stac.options import parse
    from sen12ms_build.roi import ROI
    from sen12ms_build.sar import S1_PROCESSING_NAME

    options = parse({"s2": {"profile": "planetary-computer", "level": "l2a"}}, "scl",
                    check_credentials=False)
    backend = StacBackend(options, scorer="scl")
    roi = ROI.at(7, 1868, "land", 11.5, 48.1, 600.0)
    req = SceneRequest(roi, "summer", dt.date(2017, 6, 1), dt.date(2017, 6, 10))
    grid = req.grid(backend.export_grid)
    s1, meta = backend._s1(req, grid)
    assert s1.shape == (2, 60, 60) and not backend.problems
    ok = np.isfinite(s1).all(axis=0)
    assert ok.mean() > 0.95
    vv, vh = np.median(s1[0][ok]), np.median(s1[1][ok])
    assert -20 < vv < 0 and -30 < vh < -8 and vh < vv  # land: VH below VV
    for a in meta["s1_acquisitions"]:
        assert a["orbit_pass"] in ("ASCENDING", "DESCENDING")
        assert 1 <= int(a["relative_orbit"]) <= 175
        assert a["processing"].startswith(S1_PROCESSING_NAME)
    assert meta["dem"]["tiles"] and meta["dem"]["filled"] == 0.0
