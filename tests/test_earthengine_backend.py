"""EarthEngineBackend end to end against the loopback Earth Engine emulator
(tests/ee_helpers.FakeEarthEngine): earthengine-api itself initializes against it
(discovery, algorithms), the backend runs value:compute and computePixels (download mode)
or image:export, operations and Cloud Storage (batch mode). Also credentials, options and
the dry run."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ee")

import ee  # noqa: E402

from ee_helpers import (PROJECT, FakeEarthEngine, calls, clean_env, expected,  # noqa: E402
                        fixture, read)
from sen12ms_build import mosaic  # noqa: E402
from sen12ms_build.backends import NoDataError, SceneRequest, get_backend  # noqa: E402
from sen12ms_build.backends.earthengine import (BatchTaskError,  # noqa: E402
                                                EarthEngineAuthError, EarthEngineBackend,
                                                EarthEngineOptions)
from sen12ms_build.backends.earthengine import tasks as tk  # noqa: E402
from sen12ms_build.roi import ROI  # noqa: E402

ROI_SMALL = ROI.at(7, 1868, "land", 11.5, 48.1, 3000.0)  # 421 x 283 export pixels
REQUEST = SceneRequest(ROI_SMALL, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31))
SUMMARY = fixture("value_compute_summary.json")


def responder(body: dict):
    """value:compute answers: image counts for the dry run, else the scene summary."""
    text = json.dumps(body["expression"])
    if "CLOUDY_PERCENTAGE" not in text:
        return {"s2": len(SUMMARY["s2"]), "s1": len(SUMMARY["s1"]), "lc": 1}
    return SUMMARY


@pytest.fixture
def fake():
    with FakeEarthEngine() as server:
        server.value = responder
        yield server
    ee.Reset()


def options(fake, tmp_path, **extra):
    return {**dict(credentials="none", project=PROJECT, request_url_base=fake.url,
                   cache_dir=str(tmp_path / "cache"), max_request_bytes=256 * 256 * 30,
                   progress=False, backoff_base=0.01, backoff_max=0.05, max_concurrency=4,
                   poll_interval=0.01), **extra}


def check_scene(out: Path, grid) -> None:
    args = (grid.transform, grid.width, grid.height)
    s2, prof = read(out / "s2.tif")
    assert prof["transform"] == grid.transform and (prof["width"], prof["height"]) == (
        grid.width, grid.height)
    np.testing.assert_array_equal(s2, expected("s2", *args)[:13])
    aux, _ = read(out / "s2_aux.tif")
    np.testing.assert_array_equal(aux, expected("s2", *args)[13:].astype(np.uint8))
    s1, _ = read(out / "s1.tif")
    want = expected("s1", *args)
    want[want == -9999.0] = np.nan
    np.testing.assert_array_equal(s1, want)
    lc, _ = read(out / "lc.tif")
    np.testing.assert_array_equal(lc, expected("lc", *args))


# --- download mode ---------------------------------------------------------------------------

def test_export_scene_download_mode(fake, tmp_path):
    backend = get_backend("earthengine", **options(fake, tmp_path))
    assert backend.name == "earthengine"
    # earthengine-api initialized against the emulator: discovery and algorithm list
    assert fake.count("/$discovery/rest") >= 1 and fake.count("/algorithms") == 1
    res = backend.export_scene(REQUEST, tmp_path / "scene")
    grid = ROI_SMALL.export_grid()
    check_scene(tmp_path / "scene", grid)
    assert res.aux == tmp_path / "scene" / "s2_aux.tif"
    meta = res.meta
    cloudy = [i["cloudy_percentage"] for i in SUMMARY["s2"]]
    best = [SUMMARY["s2"][i]["id"] for i in mosaic.best_images(cloudy)]
    assert meta["s2_best"] == best and len(best) == 3
    assert [i["best"] for i in meta["s2_images"]] == [False, True, True, False, True, False]
    assert meta["s1_images"] == [a["id"] for a in SUMMARY["s1"]]
    assert meta["lc_image"] == "2016_01_01"
    assert [(a["product_id"], a["orbit_pass"]) for a in meta["s1_acquisitions"]] == [
        (a["id"], "ASCENDING") for a in SUMMARY["s1"]]
    assert meta["s1_acquisitions"][0]["time"] == "2017-06-03T17:06:03+00:00"
    assert meta["grid"]["width"] == grid.width and meta["requests"]["retries"] == 0
    assert 0 <= meta["poor_share"] <= 1 and meta["mosaic_coverage"] == 1.0
    aux = expected("s2", grid.transform, grid.width, grid.height)[13]
    assert [i["pixels_in_mosaic"] for i in meta["s2_images"]] == [
        int((aux == n).sum()) for n in range(6)]
    # the pixel graph pins the best images decided by mosaic.best_images, in merge order
    s2_bodies = [b for b in fake.pixel_requests() if "COPERNICUS/S2" in json.dumps(b)]
    assert {json.dumps(calls(b["expression"], "Filter.listContains")) for b in s2_bodies} == {
        json.dumps([{"leftValue": best, "rightField": "system:index"}])}
    # the chunk cache is removed once the outputs are written
    assert not any((tmp_path / "cache").rglob("*.tif"))
    # nothing secret or machine-specific leaks into the metadata
    assert "credential" not in json.dumps(meta).lower()
    check_quality_layers(res, grid)


def check_quality_layers(res, grid) -> None:
    """The export's aux raster has the local backend's four bands, and the provenance of a
    patch cut from it reports real cloud and shadow masks and the S1 orbit passes."""
    from sen12ms_build.dataset import provenance
    from sen12ms_build.pipeline import _aux_modality
    from sen12ms_build.products import AUX_MASKS

    aux, prof = read(res.aux)
    assert prof["descriptions"] == AUX_MASKS.descriptions and _aux_modality(res.aux) is AUX_MASKS
    window = aux[:, :128, :128]
    sources = provenance.scene_sources(res.meta, "summer", ROI_SMALL.id, 2016)
    tags = provenance.patch_tags(sources, window)
    assert tags["QA_MASKS"] == "cloud,shadow"
    n = window[0].size
    assert tags["CLOUD_SHARE"] == f"{(window[2] == 1).sum() / n:.4f}"
    assert tags["SHADOW_SHARE"] == f"{(window[3] == 1).sum() / n:.4f}"
    assert float(tags["CLOUD_SHARE"]) > 0 and float(tags["SHADOW_SHARE"]) > 0
    qa = provenance.quality_array(window)
    np.testing.assert_array_equal(qa, window[[2, 3, 0]])
    assert tags["S1_ORBIT_STATES"] == "ascending,ascending,ascending"
    assert tags["S1_DATETIMES"].split(",")[0] == "2017-06-03T17:06:03Z"
    assert tags["S1_PRODUCT_IDS"].split(",") == [a["id"] for a in SUMMARY["s1"]]
    # Earth Engine made this sigma0: an open-data (GRD chain) dataset says otherwise
    assert tags["S1_PROCESSING"] == "Earth Engine COPERNICUS/S1_GRD"


def test_s1_acquisitions_from_the_summary():
    from sen12ms_build.backends.earthengine.backend import s1_acquisitions

    got = s1_acquisitions([
        {"id": "S1B_IW_GRDH_1SDV_20170609T053000_20170609T053025_005961_00A79D_5E4F",
         "time_start": 1496986200000, "orbit_pass": "DESCENDING", "relative_orbit": 22},
        {"id": "S1A_IW_GRDH_1SDV_20170615T170604_20170615T170629_017037_01C639_3B89",
         "time_start": None, "orbit_pass": None},  # a property Earth Engine did not set
        "S1A_IW_GRDH_1SDV_20170603T170603_20170603T170628_016862_01C0D7_6C06"])  # older form
    assert [(a["time"], a["orbit_pass"]) for a in got] == [
        ("2017-06-09T05:30:00+00:00", "DESCENDING"), ("2017-06-15T17:06:04+00:00", ""),
        ("2017-06-03T17:06:03+00:00", "")]
    from sen12ms_build.dataset import provenance

    assert [a["relative_orbit"] for a in got] == [22, None, None]
    src = provenance.scene_sources({"s1_acquisitions": got}, "summer", "x", 2016)
    assert [a["orbit_state"] for a in src["s1"]] == ["descending", "", ""]
    tags = provenance.patch_tags(src, None)
    assert tags["S1_RELATIVE_ORBITS"] == "22,," and tags["S1_PROCESSING"] == \
        "Earth Engine COPERNICUS/S1_GRD"


def test_s1_summary_graph_asks_for_the_orbit_pass():
    from ee_helpers import offline_ee

    from sen12ms_build.backends.earthengine import graphs

    with offline_ee():
        region = graphs.region_of(ROI_SMALL.ring())
        expr = graphs.encode(graphs.scene_summary(region, "2017-06-01", "2017-08-31"))
    props = {a["property"] for a in calls(expr, "Element.get")} | {
        a["property"] for a in calls(expr, "Image.get")}
    assert "orbitProperties_pass" in props and graphs.S1_ORBIT_PASS == "orbitProperties_pass"
    assert "relativeOrbitNumber_start" in props  # the catalog's property name


def test_retries_and_resume_through_the_backend(fake, tmp_path):
    fake.fault = lambda body, attempt: "500" if attempt == 0 else None
    backend = EarthEngineBackend(**options(fake, tmp_path, keep_chunks=True))
    res = backend.export_scene(REQUEST, tmp_path / "scene")
    assert res.meta["requests"]["retries"] == res.meta["requests"]["chunks"]
    # a second run reuses every kept chunk: no computePixels request at all
    n = len(fake.pixel_requests())
    backend.export_scene(REQUEST, tmp_path / "scene2")
    assert len(fake.pixel_requests()) == n
    check_scene(tmp_path / "scene2", ROI_SMALL.export_grid())


def test_no_data_is_reported_before_any_pixel_request(fake, tmp_path):
    fake.value = lambda body: {"s2": [], "s1": SUMMARY["s1"], "lc": ["2016_01_01"]}
    backend = EarthEngineBackend(**options(fake, tmp_path))
    with pytest.raises(NoDataError, match="no Sentinel-2 image"):
        backend.export_scene(REQUEST, tmp_path / "scene")
    fake.value = lambda body: {**SUMMARY, "s1": []}
    with pytest.raises(NoDataError, match="Sentinel-1"):
        backend.export_scene(REQUEST, tmp_path / "scene")
    assert not fake.pixel_requests()


def test_dry_run_counts_images_and_downloads_nothing(fake, tmp_path, caplog):
    backend = EarthEngineBackend(**options(fake, tmp_path, dry_run=True))
    caplog.set_level(logging.INFO)
    res = backend.export_scene(REQUEST, tmp_path / "scene")
    plan = res.meta["plan"]
    assert res.meta["dry_run"] is True
    assert plan["images"] == {"s2": 6, "s1": 3, "lc": 1}
    assert plan["requests"] == 1 + sum(plan["chunks"].values())
    assert plan["expected_bytes"] > 421 * 283 * (30 + 8 + 8)
    assert not fake.pixel_requests() and not (tmp_path / "scene" / "s2.tif").exists()
    assert "6/3/1" in caplog.text and "total: 1 scene(s)" in caplog.text


# --- batch mode -----------------------------------------------------------------------------

def test_batch_export_to_cloud_storage(fake, tmp_path):
    fake.export_split = 256  # every export arrives as two files, as Earth Engine splits
    opts = options(fake, tmp_path, mode="batch", bucket="sen12ms-exports",
                   storage_url_base=fake.url)
    backend = EarthEngineBackend(**opts)
    res = backend.export_scene(REQUEST, tmp_path / "scene")
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())
    exports = [r["body"] for r in fake.requests if r["path"].endswith("/image:export")]
    assert len(exports) == 3
    grid = ROI_SMALL.export_grid()
    for body in exports:
        dest = body["fileExportOptions"]
        assert dest["fileFormat"] == "GEO_TIFF"
        assert dest["cloudStorageDestination"]["bucket"] == "sen12ms-exports"
        assert dest["cloudStorageDestination"]["filenamePrefix"].startswith(
            "sen12ms/summer/1868_land_7/")
        assert body["requestId"]
        (rep,) = [a for a in calls(body["expression"], "Image.reproject")
                  if "crsTransform" in a]
        assert rep["crsTransform"] == list(grid.transform)[:6]
    assert sum(n.endswith(".tif") for _, n in fake.objects) == 6  # each in two files
    recs = backend.store.records
    assert {r.state for r in recs.values()} == {"SUCCEEDED"} and all(
        r.pulled for r in recs.values())
    assert set(res.meta["tasks"]) == {"s2", "s1", "lc"}
    # resume: a second run resubmits nothing and pulls again
    again = EarthEngineBackend(**opts)
    again.export_scene(REQUEST, tmp_path / "scene2")
    assert sum(r["path"].endswith("/image:export") for r in fake.requests) == 3
    check_scene(tmp_path / "scene2", grid)


def test_batch_export_of_an_earlier_version_with_two_aux_bands_is_still_pulled(fake, tmp_path,
                                                                             caplog):
    """A batch export finished with the 2 aux bands of earlier versions (source, poor) is
    still pulled, into a 2-band aux raster whose quality layers say cloud_or_shadow."""
    from sen12ms_build.dataset import provenance
    from sen12ms_build.products import AUX

    fake.legacy_aux = True
    opts = options(fake, tmp_path, mode="batch", bucket="b", storage_url_base=fake.url)
    with caplog.at_level(logging.WARNING):
        res = EarthEngineBackend(**opts).export_scene(REQUEST, tmp_path / "scene")
    grid = ROI_SMALL.export_grid()
    aux, prof = read(res.aux)
    want = expected("s2", grid.transform, grid.width, grid.height)[13:15].astype(np.uint8)
    np.testing.assert_array_equal(aux, want)
    assert prof["descriptions"] == AUX.descriptions and "2 aux bands" in caplog.text
    s2, _ = read(res.s2)
    np.testing.assert_array_equal(s2, expected("s2", grid.transform, grid.width,
                                               grid.height)[:13])
    tags = provenance.patch_tags(provenance.scene_sources(res.meta, "summer", "x", 2016), aux)
    assert tags["QA_MASKS"] == "cloud_or_shadow" and tags["SHADOW_SHARE"] == ""


def test_batch_failure_reports_earth_engines_message_and_resumes(fake, tmp_path):
    fake.fail_exports = {"_s1": "Computation timed out."}
    opts = options(fake, tmp_path, mode="batch", bucket="b", storage_url_base=fake.url)
    backend = EarthEngineBackend(**opts)
    with pytest.raises(BatchTaskError, match="Computation timed out"):
        backend.export_scene(REQUEST, tmp_path / "scene")
    rec = backend.store.get("summer/1868_land_7/s1")
    assert rec.state == "FAILED" and rec.error == "Computation timed out."
    # the record is on disk, with Earth Engine's message and no credentials
    saved = json.loads(Path(opts["cache_dir"], "earthengine-tasks.json").read_text())
    assert saved["tasks"]["summer/1868_land_7/s1"]["error"] == "Computation timed out."
    first_ids = {k: r.request_id for k, r in backend.store.records.items()}
    fake.fail_exports = {}
    again = EarthEngineBackend(**opts)
    again.export_scene(REQUEST, tmp_path / "scene")
    exports = [r["body"] for r in fake.requests if r["path"].endswith("/image:export")]
    assert len(exports) == 4  # only the failed task was submitted again
    assert exports[-1]["description"].endswith("_s1")
    recs = again.store.records
    assert recs["summer/1868_land_7/s1"].request_id != first_ids["summer/1868_land_7/s1"]
    assert recs["summer/1868_land_7/s1"].attempts == 2
    assert recs["summer/1868_land_7/s2"].request_id == first_ids["summer/1868_land_7/s2"]
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())


def test_interrupted_submission_reuses_its_request_id(fake, tmp_path):
    opts = options(fake, tmp_path, mode="batch", bucket="b", storage_url_base=fake.url)
    backend = EarthEngineBackend(**opts)
    recs = backend.submit([REQUEST])
    assert len(recs) == 3 and len(fake.operations) == 3
    # as if the run died after recording the request id but before saving the answer
    rec = backend.store.get("summer/1868_land_7/lc")
    rec.state, rec.operation = "SUBMITTING", None
    backend.store.put(rec)
    again = EarthEngineBackend(**opts)
    again.submit([REQUEST])
    assert len(fake.operations) == 3  # de-duplicated by request id, no second export
    assert again.store.get("summer/1868_land_7/lc").operation is not None
    assert again.task_status() == {"RUNNING": 3}
    res = again.pull(REQUEST, tmp_path / "scene")
    assert res.s2.exists()
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())


def test_prepare_submits_every_scene_up_front(fake, tmp_path):
    other = SceneRequest(ROI.at(8, 1868, "land", 12.5, 47.1, 3000.0), "summer",
                         dt.date(2017, 6, 1), dt.date(2017, 8, 31))
    opts = options(fake, tmp_path, mode="batch", bucket="b", storage_url_base=fake.url)
    backend = EarthEngineBackend(**opts)
    backend.prepare([REQUEST, other])
    assert len(fake.operations) == 6
    for req in (REQUEST, other):
        backend.export_scene(req, tmp_path / req.roi.id)
    assert len(fake.operations) == 6  # nothing submitted twice
    EarthEngineBackend(**options(fake, tmp_path)).prepare([REQUEST])  # download: no-op
    assert len(fake.operations) == 6


def test_batch_export_to_drive_pulled_from_a_synced_folder(fake, tmp_path):
    opts = options(fake, tmp_path, mode="batch", drive_folder="sen12ms",
                   pull_dir=str(tmp_path / "drive"))
    backend = EarthEngineBackend(**opts)
    backend.submit([REQUEST])
    exports = [r["body"] for r in fake.requests if r["path"].endswith("/image:export")]
    assert {b["fileExportOptions"]["driveDestination"]["folder"] for b in exports} == {
        "sen12ms"}
    backend.task_status()  # PENDING -> RUNNING
    backend.task_status()  # RUNNING -> SUCCEEDED: the emulator writes the files
    (tmp_path / "drive").mkdir()
    for (folder, name), data in fake.objects.items():  # "sync" the Drive folder
        assert folder == "drive:sen12ms"
        (tmp_path / "drive" / name).write_bytes(data)
    res = backend.pull(REQUEST, tmp_path / "scene", wait=False)
    assert res.meta["tasks"]["lc"]
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())


def test_pull_refuses_unfinished_exports(fake, tmp_path):
    opts = options(fake, tmp_path, mode="batch", bucket="b", storage_url_base=fake.url)
    backend = EarthEngineBackend(**opts)
    backend.submit([REQUEST])
    with pytest.raises(BatchTaskError, match="not finished"):
        backend.pull(REQUEST, tmp_path / "scene", wait=False)
    assert not (tmp_path / "scene" / "s2.tif").exists()


def test_failed_operation_record_from_a_recorded_response():
    rec = tk.TaskRecord("summer/1868_land_7/s2", "d", "rid", "digest", tk.GCS, "p", "b")
    tk.apply_operation(rec, fixture("operation_failed.json"))
    assert rec.state == "FAILED" and rec.error == "Computation timed out."
    assert rec.task_id == "5RZCAJMWP3JTHB7M4Z6HNDXQ"


# --- credentials and options ------------------------------------------------------------------

def test_missing_credentials_fail_before_any_work(monkeypatch, tmp_path):
    """In a fresh process with an empty home (no ``earthengine authenticate`` credentials,
    no Application Default Credentials, not on GCE)."""
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # read by google-auth at import
    code = ("from sen12ms_build.backends import get_backend\n"
            "from sen12ms_build.backends.earthengine import EarthEngineAuthError\n"
            "try:\n    get_backend('earthengine', project='my-project')\n"
            "except EarthEngineAuthError as exc:\n    print(exc)\n    raise SystemExit(3)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "no Earth Engine credentials found" in proc.stdout
    assert "earthengine authenticate" in proc.stdout


def test_missing_key_file_and_project(monkeypatch, tmp_path):
    clean_env(monkeypatch, tmp_path)
    with pytest.raises(EarthEngineAuthError, match="key file not found"):
        EarthEngineBackend(service_account_key=str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EarthEngineAuthError, match="not a valid service-account JSON key"):
        EarthEngineBackend(service_account_key=str(bad))
    with pytest.raises(EarthEngineAuthError, match="no Cloud project"):
        EarthEngineBackend(credentials="none")


def _service_account_key(path: Path, token_uri: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "sa-project", "private_key_id": "0123abcd",
        "private_key": pem, "client_email": "runner@sa-project.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": token_uri}))
    return pem


def test_rejected_service_account_key_fails_without_leaking_it(fake, monkeypatch, tmp_path,
                                                                caplog):
    clean_env(monkeypatch, tmp_path)
    caplog.set_level(logging.DEBUG)
    key = tmp_path / "key.json"
    pem = _service_account_key(key, f"{fake.url}/token")
    with pytest.raises(EarthEngineAuthError) as err:
        EarthEngineBackend(service_account_key=str(key), request_url_base=fake.url)
    msg = str(err.value)
    assert "invalid_grant" in msg and "service-account" in msg
    assert "sa-project" in msg  # the project came from the key
    secret = pem.splitlines()[5]
    assert secret not in msg and secret not in caplog.text and "PRIVATE KEY" not in msg
    assert fake.count("/token") >= 1  # the key was tried against the token endpoint


def test_options_are_validated():
    with pytest.raises(ValueError, match="unknown Earth Engine option.*bukket"):
        EarthEngineOptions.from_mapping({"bukket": "x"})
    with pytest.raises(ValueError, match="bucket or drive_folder"):
        EarthEngineOptions(mode="batch")
    with pytest.raises(ValueError, match="pull_dir"):
        EarthEngineOptions(mode="batch", drive_folder="f")
    with pytest.raises(ValueError, match="max_concurrency"):
        EarthEngineOptions(max_concurrency=64)
    with pytest.raises(ValueError, match="max_request_bytes"):
        EarthEngineOptions(max_request_bytes=60 << 20)
    with pytest.raises(ValueError, match="mode"):
        EarthEngineOptions(mode="fast")
    o = EarthEngineOptions(service_account_key="/secret/key.json")
    assert o.as_dict()["service_account_key"] == "<set>"
    assert o.s2_collection == "COPERNICUS/S2_HARMONIZED" and o.max_concurrency == 8


def test_unknown_backend_option_raises_before_connecting():
    with pytest.raises(ValueError, match="colection"):
        get_backend("earthengine", colection="x")


def test_export_files_are_removed_after_pull(fake, tmp_path):
    opts = options(fake, tmp_path, mode="batch", bucket="b", storage_url_base=fake.url)
    EarthEngineBackend(**opts).export_scene(REQUEST, tmp_path / "scene")
    assert not list((tmp_path / "cache").rglob("*.tif"))
    shutil.rmtree(tmp_path / "scene")


def test_many_tasks_are_polled_with_one_list_call(fake, tmp_path):
    EarthEngineBackend(**options(fake, tmp_path))  # ee.Initialize against the emulator
    store = tk.TaskStore(tmp_path / "tasks.json")
    grid = ROI_SMALL.export_grid()
    keys = [f"summer/roi_{i}/lc" for i in range(tk.LIST_THRESHOLD + 1)]
    for key in keys:
        tk.submit(store, key, ee.Image.constant(1), grid, digest="d", destination=tk.GCS,
                  prefix=key, bucket="b")
    before_get = sum(r["method"] == "GET" and "/operations/" in r["path"]
                     for r in fake.requests)
    recs = tk.refresh(store, keys)
    assert {r.state for r in recs} == {"RUNNING"}
    assert fake.count("/operations") == 1  # operations.list, not one get per task
    assert sum(r["method"] == "GET" and "/operations/" in r["path"]
               for r in fake.requests) == before_get
    assert tk.TaskStore(tmp_path / "tasks.json").summary() == {"RUNNING": len(keys)}


# --- real limits: compute errors split, the floor falls back to batch, quota stops --------

def _s2_dims(fake):
    """(height, width) of every Sentinel-2 computePixels request, in order."""
    return [(b["grid"]["dimensions"]["height"], b["grid"]["dimensions"]["width"])
            for b in fake.pixel_requests() if "COPERNICUS/S2" in json.dumps(b)]


def _one_chunk(fake, tmp_path, **extra):
    """Options with the whole small scene in one S2 request (421 x 283 px)."""
    return options(fake, tmp_path, max_request_bytes=50_331_648, max_concurrency=1, **extra)


def _full_cost(fake, backend):
    """The emulator's cost of the full-size S2 request of REQUEST."""
    grid = ROI_SMALL.export_grid()
    expr = ee.serializer.encode(backend.images(REQUEST, SUMMARY)["s2"], for_cloud_api=True)
    body = {"expression": expr, "grid": {"dimensions": {"width": grid.width,
                                                        "height": grid.height}}}
    return fake.cost(body)


