"""The whole pipeline on the demo archive: tree, names, dtypes, metadata, resume."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen12ms_build.dataset import layout
from sen12ms_build.pipeline import run
from sen12ms_build.products import LC, S1, S2

LC_CODES = [set(range(1, 18)),                                           # IGBP
            {1, 2, 3, 11, 12, 13, 14, 15, 16, 21, 22, 31, 32, 41, 42, 43},  # LCCS LC
            {1, 2, 3, 9, 10, 20, 25, 30, 35, 36, 40},                       # LCCS LU
            {1, 2, 3, 10, 20, 27, 30, 40, 50, 51}]                          # LCCS SH
BRANCHES = ["ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter"]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_demo_builds_all_four_branches(demo_run):
    cfg, summary = demo_run
    root = Path(cfg.out)
    assert sorted(p.name for p in root.glob("ROIs*")) == sorted(BRANCHES)
    assert summary.scenes == 12 and summary.scenes_kept >= 10
    assert summary.patches_kept >= 0.8 * summary.patches > 0
    for b in BRANCHES:
        scenes = {p.name.split("_")[1] for p in (root / b).iterdir()}
        assert scenes and all((root / b / f"{dd}_{s}").is_dir()
                              for s in scenes for dd in ("s1", "s2", "lc"))


def test_triplets_are_sen12ms_patches(demo_run):
    cfg, _ = demo_run
    root = Path(cfg.out)
    s2_files = sorted(root.glob("ROIs*/s2_*/*.tif"))
    assert s2_files
    for s2 in s2_files[::7]:
        name = layout.parse_patch_filename(s2.name)
        assert s2.parent.name == f"s2_{name.scene}" and s2.parent.parent.name == \
            layout.branch_name(name.seed, name.season)
        transforms = {}
        for dd, m in (("s1", S1), ("s2", S2), ("lc", LC)):
            path = s2.parent.parent / f"{dd}_{name.scene}" / s2.name.replace("_s2_", f"_{dd}_")
            with rasterio.open(path) as f:
                assert (f.count, f.dtypes[0], f.shape) == (m.count, m.dtype, (256, 256))
                assert f.descriptions == m.descriptions
                assert f.crs.to_epsg() == 32618 and f.res == (10.0, 10.0)
                transforms[dd] = f.transform
                a = f.read()
            if dd == "lc":  # valid MCD12Q1 codes per band (paper, Table 2), or nodata
                for band, codes in zip(a, LC_CODES):
                    assert set(np.unique(band)) <= codes | {255}
            if dd == "s1":
                assert -60 < np.nanmin(a) and np.nanmax(a) < 30  # plausible sigma0 in dB
        assert transforms["s1"] == transforms["s2"] == transforms["lc"]


def test_manifest_checksums_and_splits(demo_run):
    cfg, summary = demo_run
    root = Path(cfg.out)
    manifest = rows(root / "manifest.csv")
    assert len(manifest) == summary.patches
    kept = [r for r in manifest if r["status"] == "kept"]
    assert len(kept) == summary.patches_kept
    for r in kept[::11]:
        for dd in ("s1", "s2", "lc"):
            digest = hashlib.sha256((root / r[dd]).read_bytes()).hexdigest()
            assert digest == r[f"sha256_{dd}"]
    for r in manifest:
        if r["status"] == "rejected":
            assert r["reason"] and not r["s2"]
            name = layout.patch_filename(int(r["branch"].split("_")[0][4:]), r["season"], "s2",
                                         int(r["scene"]), int(r["patch"]))
            assert not (root / r["branch"] / f"s2_{r['scene']}" / name).exists()
    train = (root / "train_list.txt").read_text().split()
    test = (root / "test_list.txt").read_text().split()
    assert sorted(train + test) == sorted(Path(r["s2"]).name for r in kept)

    def scene_of(n):
        p = layout.parse_patch_filename(n)
        return p.season, p.scene

    assert not {scene_of(n) for n in train} & {scene_of(n) for n in test}
    # splits.method groups (default): the demo's planned ROIs form three groups more than
    # splits.leak_distance_m apart; whole groups go to one side, and one is test
    info = json.loads((root / "splits.json").read_text())
    assert info["method"] == "groups" and info["shared_area_m2"] == 0.0
    assert len(info["groups"]) == 3 and test and train
    on_disk = {p.name for p in root.glob("ROIs*/s2_*/*.tif")}
    assert on_disk == set(train + test)  # rejected patches are not in the tree


def test_torchgeo_and_original_loader_paths_resolve(demo_run):
    """The two common SEN12MS loaders build the s1/lc paths from the s2 list entry:
    torchgeo splits the name on "_" and swaps the data id; the original repository's
    loader replaces "_s2" and "s2_". Both must find our files."""
    cfg, _ = demo_run
    root = Path(cfg.out)
    for name in (root / "train_list.txt").read_text().split()[:20]:
        for source in ("s1", "s2", "lc"):
            parts = name.split("_")
            parts[2] = source
            tg = root / "{0}_{1}".format(*parts) / "{2}_{3}".format(*parts) / \
                "{0}_{1}_{2}_{3}_{4}".format(*parts)
            assert tg.exists(), tg
        s2 = next(root.glob(f"ROIs*/s2_*/{name}"))
        orig_s1 = Path(str(s2).replace("_s2", "_s1").replace("s2_", "s1_"))
        orig_lc = Path(str(s2).replace("_s2", "_lc").replace("s2_", "lc_"))
        assert orig_s1.exists() and orig_lc.exists()
    # the light integrity check of torchgeo's SEN12MS: the four branches and both lists
    for f in ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter",
              "train_list.txt", "test_list.txt"):
        assert (root / f).exists(), f
    # the original repository's get_scene_ids: int(folder.split("_")[1]) of every folder of
    # a branch; the quality layers' qa_<scene> folders name only scenes that have s2 folders
    for branch in root.glob("ROIs*"):
        scenes = {int(p.name.split("_")[1]) for p in branch.iterdir()}
        assert scenes == {int(p.name.split("_")[1]) for p in branch.glob("s2_*")}
        assert {p.name.split("_")[0] for p in branch.iterdir()} == {"s1", "s2", "lc", "qa"}


def test_seasons_csv(demo_run):
    cfg, summary = demo_run
    table = rows(Path(cfg.out) / "seasons.csv")
    assert len(table) == summary.scenes
    for r in table:
        assert r["branch"] == f"ROIs{cfg.seasons[r['season']].seed}_{r['season']}"
        assert r["hemisphere"] == "north" and r["climatic_season"] == r["season"]
        assert r["climate_zone"] == "temperate"
    assert layout.climatic_season("winter", -34.6) == "summer"
    assert layout.climatic_season("spring", -1.0) == "fall"
    assert layout.climate_zone(-1.0) == "tropical" and layout.climate_zone(70.0) == "polar"


def test_rerun_is_a_noop_and_resume_restores_identical_files(demo_run):
    cfg, summary = demo_run
    root = Path(cfg.out)
    before = (root / "manifest.csv").read_bytes()
    again = run(cfg, progress=False)
    assert (again.patches, again.patches_kept) == (summary.patches, summary.patches_kept)
    assert (root / "manifest.csv").read_bytes() == before
    # lose a patch and a scene's warp stage, as an interrupted run would
    victim = sorted(root.glob("ROIs1868_summer/s2_*/*.tif"))[0]
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    victim.unlink()
    scene = layout.parse_patch_filename(victim.name).scene
    wd = layout.scene_workdir(root, 1868, "summer", scene)
    (wd / "utm" / "s2.tif").unlink()  # the state file notices: warp and tile are redone
    # an interrupted write's temporary, named as atomic_path names them (io.TMP_RE)
    (victim.parent / ".leftover.tif.k3j9x0ab.tmp").write_bytes(b"partial")
    run(cfg, ["summer"], progress=False)
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == digest
    assert not list(root.rglob("*.tmp"))
    assert (root / "manifest.csv").read_bytes() == before


def test_unknown_season_fails_before_any_work(demo_config, tmp_path):
    from dataclasses import replace

    from sen12ms_build.config import ConfigError

    cfg = replace(demo_config, out=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="unknown season 'monsoon'"):
        run(cfg, ["spring", "monsoon"], progress=False)
    assert not (tmp_path / "x").exists()
