"""The patch round's residual-cloud check (curation.poor_blob_share, issue 10): no kept patch
may hold an opaque cloud a person can see in its quicklook, on the demo's synthetic clouds
(the whole demo run) and on its real clouds (every 256 px patch of the real-cloud
acquisitions, scored alone: the worst case, where no clearer image fills the cloud)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from sen12ms_build import mosaic
from sen12ms_build.curation import rounds as curation
from sen12ms_build.config import CurationConfig
from sen12ms_build.mosaic import MosaicParams

#: An opaque cloud as a person sees it, independent of the mosaic's scores: bright in blue,
#: red and short-wave infrared (TOA reflectance), i.e. white in the quicklook and not snow.
OPAQUE = {"B2": 0.3, "B4": 0.3, "B11": 0.2}
#: A connected opaque region this large (~ 70 m across at 10 m, a white dot of 7 x 7 px in
#: the 256 px quicklook) is visible in a quicklook.
VISIBLE_PX = 50


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


def _largest_opaque_region(path: Path | np.ndarray) -> int:
    if isinstance(path, np.ndarray):  # (13, h, w) L1C DN
        r = path[[1, 3, 11]].astype(np.float32) / 10000.0
    else:
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
    # (poor share 5 % and 9 %, under the 10 % poor threshold) and the small opaque cloud
    # cut by the edge of summer scene 1's first patch (150 poor px) are rejected
    for pid in ("ROIs1868_summer_2_p1", "ROIs1868_summer_2_p3", "ROIs1868_summer_1_p1"):
        assert rows[pid]["status"] == "rejected" and rows[pid]["reason"] == "poor_blob", pid
    kept = [r for r in rows.values() if r["status"] == "kept"]
    assert len(kept) >= 150  # 183 kept of 192 (186 with the old 0.01 threshold)
    worst = max((_largest_opaque_region(root / r["s2"]), r["patch_id"]) for r in kept)
    assert worst[0] < VISIBLE_PX, worst


PATCH, STRIDE, REAL_CROP = 256, 128, 512


@pytest.fixture(scope="module")
def real_cloud_patches(tmp_path_factory):
    """Every 256 px patch (stride 128) of the real-cloud acquisitions of a 512 px demo
    archive with real clouds: (date, row, col, l1c patch, {scorer: poor patch})."""
    from sen12ms_build.demo.archive import write_demo_archive

    root = tmp_path_factory.mktemp("realcuration") / "archive"
    write_demo_archive(root, crop=REAL_CROP, progress=False, clouds="real")
    names = ["paper"] + (["s2cloudless"] if importlib.util.find_spec("s2cloudless") else [])
    out = []
    for e in json.loads((root / "archive.json").read_text())["acquisitions"]:
        if e["modality"] != "s2" or e.get("clouds") != "real":
            continue
        with rasterio.open(root / e["path"]) as src:
            l1c = src.read()
        poor = {n: mosaic.score_image(l1c, (10.0, 10.0), e["solar_azimuth_deg"],
                                      e["solar_zenith_deg"], None,
                                      MosaicParams(scorer=n)).poor for n in names}
        for r0 in range(0, REAL_CROP - PATCH + 1, STRIDE):
            for c0 in range(0, REAL_CROP - PATCH + 1, STRIDE):
                w = (slice(r0, r0 + PATCH), slice(c0, c0 + PATCH))
                out.append((e["sensing_time"][:10], r0, c0, l1c[(slice(None), *w)],
                            {n: p[w] for n, p in poor.items()}))
    return out


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("s2cloudless") is None,
                    reason="pip install 'sen12ms-build[s2cloudless]'")
def test_no_patch_with_a_visible_real_cloud_passes_with_s2cloudless(real_cloud_patches):
    """With the s2cloudless scorer (configs/sen12ms-plus.yaml), the patch round rejects every
    patch of a real cloudy image that holds a visible opaque cloud, with the default
    (demo's) thresholds already; the paper's score lets some through (reported, not
    asserted: docs/clouds.md)."""
    cfg = CurationConfig()
    visible = kept = paper_misses = 0
    for date, r0, c0, l1c, poor in real_cloud_patches:
        ok, _reason, values = curation.patch_decision({"aux": _aux(poor["s2cloudless"])}, cfg)
        big = _largest_opaque_region(l1c)
        if big >= VISIBLE_PX:
            visible += 1
            assert not ok, (date, r0, c0, big, values)
            paper_misses += curation.patch_decision({"aux": _aux(poor["paper"])}, cfg)[0]
        kept += ok
    assert visible >= 30  # the cases: most patches of the 6 real cloudy images
    assert kept >= 3  # and patches without a visible cloud still pass (4 of 16)
    # the cases are not trivial: the paper's poor mask misses small real clouds
    assert paper_misses >= 1