def test_scene_that_times_out_at_full_size_completes_by_splitting(fake, tmp_path, caplog):
    backend = EarthEngineBackend(**_one_chunk(fake, tmp_path))
    fake.cost_limit = _full_cost(fake, backend) / 2  # a quarter fits, the whole does not
    with caplog.at_level(logging.WARNING):
        res = backend.export_scene(REQUEST, tmp_path / "scene")
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())
    assert _s2_dims(fake) == [(283, 421), (141, 210), (141, 211), (142, 210), (142, 211)]
    assert res.meta["splits"] == {"s2": 1}
    assert "Computation timed out." in caplog.text and "split into 4" in caplog.text


def test_scene_too_heavy_even_at_the_floor_falls_back_to_batch(fake, tmp_path, caplog):
    opts = _one_chunk(fake, tmp_path, bucket="b", storage_url_base=fake.url)
    backend = EarthEngineBackend(**opts)
    fake.cost_limit = _full_cost(fake, backend) / 64  # nothing >= the 128 px floor fits
    with caplog.at_level(logging.WARNING):
        res = backend.export_scene(REQUEST, tmp_path / "scene")
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())
    assert res.meta["fallback"].startswith("batch")
    assert min(min(d) for d in _s2_dims(fake)) >= 128  # split down to the floor, no further
    assert fake.count("/image:export") == 3 and "falling back to a batch export" in caplog.text
    # recorded in the task state file: a rerun goes straight to the batch export
    n = len(fake.pixel_requests())
    res2 = EarthEngineBackend(**opts).export_scene(REQUEST, tmp_path / "scene2")
    assert len(fake.pixel_requests()) == n and res2.meta["fallback"] == "batch (recorded)"
    check_scene(tmp_path / "scene2", ROI_SMALL.export_grid())


