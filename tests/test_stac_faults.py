"""Every failure the open archives show, on the loopback services: each run completes, or
exits non-zero with one clear line; no partial file is left in the dataset; a resume
requests nothing that had finished. And the fake secrets of the services appear in no output,
log or catalog."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sen12ms_build.cli import main
from sen12ms_build.config import load_config
from sen12ms_build.dataset.validate import validate_tree
from sen12ms_build.demo.stac_publish import DEMO_ENV, S1_COLLECTION
from sen12ms_build.pipeline import run

from stac_helpers import clear_gdal_cache, write_config


@pytest.fixture()
def services(stac_demo):
    """The session's services, with faults, paging and extra items reset after each test."""
    archive, svc = stac_demo
    items, page = list(svc.stac.items), svc.stac.page_size
    clear_gdal_cache()  # reads reach the servers, whatever earlier tests fetched
    yield archive, svc
    for s in (svc.stac, svc.blob, svc.earthdata):
        s.faults.clear()
    svc.stac.items[:] = items
    svc.stac.page_size, svc.stac.repeat_across_pages = page, False


def _build(folder: Path, archive: Path, svc, level: str = "l1c", **section):
    extra = {"mosaic": {"scorer": "scl"}} if level == "l2a" else {}
    cfg = load_config(write_config(folder, archive, {"name": "stac", "stac": svc.section(
        level, **section)}, **extra))
    return cfg, run(cfg, progress=False, workers=1)


def _no_partial_files(root: Path) -> None:
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")], "partial files"


def test_429_with_retry_after_completes(services, tmp_path):
    archive, svc = services
    svc.stac.faults.add("status", n=1, path="/search", status=429,
                        headers={"Retry-After": "1"}, body='{"code": "TooManyRequests"}')
    cfg, summary = _build(tmp_path, archive, svc)
    assert summary.scenes_kept == 1 and not summary.problems
    assert svc.stac.faults.take("/search") is None  # the 429 was served and waited out


def test_503_and_a_response_slower_than_the_timeout_are_retried_by_gdal(services, tmp_path):
    """On the Sentinel-1 GRD measurements (SAS-signed COGs; the fault matches the path
    before its query string)."""
    archive, svc = services
    svc.blob.faults.add("status", n=2, path=r"/measurement/iw-vv\.tiff\?", status=503,
                        body="Slow Down")
    svc.blob.faults.add("delay", n=1, path=r"/measurement/iw-vh\.tiff\?", seconds=2.5)
    cfg, summary = _build(tmp_path, archive, svc, timeout_s=1)
    assert summary.scenes_kept == 1 and not summary.problems
    assert [f["n"] for f in svc.blob.faults._queue] == [0, 0], svc.blob.requests  # all served
    _no_partial_files(Path(cfg.out))


def test_a_sas_token_expiring_mid_run_is_signed_again(services, tmp_path):
    archive, svc = services
    issued, refused = svc.blob.tokens_issued, svc.blob.refused
    svc.blob.expire_tokens_after(5)  # a few reads in, every token issued so far is revoked
    cfg, summary = _build(tmp_path, archive, svc, level="l2a")
    assert summary.scenes == 1 and not summary.problems
    assert svc.blob.refused > refused  # reads met the expired token ...
    assert svc.blob.tokens_issued > issued + (issued == 0)  # ... and signed again


def test_duplicate_items_across_pages_are_read_once(services, tmp_path):
    archive, svc = services
    svc.stac.page_size, svc.stac.repeat_across_pages = 1, True
    cfg, summary = _build(tmp_path, archive, svc)
    scenes = (Path(cfg.out) / "scenes.csv").read_text().splitlines()
    row = dict(zip(scenes[0].split(","), scenes[1].split(",")))
    assert row["s2_images"] == "3" and summary.scenes_kept == 1  # winter's 3, not 5


def _extra_s1(svc, archive: Path, name: str, break_file) -> str:
    """A newer winter GRD item whose ``vv`` measurement ``break_file`` damages; its id."""
    winter = [i for i in svc.stac.items if i["collection"] == S1_COLLECTION
              and "2016-12" <= i["properties"]["datetime"][:7] <= "2017-02"]
    item = copy.deepcopy(winter[0])  # an original item (the list may hold added ones)
    item["id"] = item["id"][:-6] + name
    item["properties"]["datetime"] = "2017-02-27T23:00:00.00Z"
    item["properties"]["start_datetime"] = "2017-02-27 22:59:48+00:00"
    item["properties"]["s1:datatake_id"] = name
    href = item["assets"]["vv"]["href"]
    new = href.rsplit("/", 1)[0] + f"/{name}.tiff"
    item["assets"]["vv"]["href"] = new
    rel = new.split(svc.blob.url + "/", 1)[1]
    break_file(svc.blob.root / href.split(svc.blob.url + "/", 1)[1], svc.blob.root / rel)
    svc.stac.items.append(item)
    return item["id"]


