"""ESA WorldCover through the stac backend: the demo's tile served on loopback as Planetary
Computer's ``esa-worldcover`` holds it (SAS-signed COG, items of PC's shape), read onto a
scene grid, and held against the recorded item and the local backend's read of the same
tile."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from sen12ms_build.backends import SceneRequest
from sen12ms_build.backends.local import read_worldcover, worldcover_tiles
from sen12ms_build.backends.stac import StacBackend
from sen12ms_build.backends.stac.options import parse
from sen12ms_build.roi import ROI

from stac_helpers import archive_centre

RECORDED = Path(__file__).parent / "fixtures" / "stac" / "pc_esa-worldcover_item.json"


def _keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k not in ("assets",):
            out |= _keys(v, prefix + k + ".")
    return out


def test_published_items_have_the_recorded_shape(stac_demo):
    _, svc = stac_demo
    recorded = json.loads(RECORDED.read_text())
    (item,) = [i for i in svc.items if i["collection"] == "esa-worldcover"]
    assert set(item["properties"]) - {"demo:note"} == set(recorded["properties"])
    assert set(item["assets"]) == {"map"}  # the demo has no input-quality layer
    assert set(item["assets"]["map"]) - {"href"} == \
        set(recorded["assets"]["map"]) - {"href", "created"}
    assert item["assets"]["map"]["classification:classes"] == \
        recorded["assets"]["map"]["classification:classes"]
    assert item["properties"]["esa_worldcover:product_version"] == "1.0.0"
    assert item["properties"]["datetime"] is None and item["stac_extensions"] == \
        recorded["stac_extensions"]


def test_stac_reads_worldcover_through_the_loopback_items(stac_demo):
    archive, svc = stac_demo
    lon, lat = archive_centre(archive)
    roi = ROI(1, "1_listed_1", 1, "listed", lon, lat, 2560.0, 32618)
    request = SceneRequest(roi, "winter", dt.date(2016, 12, 1), dt.date(2017, 2, 28),
                           labels="worldcover", worldcover_version="v100")
    options = parse(svc.section("l1c", labels=True), needs=("s2", "s1", "lc", "labels"))
    assert options.sources["labels"].product.collection == "esa-worldcover"
    grid = roi.scene_grid(10.0)
    arr, meta = StacBackend(options)._labels(request, grid)
    assert meta["labels"]["id"] == "ESA/WorldCover/v100" and meta["labels"]["images"]
    assert arr.dtype == np.uint8 and arr.shape == (1, *grid.shape)
    assert set(np.unique(arr).tolist()) <= {0, 10, 40, 60, 80, 90}
    assert (arr != 0).mean() > 0.99
    # the same tile read from the archive's file onto the same grid: the same classes
    local, _ = read_worldcover(worldcover_tiles(archive, "v100"), grid)
    assert (arr == local).mean() > 0.999
    # the other version has no tile: a scene without labels, said in one line
    from sen12ms_build.backends import NoDataError

    with pytest.raises(NoDataError, match="v200"):
        StacBackend(options)._labels(SceneRequest(
            roi, "winter", dt.date(2016, 12, 1), dt.date(2017, 2, 28), labels="worldcover",
            worldcover_version="v200"), grid)