def test_fallback_without_a_bucket_says_what_to_set(fake, tmp_path):
    from sen12ms_build.backends.earthengine.errors import BatchFallback
    from sen12ms_build.errors import Sen12msError

    backend = EarthEngineBackend(**_one_chunk(fake, tmp_path))
    fake.cost_limit = 1.0
    with pytest.raises(BatchFallback, match="backend.earthengine.bucket") as err:
        backend.export_scene(REQUEST, tmp_path / "scene")
    assert isinstance(err.value, Sen12msError) and "Computation timed out." in str(err.value)


def test_quota_stop_resumes_without_redownloading_finished_chunks(fake, tmp_path):
    from sen12ms_build.backends.earthengine.errors import QuotaExhaustedError
    from sen12ms_build.errors import Sen12msError

    opts = _one_chunk(fake, tmp_path)
    backend = EarthEngineBackend(**opts)
    full = _full_cost(fake, backend)
    fake.cost_limit = full / 2
    fake.budget = full / 4 * 2.5  # three quarters succeed, then the quota is spent
    with pytest.raises(QuotaExhaustedError) as err:
        backend.export_scene(REQUEST, tmp_path / "scene")
    msg = str(err.value)
    assert isinstance(err.value, Sen12msError) and "\n" not in msg
    assert "EECU" in msg and "0 scene(s)" in msg and "same command" in msg
    first = _s2_dims(fake)
    assert first == [(283, 421), (141, 210), (141, 211), (142, 210), (142, 211)]
    assert not (tmp_path / "scene" / "s2.tif").exists()
    # the quota resets; the same command resumes: no full-size request, no finished chunk
    fake.budget = None
    EarthEngineBackend(**opts).export_scene(REQUEST, tmp_path / "scene")
    assert _s2_dims(fake)[len(first):] == [(142, 211)]
    check_scene(tmp_path / "scene", ROI_SMALL.export_grid())