def test_a_missing_and_a_truncated_asset_are_recorded_skips(services, tmp_path):
    archive, svc = services

    def truncate(src: Path, dst: Path) -> None:
        dst.write_bytes(src.read_bytes()[: src.stat().st_size // 3])

    missing = _extra_s1(svc, archive, "MISS", lambda src, dst: None)
    truncated = _extra_s1(svc, archive, "TRNC", truncate)
    cfg, summary = _build(tmp_path, archive, svc)
    assert summary.scenes_kept == 1  # the run went on without them
    scenes = (Path(cfg.out) / "scenes.csv").read_text()
    for iid, why in ((missing, "missing (HTTP 404)"), (truncated, "unreadable")):
        line = next(p for p in summary.problems if iid in p)
        assert "asset vv" in line and why in line
        assert iid in scenes and why in scenes  # the scene records the skip and its reason
    _no_partial_files(Path(cfg.out))


def test_the_server_going_away_stops_in_one_line_and_a_resume_redoes_only_the_rest(
        services, tmp_path):
    archive, svc = services
    path = write_config(tmp_path, archive, {"name": "stac", "stac": svc.section("l1c")},
                        rois=2)
    cfg = load_config(path)

    def gone(result) -> None:  # the STAC API goes away once the first scene is done
        svc.stac.faults.add("status", n=10_000, path="/search", status=503)

    with pytest.raises(Exception) as err:
        run(cfg, progress=False, workers=1, on_scene=gone)
    line = str(err.value)
    assert "\n" not in line and "503" in line and "run" in line
    root = Path(cfg.out)
    _no_partial_files(root)
    done = sorted(root.glob("ROIs*/s2_*/*.tif"))
    assert [p.parent.name for p in done] == ["s2_1"]  # the first scene, whole
    # the same failure through the command line: exit 1, one line
    svc.stac.faults.clear()
    svc.stac.faults.add("status", n=10_000, path="/search", status=503)
    res = CliRunner().invoke(main, ["run", "--config", str(path), "-q"])
    assert res.exit_code == 1 and res.output.strip().count("\n") == 0, res.output
    assert res.output.startswith("Error: ") and "503" in res.output
    # the server is back: the resume searches for the second scene only
    svc.stac.faults.clear()
    before = len(svc.stac.bodies)
    summary = run(cfg, progress=False, workers=1)
    assert summary.scenes == 2 and summary.resumed == 1 and summary.scenes_kept == 2
    bboxes = {tuple(b["bbox"]) for b in svc.stac.bodies[before:]}
    assert len(bboxes) == 1  # one scene's box ...
    lon = sorted(float(x.split(",")[0]) for x in (tmp_path / "rois.csv").read_text()
                 .splitlines()[1:])[1]
    (box,) = bboxes
    assert box[0] < lon < box[2]  # ... the second scene's
    assert validate_tree(root) == []


def test_no_secret_in_any_output_log_or_catalog(services, tmp_path):
    """Runs L1C (CDSE S3 keys) and L2A (SAS tokens) with the services' fake secrets and
    Earthdata token, through the command line at debug level, then looks for every secret
    in every file the runs wrote and in the log."""
    archive, svc = services
    logs = []
    for level in ("l1c", "l2a"):
        extra = {"mosaic": {"scorer": "scl"}, "curation": {
            "patch_max_poor_blob_share": 1.0, "patch_max_poor_share": 1.0}} \
            if level == "l2a" else {}
        path = write_config(tmp_path / level, archive, {"name": "stac",
                                                        "stac": svc.section(level)}, **extra)
        res = CliRunner().invoke(main, ["run", "--config", str(path), "-v"])
        assert res.exit_code == 0, res.output
        logs.append(res.output)
    secrets = list(DEMO_ENV.values()) + svc.blob.issued
    assert svc.blob.issued  # the L2A run was signed
    found = []
    for p in tmp_path.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [(str(p), s) for s in secrets if s.encode() in data]
    found += [("log", s) for s in secrets for text in logs if s in text]
    assert not found, found[:5]
    assert "stac" in (tmp_path / "l2a" / "out" / "scenes.csv").read_text()


def test_s3_xml_is_read_with_the_profiles_keys_and_a_missing_key_is_a_recorded_skip(
        services, tmp_path):
    """CDSE's GRD XML lies on its S3 endpoint (the cdse profile's s1-grd, layout safe): read
    through the profile's endpoint (path-style, plain http on loopback) with its keys; a
    missing key is the item's problem (skipped and recorded), not the run's."""
    from sen12ms_build.backends.stac import sentinel1
    from sen12ms_build.backends.stac.options import parse

    _, svc = services
    src = tmp_path / "manifest.safe"
    src.write_bytes(b"<xfdu:XFDU xmlns:xfdu='urn:ccsds:schema:xfdu:1'/>")
    key = "Sentinel-1/SAR/IW_GRDH_1S-COG/2017/02/15/P_COG.SAFE/manifest.safe"
    svc.s3.put("eodata", {key: src})
    section = svc.section("l1c")
    section["s1"] = {"profile": "demo-cdse"}
    s1 = parse(section).sources["s1"]
    assert s1.kind == "s1-grd" and sentinel1.layout_of(s1.product) == "safe"
    assert sentinel1.s3_get(s1.profile, s1.kind, f"s3://eodata/{key}", 5, 1) == \
        src.read_bytes()
    with pytest.raises(sentinel1.AssetProblem, match="missing"):
        sentinel1.s3_get(s1.profile, s1.kind, "s3://eodata/nothing/manifest.safe", 5, 1)
