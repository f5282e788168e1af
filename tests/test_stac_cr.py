"""The cloud-removal variants through the stac backend (the demo ground on loopback STAC,
S3 and COG services, tests/conftest.stac_demo): the cr pair and a cr-ts series of one ROI,
valid trees, the same cloudy pick as the local backend on the same ground."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from sen12ms_build.config import load_config
from sen12ms_build.dataset.validate import validate_tree
from sen12ms_build.pipeline import run

from stac_helpers import write_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("s2cloudless") is None,
                                reason="pip install 'sen12ms-build[s2cloudless]'")


def _scenes(root: Path) -> list[dict]:
    with open(root / "scenes.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def stac_cr(stac_demo, tmp_path_factory):
    archive, svc = stac_demo
    base = tmp_path_factory.mktemp("stac_cr")
    out = {}
    for name, backend in (("local", {"name": "local", "archive": str(archive)}),
                          ("stac", {"name": "stac", "stac": svc.section("l1c")})):
        cfg = load_config(write_config(base / name, archive, backend, variant="cr"))
        run(cfg, progress=False, workers=1)
        out[name] = Path(cfg.out)
    return out


def test_stac_builds_the_pair_and_picks_as_local(stac_cr):
    root = stac_cr["stac"]
    assert validate_tree(root) == []
    s, local = _scenes(root), _scenes(stac_cr["local"])
    assert len(s) == 1 and s[0]["backend"] == "stac"
    assert s[0]["cloudy_product_id"] != s[0]["dominant_product_id"]
    assert s[0]["cloudy_product_id"] == local[0]["cloudy_product_id"]
    assert list(root.glob("ROIs*_s2_cloudy/s2_cloudy_1/*.tif"))


def test_stac_builds_a_time_series(stac_demo, tmp_path):
    archive, svc = stac_demo
    cfg = load_config(write_config(tmp_path, archive, {"name": "stac",
                                                       "stac": svc.section("l1c")},
                                   variant="cr-ts", cloud_removal={"time_points": 3},
                                   tiling={"patch_size": 256, "stride": 256}))
    summary = run(cfg, progress=False, workers=1)
    root = Path(cfg.out)
    assert summary.patches_kept == 3
    assert validate_tree(root) == []
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    dates = [r["s2_datetime"][:10] for r in rows]
    # winter's three acquisitions (2016-12-22, 2017-01-11, 2017-01-31), one per slot
    assert dates == ["2016-12-22", "2017-01-11", "2017-01-31"]
