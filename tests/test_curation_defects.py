"""The automated inspection rounds on the demo archive with injected defects: every defect is
rejected, clean patches are kept; rejected patches stay auditable; quicklooks, the review
page, the report and a reviewer's round trip on the same run."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen12ms_build.curation import rounds as curation
from sen12ms_build.dataset import layout
from sen12ms_build.curation import quicklook
from sen12ms_build.curation import review
from sen12ms_build.demo import defects
from sen12ms_build.pipeline import run


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def defect_run(demo_archive, demo_config, tmp_path_factory):
    """The demo run on a copy of the demo archive with the known defects injected."""
    base = tmp_path_factory.mktemp("defects")
    archive = defects.copy_archive(demo_archive, base / "archive")
    defects.inject_defects(archive)
    cfg = dataclasses.replace(demo_config, out=str(base / "sen12ms"),
                              backend=dataclasses.replace(demo_config.backend,
                                                          archive=str(archive)),
                              quicklooks=True)
    summary = run(cfg, progress=False)
    return cfg, archive, summary


@pytest.fixture(scope="module")
def evaluation(defect_run):
    cfg, archive, _ = defect_run
    return defects.evaluate(cfg.out, archive)


def test_injection_leaves_the_clean_archive_alone(demo_archive, defect_run):
    _, archive, _ = defect_run
    for d in json.loads((archive / defects.DEFECTS_JSON).read_text())["defects"]:
        assert d["core_pixels"] > 0, d["id"]
        for rel in d["files"]:
            with rasterio.open(archive / rel) as f:
                assert d["id"] in f.tags()[defects.TAG].split(",")
            with rasterio.open(demo_archive / rel) as f:
                assert defects.TAG not in f.tags()
    assert not defects.has_defects(demo_archive)
    before = {p: p.stat().st_mtime_ns for p in archive.rglob("*.tif")}
    defects.inject_defects(archive)  # idempotent: nothing injected twice
    assert {p: p.stat().st_mtime_ns for p in archive.rglob("*.tif")
            if "truth" not in p.parts} == {p: t for p, t in before.items()
                                           if "truth" not in p.parts}


def test_every_defect_is_rejected_and_clean_patches_are_kept(evaluation):
    ev = evaluation
    print("\n" + "\n".join(ev.lines()))
    assert {d.id for d in ev.defects} == {d.id for d in defects.DEFECTS}
    for d in ev.defects:
        assert len(d.affected) >= 2, f"{d.id} reaches only {len(d.affected)} patch(es)"
        assert d.recall >= 0.9, (d.id, d.recall, sorted(set(d.affected) - set(d.rejected)))
        by_check = d.reasons.get(d.check, 0) + d.reasons.get(f"scene:{d.check}", 0)
        assert by_check >= 0.5 * len(d.rejected), (d.id, d.reasons)
    assert ev.clean >= 50
    assert ev.false_reject_rate <= 0.05, (ev.clean_rejected, ev.clean_reasons)


def test_the_thin_cloud_is_invisible_to_the_mosaic_but_not_to_the_haze_check(defect_run,
                                                                             evaluation):
    cfg, _, _ = defect_run
    thin = next(d for d in evaluation.defects if d.id == "thin_cloud")
    manifest = {r["patch_id"]: r for r in rows(Path(cfg.out) / "manifest.csv")}
    for pid in thin.affected:
        r = manifest[pid]
        assert float(r["poor"]) <= cfg.curation.patch_max_poor_share  # the score missed it
        # the haze check sees it; where the score flagged the thin cloud's core as one compact
        # poor region, the residual-cloud check poor_blob (earlier in the order) rejects first
        assert r["reason"] in ("haze", "poor_blob"), (pid, r["reason"])
        assert float(r["haze"]) > cfg.curation.patch_max_haze_share


def test_rejected_patches_are_kept_aside_with_reason_and_values(defect_run):
    cfg, _, summary = defect_run
    root = Path(cfg.out)
    manifest = rows(root / "manifest.csv")
    assert len(manifest) == summary.patches
    assert list(manifest[0]) == layout.MANIFEST_HEADER
    assert layout.CHECK_COLUMNS == list(curation.TRIPLET_CHECK_NAMES)  # a run without labels
    listed = set((root / "train_list.txt").read_text().split()) | \
        set((root / "test_list.txt").read_text().split())
    rejected = [r for r in manifest if r["status"] == "rejected"]
    assert rejected
    for r in rejected:
        assert r["reason"] in curation.CHECK_NAMES
        assert float(r[r["reason"]]) > getattr(cfg.curation,
                                               f"patch_max_{curation.get_check(r['reason']).key}")
        assert not r["s2"] and not r["sha256_s2"]
        name = layout.patch_filename(int(r["branch"][4:].split("_")[0]), r["season"], "s2",
                                     int(r["scene"]), int(r["patch"]))
        assert name not in listed
        assert not list(root.glob(f"*/*/{name}"))
        wd = layout.scene_workdir(root, int(r["branch"][4:].split("_")[0]), r["season"],
                                  int(r["scene"]))
        assert all((wd / "utm" / f"{dd}.tif").exists() for dd in layout.DATA_IDS)
    for r in manifest:  # every check measured on every patch
        assert all(r[c] != "" for c in curation.TRIPLET_CHECK_NAMES), r["patch_id"]
    scenes = rows(root / "scenes.csv")
    assert all(s["s2_dark_floor"] and s["seam"] != "" for s in scenes)


def test_quicklook_panels_show_the_land_cover_in_modis_colours(defect_run):
    cfg, _, _ = defect_run
    root = Path(cfg.out)
    png = quicklook.quicklook_path(root, "ROIs2017_winter", 2)
    lay = quicklook.read_layout(png)
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(png).convert("RGB"))
    assert img.shape == (lay.height, lay.width, 3)
    assert lay.factor == 1 and lay.panel_width == lay.scene_width == 640
    wd = layout.scene_workdir(root, 2017, "winter", 2)
    with rasterio.open(wd / "utm" / "lc.tif") as f:
        lc = f.read()
    for band, panel, table in ((0, "igbp", quicklook.IGBP), (1, "lccs", quicklook.LCCS_LC)):
        x0, y0 = lay.panels[panel]
        seen = set()
        for cls in np.unique(lc[band]):
            rr, cc = np.nonzero(lc[band] == cls)
            k = len(rr) // 2
            want = (0, 0, 0) if cls == 255 else quicklook.hex_rgb(table[int(cls)][1])
            assert tuple(img[y0 + rr[k], x0 + cc[k]]) == want, (panel, cls)
            seen.add(int(cls))
        assert 255 in seen  # the land-cover hole is drawn as no-data
    assert png.stat().st_size > 0 and png.with_suffix(".json").exists()


def test_review_page_shows_every_triplet_with_its_checks(defect_run):
    cfg, _, _ = defect_run
    root = Path(cfg.out)
    manifest = rows(root / "manifest.csv")
    for branch in sorted({r["branch"] for r in manifest}):
        page = (root / "review" / f"{branch}.html").read_text()
        for r in (r for r in manifest if r["branch"] == branch):
            assert f'data-id="{r["patch_id"]}"' in page
        for c in curation.TRIPLET_CHECK_NAMES:  # the checks of a run without labels
            assert c in page
        for scene in {r["scene"] for r in manifest if r["branch"] == branch}:
            assert f"../quicklooks/{branch}/scene_{scene}.png" in page
    spring = (root / "review" / "ROIs1158_spring.html").read_text()
    assert 'class="over">haze' in spring and "rejected: haze" in spring
    assert "navigator.clipboard" in spring and "application/json" in spring


def test_report(defect_run):
    from sen12ms_build.curation.report import write_report

    cfg, archive, _ = defect_run
    md = write_report(cfg.out, archive, evaluate=defects.evaluate).read_text()
    for part in ("## Patches per season", "## Patches per scene", "## Rejection reasons",
                 "### IGBP", "### LCCS land cover", "### LCCS land use",
                 "### LCCS surface hydrology", "world_map.png", "thin_cloud", "recall"):
        assert part in md
    # the manifest as it is now (test_apply_review_round_trip may have re-admitted a patch
    # before this test: tests run in any order)
    kept = sum(r["status"] == "kept" for r in rows(Path(cfg.out) / "manifest.csv"))
    assert f"**{kept} kept**" in md
    out = Path(cfg.out) / "report"
    for name in ("classes.png", "world_map.png"):
        with rasterio.open(out / name) as f:
            assert f.width > 500 and f.height > 300


def test_apply_review_round_trip(defect_run):
    cfg, _, _ = defect_run
    root = Path(cfg.out)
    manifest = {r["patch_id"]: r for r in rows(root / "manifest.csv")}
    kept = next(r for r in manifest.values()
                if r["status"] == "kept" and r["branch"] == "ROIs1158_spring")
    auto = next(r for r in manifest.values() if r["reason"] == "haze")
    s2 = root / kept["s2"]
    digests = {dd: hashlib.sha256((root / kept[dd]).read_bytes()).hexdigest()
               for dd in layout.DATA_IDS}

    def lists() -> set[str]:
        return set((root / "train_list.txt").read_text().split()) | \
            set((root / "test_list.txt").read_text().split())

    # reject: gone from the tree and the lists, recorded in the manifest
    rejects, readmits = review.parse_list(json.dumps({"reject": [kept["patch_id"]],
                                                      "readmit": [auto["patch_id"]]}))
    review.apply_review(root, cfg, rejects, readmits)
    after = {r["patch_id"]: r for r in rows(root / "manifest.csv")}
    assert not s2.exists() and s2.name not in lists()
    assert (after[kept["patch_id"]]["status"], after[kept["patch_id"]]["reason"],
            after[kept["patch_id"]]["review"]) == ("rejected", "review", "rejected")
    # the automatically rejected patch is back, cut from the scene rasters
    back = after[auto["patch_id"]]
    assert (back["status"], back["reason"], back["review"]) == ("kept", "haze", "readmitted")
    assert (root / back["s2"]).exists() and Path(back["s2"]).name in lists()
    for dd in layout.DATA_IDS:
        assert hashlib.sha256((root / back[dd]).read_bytes()).hexdigest() == back[f"sha256_{dd}"]
    # a new run keeps the reviewer's decisions, without tiling the reviewed scene again
    results = []
    run(cfg, ["spring"], progress=False, on_scene=results.append)
    assert results and all(r.skipped for r in results)
    again = {r["patch_id"]: r for r in rows(root / "manifest.csv")}
    assert again[kept["patch_id"]]["status"] == "rejected" and not s2.exists()
    assert again[auto["patch_id"]]["status"] == "kept"
    assert "review: rejected" in (root / "review" / "ROIs1158_spring.html").read_text()
    # re-admit: the same bytes as the tiler wrote
    review.apply_review(root, cfg, readmits=review.parse_list(f"+{s2.name}\n")[1])
    final = {r["patch_id"]: r for r in rows(root / "manifest.csv")}
    assert final[kept["patch_id"]]["status"] == "kept" and s2.name in lists()
    for dd in layout.DATA_IDS:
        assert hashlib.sha256((root / kept[dd]).read_bytes()).hexdigest() == digests[dd]
        assert final[kept["patch_id"]][f"sha256_{dd}"] == digests[dd]
    decisions = review.load_decisions(root)
    assert kept["patch_id"] in decisions["readmitted"]
    assert kept["patch_id"] not in decisions["rejected"]
    with pytest.raises(review.InputError, match="unknown patch"):
        review.apply_review(root, cfg, ["ROIs1158_spring_99_p1"])
