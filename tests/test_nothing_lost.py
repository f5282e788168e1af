"""Nothing stale, nothing lost, nothing unclear in a dataset the tool made (issue 20, cases
3, 4, 5, 10, 13, 14, 15, 16, 18 and 20; docs/hardening.md).

One small tree is built once (one ROI, winter, 128 px patches: a non-default size); each
test that changes a tree works on its own copy (the state file records its outputs relative
to the dataset root, so a copied tree resumes as itself).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import rasterio
import yaml
from click.testing import CliRunner

from sen12ms_build.cli import main
from sen12ms_build.dataset.layout import read_csv
from sen12ms_build.raster.io import LOCK_NAME


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def ok(res) -> str:
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "Error:" not in res.output, res.output
    return res.output


def snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def built(small_archive, tmp_path_factory, tiny_config):
    """One ROI, winter only, 128 x 128 px patches at stride 128 (3 x 3 per scene)."""
    base = tmp_path_factory.mktemp("nothing_lost")
    cfg = tiny_config(base, small_archive, quicklooks=False,
                      tiling={"patch_size": 128, "stride": 128})
    (base / "rois.csv").write_text("lon,lat,scene\n-75.64,37.70,1\n")
    cwd = os.getcwd()
    os.chdir(base)  # a relative --out, as users give it
    try:
        res = invoke("run", "--config", str(cfg), "--season", "winter", "--out", "out")
    finally:
        os.chdir(cwd)
    return {"cfg": cfg, "out": base / "out", "output": ok(res), "base": base}


def tree_copy(built: dict, tmp_path: Path) -> Path:
    dst = tmp_path / "tree"
    shutil.copytree(built["out"], dst)
    return dst


def kept_rows(root: Path) -> list[dict[str, str]]:
    return [r for r in read_csv(root / "manifest.csv") if r["status"] == "kept"]


def with_seed(cfg: Path, dst: Path, seed: int) -> Path:
    data = yaml.safe_load(cfg.read_text())
    data["seasons"]["winter"]["seed"] = seed
    dst.write_text(yaml.safe_dump(data))
    return dst


# --- 18 and 16: a finished run says where the dataset is, and leaves no lock -------------

def test_run_ends_naming_the_dataset_and_leaves_no_lock(built):
    last = [line for line in built["output"].splitlines() if line.strip()][-1]
    assert last.rstrip().endswith("dataset written to out"), last  # as the user named it
    assert not (built["out"] / LOCK_NAME).exists()
    res = invoke("validate", str(built["out"]))  # a tree the tool wrote: valid, no stray
    assert res.exit_code == 0 and "WARNING" not in res.output, res.output


# --- 13: every description from the run's real values -----------------------------------

def test_descriptions_give_the_real_patch_size(built):
    out = built["out"]
    with rasterio.open(out / kept_rows(out)[0]["s2"]) as f:  # the truth: the files
        size, res = f.width, f.transform.a
    assert (size, f.height) == (128, 128)
    card = (out / "README.md").read_text().split("\n\n")[1]  # the opening paragraph
    croissant = json.loads((out / "croissant.json").read_text())["description"]
    catalog = json.loads((out / "stac" / "catalog.json").read_text())["description"]
    for text in (card, croissant, catalog):
        assert f"{size} x {size}" in text, text
        assert "256" not in text, text
    for text in (card, croissant):
        assert f"at {res:g} m" in text, text


# --- 14: the report's text from the split that was made ---------------------------------

def test_report_names_the_split_that_was_made(built, tmp_path):
    tree = tree_copy(built, tmp_path)
    ok(invoke("-q", "report", str(tree)))
    method = json.loads((tree / "splits.json").read_text())["method"]
    text = (tree / "report" / "report.md").read_text()
    assert f"splits.method `{method}`" in text, text
    if method != "roi":
        assert "split by ROI" not in text, text


# --- 15: the common options in the same places ------------------------------------------

def test_every_command_takes_v_and_q_after_it(built, tmp_path):
    import click

    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        opts = {o for p in main.get_command(ctx, name).params for o in p.opts}
        assert {"-v", "--verbose", "-q", "--quiet"} <= opts, name
    tree = tree_copy(built, tmp_path)
    loud = ok(invoke("clean", str(tree), "-v"))
    assert "intermediates removed" in loud
    assert "intermediates removed" not in ok(invoke("clean", str(tree), "-q"))


# --- 3: a changed seed leaves no stale branch; nothing of the user's is lost -------------

def test_changed_seed_replaces_the_branch_and_keeps_user_files(built, tmp_path):
    tree = tree_copy(built, tmp_path)
    mine = [tree / "ROIs2017_winter" / "s2_1" / "mine.tif", tree / "stac" / "mine.json",
            tree / ".work" / "ROIs2017_winter" / "mine.txt", tree / "notes.md"]
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(100))
    before = snapshot(mine)
    cfg = with_seed(built["cfg"], tmp_path / "seed.yaml", 2018)
    out = ok(invoke("run", "--config", str(cfg), "--season", "winter", "--out", str(tree)))
    assert "ROIs2017_winter" in out  # the removal is said
    assert {r["branch"] for r in read_csv(tree / "manifest.csv")} == {"ROIs2018_winter"}
    for name in ("train_list.txt", "test_list.txt", "splits.json", "scenes.csv",
                 "seasons.csv", "README.md", "croissant.json"):
        assert "ROIs2017" not in (tree / name).read_text(), name
    left = [p for p in tree.rglob("*") if p.is_file() and "ROIs2017" in str(p)]
    assert sorted(left) == sorted(p for p in mine if "ROIs2017" in str(p))
    assert not [p for p in (tree / "stac").rglob("*") if "ROIs2017" in str(p)]
    assert snapshot(mine) == before
    ok(invoke("clean", str(tree)))
    assert snapshot(mine) == before
    res = invoke("validate", str(tree))
    assert res.exit_code == 0, res.output  # the user's files: warnings, not failures
    assert "mine.tif" in res.output and "notes.md" in res.output


# --- 4: resume notices missing, cut short or changed outputs -----------------------------

def test_rerun_redoes_deleted_truncated_and_changed_patches(built, tmp_path):
    tree = tree_copy(built, tmp_path)
    rows = kept_rows(tree)
    gone, cut, flipped = tree / rows[0]["s2"], tree / rows[1]["lc"], tree / rows[2]["s1"]
    gone.unlink()
    cut.write_bytes(cut.read_bytes()[:1000])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(data)
    assert invoke("validate", str(tree)).exit_code == 1
    out = ok(invoke("run", "--config", str(built["cfg"]), "--season", "winter", "--out",
                    str(tree)))
    assert "already done" not in out, out
    done_again = [line for line in out.splitlines() if "is done again" in line]
    assert len(done_again) == 1, out  # one line, naming which files made it run again
    for p in (gone, cut, flipped):
        assert p.name in done_again[0], out
    ok(invoke("validate", str(tree)))


# --- 5: a forced stage whose inputs were cleaned -----------------------------------------

def test_force_after_clean_redoes_what_it_needs(built, tmp_path):
    tree = tree_copy(built, tmp_path)
    ok(invoke("clean", str(tree)))
    for stage in ("warp", "tile"):
        ok(invoke("run", "--config", str(built["cfg"]), "--season", "winter", "--out",
                  str(tree), "--force", stage))
        ok(invoke("validate", str(tree)))
        ok(invoke("clean", str(tree)))
    out = ok(invoke("run", "--config", str(built["cfg"]), "--season", "winter", "--out",
                    str(tree)))
    assert "resuming: 1 of 1 scenes already done" in out


# --- 20: stray files are warnings; clean removes GDAL's .aux.xml ---------------------------

def test_stray_files_are_warnings_and_clean_removes_aux_xml(built, tmp_path):
    tree = tree_copy(built, tmp_path)
    rows = kept_rows(tree)
    for r in rows[:2]:  # as `gdalinfo -stats` does: GDAL writes <file>.aux.xml beside it
        with rasterio.open(tree / r["s2"]) as f:
            f.stats()
    aux = sorted(tree.rglob("*.aux.xml"))
    assert len(aux) == 2
    note = tree / "notes.txt"
    note.write_text("mine\n")
    res = invoke("validate", str(tree))
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.splitlines() if "WARNING" in line]
    for p in (*aux, note):
        assert any(p.name in line and "not part of the dataset" in line
                   for line in warned), res.output
    patches = snapshot([tree / r[dd] for r in rows for dd in ("s1", "s2", "lc")])
    ok(invoke("clean", str(tree)))
    assert not list(tree.rglob("*.aux.xml"))
    assert note.read_text() == "mine\n" and snapshot(list(patches)) == patches
    res = invoke("validate", str(tree))
    assert res.exit_code == 0 and "aux.xml" not in res.output, res.output


# --- the record of what the tool wrote: re-tiling and clean keep the user's files ----------

def test_retiling_finalize_and_clean_keep_user_files(built, tmp_path):
    tree = tree_copy(built, tmp_path)
    mine = [tree / "ROIs2017_winter" / "s2_1" / "ROIs2017_winter_s2_1_mine.tif",
            tree / "ROIs2017_winter" / "qa_1" / "mine.tif", tree / "stac" / "mine.json",
            tree / "stac" / "ROIs2017_winter" / "mine" / "mine.json",
            tree / "croissant" / "mine.csv",
            tree / ".work" / "ROIs2017_winter" / "scene_1" / "export" / "mine.tif"]
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(100))
    before = snapshot(mine)
    ok(invoke("-q", "run", "--config", str(built["cfg"]), "--season", "winter", "--out",
              str(tree), "--force", "tile"))
    assert snapshot(mine) == before
    ok(invoke("-q", "clean", str(tree)))
    assert snapshot(mine) == before


# --- 10: a damaged file in a demo archive is written again ---------------------------------

@pytest.fixture(scope="module")
def archive64(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("a64") / "archive"
    ok(invoke("-q", "demo-archive", str(root), "--crop", "64"))
    return root


def test_damaged_demo_archive_file_is_written_again(archive64, tmp_path):
    arch = tmp_path / "archive"
    shutil.copytree(archive64, arch)
    victims = [sorted((arch / "s2").glob("*.tif"))[0], sorted((arch / "s1").glob("*.tif"))[0],
               sorted((arch / "truth").glob("*_cloud.tif"))[0]]
    intact = snapshot(victims)
    for v in victims:
        v.write_bytes(v.read_bytes()[: v.stat().st_size // 2])
    (arch / "archive.json").write_text('{"format": "sen12ms-build-archive", "acq')
    out = ok(invoke("demo-archive", str(arch), "--crop", "64"))
    assert snapshot(victims) == intact  # the same bytes as first written
    for v in victims:
        assert v.name in out, out
    assert json.loads((arch / "archive.json").read_text())["format"]


def test_archive_and_dataset_folders_are_not_mixed_up(archive64, built):
    """A dataset is no archive folder and the other way round (each kind has its marker)."""
    res = invoke("run", "--config", str(built["cfg"]), "--out", str(archive64))
    assert res.exit_code == 1 and str(archive64) in res.output, res.output
    res = invoke("demo-archive", str(built["out"]), "--crop", "64")
    assert res.exit_code == 1 and str(built["out"]) in res.output, res.output
    assert not (built["out"] / "s2").exists()
