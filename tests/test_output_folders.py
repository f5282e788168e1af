"""The output folder rule (issue 20, cases 1, 2, 8 and 16; docs/hardening.md).

The tool writes only into a new folder, an empty one, or one it made (its marker file). Any
other folder is refused with one line, and left byte-identical: these tests plant a user's
files in every folder a command would write to, and compare every byte afterwards. A failed
first run leaves nothing behind; a finished one leaves no lock.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sen12ms_build.cli import main

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry below ``root``: a file's bytes, ``None`` for a folder."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def plant(folder: Path) -> dict[str, bytes | None]:
    """A user's project folder: a README, a manifest, a stac/ folder of their own."""
    (folder / "stac").mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# my project\n\nmy notes\n")
    (folder / "manifest.csv").write_text("id,name\n1,mine\n")
    (folder / "stac" / "catalog.json").write_text('{"mine": true}\n')
    (folder / "notes.bin").write_bytes(os.urandom(256))
    return snapshot(folder)


@pytest.fixture
def fake_archive(tmp_path: Path) -> Path:
    """An archive the local backend accepts at start-up (one file per folder); the tests
    here are refused before any file is read."""
    arch = tmp_path / "archive"
    for kind in ("s2", "s1", "lc"):
        (arch / kind).mkdir(parents=True)
        (arch / kind / "x.tif").write_bytes(b"")
    return arch


def config(tmp_path: Path, archive: Path, out: str, name: str = "c.yaml", **extra) -> Path:
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["seasons"] = {"winter": data["seasons"]["winter"]}
    data["backend"]["archive"] = str(archive)
    data["out"] = out
    data.update(extra)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def refused(res, folder: Path, code: int = 1) -> str:
    """One clean ``Error:`` line naming the folder; no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output, res.output
    lines = error_lines(res.output)
    assert len(lines) == 1, res.output
    assert str(folder) in lines[0], res.output
    return lines[0]


# --- case 2: an existing folder that is not a dataset -----------------------------------

def test_run_refuses_a_folder_it_did_not_make(tmp_path, fake_archive):
    user = tmp_path / "project"
    before = plant(user)
    cfg = config(tmp_path, fake_archive, str(tmp_path / "unused"))
    line = refused(invoke("run", "--config", str(cfg), "--out", str(user)), user)
    assert "--out" in line  # what to do: another --out
    assert snapshot(user) == before


# --- case 1: --out '' is the current folder ---------------------------------------------

def test_empty_out_never_writes_into_the_current_folder(tmp_path, fake_archive, monkeypatch):
    user = tmp_path / "project"
    before = plant(user)
    cfg = config(tmp_path, fake_archive, str(tmp_path / "unused"))
    monkeypatch.chdir(user)
    res = invoke("run", "--config", str(cfg), "--out", "")
    assert res.exit_code == 2 and "--out" in error_lines(res.output)[0], res.output
    assert "Traceback" not in res.output
    refused(invoke("run", "--config", str(cfg), "--out", "."), Path("."))
    for out in ("", "."):  # the same through the config's out
        res = invoke("run", "--config", str(config(tmp_path, fake_archive, out, "o.yaml")))
        assert res.exit_code == 1 and len(error_lines(res.output)) == 1, res.output
    assert snapshot(user) == before


# --- every command that writes into a folder --------------------------------------------

def _review_list(tmp: Path) -> str:
    p = tmp / "list.txt"
    p.write_text("ROIs2017_winter_1_p1\n")
    return str(p)


COMMANDS = {
    "demo-archive": lambda u, cfg, tmp: ["demo-archive", str(u)],
    "review": lambda u, cfg, tmp: ["review", str(u), "--config", str(cfg)],
    "apply-review": lambda u, cfg, tmp: ["apply-review", str(u), _review_list(tmp),
                                         "--config", str(cfg)],
    "report": lambda u, cfg, tmp: ["report", str(u)],
    "clean": lambda u, cfg, tmp: ["clean", str(u)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_folder_it_did_not_make(command, tmp_path, fake_archive):
    user = tmp_path / "project"
    before = plant(user)
    (user / ".work").mkdir()  # even with the look of a run's folder
    (user / ".work" / "state.sqlite").write_bytes(b"not a state file")
    before = snapshot(user)
    cfg = config(tmp_path, fake_archive, str(tmp_path / "unused"))
    refused(invoke(*COMMANDS[command](user, cfg, tmp_path)), user)
    assert snapshot(user) == before


@pytest.mark.parametrize("part", ["archive", "sen12ms"])
def test_demo_refuses_before_any_work(part, tmp_path):
    """``demo --out D`` writes D/archive and D/sen12ms: both are checked before the
    archive's first file."""
    out = tmp_path / "d"
    before = plant(out / part)
    refused(invoke("demo", "--out", str(out)), out / part)
    assert snapshot(out / part) == before
    assert sorted(p.name for p in out.iterdir()) == [part]  # the other one never made


