"""The command line: sample, batch, dry runs, validate, version."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from sen12ms_build import __version__
from sen12ms_build.cli import main

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str):
    return CliRunner().invoke(main, ["-q", *args], catch_exceptions=False)


def test_version_and_help():
    res = cli("--version")
    assert res.exit_code == 0 and __version__ in res.output
    res = cli("run", "--help")
    for option in ("--config", "--season", "--archive", "--out", "--backend", "--workers",
                   "--force", "--executor", "--scheduler", "--dry-run"):
        assert option in res.output


def sampler_config(tmp_path: Path) -> Path:
    """configs/demo.yaml with the seeded sampler instead of its planned ROI list."""
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    del data["sampling"]["rois_file"]
    path = tmp_path / "sampler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sample_writes_the_rois_as_geojson(tmp_path):
    out = tmp_path / "winter.geojson"
    config = str(sampler_config(tmp_path))
    res = cli("sample", "--config", config, "--season", "winter", "--out", str(out))
    assert res.exit_code == 0, res.output
    fc = json.loads(out.read_text())
    assert fc["seed"] == 2017 and fc["season"] == "winter"
    props = [f["properties"] for f in fc["features"]]
    assert [p["kind"] for p in props] == ["urban", "land", "land"]
    assert [p["id"] for p in props] == ["2017_urban_1", "2017_land_2", "2017_land_3"]
    assert {p["utm_zone"] for p in props} == {"18N"} and {p["seed"] for p in props} == {2017}
    # same seed, same ROIs, also through stdout for every season
    res = cli("sample", "--config", config)
    allfc = json.loads(res.output)
    winter = [f["properties"]["id"] for f in allfc["features"]
              if f["properties"]["season"] == "winter"]
    assert winter == [p["id"] for p in props] and len(allfc["features"]) == 12


def test_dry_runs_request_nothing(small_archive, tmp_path, tiny_config):
    cfg = tiny_config(tmp_path, small_archive)
    res = cli("run", "--config", str(cfg), "--dry-run")
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 + 4  # header, 2 ROIs x 2 seasons
    assert all(line.split()[-2:] != ["0", "0"] for line in lines[1:])  # s2/s1 found
    assert not (tmp_path / "out").exists()
    # Earth Engine without credentials: the planner's requests and bytes
    res = cli("run", "--config", str(cfg), "--backend", "earthengine", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "request(s)" in res.output and "GiB expected" in res.output


def test_batch_runs_every_job_and_validates_first(small_archive, tmp_path, tiny_config):
    cfg = tiny_config(tmp_path, small_archive)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"runs": [
        {"config": str(cfg), "season": "winter", "out": str(tmp_path / "a")},
        {"config": str(cfg), "seasons": ["spring"], "out": str(tmp_path / "b")}]}))
    res = cli("batch", str(jobs))
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "a").glob("ROIs*")] == ["ROIs2017_winter"]
    assert [p.name for p in (tmp_path / "b").glob("ROIs*")] == ["ROIs1158_spring"]
    assert cli("validate", str(tmp_path / "a")).exit_code == 0
    # a bad job anywhere stops the batch before any work
    jobs.write_text(yaml.safe_dump({"runs": [
        {"config": str(cfg), "season": "winter", "out": str(tmp_path / "c")},
        {"config": str(cfg), "seasn": "spring"}]}))
    res = cli("batch", str(jobs))
    assert res.exit_code != 0 and "runs[1].seasn: unknown key" in res.output
    assert not (tmp_path / "c").exists()


def test_validate_reports_problems(small_archive, tmp_path, tiny_config, caplog):
    cfg = tiny_config(tmp_path, small_archive)
    assert cli("run", "--config", str(cfg), "--season", "winter").exit_code == 0
    out = tmp_path / "out"
    victim = sorted(out.glob("ROIs*/lc_*/*.tif"))[0]
    victim.write_bytes(victim.read_bytes()[:2000])
    res = CliRunner().invoke(main, ["validate", str(out)])
    assert res.exit_code == 1 and "2 problem(s)" in res.output
    assert f"{victim}: unreadable" in caplog.text  # each problem is logged
    assert f"checksum of {victim.relative_to(out)} does not match" in caplog.text
