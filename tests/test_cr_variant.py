"""variant: cr (SEN12MS-CR) end to end on two small ROIs of the demo archive (winter and
spring): the released layout, aligned quads, the pick, the masks against the s2cloudless
package run as the authors' loaders run it and against the demo's cloud truth, the
manifest's pair columns, the splits in the loaders' form, our exact-id loader, STAC,
Croissant and the data card."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen12ms_build.config import load_config

from variant_helpers import small_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("s2cloudless") is None,
                                reason="pip install 'sen12ms-build[s2cloudless]'")
REPO = Path(__file__).resolve().parent.parent
#: spring: three scattered-cloud acquisitions and a clear one (the demo's plan)
SEASONS = {"spring": {"seed": 1158, "start": "2017-03-01", "end": "2017-05-30"}}


@pytest.fixture(scope="module")
def cr_run(demo_archive, tmp_path_factory):
    from sen12ms_build.pipeline import run

    path = small_config(tmp_path_factory.mktemp("cr"), demo_archive, variant="cr",
                        seasons=SEASONS)
    cfg = load_config(path)
    summary = run(cfg, progress=False)
    return cfg, summary, Path(cfg.out)


def _rows(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_released_layout_and_nothing_of_the_paper_tree(cr_run):
    cfg, summary, root = cr_run
    assert summary.patches_kept > 0
    branches = sorted(p.name for p in root.glob("ROIs*") if p.is_dir())
    for season, seed in (("spring", 1158),):
        for mod in ("s1", "s2", "s2_cloudy", "s2_cloudy_mask", "lc", "qa"):
            assert f"ROIs{seed}_{season}_{mod}" in branches
    assert not [b for b in branches if re.fullmatch(r"ROIs\d+_[a-z]+", b)]  # no paper branch
    name = re.compile(r"^ROIs(\d+)_(spring)_(s1|s2|s2_cloudy|s2_cloudy_mask|lc|qa)_"
                      r"(\d+)_p(\d+)\.tif$")
    for f in root.glob("ROIs*/*/*.tif"):
        m = name.match(f.name)
        assert m, f
        assert f.parent.name == f"{m[3]}_{m[4]}" and f.parent.parent.name == \
            f"ROIs{m[1]}_{m[2]}_{m[3]}"
    # no root entry but the s1 branches carries "_s1": the authors' SEN12MSCR walks those
    assert sorted(p.name for p in root.iterdir() if "_s1" in p.name) == ["ROIs1158_spring_s1"]


def test_every_kept_quad_is_aligned_and_banded_as_sen12ms_cr(cr_run):
    _, _, root = cr_run
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    assert kept
    for r in kept:
        grids = set()
        for key, count, dtype in (("s1", 2, "float32"), ("s2", 13, "uint16"),
                                  ("s2_cloudy", 13, "uint16"), ("s2_cloudy_mask", 2, "uint8"),
                                  ("lc", 4, "uint16")):
            with rasterio.open(root / r[key]) as src:
                assert (src.count, src.dtypes[0]) == (count, dtype), (key, r[key])
                grids.add((src.crs.to_string(), tuple(src.transform), src.shape))
                if key == "s2_cloudy":
                    assert src.descriptions[10] == "B10"
                    tags = src.tags()
                    assert tags["S2_PRODUCT_ID"] == r["cloudy_product_id"]
                    assert float(tags["MEAN_SOLAR_ZENITH_ANGLE"]) > 0
        assert len(grids) == 1, r["patch_id"]
        # the authors' SEN12MSCR derives the other two paths from the s1 path so
        s1 = "/" + r["s1"]
        assert s1.replace("/s1", "/s2").replace("_s1", "_s2") == "/" + r["s2"]
        assert s1.replace("/s1", "/s2_cloudy").replace("_s1", "_s2_cloudy") == \
            "/" + r["s2_cloudy"]


def test_the_cloudy_input_is_a_real_single_acquisition_of_the_season(cr_run, demo_archive):
    """Its pixels are one archive acquisition's, not the mosaic's; the acquisition is of
    the scene's season, not the mosaic's dominant image, and lies in the configured band
    when one does."""
    cfg, _, root = cr_run
    scenes = list(csv.DictReader(open(root / "scenes.csv", newline="")))
    archive = json.loads((demo_archive / "archive.json").read_text())
    season_of = {e["product_id"]: e["season"] for e in archive["acquisitions"]
                 if e["modality"] == "s2"}
    for s in scenes:
        assert season_of[s["cloudy_product_id"]] == s["season"]
        assert s["cloudy_product_id"] != s["dominant_product_id"]
        assert s["cloudy_pick_rule"] == "in_band"
        lo, hi = cfg.cloud_removal.cloud_band
        assert lo <= float(s["cloudy_percentage"]) <= hi
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    differ = 0
    for r in kept[:6]:
        with rasterio.open(root / r["s2"]) as a, rasterio.open(root / r["s2_cloudy"]) as b:
            differ += int(np.any(a.read() != b.read()))
    assert differ > 0


def test_masks_agree_with_the_s2cloudless_package_as_the_loaders_call_it(cr_run):
    """The authors' loaders compute s2cloudless_mask per patch with
    S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
    on clip(DN, 0, 10000) / 10000: our cloud band and coverage agree with it."""
    from s2cloudless import S2PixelCloudDetector

    _, _, root = cr_run
    det = S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    agree, diffs = [], []
    for r in kept:
        with rasterio.open(root / r["s2_cloudy"]) as src:
            img = src.read().astype(np.float32)
        with rasterio.open(root / r["s2_cloudy_mask"]) as src:
            ours = src.read(1)
        theirs = det.get_cloud_masks(np.moveaxis(np.clip(img, 0, 10000) / 10000, 0, -1)[None])[0]
        inner = (slice(8, -8), slice(8, -8))  # away from the patch border (their padding)
        agree.append(float(((ours == 1) == (theirs == 1))[inner].mean()))
        diffs.append(abs(float(r["cloud_coverage"]) - float(theirs.mean())))
    assert min(agree) >= 0.995, min(agree)
    assert max(diffs) <= 0.02 and float(np.mean(diffs)) <= 0.005, (max(diffs), np.mean(diffs))


def test_masks_find_the_demo_clouds_and_shadows(cr_run, demo_archive):
    """Recall and precision against the archive's injected truth
    (scripts/evaluate_cr_masks.py, the figures of docs/variants.md)."""
    spec = importlib.util.spec_from_file_location(
        "evaluate_cr_masks", REPO / "scripts" / "evaluate_cr_masks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, _, root = cr_run
    res = mod.evaluate(root, demo_archive, any_cloud=False)
    assert res["cloud"]["recall"] >= 0.95 and res["cloud"]["precision"] >= 0.85, res
    assert res["cloud_or_shadow"]["recall"] >= 0.85, res
    assert 0.0 <= res["coverage_min"] <= res["coverage_max"] <= 1.0, res


def test_manifest_records_coverage_dates_and_gap(cr_run):
    _, _, root = cr_run
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    for r in kept:
        with rasterio.open(root / r["s2_cloudy_mask"]) as src:
            m = src.read()
        assert float(r["cloud_coverage"]) == pytest.approx(float((m[0] == 1).mean()), abs=1e-6)
        assert float(r["shadow_coverage"]) == pytest.approx(float((m[1] == 1).mean()), abs=1e-6)
        a = np.datetime64(r["cloudy_datetime"].rstrip("Z"))
        b = np.datetime64(r["target_datetime"].rstrip("Z"))
        assert float(r["time_gap_days"]) == pytest.approx(
            abs((a - b) / np.timedelta64(1, "s")) / 86400, abs=0.01)
        with rasterio.open(root / r["s2"]) as src:  # the target's largest source, its date
            assert src.tags()["S2_DATETIMES"].split(",")[0] == r["target_datetime"]


def test_splits_in_the_loaders_form_match_one_scene_each(cr_run):
    from sen12ms_build.variants.loaders import SEN12MSCRDataset

    _, _, root = cr_run
    splits = json.loads((root / "splits_sen12mscr.json").read_text())
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    for split in ("train", "test"):
        # the loaders' rule: a patch is in when an entry is a substring of its s1 path
        chosen = {r["patch_id"] for r in kept
                  if any(e in "/" + r["s1"] for e in splits[split])}
        assert chosen == {r["patch_id"] for r in kept if r["split"] == split}
        ds = SEN12MSCRDataset(root, split, as_tensor=False)
        assert {r["patch_id"] for r in ds.rows} == chosen
    sample = SEN12MSCRDataset(root, "all", as_tensor=False)[0]
    assert sample["s2_cloudy"].shape == (13, 256, 256) and sample["mask"].shape == \
        (2, 256, 256)


def test_exact_entries_beat_the_loaders_substring_match():
    """``ROIs1158_spring_s1/s1_1`` (the loaders' form) also matches scene 106; our entry
    with its trailing slash matches scene 1 alone."""
    from sen12ms_build.dataset.cr_layout import authors_split_entry, cr_patch_path

    p1 = str(cr_patch_path(Path("/d"), 1158, "spring", "s1", 1, 5))
    p106 = str(cr_patch_path(Path("/d"), 1158, "spring", "s1", 106, 5))
    assert "ROIs1158_spring_s1/s1_1" in p106  # the pitfall
    entry = authors_split_entry(1158, "spring", 1)
    assert entry in p1 and entry not in p106


def test_self_descriptions_carry_the_pair(cr_run):
    from sen12ms_build.dataset.croissant import validate_croissant
    from sen12ms_build.dataset.stac_validate import validate_catalog

    _, _, root = cr_run
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    r = kept[0]
    item = json.loads(next((root / "stac").rglob(f"{r['patch_id']}.json")).read_text())
    assert item["assets"]["s2_cloudy"]["datetime"] == r["cloudy_datetime"]
    assert item["assets"]["s2"]["datetime"] == r["target_datetime"]
    assert (Path(next((root / "stac").rglob(f"{r['patch_id']}.json")).parent)
            / item["assets"]["s2_cloudy"]["href"]).resolve() == (root / r["s2_cloudy"]).resolve()
    assert validate_catalog(root) == []
    doc = json.loads((root / "croissant.json").read_text())
    fields = {f["name"] for rs in doc["recordSet"] for f in rs["field"]}
    assert {"s2_cloudy", "cloud_coverage", "time_gap_days"} <= fields
    assert validate_croissant(root, records=2) == []
    card = (root / "README.md").read_text()
    assert "s2_cloudy" in card and "substring" in card and "| coverage |" in card
    assert len(list((root / "quicklooks" / "ROIs1158_spring").glob("scene_*_cr.png"))) == 2


def test_validate_passes_the_tree_and_names_a_broken_pair(cr_run):
    from sen12ms_build.dataset.validate import validate_tree

    _, _, root = cr_run
    assert validate_tree(root) == []
    r = next(r for r in _rows(root) if r["status"] == "kept")
    cloudy = root / r["s2_cloudy"]
    aside = cloudy.with_name("aside.bin")
    cloudy.rename(aside)
    try:
        problems = validate_tree(root, checksums=False)
    finally:
        aside.rename(cloudy)
    assert any("pair incomplete, missing s2_cloudy" in p for p in problems), problems
    assert any(r["s2_cloudy"] in p and "missing" in p for p in problems), problems


def test_a_cr_root_refuses_another_variant(cr_run):
    from dataclasses import replace

    from sen12ms_build.pipeline import run
    from sen12ms_build.variants import VariantMismatch

    cfg, _, root = cr_run
    with pytest.raises(VariantMismatch, match="variant"):
        run(replace(cfg, variant="sen12ms"), progress=False)


def test_apply_review_refuses_a_variant_tree(cr_run):
    from sen12ms_build.curation.review import apply_review
    from sen12ms_build.raster.io import InputError

    cfg, _, root = cr_run
    before = (root / "manifest.csv").read_bytes()
    with pytest.raises(InputError, match="apply-review handles the paper's triplets only"):
        apply_review(root, cfg, rejects=[_rows(root)[0]["patch_id"]])
    assert (root / "manifest.csv").read_bytes() == before