def test_batch_checks_every_job_folder_before_the_first_job(tmp_path, fake_archive):
    user = tmp_path / "project"
    before = plant(user)
    cfg = config(tmp_path, fake_archive, str(tmp_path / "unused"))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"runs": [
        {"config": str(cfg), "season": "winter", "out": str(tmp_path / "first")},
        {"config": str(cfg), "season": "winter", "out": str(user)}]}))
    line = refused(invoke("batch", str(jobs)), user)
    assert "runs[1]" in line
    assert snapshot(user) == before
    assert not (tmp_path / "first").exists()


# --- case 16: a failed first run leaves nothing behind ----------------------------------

def test_failed_first_run_leaves_no_skeleton(small_archive, tmp_path):
    """No patch (ROIs outside the archive): exit 1 and no folder; into an empty folder: the
    folder stays, empty."""
    rois = tmp_path / "far.csv"
    rois.write_text("lon,lat,scene\n10.0,50.0,1\n")
    sampling = {"land_count": 0, "urban_count": 0, "roi_size_m": 3840,
                "rois_file": str(rois)}
    new = tmp_path / "new"
    cfg = config(tmp_path, small_archive, str(new), sampling=sampling)
    res = invoke("run", "--config", str(cfg))
    assert res.exit_code == 1 and "no patch produced" in res.output, res.output
    assert not new.exists(), sorted(new.rglob("*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    res = invoke("run", "--config", str(cfg), "--out", str(empty))
    assert res.exit_code == 1, res.output
    assert list(empty.iterdir()) == []


def test_interrupted_first_run_before_any_scene_leaves_nothing(small_archive, tmp_path,
                                                                monkeypatch):
    from sen12ms_build import pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "process_scene", interrupted)
    rois = tmp_path / "rois.csv"
    rois.write_text("lon,lat,scene\n-75.64,37.70,1\n")
    sampling = {"land_count": 0, "urban_count": 0, "roi_size_m": 3840,
                "rois_file": str(rois)}
    new = tmp_path / "new"
    res = invoke("run", "--config", str(config(tmp_path, small_archive, str(new),
                                               sampling=sampling)))
    assert res.exit_code == 1 and "interrupted" in res.output, res.output
    assert not new.exists(), sorted(new.rglob("*"))


# --- case 8: an unreachable Dask scheduler ----------------------------------------------

def test_unreachable_dask_scheduler_is_named_quickly(tmp_path, fake_archive, monkeypatch):
    from sen12ms_build import pipeline

    monkeypatch.setattr(pipeline, "DASK_CONNECT_TIMEOUT_S", 1, raising=False)
    new = tmp_path / "new"
    t0 = time.monotonic()
    res = invoke("run", "--config", str(config(tmp_path, fake_archive, str(new))),
                 "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1")
    assert time.monotonic() - t0 < 15
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = error_lines(res.output)
    assert len(lines) == 1 and "tcp://127.0.0.1:1" in lines[0], res.output
    assert "unexpected error" not in lines[0] and "--scheduler" in lines[0]
    assert not new.exists()  # checked before any work