@pytest.mark.parametrize("fault,error", [("asset", "EarthEngineRequestError"),
                                         ("permission", "EarthEngineAuthError")])
def test_final_errors_are_not_retried_or_split(fake, tmp_path, fault, error):
    from sen12ms_build.backends.earthengine import errors

    fake.fault = lambda body, attempt: fault
    backend = EarthEngineBackend(**_one_chunk(fake, tmp_path))
    with pytest.raises(errors.EarthEngineError) as err:
        backend.export_scene(REQUEST, tmp_path / "scene")
    assert fake.count("/image:export") == 0
    assert error in str(err.value) or type(err.value).__name__ in ("DownloadError", error)
    # neither retried nor split: every grid asked once, at full size
    assert max(fake.attempts.values()) == 1
    assert all(d == (283, 421) for d in _s2_dims(fake))


def test_optional_abilities_are_declared_in_the_protocol(fake, tmp_path):
    """prepare / dry_run / problems / supports come from backends.Backend, not getattr."""
    import inspect

    from sen12ms_build import pipeline
    from sen12ms_build.backends import ABILITIES, Backend
    from sen12ms_build.backends.local import LocalBackend

    backend = EarthEngineBackend(**options(fake, tmp_path))
    assert isinstance(backend, Backend) and Backend in LocalBackend.__mro__
    assert [a for a in ABILITIES if backend.supports(a)] == ["prepare", "dry_run"]
    assert backend.problems == [] and backend.prepare([]) is None
    for name in ("prepare", "dry_run", "supports"):
        assert name in vars(Backend) and callable(getattr(Backend, name))
    assert isinstance(vars(Backend)["problems"], property)
    assert 'getattr(backend' not in inspect.getsource(pipeline)


