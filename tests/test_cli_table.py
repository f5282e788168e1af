"""Every mistake a user can make gets one clear line and a non-zero exit; no run lies about
its result (issue 12).

One table: each case is a command, the setup it needs, the expected exit code and a
substring of the one ``Error:`` line, and no traceback in the output. The cases that needed
more than one command (stale patches, resume, the lock) follow the table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml
from click.testing import CliRunner

from sen12ms_build import cli as cli_module
from sen12ms_build.cli import main
from sen12ms_build.raster.io import LOCK_NAME, output_lock
from sen12ms_build.dataset.layout import read_csv

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def assert_clean(res, code: int, words: str | None) -> None:
    """Exit ``code``; no exception escaped; no traceback; exactly one ``Error:`` line
    holding ``words``."""
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output, res.output
    if words is not None:
        lines = error_lines(res.output)
        assert len(lines) == 1, res.output
        assert words in lines[0], res.output


# --- shared setups --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(small_archive, tmp_path_factory, tiny_config):
    """A tiny config (winter and spring, two ROIs) and its finished winter tree."""
    base = tmp_path_factory.mktemp("table")
    cfg = tiny_config(base, small_archive)
    res = invoke("-q", "run", "--config", str(cfg), "--season", "winter")
    assert res.exit_code == 0, res.output
    return {"archive": small_archive, "cfg": cfg, "out": base / "out", "base": base}


def edit_config(cfg: Path, dst: Path, change: Callable[[dict], None]) -> Path:
    data = yaml.safe_load(cfg.read_text())
    change(data)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(data))
    return dst


def raw_config(cfg: Path, dst: Path, old: str, new: str) -> Path:
    text = cfg.read_text()
    assert old in text
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.replace(old, new))
    return dst


def _set(path: str, value):
    def change(data: dict) -> None:
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return change


def _out(tmp: Path):
    return _set("out", str(tmp / "out"))


def rois(tmp: Path, text: str, name: str = "rois.csv") -> str:
    p = tmp / name
    p.write_text(text)
    return str(p)


@dataclass
class Case:
    """``setup(env, tmp) -> args``; expected exit code and substring of the error line."""

    id: str
    setup: Callable[[dict, Path], list[str]]
    code: int
    words: str | None
    also: tuple[str, ...] = ()  # more substrings of the whole output
    extra_env: dict = field(default_factory=dict)
    #: ``after(env, tmp, output)``: more checks once the command ended (files left, ...)
    after: Callable[[dict, Path, str], None] | None = None


def _cfg(change=None):
    """``run --config`` with a changed copy of the tiny config (winter only)."""
    def setup(e, tmp):
        cfg = edit_config(e["cfg"], tmp / "c.yaml", lambda d: (
            _out(tmp)(d), change(d) if change else None))
        return ["run", "--config", str(cfg), "--season", "winter"]
    return setup


def _far_rois(e, tmp):
    f = rois(tmp, "lon,lat,scene\n10.0,50.0,1\n")
    return _cfg(_set("sampling.rois_file", f))(e, tmp)


def _damaged_lc(e, tmp):
    arch = tmp / "archive"
    shutil.copytree(e["archive"], arch)
    lc = next((arch / "lc").glob("*.tif"))
    lc.write_bytes(lc.read_bytes()[:1500])
    return _cfg(_set("backend.archive", str(arch)))(e, tmp)


def _damaged_s2(e, tmp):
    arch = tmp / "archive"
    shutil.copytree(e["archive"], arch)
    victim = sorted((arch / "s2").glob("2017011*.tif"))[0]
    victim.write_bytes(victim.read_bytes()[:5000])
    return _cfg(_set("backend.archive", str(arch)))(e, tmp) + ["-v"]


def _bad_date(e, tmp):
    text = e["cfg"].read_text()
    m = re.search(r"start: '?(2016-12-01)'?", text)
    cfg = raw_config(e["cfg"], tmp / "c.yaml", m.group(0), "start: 2017-02-30")
    return ["run", "--config", str(cfg), "--dry-run"]


def _ee_no_credentials(e, tmp):
    return ["run", "--config", str(e["cfg"]), "--backend", "earthengine", "--out",
            str(tmp / "out")]


def _apply(content: bytes | str, name: str = "list.json"):
    def setup(e, tmp):
        p = tmp / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["apply-review", str(e["out"]), str(p), "--config", str(e["cfg"])]
    return setup


def _batch(runs):
    def setup(e, tmp):
        p = tmp / "jobs.yaml"
        p.write_text(yaml.safe_dump({"runs": runs(e, tmp)}))
        return ["batch", str(p)]
    return setup


def _broken_manifest(e, tmp):
    tree = tmp / "tree"
    shutil.copytree(e["out"], tree, ignore=shutil.ignore_patterns(".work"))
    m = tree / "manifest.csv"
    lines = m.read_text().splitlines(keepends=True)
    m.write_text("patch_id;status;s1;s2\n" + "".join(lines[1:]))
    return ["validate", str(tree), "--no-checksums"]


def _empty_archive(e, tmp):
    for k in ("s2", "s1", "lc"):
        (tmp / "empty" / k).mkdir(parents=True)
    return _cfg(_set("backend.archive", str(tmp / "empty")))(e, tmp)


def _blocked_out(e, tmp):
    (tmp / "file").write_text("not a folder")
    return _cfg(_set("out", str(tmp / "file" / "out")))(e, tmp)


def _not_a_tree(cmd):
    def setup(e, tmp):
        (tmp / "plain").mkdir()
        args = [cmd, str(tmp / "plain")]
        return args + (["--config", str(e["cfg"])] if cmd == "review" else [])
    return setup


# --- issue 20's single-command cases: inputs and options that reached the catch-all --------

def _bytes(tmp: Path, data: bytes, name: str) -> str:
    p = tmp / name
    p.write_bytes(data)
    return str(p)


def _archive_with(change: Callable[[Path, Path], None]):
    """``run`` (one ROI) on a copy of the small archive (links to its files) where
    ``change(src, dst)`` writes one winter Sentinel-2 acquisition anew."""
    def setup(e, tmp):
        arch = tmp / "archive"
        for kind in ("s2", "s1", "lc"):
            (arch / kind).mkdir(parents=True)
            for f in sorted((e["archive"] / kind).glob("*.tif")):
                (arch / kind / f.name).symlink_to(f)
        victim = arch / "s2" / _victim(e)
        victim.unlink()
        change(e["archive"] / "s2" / victim.name, victim)
        one = rois(tmp, "lon,lat,scene\n-75.64,37.70,1\n")
        return _cfg(lambda d: (_set("backend.archive", str(arch))(d),
                               _set("sampling.rois_file", one)(d)))(e, tmp)
    return setup


def _victim(e) -> str:
    return sorted((e["archive"] / "s2").glob("2017011*.tif"))[0].name


def _rewrite(drop_tags: tuple[str, ...] = (), crs: str | None = None, north_m: float = 0.0):
    """Copy a GeoTIFF's first 256 x 256 pixels (enough to be an acquisition, quick to write)
    without some tags, with another CRS, or moved north."""
    def change(src: Path, dst: Path) -> None:
        import rasterio
        from affine import Affine
        from rasterio.windows import Window

        with rasterio.open(src) as f:
            win = Window(0, 0, 256, 256)
            prof, data, tags = f.profile, f.read(window=win), f.tags()
            descriptions, transform = f.descriptions, f.window_transform(win)
        prof.update(crs=crs or prof["crs"], width=256, height=256,
                    transform=Affine.translation(0, north_m) @ transform)
        with rasterio.open(dst, "w", **prof) as f:
            f.write(data)
            f.update_tags(**{k: v for k, v in tags.items() if k not in drop_tags})
            for i, d in enumerate(descriptions, start=1):
                f.set_band_description(i, d or "")
    return change


def _names_victim(*more: str):
    def after(e, tmp, output):
        assert _victim(e) in output, output
        assert "skipped inputs: 1" in output, output
        for words in more:
            assert words in output, output
    return after


def _duplicate(prefix: str, extra: str):
    """The tiny config as YAML text with ``extra`` (``{tmp}``: the test's folder) inserted
    after its first line starting with ``prefix``."""
    def setup(e, tmp):
        lines = e["cfg"].read_text().splitlines(keepends=True)
        i = next(n for n, line in enumerate(lines) if line.startswith(prefix))
        lines.insert(i + 1, extra.format(tmp=tmp))
        p = tmp / "dup.yaml"
        p.write_text("".join(lines))
        return ["run", "--config", str(p), "--season", "winter"]
    return setup


def _duplicate_lines(prefix: str, extra: str):
    """Both line numbers (1-based, read from the file) are in the message."""
    def after(e, tmp, output):
        lines = (tmp / "dup.yaml").read_text().splitlines()
        first = next(n for n, line in enumerate(lines, start=1) if line.startswith(prefix))
        second = lines.index(extra.format(tmp=tmp).rstrip("\n")) + 1
        assert second == first + 1
        assert f"lines {first} and {second}" in output, output
    return after


def _sampling_fails(e, tmp):
    """Urban ROIs around an island town in a small region: the jitter leaves the region and
    some centres fall in the sea (two rejection rules)."""
    cfg = edit_config(e["cfg"], tmp / "c.yaml", lambda d: [f(d) for f in (
        _set("sampling.rois_file", None), _set("sampling.land_count", 0),
        _set("sampling.urban_count", 1), _set("sampling.roi_size_m", 38400),
        _set("sampling.max_attempts", 50), _set("seasons.winter.seed", 1),
        _set("sampling.region", [-76.05, 37.78, -75.95, 37.86]))])
    return ["sample", "--config", str(cfg), "--season", "winter"]


def _relax_names_real_keys_once(e, tmp, output):
    from dataclasses import fields

    from sen12ms_build.config import Config, SamplingConfig

    line = error_lines(output)[0]
    relax = line.split("Relax:", 1)[1]
    named = re.findall(r"\b([a-z_]+(?:\.[a-z_]+)*)\b", relax)
    keys = [k for k in named if "." in k]
    assert keys, line
    assert len(keys) == len(set(keys)), line  # no key named twice
    known = {f"sampling.{f.name}" for f in fields(SamplingConfig)} | \
        {f.name for f in fields(Config)}
    assert set(keys) <= known, line
    assert "urban_jitter_m" not in line  # not a config key


def _nothing_at(name: str):
    def after(e, tmp, output):
        assert not (tmp / name).exists(), sorted((tmp / name).rglob("*"))
    return after


CASES = [
    # --- the table ---
    Case("no patch: region outside the archive", _far_rois, 1,
         "no patch produced", also=("sampling.rois_file",)),
    Case("no patch: ROI smaller than a patch", _cfg(_set("sampling.roi_size_m", 1000)), 1,
         "raise sampling.roi_size_m to at least 2560 m"),
    Case("no patch: every scene rejected", _cfg(_set("curation.scene_max_seam_step", 0.001)),
         1, "2 x seam; relax the curation thresholds"),
    Case("truncated land-cover file", _damaged_lc, 1, "2 x damaged input",
         also=("MCD12Q1_2016.tif: unreadable or truncated", "skipped inputs: 1")),
    Case("earthengine without credentials", _ee_no_credentials, 1,
         "no Earth Engine credentials found", also=("earthengine authenticate",),
         after=_nothing_at("out"),  # checked before any file is written (issue 20, 16)
         extra_env={"EARTHENGINE_SERVICE_ACCOUNT_KEY": None, "EARTHENGINE_PROJECT": None,
                    "GOOGLE_APPLICATION_CREDENTIALS": None, "GOOGLE_CLOUD_PROJECT": None,
                    "CLOUDSDK_CONFIG": "/nonexistent"}),
    Case("impossible config date", _bad_date, 1,
         "seasons.winter.start: expected a date YYYY-MM-DD, got '2017-02-30'"),
    Case("rois_file missing", _cfg(_set("sampling.rois_file", "/nonexistent/rois.csv")), 1,
         "sampling.rois_file: ROI list /nonexistent/rois.csv not found"),
    Case("rois_file malformed", lambda e, t: _cfg(_set(
        "sampling.rois_file", rois(t, "lon,lat,scene\n-75.6,north,1\n")))(e, t), 1,
         "rois.csv:2: lat must be a number, got 'north'"),
    Case("report --truth without defects", lambda e, t: [
        "report", str(e["out"]), "--truth", str(e["archive"])], 1, "no truth/defects.json"),
    Case("apply-review: binary file", _apply(bytes(range(256)) * 4, "list.bin"), 1,
         "not a text file"),
    Case("apply-review: misspelt key", _apply('{"rejekt": ["ROIs2017_winter_1_p1"]}'), 1,
         "unknown key 'rejekt'"),
    Case("apply-review: id instead of a list", _apply('{"reject": "ROIs2017_winter_1_p1"}'),
         1, "'reject' must be a list of patch ids"),
    Case("apply-review: nothing listed", _apply("# nothing\n", "list.txt"), 1,
         "lists no patch"),
    Case("demo-archive --crop out of range", lambda e, t: [
        "demo-archive", str(t / "a"), "--crop", "99999"], 2,
         "99999 is not in the range 64<=x<=1933"),
    Case("seasons: {}", _cfg(_set("seasons", {})), 1, "seasons: no season configured"),
    Case("batch runs: []", _batch(lambda e, t: []), 1, "runs: no job listed"),
    Case("review on a missing folder", lambda e, t: [
        "review", str(t / "missing"), "--config", str(e["cfg"])], 1, "no such folder"),
    Case("review on a folder that is no tree", _not_a_tree("review"), 1,
         "not a dataset root"),
    Case("--scheduler without --executor dask", lambda e, t: [
        "run", "--config", str(e["cfg"]), "--scheduler", "tcp://127.0.0.1:1"], 1,
         "--scheduler: a Dask scheduler address needs --executor dask"),
    Case("batch: a later job's season not configured", _batch(lambda e, t: [
        {"config": str(e["cfg"]), "season": "winter", "out": str(t / "job1")},
        {"config": str(e["cfg"]), "season": "summer", "out": str(t / "job2")}]), 1,
         "runs[1]: job 2:", also=("season 'summer' is not configured",)),
    Case("validate: broken manifest header", _broken_manifest, 1, "1 problem(s)",
         also=("header lacks column(s)",)),
    # --- issue 20 (docs/hardening.md): inputs and options the catch-all used to meet ---
    Case("config not UTF-8: binary", lambda e, t: [
        "run", "--config", _bytes(t, bytes(range(256)) * 4, "bin.yaml")], 1,
         "bin.yaml: not a UTF-8 text file"),
    Case("config not UTF-8: Latin-1", lambda e, t: [
        "run", "--config", _bytes(t, "out: caf\xe9\n".encode("latin-1"), "l1.yaml")], 1,
         "l1.yaml: not a UTF-8 text file"),
    Case("batch file not UTF-8", lambda e, t: [
        "batch", _bytes(t, b"runs:\n  - {config: \xff\xfe}\n", "jobs.yaml")], 1,
         "jobs.yaml: not a UTF-8 text file"),
    Case("--workers beyond any machine", lambda e, t: [
        "run", "--config", str(e["cfg"]), "--workers", "99999999999999999999", "--out",
        str(t / "new")], 2, "is not in the range 1<=x<=", after=_nothing_at("new")),
    Case("workers beyond any machine in the config", _cfg(_set("workers", 10 ** 20)), 1,
         "workers: must be within 1.."),
    Case("S2 file without solar-angle tags: skipped, named", _archive_with(_rewrite(
        drop_tags=("MEAN_SOLAR_AZIMUTH_ANGLE", "MEAN_SOLAR_ZENITH_ANGLE"))), 0, None,
         also=("skipped input:", "MEAN_SOLAR_AZIMUTH_ANGLE"), after=_names_victim()),
    Case("S2 file whose CRS contradicts its tile: skipped, named", _archive_with(_rewrite(
        crs="EPSG:32633")), 0, None, also=("skipped input:", "EPSG:32633"),
         after=_names_victim("UTM zone 18")),
    Case("S2 file whose footprint misses every ROI: recorded", _archive_with(_rewrite(
        north_m=600_000.0)), 0, None, also=("misses every ROI",), after=_names_victim()),
    Case("duplicate top-level key", _duplicate("out:", "out: {tmp}/elsewhere\n"), 1,
         "out: duplicate key", after=_duplicate_lines("out:", "out: {tmp}/elsewhere\n")),
    Case("duplicate nested key", _duplicate("  stride:", "  stride: 64\n"), 1,
         "tiling.stride: duplicate key",
         after=_duplicate_lines("  stride:", "  stride: 64\n")),
    Case("sampling cannot place the ROIs: real keys, each once", _sampling_fails, 1, "Relax:",
         after=_relax_names_real_keys_once),
    Case("demo with a scorer the demo cannot run: before any work", lambda e, t: [
        "demo", "--out", str(t / "d"), "--scorer", "cloudscoreplus"], 1,
         "scorer 'cloudscoreplus' runs on the earthengine backend only",
         after=_nothing_at("d")),
    # --- cases that already worked (kept so that they stay so) ---
    Case("misspelt config key", _cfg(_set("tiling.patch_sise", 256)), 1,
         "tiling.patch_sise: unknown key"),
    Case("stride larger than the patch", _cfg(_set("tiling.stride", 512)), 1,
         "tiling.stride: stride 512 is larger than patch_size 256"),
    Case("unknown season", lambda e, t: [
        "run", "--config", str(e["cfg"]), "--season", "monsoon"], 2, "'monsoon' is not one of"),
    Case("season not configured", lambda e, t: [
        "run", "--config", str(e["cfg"]), "--season", "summer"], 1,
         "season 'summer' is not configured"),
    Case("config file missing", lambda e, t: [
        "run", "--config", str(t / "nope.yaml")], 1, "config file not found"),
    Case("config not YAML", lambda e, t: [
        "run", "--config", rois(t, "a: [b\n", "bad.yaml")], 1, "not valid YAML"),
    Case("archive without GeoTIFFs", _empty_archive, 1, "has no GeoTIFF in s2/"),
    Case("output folder cannot be created", _blocked_out, 1,
         "cannot create the output folder"),
    Case("unreadable Sentinel-2 raster: skipped, reported", _damaged_s2, 0, None,
         also=("skipped input:", "unreadable")),
    Case("batch: unknown key in a job", _batch(lambda e, t: [
        {"config": str(e["cfg"]), "seasn": "spring"}]), 1, "runs[0].seasn: unknown key"),
    Case("apply-review: unknown patch", _apply("ROIs2017_winter_9_p1\n", "list.txt"), 1,
         "unknown patch(es): ROIs2017_winter_9_p1"),
    Case("validate: not a folder", lambda e, t: ["validate", str(t / "none")], 1,
         "1 problem(s)"),
    Case("report on a folder that is no tree", _not_a_tree("report"), 1,
         "not a dataset root"),
    Case("config top level not a mapping", lambda e, t: [
        "run", "--config", rois(t, "- a\n- b\n", "list.yaml")], 1,
         "the top level must be a mapping"),
    Case("end before start", _cfg(_set("seasons.winter.end", "2016-01-01")), 1,
         "seasons.winter.end: end date 2016-01-01 is before start date"),
    Case("invalid region", _cfg(_set("sampling.region", [10, 50, 5, 40])), 1,
         "sampling.region: not a valid lon/lat box"),
    Case("land cover interpolated", _cfg(_set("reproject.resampling.lc", "bilinear")), 1,
         "reproject.resampling.lc: land cover classes must not be interpolated"),
    Case("land cover year before MODIS", _cfg(_set("landcover_year", 1999)), 1,
         "landcover_year: MCD12Q1 starts in 2001"),
    Case("wrong type", _cfg(_set("tiling.patch_size", "big")), 1,
         "tiling.patch_size: expected an integer, got 'big'"),
    Case("unknown mosaic constant", _cfg(_set("mosaic.no_such_constant", 1)), 1, "mosaic"),
    Case("archive folder missing", _cfg(_set("backend.archive", "/nonexistent/archive")), 1,
         "archive directory not found: /nonexistent/archive"),
    Case("--workers 0", lambda e, t: [
        "run", "--config", str(e["cfg"]), "--workers", "0"], 2,
         "0 is not in the range 1<=x<="),
    Case("batch file missing", lambda e, t: ["batch", str(t / "jobs.yaml")], 1,
         "cannot read batch file"),
    Case("batch: unknown top-level key", lambda e, t: [
        "batch", rois(t, "runs: []\njobs: []\n", "jobs.yaml")], 1, "jobs: unknown key"),
    Case("demo with a missing config", lambda e, t: [
        "demo", "--out", str(t / "d"), "--config", str(t / "none.yaml")], 1,
         "demo config not found"),
    Case("sample: season not configured", lambda e, t: [
        "sample", "--config", str(e["cfg"]), "--season", "fall"], 1,
         "season 'fall' is not configured"),
    Case("apply-review: rejected and re-admitted at once", _apply(
        "ROIs2017_winter_1_p1\n+ROIs2017_winter_1_p1\n", "list.txt"), 1,
         "both rejected and re-admitted: ROIs2017_winter_1_p1"),
    Case("apply-review: a text line that is no patch", _apply("hello world\n", "list.txt"), 1,
         "line 1: 'hello world' is neither a patch id"),
    Case("report --config with a bad key", lambda e, t: [
        "report", str(e["out"]), "--config", str(edit_config(
            e["cfg"], t / "c.yaml", _set("tiling.strid", 1)))], 1, "tiling.strid: unknown key"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_table(case: Case, env, tmp_path, monkeypatch):
    for k, v in case.extra_env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    if case.id == "earthengine without credentials":
        monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.config/earthengine
    args = case.setup(env, tmp_path)
    res = invoke(*args)
    assert_clean(res, case.code, case.words)
    for words in case.also:
        assert words in res.output, res.output
    if case.after:
        case.after(env, tmp_path, res.output)


# --- cases of more than one command -----------------------------------------------------------

def test_changed_tiling_removes_stale_patches(small_archive, tmp_path, tiny_config):
    """A re-run with another patch size and stride (and with --force tile) leaves only the
    new tiling, and validate reads the patch size from the tree."""
    cfg = tiny_config(tmp_path, small_archive)
    out = tmp_path / "out"
    assert invoke("-q", "run", "--config", str(cfg), "--season", "winter").exit_code == 0
    before = sorted(out.glob("ROIs*/s2_1/*.tif"))
    assert len(before) == 4  # 384 px scene: 2 x 2 patches of 256 at stride 128
    small = edit_config(cfg, tmp_path / "small.yaml", lambda d: (
        _set("tiling.patch_size", 128)(d), _set("tiling.stride", 128)(d)))
    res = invoke("run", "--config", str(small), "--season", "winter", "--force", "tile")
    assert_clean(res, 0, None)
    after = sorted(out.glob("ROIs*/s2_1/*.tif"))
    kept = sorted(out / r["s2"] for r in read_csv(out / "manifest.csv")
                  if r["status"] == "kept" and r["scene"] == "1")
    assert after == kept and len(after) > 4  # 3 x 3 patches of 128 less the rejected
    res = invoke("validate", str(out))
    assert_clean(res, 0, None)
    assert "expected 256x256" not in res.output and "valid" in res.output
    res = invoke("run", "--config", str(cfg), "--season", "winter")  # and back
    assert_clean(res, 0, None)
    assert "stale patch file(s) of an earlier tiling removed" in res.output
    assert sorted(out.glob("ROIs*/s2_1/*.tif")) == before
    assert_clean(invoke("validate", str(out)), 0, None)


def test_resumed_run_says_so_without_bars_or_escape_codes(env):
    res = invoke("run", "--config", str(env["cfg"]), "--season", "winter")
    assert_clean(res, 0, None)
    assert "resuming: 2 of 2 scenes already done" in res.output
    # output is not a terminal: no progress bar redraws, no escape codes
    assert "\r" not in res.output and "\x1b[" not in res.output
    assert "scenes:" in res.output and "|" not in res.output


def test_interrupted_run_resumes(small_archive, tmp_path, tiny_config, monkeypatch):
    """Ctrl-C after the first scene: one line; the same command resumes the rest."""
    from sen12ms_build import pipeline

    cfg = tiny_config(tmp_path, small_archive)
    real, calls = pipeline.process_scene, []

    def interrupting(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(pipeline, "process_scene", interrupting)
    res = invoke("-q", "run", "--config", str(cfg), "--season", "winter")
    assert_clean(res, 1, "interrupted; run the same command again to resume")
    monkeypatch.setattr(pipeline, "process_scene", real)
    res = invoke("run", "--config", str(cfg), "--season", "winter")
    assert_clean(res, 0, None)
    assert "resuming: 1 of 2 scenes already done" in res.output


def test_second_run_into_a_busy_out_refuses_naming_the_holder(env, tmp_path):
    with output_lock(env["out"]):
        res = invoke("run", "--config", str(env["cfg"]), "--season", "winter")
    assert_clean(res, 1, f"is in use by another run (pid {os.getpid()} on ")
    # a holder that dies (SIGKILL: no clean-up) frees the lock
    code = ("import os, signal; from sen12ms_build.raster.io import output_lock\n"
            f"with output_lock({str(env['out'])!r}):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code],
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -signal.SIGKILL
    assert (env["out"] / LOCK_NAME).read_text().startswith("pid ")  # the dead holder's
    res = invoke("-q", "run", "--config", str(env["cfg"]), "--season", "winter")
    assert_clean(res, 0, None)


def test_sample_out_with_several_seasons(env, tmp_path):
    out = tmp_path / "rois.geojson"
    res = invoke("-q", "sample", "--config", str(env["cfg"]), "--out", str(out))
    assert_clean(res, 0, None)
    fc = json.loads(out.read_text())
    assert sorted({f["properties"]["season"] for f in fc["features"]}) == ["spring", "winter"]
    assert len(fc["features"]) == 4


def test_verbosity_before_and_after_the_subcommand(env):
    quiet_after = invoke("validate", str(env["out"]), "--no-checksums", "-q")
    assert_clean(quiet_after, 0, None)
    assert "valid" not in quiet_after.output  # INFO suppressed
    loud = invoke("validate", str(env["out"]), "--no-checksums")
    assert "valid" in loud.output
    for args in (["-v", "validate", str(env["out"]), "--no-checksums"],
                 ["validate", str(env["out"]), "--no-checksums", "-v"]):
        res = invoke(*args)
        assert_clean(res, 0, None)
        assert "DEBUG" in res.output or "valid" in res.output


def test_unexpected_error_is_one_line_and_a_traceback_with_v(env, monkeypatch):
    import sen12ms_build.dataset.validate as validate

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(validate, "validate_tree", broken)
    res = invoke("validate", str(env["out"]))
    assert_clean(res, 1, "unexpected error: ZeroDivisionError: division by zero")
    assert "run again with -v" in res.output
    res = invoke("validate", str(env["out"]), "-v")
    assert isinstance(res.exception, ZeroDivisionError)  # -v: the traceback is the user's


def test_review_page_crops_are_large_and_zoom(env):
    res = invoke("-q", "review", str(env["out"]), "--config", str(env["cfg"]))
    assert_clean(res, 0, None)
    page = (env["out"] / "review" / "ROIs2017_winter.html").read_text()
    side = int(re.search(r"\.crop \{ width: (\d+)px", page).group(1))
    assert side >= 256
    assert "zoomed" in page and "zoom-in" in page


def test_demo_archive_crop_help_and_check_agree():
    res = invoke("demo-archive", "--help")
    lo, hi = cli_module.DEMO_MIN_CROP, cli_module.DEMO_MAX_CROP
    assert f"{lo} to {hi}" in " ".join(res.output.split())
    from sen12ms_build.demo.archive import crop_window

    crop_window((hi, 1947), hi)  # the largest the help allows is accepted by the demo
    crop_window((hi, 1947), lo)
    with pytest.raises(ValueError):
        crop_window((hi, 1947), lo - 1)


# --- README and --help agree -----------------------------------------------------------------

def readme_commands() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    cmds: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        line = line.split("#", 1)[0]
        m = re.match(r"sen12ms-build (\S+)", line.strip())
        if m:
            current = m.group(1)
            cmds[current] = cmds.get(current, "") + line
        elif current and line.strip():
            cmds[current] += line
    return cmds


def test_readme_command_list_matches_help():
    import click

    documented = readme_commands()
    ctx = click.Context(main)
    commands = set(main.list_commands(ctx))
    assert set(documented) - {"--version"} == commands
    for name in commands:
        cmd = main.get_command(ctx, name)
        longs = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts
                 if o.startswith("--")} - {"--help", "--verbose", "--quiet"}
        written = set(re.findall(r"--[a-z][a-z-]*", documented[name]))
        assert written == longs, (name, written ^ longs)
