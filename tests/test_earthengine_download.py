"""Direct download against a real HTTP server on 127.0.0.1 (tests/ee_helpers.FakeEarthEngine)
serving real GeoTIFF chunk responses: chunking, mosaicking, retries with backoff on 429 /
5xx / slow responses, truncated-download detection, bounded concurrency, and resume after
the downloading process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ee")

from ee_helpers import PROJECT, FakeEarthEngine, expected, offline_ee, read  # noqa: E402
from sen12ms_build.backends import EXPORT_FILES  # noqa: E402
from sen12ms_build.backends.earthengine import graphs  # noqa: E402
from sen12ms_build.backends.earthengine.assemble import assemble, targets_for  # noqa: E402
from sen12ms_build.backends.earthengine.chunks import plan_grid  # noqa: E402
from sen12ms_build.backends.earthengine.client import RestClient, RetryPolicy  # noqa: E402
from sen12ms_build.backends.earthengine.download import ProductJob, download  # noqa: E402
from sen12ms_build.backends.earthengine.errors import (DownloadError,  # noqa: E402
                                                       EarthEngineRequestError)
from sen12ms_build.products import AUX_MASKS, LC, S1, S2  # noqa: E402
from sen12ms_build.roi import ROI  # noqa: E402

ROI_SMALL = ROI.at(7, 1868, "land", 11.5, 48.1, 3000.0)  # 421 x 283 export pixels
CHUNK_BYTES = 256 * 256 * 34  # 256 x 256 px of S2 (13 + 4 aux uint16): several chunks
FAST = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_max=0.05, timeout=5.0)


@pytest.fixture(scope="module")
def expressions():
    """Real serialized graphs (built offline) for the three products."""
    with offline_ee():
        region = graphs.region_of(ROI_SMALL.ring())
        return {
            "s2": graphs.encode(graphs.s2_mosaic(region, "2017-06-01", "2017-08-31",
                                                 with_aux=True, best_ids=["a", "b"])),
            "s1": graphs.encode(graphs.s1_image(region, "2017-06-01", "2017-08-31")),
            "lc": graphs.encode(graphs.landcover_image(region)),
        }


@pytest.fixture
def fake():
    with FakeEarthEngine() as server:
        yield server


def make_jobs(expressions, cache: Path, max_bytes: int = CHUNK_BYTES,
              keys=("s2", "s1", "lc")) -> list[ProductJob]:
    grid = ROI_SMALL.export_grid()
    plans = plan_grid(grid, max_bytes=max_bytes)
    return [ProductJob(k, plans[k].product, expressions[k], grid, plans[k].chunks, cache)
            for k in keys]


def client_for(fake, policy=FAST, concurrency=4) -> RestClient:
    return RestClient(fake.url, PROJECT, policy=policy, max_concurrency=concurrency)


def assemble_all(jobs, pieces, out: Path) -> None:
    for job in jobs:
        assemble(job.grid, pieces[job.key], job.product,
                 targets_for(job.key, out, EXPORT_FILES, with_aux=True))


def check_outputs(out: Path, keys=("s2", "s1", "lc")) -> None:
    grid = ROI_SMALL.export_grid()
    args = (grid.transform, grid.width, grid.height)
    if "s2" in keys:
        want = expected("s2", *args)
        data, prof = read(out / "s2.tif")
        assert data.dtype == np.uint16 and data.shape == (13, grid.height, grid.width)
        np.testing.assert_array_equal(data, want[:13])
        assert prof["transform"] == grid.transform and prof["crs"].to_epsg() == 4326
        assert prof["nodata"] == S2.nodata and prof["descriptions"] == S2.descriptions
        aux, prof = read(out / "s2_aux.tif")
        assert aux.dtype == np.uint8 and prof["nodata"] == AUX_MASKS.nodata
        np.testing.assert_array_equal(aux, want[13:].astype(np.uint8))
    if "s1" in keys:
        want = expected("s1", *args)
        want[want == graphs.S1_FILL] = np.nan
        data, prof = read(out / "s1.tif")
        assert data.dtype == np.float32 and prof["descriptions"] == S1.descriptions
        assert np.isnan(data).any() and (data != graphs.S1_FILL).all()
        np.testing.assert_array_equal(data, want)
    if "lc" in keys:
        data, prof = read(out / "lc.tif")
        np.testing.assert_array_equal(data, expected("lc", *args))
        assert prof["nodata"] == LC.nodata and prof["descriptions"] == LC.descriptions


def test_chunks_are_requested_on_the_export_grid_and_mosaicked(fake, expressions, tmp_path):
    jobs = make_jobs(expressions, tmp_path / "cache")
    assert len(jobs[0].chunks) == 4  # 421 x 283 at 256 x 256
    pieces = download(client_for(fake), jobs, progress=False)
    assemble_all(jobs, pieces, tmp_path / "out")
    check_outputs(tmp_path / "out")
    bodies = fake.pixel_requests()
    assert len(bodies) == sum(len(j.chunks) for j in jobs)
    want_grids = {json.dumps(graphs.pixel_grid(c.grid(j.grid)), sort_keys=True)
                  for j in jobs for c in j.chunks}
    assert {json.dumps(b["grid"], sort_keys=True) for b in bodies} == want_grids
    assert all(b["fileFormat"] == "GEO_TIFF" and b["grid"]["crsCode"] == "EPSG:4326"
               for b in bodies)
    headers = [r["headers"] for r in fake.requests if r["method"] == "POST"]
    assert all(h.get("X-Goog-User-Project") == PROJECT for h in headers)
    assert not any("Authorization" in h for h in headers)  # credentials="none"


def test_429_5xx_and_slow_responses_are_retried_with_backoff(fake, expressions, tmp_path):
    script = {0: "429", 1: "500", 2: "slow"}

    def fault(body, attempt):
        n = int(round(body["grid"]["affineTransform"]["translateX"] * 1e4)) % 3
        if attempt == 0:
            return script[n]
        return "503" if attempt == 1 and n == 1 else None

    fake.fault = fault
    fake.slow_seconds = 1.5
    client = client_for(fake, RetryPolicy(max_retries=4, backoff_base=0.01, backoff_max=0.05,
                                          timeout=0.5))
    jobs = make_jobs(expressions, tmp_path / "cache")
    pieces = download(client, jobs, progress=False)
    assemble_all(jobs, pieces, tmp_path / "out")
    check_outputs(tmp_path / "out")
    n_chunks = sum(len(j.chunks) for j in jobs)
    assert client.stats["retries"] >= n_chunks  # every chunk failed at least once
    assert len(fake.pixel_requests()) == n_chunks + client.stats["retries"]


def test_truncated_and_corrupt_responses_are_detected(fake, expressions, tmp_path):
    fake.fault = lambda body, attempt: {0: "truncate", 1: "corrupt"}.get(attempt)
    client = client_for(fake)
    jobs = make_jobs(expressions, tmp_path / "cache")
    pieces = download(client, jobs, progress=False)
    n_chunks = sum(len(j.chunks) for j in jobs)
    assert client.stats["retries"] == 2 * n_chunks
    assemble_all(jobs, pieces, tmp_path / "out")
    check_outputs(tmp_path / "out")


def test_gives_up_after_the_retries_with_earth_engines_message(fake, expressions, tmp_path):
    fake.fault = lambda body, attempt: "429"
    policy = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.02, timeout=5.0)
    jobs = make_jobs(expressions, tmp_path / "cache", keys=("lc",))
    with pytest.raises(DownloadError, match="Too many concurrent aggregations") as err:
        download(client_for(fake, policy, 1), jobs, progress=False)
    assert "3 attempt(s)" in str(err.value) and "rerun to resume" in str(err.value)
    assert max(fake.attempts.values()) == 3


def test_bad_request_is_not_retried(fake, expressions, tmp_path):
    fake.fault = lambda body, attempt: "asset"
    jobs = make_jobs(expressions, tmp_path / "cache", keys=("s1",))
    with pytest.raises(DownloadError, match=r"Image asset .* not found"):
        download(client_for(fake, concurrency=1), jobs, max_workers=1, progress=False)
    assert len(fake.pixel_requests()) == 1  # first failure stops the rest, no retry
    with pytest.raises(EarthEngineRequestError):
        client_for(fake).compute_pixels(jobs[0].expression,
                                        graphs.pixel_grid(jobs[0].grid))


def test_concurrency_is_bounded(fake, expressions, tmp_path):
    fake.delay = 0.15
    jobs = make_jobs(expressions, tmp_path / "cache", max_bytes=128 * 128 * 34)
    assert sum(len(j.chunks) for j in jobs) >= 10
    # more threads than slots: the client's semaphore still caps requests in flight
    download(client_for(fake, concurrency=3), jobs, max_workers=8, progress=False)
    assert fake.max_in_flight == 3


def test_cached_chunks_are_verified_and_reused(fake, expressions, tmp_path):
    jobs = make_jobs(expressions, tmp_path / "cache")
    download(client_for(fake), jobs, progress=False)
    first = len(fake.pixel_requests())
    # damage one cached chunk: it is fetched again, the others are reused
    victim = jobs[0].chunk_path(jobs[0].chunks[1])
    victim.write_bytes(victim.read_bytes()[:500])
    pieces = download(client_for(fake), jobs, progress=False)
    assert len(fake.pixel_requests()) == first + 1
    assemble_all(jobs, pieces, tmp_path / "out")
    check_outputs(tmp_path / "out")


def test_changed_graph_does_not_reuse_chunks(expressions, tmp_path):
    a = make_jobs(expressions, tmp_path)[0]
    other = dict(expressions, s2=graphs_changed(expressions["s2"]))
    b = make_jobs(other, tmp_path)[0]
    assert a.cache != b.cache


def graphs_changed(expr: dict) -> dict:
    out = json.loads(json.dumps(expr))
    out["values"]["_extra"] = {"constantValue": 1}
    return out


CHILD = r"""
import json, sys
from pathlib import Path
from affine import Affine
from sen12ms_build.geo import Grid
from sen12ms_build.backends.earthengine.chunks import Chunk, products
from sen12ms_build.backends.earthengine.client import RestClient, RetryPolicy
from sen12ms_build.backends.earthengine.download import ProductJob, download
spec = json.loads(Path(sys.argv[1]).read_text())
grid = Grid("EPSG:4326", Affine(*spec["transform"]), spec["width"], spec["height"])
jobs = [ProductJob(j["key"], products()[j["key"]], j["expression"], grid,
                   [Chunk(*c) for c in j["chunks"]], Path(spec["cache"])) for j in spec["jobs"]]
