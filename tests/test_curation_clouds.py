"""The patch round's residual-cloud check (curation.poor_blob_share, issue 10): no kept patch
may hold an opaque cloud a person can see in its quicklook."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from sen12ms_build import curation
from sen12ms_build.config import CurationConfig

#: An opaque cloud as a person sees it, independent of the mosaic's scores: bright in blue,
#: red and short-wave infrared (TOA reflectance), i.e. white in the quicklook and not snow.
OPAQUE = {"B2": 0.3, "B4": 0.3, "B11": 0.2}
#: A connected opaque region this large (~ 220 m across at 10 m) is visible in a quicklook.
VISIBLE_PX = 500


def _aux(poor: np.ndarray) -> np.ndarray:
    aux = np.zeros((2, *poor.shape), np.uint8)
    aux[1] = poor
    return aux


def test_a_compact_cloud_is_rejected_where_scattered_false_alarms_are_kept():
    n = 256
    blob = np.zeros((n, n), bool)
    blob[100:140, 60:110] = True  # 2000 px: 3 % of the patch in one piece
    speckle = np.zeros((n, n), bool)
    speckle[::9, ::9] = True  # 3 % too, in single pixels (bright sand, dark pixels)
    speckle = speckle[:n, :n]
    cfg = CurationConfig()
    for poor, keep in ((blob, False), (speckle, True)):
        arrays = {"aux": _aux(poor)}
        assert curation.poor_share(arrays["aux"]) < cfg.patch_max_poor_share  # old check
        ok, reason, values = curation.patch_decision(arrays, cfg)
        assert ok is keep, values
        if not keep:
            assert reason == "poor_blob"
            assert values["poor_blob"] == pytest.approx(2000 / n ** 2, abs=1e-6)
    assert "poor_blob" not in curation.thresholds(cfg, "scene")  # a patch-round check


def test_poor_blob_ignores_uncovered_pixels():
    aux = _aux(np.zeros((64, 64), np.uint8))
    aux[1, :32] = 255  # half not covered
    aux[1, 40:44, 40:44] = 1
    assert curation.poor_blob_share(aux) == pytest.approx(16 / (32 * 64))
    aux[1] = 255
    assert curation.poor_blob_share(aux) == 0.0


def _largest_opaque_region(path: Path) -> int:
    with rasterio.open(path) as src:
        r = src.read([2, 4, 12]).astype(np.float32) / 10000.0  # B2, B4, B11
    opaque = (r[0] > OPAQUE["B2"]) & (r[1] > OPAQUE["B4"]) & (r[2] > OPAQUE["B11"])
    labels, n = ndimage.label(opaque, structure=np.ones((3, 3), bool))
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


@pytest.mark.slow
def test_no_kept_demo_patch_holds_a_visible_opaque_cloud(demo_run):
    cfg, _summary = demo_run
    root = Path(cfg.out)
    rows = {r["patch_id"]: r for r in csv.DictReader(open(root / "manifest.csv"))}
    # the two patches of the summer scene 2 that held an opaque cloud and its shadow
    # (poor share 5 % and 9 %, under the 10 % poor threshold) are now rejected
    for pid in ("ROIs1868_summer_2_p1", "ROIs1868_summer_2_p3"):
        assert rows[pid]["status"] == "rejected" and rows[pid]["reason"] == "poor_blob", pid
    kept = [r for r in rows.values() if r["status"] == "kept"]
    assert len(kept) >= 150  # the check costs no clean patch of the demo (186 kept)
    worst = max((_largest_opaque_region(root / r["s2"]), r["patch_id"]) for r in kept)
    assert worst[0] < VISIBLE_PX, worst
