"""Acceptance of issue 10 on the demo archive WITH REAL CLOUDS (``clouds="real"``: spring's
and summer's scattered acquisitions carry the cloud shapes and 13-band spectra of a real
Sentinel-2 array, the other acquisitions keep synthetic clouds), on a central 384 x 384 px
crop (the cost of s2cloudless). Figures come from scripts/evaluate_clouds.py, the same code
the evaluation prints (docs/clouds.md).

What is measured, on the real-cloud acquisitions, pooled over their pixels:

* recall of the scorer's cloud mask (``cloud > cloud_thresh``) against the cloud truth
  (opacity >= 0.5, the opaque core: ``truth/*_cloud.tif``);
* precision of the same mask against "any cloud" (opacity > 0: the real cloud's thin edges
  are cloud too, and flagging them is right), recomputed with
  :func:`sen12ms_build.demo.realclouds.real_cloud_layers`, the function the archive used.

The precision against the opaque core alone and the per-acquisition figures are printed by
the script and reported in docs/clouds.md (the sparse acquisitions' specks of one to four
pixels are a known miss of both scorers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sen12ms_build.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("s2cloudless") is None,
    reason="pip install 'sen12ms-build[s2cloudless]'")]

REPO = Path(__file__).resolve().parent.parent
CROP = 384


def _evaluate_clouds():
    spec = importlib.util.spec_from_file_location("evaluate_clouds",
                                                  REPO / "scripts" / "evaluate_clouds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_archive(tmp_path_factory) -> Path:
    """The demo archive with real clouds, its central CROP x CROP pixels."""
    from sen12ms_build.demo.archive import write_demo_archive

    root = tmp_path_factory.mktemp("realclouds") / "archive"
    write_demo_archive(root, crop=CROP, progress=False, clouds="real")
    return root


@pytest.fixture(scope="module")
def plus(real_archive):
    """configs/sen12ms-plus.yaml's mosaic settings, and both local scorers evaluated on the
    real-cloud archive (the paper's score is cheap: its figures come along, side by side)."""
    cfg = load_config(REPO / "configs" / "sen12ms-plus.yaml",
                      {"backend.archive": str(real_archive)})
    assert cfg.mosaic_params.scorer == "s2cloudless"
    ev = _evaluate_clouds()
    return cfg, ev, ev.evaluate_archive(real_archive, ["paper", "s2cloudless"], None,
                                        base=cfg.mosaic_params)


def _cloudy(result: dict, kind: str) -> list[dict]:
    return [r for r in result["acquisitions"] if r["clouds"] == kind
            and r["s2cloudless"]["n_cloud_truth"] > 0]


def test_s2cloudless_finds_the_real_clouds(plus):
    _cfg, ev, result = plus
    rows = _cloudy(result, "real")
    assert len(rows) >= 5  # spring's and summer's scattered acquisitions
    s2c = ev.pooled_cloud(rows, "s2cloudless")
    assert s2c["recall"] >= 0.9 and s2c["precision_any"] >= 0.8, s2c
    # against the opaque core alone its precision is lower (it rightly flags thin edges),
    # but most of what it flags is opaque cloud
    assert s2c["precision"] >= 0.8, s2c
    # the paper's score, side by side: it misses more of every real acquisition's clouds
    paper = ev.pooled_cloud(rows, "paper")
    assert paper["recall"] < s2c["recall"], (paper, s2c)
    for r in rows:
        assert r["s2cloudless"]["cloud_recall"] > (r["paper"]["cloud_recall"] or 0.0), r


def test_s2cloudless_on_the_synthetic_clouds_of_the_same_archive(plus):
    """Winter's and fall's cloud streets keep synthetic clouds in the real variant."""
    _cfg, ev, result = plus
    rows = _cloudy(result, "synthetic")
    assert rows
    for r in rows:
        x = r["s2cloudless"]
        assert x["cloud_recall"] >= 0.9 and x["cloud_precision"] >= 0.8, (r["date"], x)
    recall, precision = ev.pooled(rows, "s2cloudless")
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)


def test_plus_config_leaves_at_most_1_percent_cloud_and_shadow_per_season(plus):
    cfg, _ev, result = plus
    merge = cfg.mosaic_params.merge
    residual = result["residual_percent"]
    assert set(residual) == {"spring", "summer", "fall", "winter"}
    for season, by_method in residual.items():
        assert by_method[f"s2cloudless+{merge}"] <= 1.0, (season, by_method)