client = RestClient(spec["url"], spec["project"], policy=RetryPolicy(timeout=30),
                    max_concurrency=1)
download(client, jobs, max_workers=1, progress=False)
print("finished")
"""


def test_resume_after_the_process_is_killed(fake, expressions, tmp_path):
    fake.delay = 0.25  # slow enough to kill the child in the middle
    jobs = make_jobs(expressions, tmp_path / "cache", max_bytes=128 * 128 * 34)
    total = sum(len(j.chunks) for j in jobs)
    assert total >= 10
    grid = jobs[0].grid
    spec = {"url": fake.url, "project": PROJECT, "cache": str(tmp_path / "cache"),
            "transform": list(grid.transform)[:6], "width": grid.width, "height": grid.height,
            "jobs": [{"key": j.key, "expression": j.expression,
                      "chunks": [[c.row_off, c.col_off, c.height, c.width] for c in j.chunks]}
                     for j in jobs]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "spec.json")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            done = [p for j in jobs for p in j.paths() if p.exists()]
            if len(done) >= 3 or child.poll() is not None:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    cached = [p for j in jobs for p in j.paths() if p.exists()]
    assert 3 <= len(cached) < total
    before = len(fake.pixel_requests())
    fake.delay = 0.0
    pieces = download(client_for(fake), jobs, progress=False)
    # only the missing chunks are requested again; cached ones are verified and reused
    assert len(fake.pixel_requests()) - before == total - len(cached)
    assemble_all(jobs, pieces, tmp_path / "out")
    check_outputs(tmp_path / "out")


def test_backoff_policy_full_jitter_and_retry_after():
    import random

    p = RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=8.0)
    rng = random.Random(1)
    for attempt in range(6):
        cap = min(8.0, 2 ** attempt)
        waits = [p.delay(attempt, rng=rng) for _ in range(200)]
        assert 0 <= min(waits) and max(waits) <= cap
        assert max(waits) > cap * 0.8  # jitter spans the range
    assert p.delay(0, retry_after=5.0, rng=rng) >= 5.0
    assert p.delay(0, retry_after=100.0, rng=rng) <= 8.0


def test_read_timeouts_are_retried_a_bounded_number_of_times_then_split(fake, expressions,
                                                                        tmp_path):
    """A request that keeps producing nothing within the read time-out is repeated
    ``max_timeout_retries`` times only (each repeat burns the same compute), then treated as
    a compute limit: the chunk splits in four, and the pieces succeed."""
    # margins wide enough for a loaded machine: a normal answer takes well under 1 s
    fake.slow_seconds = 2.0
    big = {"done": False}

    def fault(body, attempt):
        dims = body["grid"]["dimensions"]
        if dims["width"] * dims["height"] > 283 * 421 // 2 and not big["done"]:
            return "slow"
        return None

    fake.fault = fault
    client = client_for(fake, RetryPolicy(max_retries=6, backoff_base=0.01, backoff_max=0.02,
                                          timeout=1.0, max_timeout_retries=1))
    jobs = make_jobs(expressions, tmp_path / "cache", max_bytes=50_331_648, keys=("s1",))
    assert len(jobs[0].chunks) == 1
    pieces = download(client, jobs, progress=False)
    sizes = [(b["grid"]["dimensions"]["height"], b["grid"]["dimensions"]["width"])
             for b in fake.pixel_requests()]
    assert sizes == [(283, 421)] * 2 + [(141, 210), (141, 211), (142, 210), (142, 211)]
    assert len(pieces["s1"]) == 4
    assert json.loads(jobs[0].layout_path.read_text())["splits"]  # recorded for a resume
    assemble_all(jobs, pieces, tmp_path / "out")
    check_outputs(tmp_path / "out", keys=("s1",))


@pytest.mark.parametrize("status,message,kind", [
    (400, "Computation timed out.", "split"),
    (400, "User memory limit exceeded.", "split"),
    (400, "Total request size (56623104 bytes) must be less than or equal to 50331648 bytes.",
     "split"),
    (429, "Too many concurrent aggregations.", "retry"),
    (429, "Quota exceeded for quota metric 'Number of read requests' and limit 'Number of "
          "read requests per minute per user' of service 'earthengine.googleapis.com'", "retry"),
    (429, "Quota exceeded for quota metric 'EECU time' and limit 'EECU seconds per month'",
     "quota"),
    (500, "An internal error has occurred.", "retry"),
    (503, "The service is currently unavailable.", "retry"),
    (403, "Caller does not have required permission to use project p.", "auth"),
    (400, "Image.load: Image asset 'x' not found (does not exist or caller does not have "
          "access).", "final"),
    (404, "Requested entity was not found.", "final"),
])
def test_errors_are_told_apart(status, message, kind):
    from sen12ms_build.backends.earthengine.errors import classify

    assert classify(status, message) == kind