# --- the labels through the whole backend, against the loopback emulator ----------------------

@pytest.mark.parametrize("mode", ["download", "batch"])
@pytest.mark.parametrize("labels, key, version, collection", [
    ("worldcover", "wc", "v200", "ESA/WorldCover/v200"),
    ("dynamicworld", "dw", "v100", "GOOGLE/DYNAMICWORLD/V1")])
def test_labels_are_exported_beside_the_triplet(fake, tmp_path, mode, labels, key, version,
                                               collection):
    """A labels run exports ``wc.tif`` / ``dw.tif`` beside the triplet in both modes: the
    pixels the emulator computed for the labels expression, on the export grid, and the
    source in the metadata; the summary's labels images name the provenance."""
    import dataclasses

    summary = {**SUMMARY, "labels": ["2021"]}
    request = dataclasses.replace(REQUEST, labels=labels, worldcover_version=version)
    fake.value = lambda body: summary
    extra = dict(mode="batch", bucket="sen12ms-exports", storage_url_base=fake.url) \
        if mode == "batch" else {}
    res = EarthEngineBackend(**options(fake, tmp_path, **extra)).export_scene(
        request, tmp_path / "scene")
    bodies = [json.dumps(r["body"]) for r in fake.requests
              if r["path"].endswith(("image:computePixels", "image:export"))]
    grid = request.roi.export_grid()
    got, prof = read(tmp_path / "scene" / f"{key}.tif")
    want = expected(key, grid.transform, grid.width, grid.height)
    np.testing.assert_array_equal(got, want)
    assert prof["transform"] == grid.transform and got.dtype == np.uint8
    assert res.extra[key] == tmp_path / "scene" / f"{key}.tif"
    assert res.meta["labels"]["id"] == collection and res.meta["labels"]["images"] == ["2021"]
    assert any(collection in b for b in bodies)  # the labels were asked of Earth Engine
