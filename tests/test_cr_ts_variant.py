"""variant: cr-ts (SEN12MS-CR-TS) end to end on two small ROIs of the demo archive, three
time points over the year: the released layout and names (as the authors' SEN12MSCRTS
parses them), one patch set at every time point, the slots' acquisitions, the masks, the
manifest, the splits in the loaders' form, our loader, and the dry run's cost."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen12ms_build.config import load_config

from variant_helpers import small_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("s2cloudless") is None,
                                reason="pip install 'sen12ms-build[s2cloudless]'")
T = 3


@pytest.fixture(scope="module")
def ts_config(demo_archive, tmp_path_factory):
    path = small_config(tmp_path_factory.mktemp("crts"), demo_archive, variant="cr-ts",
                        cloud_removal={"time_points": T, "start": "2016-12-01",
                                       "end": "2017-11-30"},
                        seasons={"winter": {"seed": 2017, "start": "2016-12-01",
                                            "end": "2017-02-28"}})
    return load_config(path)


@pytest.fixture(scope="module")
def ts_run(ts_config):
    from sen12ms_build.pipeline import run

    summary = run(ts_config, progress=False)
    return ts_config, summary, Path(ts_config.out)


def _rows(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_released_time_series_layout(ts_run, demo_archive):
    cfg, summary, root = ts_run
    assert summary.patches_kept == 2 * T  # 2 ROIs, one 256 px location each, T points
    archive = json.loads((demo_archive / "archive.json").read_text())
    s2_dates = {e["sensing_time"][:10] for e in archive["acquisitions"]
                if e["modality"] == "s2"}
    s1_dates = {e["sensing_time"][:10] for e in archive["acquisitions"]
                if e["modality"] == "s1"}
    for seed, roi in ((2017, 1), (2017, 2)):
        folder = root / f"ROIs{seed}" / str(roi)
        assert sorted(p.name for p in folder.iterdir()) == ["S1", "S2", "S2_mask"]
        for mod, dates in (("S1", s1_dates), ("S2", s2_dates)):
            assert sorted(p.name for p in (folder / mod).iterdir()) == [str(t) for t in
                                                                        range(T)]
            ids = []
            for t in range(T):
                files = sorted((folder / mod / str(t)).glob("*.tif"))
                # the authors' loader: the date is the 6th "_" field of the file name
                for f in files:
                    parts = f.name.split("_")
                    assert parts[:5] == [mod.lower(), f"ROIs{seed}", str(roi), "ImgNo", str(t)]
                    assert parts[5] in dates
                    dt.datetime.strptime(parts[5], "%Y-%m-%d")
                ids.append([f.name.split("patch_")[1] for f in files])
            assert all(i == ids[0] for i in ids) and ids[0]  # the same patches every time


def test_slots_take_the_nearest_acquisitions_and_masks_are_beside(ts_run, demo_archive):
    """Slot t of T over the year is centred at start + (t + 1/2) x span / T; its S2 is the
    archive's acquisition nearest that centre (every one covers the small ROIs), its S1 the
    archive's S1 nearest that S2 (worked out here from archive.json)."""
    cfg, _, root = ts_run
    start, end = cfg.year_span
    t0 = dt.datetime.combine(start, dt.time(), dt.UTC)
    span = dt.datetime.combine(end, dt.time(), dt.UTC) + dt.timedelta(days=1) - t0
    archive = json.loads((demo_archive / "archive.json").read_text())

    def times(mod):
        return [dt.datetime.fromisoformat(e["sensing_time"].replace("Z", "+00:00"))
                for e in archive["acquisitions"] if e["modality"] == mod]

    s2s, s1s = times("s2"), times("s1")
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    assert len(kept) == 2 * T
    for r in kept:
        t = int(r["t"])
        centre = t0 + span * ((t + 0.5) / T)
        want2 = min(s2s, key=lambda x: (abs(x - centre), x))
        want1 = min(s1s, key=lambda x: (abs(x - want2), x))
        assert r["s2_datetime"].startswith(want2.isoformat()[:19]), (r, want2)
        assert r["s1_datetime"].startswith(want1.isoformat()[:19]), (r, want1)
        with rasterio.open(root / r["s2"]) as a, rasterio.open(root / r["s1"]) as b, \
                rasterio.open(root / r["s2_mask"]) as m:
            assert (a.count, b.count, m.count) == (13, 2, 2)
            assert a.transform == b.transform == m.transform
            mask = m.read()
        assert float(r["cloud_coverage"]) == pytest.approx(float((mask[0] == 1).mean()),
                                                           abs=1e-6)
        assert np.isin(mask, (0, 1)).all()


def test_splits_for_the_loaders_and_our_loader(ts_run):
    from sen12ms_build.variants.loaders import SEN12MSCRTSDataset

    _, _, root = ts_run
    data = json.loads((root / "splits_sen12mscrts.json").read_text())
    assert data["ROI"] == {"ROIs2017": ["1", "2"]}
    train, test = set(data["splits"]["train"]), set(data["splits"]["test"])
    assert train and test and not train & test
    assert train | test == {"ROIs2017/1", "ROIs2017/2"}
    assert (root / "test_list.txt").read_text().split() == sorted(test)
    ds = SEN12MSCRTSDataset(root, "test", as_tensor=False)
    assert {f"ROIs{s}/{r}" for s, r in ds.rois()} == test
    x = ds[0]
    assert x["s2"].shape == (T, 13, 256, 256) and x["masks"].shape == (T, 2, 256, 256)
    assert len(x["s2_dates"]) == T


def test_the_dry_run_gives_the_cost(ts_config):
    from sen12ms_build.planning import dry_run

    text = dry_run(ts_config)
    assert f"{T} time points" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("ROIs")]
    assert len(lines) == 2
    for ln in lines:
        cols = ln.split()
        assert cols[6] == "1" and cols[7] == str(3 * T)  # one location, 3 T files
    assert "patch files" in text and "written" in text


def test_descriptions_and_quicklooks(ts_run):
    from sen12ms_build.dataset.croissant import validate_croissant
    from sen12ms_build.dataset.stac_validate import validate_catalog

    _, _, root = ts_run
    assert validate_catalog(root) == []
    assert validate_croissant(root, records=2) == []
    assert "SEN12MS-CR-TS" in (root / "README.md").read_text()
    assert len(list((root / "quicklooks").glob("ROIs*_ts.png"))) == 2


def test_validate_passes_the_tree_and_names_a_missing_time_point(ts_run):
    from sen12ms_build.dataset.validate import validate_tree

    _, _, root = ts_run
    assert validate_tree(root) == []
    f = next((root / "ROIs2017" / "1" / "S2" / "1").glob("*.tif"))
    aside = f.with_name("aside.bin")
    f.rename(aside)
    try:
        problems = validate_tree(root, checksums=False)
    finally:
        aside.rename(f)
    assert any("the time points do not hold the same patch ids" in p for p in problems)
