"""Interrupted runs, bad inputs and failing outputs: clear errors, nothing half-written,
and a resumed run identical to an uninterrupted one."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from sen12ms_build.cli import main
from sen12ms_build.dataset.validate import validate_tree

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str):
    return CliRunner().invoke(main, ["-q", *args], catch_exceptions=False)


def assert_no_partial_files(root: Path) -> None:
    """Every file under its final name is whole: each GeoTIFF decodes completely."""
    for tif in root.rglob("*.tif"):
        with rasterio.open(tif) as f:
            f.read()


def run_cmd(cfg: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sen12ms_build.cli", "-q", "run",
                             "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(small_archive, tmp_path, tiny_config):
    """Runs are SIGKILLed part-way (when a seeded share of the reference run's files exist),
    proven interrupted (exit by the signal, no manifest yet), then resumed: the resumed tree
    equals the uninterrupted one."""
    ref_cfg = tiny_config(tmp_path / "ref", small_archive)
    assert run_cmd(ref_cfg).wait() == 0
    reference = (tmp_path / "ref" / "out" / "manifest.csv").read_bytes()
    assert reference.count(b"\n") > 8

    def n_files(root: Path) -> int:
        return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))

    n_ref = n_files(tmp_path / "ref" / "out")
    for seed in (1, 2):  # two random points (each costs a killed run and its resume)
        work = tmp_path / f"kill{seed}"
        cfg = tiny_config(work, small_archive)
        out = work / "out"
        target = int(n_ref * np.random.default_rng(seed).uniform(0.2, 0.8))
        proc = run_cmd(cfg)
        while proc.poll() is None and not (out.exists() and n_files(out) >= target):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        # the kill interrupted the run: it died by the signal, before writing the manifest
        assert proc.wait() == -signal.SIGKILL, f"seed {seed}: the run ended before the kill"
        assert not (out / "manifest.csv").exists()
        if out.exists():
            assert_no_partial_files(out)
        assert run_cmd(cfg).wait() == 0
        assert (out / "manifest.csv").read_bytes() == reference, f"seed {seed}"
        assert validate_tree(out) == []
        assert not list(out.rglob("*.tmp"))


def damage(archive: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / "archive"
    shutil.copytree(archive, bad)
    victim = sorted((bad / "s2").glob("2017011*.tif"))[0]
    if how == "truncated":
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 3])
    elif how == "band_count":
        with rasterio.open(victim) as src:
            prof, arr = src.profile, src.read()[:12]
        prof.update(count=12)
        with rasterio.open(victim, "w", **prof) as dst:
            dst.write(arr)
    elif how == "no_crs":
        with rasterio.open(victim) as src:
            prof, arr = src.profile, src.read()
        prof.pop("crs")
        with rasterio.open(victim, "w", **prof) as dst:
            dst.write(arr)
    return victim


@pytest.mark.parametrize("how, words", [
    ("truncated", "unreadable"),
    ("band_count", "expected 13 bands, found 12"),
    ("no_crs", "no CRS"),
])
def test_bad_archive_files_are_reported_and_skipped(small_archive, tmp_path, caplog, how,
                                                     words, tiny_config):
    from sen12ms_build.config import load_config
    from sen12ms_build.pipeline import run

    victim = damage(small_archive, tmp_path, how)
    cfg = load_config(tiny_config(tmp_path, tmp_path / "archive"))
    summary = run(cfg, progress=False)
    assert any(str(victim) in p and words in p for p in summary.problems), summary.problems
    assert summary.patches_kept > 0  # the other acquisitions still made the dataset
    assert validate_tree(cfg.out) == []


def test_bad_inputs_fail_clearly_and_write_nothing(small_archive, tmp_path, tiny_config):
    cases = []
    empty = tmp_path / "empty"
    for k in ("s2", "s1", "lc"):
        (empty / k).mkdir(parents=True)
    cases.append((tiny_config(tmp_path / "a", empty), [], "has no GeoTIFF in s2/"))
    blocker = tmp_path / "b" / "file"
    blocker.parent.mkdir()
    blocker.write_text("not a folder")
    cases.append((tiny_config(tmp_path / "b", small_archive, out=str(blocker / "out")), [],
                  "cannot create the output folder"))
    cfg = tiny_config(tmp_path / "c", small_archive)
    data = yaml.safe_load(cfg.read_text())
    data["tiling"]["patch_sise"] = 256
    cfg.write_text(yaml.safe_dump(data))
    cases.append((cfg, [], "tiling.patch_sise: unknown key"))
    cases.append((tiny_config(tmp_path / "d", small_archive), ["--season", "monsoon"],
                  "'monsoon' is not one of"))
    cases.append((tiny_config(tmp_path / "e", small_archive), ["--season", "summer"],
                  "season 'summer' is not configured"))
    for cfg, extra, words in cases:
        res = cli("run", "--config", str(cfg), *extra)
        assert res.exit_code != 0
        assert words in res.output, res.output
        out = Path(yaml.safe_load(cfg.read_text())["out"])
        assert not out.exists() or not any(out.rglob("*.tif"))


def test_full_disk_stops_cleanly(small_archive, tmp_path, tiny_config):
    """Writes fail as on a full disk (a file-size limit makes them fail with EFBIG): the
    run stops with a clear message, and nothing half-written is left under a final name."""
    cfg = tiny_config(tmp_path, small_archive)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    proc = run_cmd(cfg, preexec_fn=limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    # which write fails first depends on sizes; each names the file and the cause
    assert "Error: cannot write" in err, err
    assert "File too large" in err or "file size limit" in err, err
    out = tmp_path / "out"
    assert_no_partial_files(out)
    assert not list(out.rglob("*.tmp"))
    # with room again, the same command finishes the job
    assert run_cmd(cfg).wait() == 0
    assert validate_tree(out) == []


def test_process_pool_and_dask_give_the_sequential_tree(small_archive, tmp_path, tiny_config):
    """--workers 2 (process pool) and --executor dask (a LocalCluster) run the same scene
    tasks: the manifest, which holds every file's SHA-256, is byte-identical."""
    from sen12ms_build.config import load_config
    from sen12ms_build.pipeline import run

    manifests = {}
    for name, options in (("sequential", {}), ("pool", {"workers": 2}),
                          ("dask", {"workers": 2, "executor": "dask"})):
        cfg = load_config(tiny_config(tmp_path / name, small_archive))
        summary = run(cfg, progress=False, **options)
        assert summary.scenes == 4 and summary.patches_kept > 0
        manifests[name] = (Path(cfg.out) / "manifest.csv").read_bytes()
    assert manifests["pool"] == manifests["sequential"] == manifests["dask"]
