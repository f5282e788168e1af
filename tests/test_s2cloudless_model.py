"""The s2cloudless model compiled once per machine (sen12ms_build.mosaic.s2cloudless_model).

* The compiled probabilities equal ``lightgbm.Booster.predict`` of the model file (the call
  ``s2cloudless.S2PixelCloudDetector`` makes) within 1e-6 on every pixel of the s2cloudless
  test array (``s2cloudless/TestInputs/input_arrays.npz`` of the 1.2.1 sdist, fetched by
  scripts/setup.sh; its 96 px crop in tests/fixtures always) and of the demo's six
  real-cloud acquisitions (central window), and the scorer's masks are identical.
* The compiled library is cached under a key of the model's sha256 and the compiler's
  version, written under a temporary name and renamed, compiled once by concurrent processes.
* Without lleaves, or when the compile fails, LightGBM's predict runs, with one log line.
* Pixels are classified in bounded blocks, only the valid ones, on the threads set.

The session compiles the real model once, into the session's cache (conftest.build_cache);
the cache mechanics are checked on a tiny model trained here (compiled in under a second).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sen12ms_build import mosaic, pipeline
from sen12ms_build.mosaic import MosaicParams, s2cloudless_model, scorers

HAVE_S2CLOUDLESS = importlib.util.find_spec("s2cloudless") is not None
HAVE_LLEAVES = importlib.util.find_spec("lleaves") is not None
needs_s2cloudless = pytest.mark.skipif(not HAVE_S2CLOUDLESS,
                                       reason="pip install 'sen12ms-build[s2cloudless]'")
needs_lleaves = pytest.mark.skipif(not HAVE_LLEAVES,
                                   reason="pip install 'sen12ms-build[s2cloudless]'")

#: The s2cloudless test array, fetched by scripts/setup.sh (s2cloudless 1.2.1 sdist on PyPI,
#: Sinergise, CC BY-SA 4.0): (1, 856, 512, 13) float32 top-of-atmosphere reflectance.
TEST_ARRAY = (Path(sys.prefix) / "share" / "sen12ms-build" / "s2cloudless-1.2.1"
              / "input_arrays.npz")
#: Its 96 x 96 px crop as L1C DN (tests/fixtures/s2cloudless/README.md).
CROP = Path(__file__).parent / "fixtures" / "s2cloudless" / "real_l1c_96.npz"
#: The model's bands among the 13 (s2cloudless.utils.MODEL_BAND_IDS: B1, B2, B4, B5, B8,
#: B8A, B9, B10, B11, B12), written out here rather than taken from the code under test.
MODEL_BANDS = [0, 1, 3, 4, 7, 8, 9, 10, 11, 12]
#: Side (10 m px) of the central window of the demo's real-cloud acquisitions.
DEMO_WINDOW = 256
TOL = 1e-6


def reflectance(l1c: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """(n, 10) float32 model input of (13, h, w) DN as the s2cloudless scorer fed it before
    the compiled model (DN as float32, divided by 10000 in float32)."""
    x = l1c[MODEL_BANDS].reshape(10, -1).T.astype(np.float32)
    if index is not None:
        x = x[index]
    return x / np.float32(10000.0)


@pytest.fixture(scope="module")
def booster():
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.Booster(model_file=str(s2cloudless_model.model_file()))


@pytest.fixture(scope="module")
def model():
    """This session's predictor: the compiled model when lleaves is installed (compiled once
    per session into conftest.build_cache), else LightGBM's predict."""
    m = s2cloudless_model.predictor()
    assert m.backend == ("lleaves" if HAVE_LLEAVES else "lightgbm")
    return m


@pytest.fixture(scope="module")
def demo_real_clouds(booster) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The demo archive's real-cloud acquisitions (``clouds="real"``) on the central window,
    synthesized as write_demo_archive writes them, with LightGBM's probability of every
    valid pixel: [(date, (13, h, w) uint16 L1C DN, (h, w) float64 probability, NaN outside
    the footprint)]."""
    from sen12ms_build.demo import archive
    from sen12ms_build.demo.ground import crop_window, load_ground

    ground, grid = load_ground()
    win = crop_window(ground.shape[1:], DEMO_WINDOW)
    r0, c0, h, w = win
    out = []
    for p in archive.plan_s2(ground, grid, clouds="real"):
        if p.real:
            l1c, _, _ = archive.synthesize_s2(ground[:, r0:r0 + h, c0:c0 + w], win, p)
            idx = np.flatnonzero(mosaic.footprint(l1c))
            truth = np.full(l1c.shape[1:], np.nan)
            truth.reshape(-1)[idx] = booster.predict(reflectance(l1c, idx))
            out.append((f"{p.plan.sensing_time:%Y-%m-%d}", l1c, truth))
    assert len(out) == 6  # spring's and summer's scattered acquisitions (docs/clouds.md)
    return out


# --- the compiled model gives LightGBM's probabilities ----------------------------------------

@needs_s2cloudless
@pytest.mark.parametrize("source", [pytest.param("full test array", marks=pytest.mark.slow),
                                    "test array crop"])
def test_probabilities_equal_lightgbm_on_every_pixel_of_the_s2cloudless_test_array(
        model, booster, source):
    if source == "full test array":
        if not TEST_ARRAY.is_file():
            pytest.skip(f"{TEST_ARRAY} missing: run scripts/setup.sh (fetches the "
                        "s2cloudless 1.2.1 sdist's test array)")
        s2_im = np.load(TEST_ARRAY)["s2_im"]
        assert s2_im.shape == (1, 856, 512, 13)
        x32 = s2_im[0].reshape(-1, 13)[:, MODEL_BANDS].astype(np.float32)
    else:
        x32 = reflectance(np.load(CROP)["l1c"])
    truth = booster.predict(x32)
    p = model.predict(np.ascontiguousarray(x32, np.float64))
    assert p.shape == truth.shape == (x32.shape[0],)
    assert np.abs(p - truth).max() <= TOL
    assert truth.min() < 0.05 and truth.max() > 0.95  # clear and cloudy pixels both


@needs_s2cloudless
@pytest.mark.slow
def test_probabilities_equal_lightgbm_on_every_pixel_of_the_demo_real_cloud_acquisitions(
        model, demo_real_clouds):
    for date, l1c, truth_map in demo_real_clouds:
        valid = mosaic.footprint(l1c)
        idx = np.flatnonzero(valid)
        x32 = reflectance(l1c, idx)
        truth = truth_map.reshape(-1)[idx]
        # the features as the scorer builds them, and the model
        x = s2cloudless_model.features(l1c, idx, scorers.S2CLOUDLESS_BANDS)
        np.testing.assert_array_equal(x, x32.astype(np.float64))
        assert np.abs(model.predict(x) - truth).max() <= TOL, date
        # the whole scorer path: blocks, scatter onto the grid, float32
        p = scorers.s2cloudless_probability(l1c, valid)
        assert p.dtype == np.float32 and (p[~valid] == 0).all()
        assert np.abs(p[valid] - truth).max() <= TOL, date


@needs_s2cloudless
@pytest.mark.slow
def test_scores_and_masks_are_lightgbms(booster, demo_real_clouds, monkeypatch):
    """The smoothed, dilated and calibrated score of the compiled path against the same
    scorer with LightGBM's own ``Booster.predict`` as the model, at the default
    classification scale (60 m) and at every score-scale pixel (20 m): masks identical,
    scores within 1e-6."""
    lightgbm = s2cloudless_model.Predictor("lightgbm", lambda x, n: booster.predict(x))
    for scale in (MosaicParams().s2cloudless_scale_m, 20.0):
        params = MosaicParams(scorer="s2cloudless", s2cloudless_scale_m=scale)
        compiled = [scorers.s2cloudless_score(l1c, mosaic.footprint(l1c), params)
                    for _, l1c, _ in demo_real_clouds]
        with monkeypatch.context() as m:
            m.setattr(scorers, "_s2cloudless_model", lambda: lightgbm)
            refs = [scorers.s2cloudless_score(l1c, mosaic.footprint(l1c), params)
                    for _, l1c, _ in demo_real_clouds]
        cloudy = 0
        for (date, _, _), score, ref in zip(demo_real_clouds, compiled, refs, strict=True):
            assert np.abs(score - ref).max() <= TOL, (scale, date)
            np.testing.assert_array_equal(score > params.cloud_thresh,
                                          ref > params.cloud_thresh)
            cloudy += int((ref > params.cloud_thresh).sum())
        assert cloudy > 10000, scale  # the masks compared hold real clouds


@needs_s2cloudless
def test_classification_scale_classifies_block_means(booster):
    """At ``s2cloudless_scale_m`` = 3 score-scale pixels the model sees the means of 3 x 3
    blocks: on an image of constant 3 x 3 blocks (a real 32 px crop, each pixel repeated)
    every pixel gets LightGBM's probability of its block's value, also in the partial
    blocks of a ragged edge and in a block partly without data (0: ignored by the mean,
    probability 0 there). At 20 m it is the per-pixel probability."""
    small = np.load(CROP)["l1c"][:, :32, :32]
    truth = booster.predict(reflectance(small)).reshape(32, 32)
    big = np.repeat(np.repeat(small, 3, axis=1), 3, axis=2)[:, :95, :94].copy()
    big[:, 30, 31] = 0  # one pixel without data inside block (10, 10)
    valid = mosaic.footprint(big)
    assert valid.sum() == 95 * 94 - 1
    p = scorers.s2cloudless_scaled_probability(big, valid, MosaicParams(s2cloudless_scale_m=60))
    want = np.repeat(np.repeat(truth, 3, axis=0), 3, axis=1)[:95, :94]
    assert p.dtype == np.float32 and p[30, 31] == 0
    assert np.abs(p[valid] - want[valid]).max() <= TOL
    p20 = scorers.s2cloudless_scaled_probability(small, mosaic.footprint(small),
                                                 MosaicParams(s2cloudless_scale_m=20))
    assert np.abs(p20 - truth).max() <= TOL


def test_classification_scale_must_be_a_multiple_of_the_score_scale():
    assert scorers.classification_factor(MosaicParams(s2cloudless_scale_m=60)) == 3
    assert scorers.classification_factor(MosaicParams(s2cloudless_scale_m=20)) == 1
    for bad in (50.0, 10.0, 0.0):
        with pytest.raises(ValueError, match="whole multiple"):
            scorers.classification_factor(MosaicParams(s2cloudless_scale_m=bad))


# --- fallback ------------------------------------------------------------------------------------

@needs_s2cloudless
def test_without_lleaves_lightgbm_predicts_the_same_with_one_log_line(
        booster, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(s2cloudless_model, "lleaves_installed", lambda: False)
    with caplog.at_level(logging.INFO, logger=s2cloudless_model.__name__):
        m = s2cloudless_model.load_predictor(s2cloudless_model.model_file(), tmp_path)
    assert m.backend == "lightgbm" and m.path is None
    assert len(caplog.records) == 1 and caplog.records[0].levelno == logging.WARNING
    assert "lleaves is not installed" in caplog.messages[0]
    assert "sen12ms-build[s2cloudless]" in caplog.messages[0]
    x32 = reflectance(np.load(CROP)["l1c"])
    np.testing.assert_array_equal(m.predict(x32.astype(np.float64)), booster.predict(x32))
    assert not any(tmp_path.iterdir())  # nothing compiled, nothing cached


# --- the cache (a tiny model: compiled in well under a second) ----------------------------------

def _train(path: Path, seed: int) -> Path:
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(seed)
    x = rng.random((3000, 10))
    y = (x[:, 0] + x[:, 6] + 0.3 * rng.standard_normal(3000) > 1.0).astype(int)
    b = lightgbm.train({"objective": "binary", "num_leaves": 16, "verbose": -1,
                        "num_threads": 1, "seed": seed}, lightgbm.Dataset(x, y),
                       num_boost_round=8)
    b.save_model(str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two small LightGBM models of the s2cloudless shape (10 features, binary), with their
    Booster predictions on random rows: [(model file, x, truth)]."""
    lightgbm = pytest.importorskip("lightgbm")
    d = tmp_path_factory.mktemp("tiny")
    x = np.random.default_rng(9).random((5000, 10))
    out = []
    for seed in (1, 2):
        f = _train(d / f"tiny{seed}.txt", seed)
        out.append((f, x, lightgbm.Booster(model_file=str(f)).predict(x)))
    return out


@needs_lleaves
def test_compiled_once_keyed_by_model_and_compiler_then_loaded(tiny, tmp_path, monkeypatch):
    (f1, x, truth1), (f2, _, truth2) = tiny
    writes = []
    real_compile = s2cloudless_model.compile_model

    def spy(model, out):
        # the library is written under a temporary name in the cache folder itself (so the
        # rename is atomic), and the finished name does not exist while it is being written
        final = tmp_path / s2cloudless_model.compiled_name(s2cloudless_model.sha256(model))
        assert out.parent == tmp_path and out.name.endswith(".tmp") and not out.exists()
        assert not final.exists()
        real_compile(model, out)
        assert out.stat().st_size > 0 and not final.exists()
        writes.append(out)

    monkeypatch.setattr(s2cloudless_model, "compile_model", spy)
    m, path, seconds = s2cloudless_model.compiled_model(f1, tmp_path)
    assert seconds is not None and len(writes) == 1
    assert np.abs(m.predict(x, n_jobs=1) - truth1).max() <= 1e-12
    digest = s2cloudless_model.sha256(f1)
    assert digest == __import__("hashlib").sha256(f1.read_bytes()).hexdigest()
    assert path.parent == tmp_path and path.suffix == ".o" and digest[:16] in path.name
    assert f"lleaves{importlib.metadata.version('lleaves')}" in path.name
    assert f"llvmlite{importlib.metadata.version('llvmlite')}" in path.name
    assert not list(tmp_path.glob("*.tmp"))
    # again: loaded from the cache, not compiled
    m, again, seconds = s2cloudless_model.compiled_model(f1, tmp_path)
    assert again == path and seconds is None and len(writes) == 1
    assert np.abs(m.predict(x, n_jobs=2) - truth1).max() <= 1e-12
    # another model: another key
    m, other, seconds = s2cloudless_model.compiled_model(f2, tmp_path)
    assert other != path and seconds is not None and len(writes) == 2
    assert np.abs(m.predict(x, n_jobs=1) - truth2).max() <= 1e-12
    # another compiler version: another key
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "999.0" if name == "lleaves" else "0.44.0")
    assert s2cloudless_model.compiled_name(digest) != path.name


@needs_lleaves
def test_concurrent_processes_compile_once(tiny, tmp_path):
    """Two processes asking at once for the same uncached model: one compiles (slowed down
    here, so the other arrives while it does), the other waits and loads its library."""
    f1, x, truth = tiny[0]
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, time; import numpy as np\n"
        "from pathlib import Path\n"
        "from sen12ms_build.mosaic import s2cloudless_model as sm\n"
        "real = sm.compile_model\n"
        "def slow(model, out):\n"
        "    time.sleep(1.5); real(model, out)\n"
        "sm.compile_model = slow\n"
        "m, path, seconds = sm.compiled_model(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "p = m.predict(np.load(sys.argv[3]), n_jobs=1)\n"
        "print(json.dumps({'compiled': seconds is not None, 'path': str(path), "
        "'p': p.tolist()}))\n")
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(f1), str(cache),
                               str(tmp_path / "x.npy")], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["compiled"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    for r in results:
        assert np.abs(np.array(r["p"]) - truth).max() <= 1e-12
    assert len(list(cache.glob("*.o"))) == 1 and not list(cache.glob("*.tmp"))


@needs_lleaves
def test_failed_compile_falls_back_with_one_log_line_and_leaves_no_file(
        tiny, tmp_path, monkeypatch, caplog):
    f1, x, truth = tiny[0]

    def broken(model, out):
        out.write_bytes(b"\x7fELF half a library")
        raise RuntimeError("lleaves compile exited -9: killed")

    monkeypatch.setattr(s2cloudless_model, "compile_model", broken)
    with caplog.at_level(logging.INFO, logger=s2cloudless_model.__name__):
        m = s2cloudless_model.load_predictor(f1, tmp_path)
    assert m.backend == "lightgbm"
    assert len(caplog.records) == 1 and caplog.records[0].levelno == logging.WARNING
    assert "failed" in caplog.messages[0] and "exited -9" in caplog.messages[0]
    np.testing.assert_array_equal(m.predict(x), truth)
    assert [p.suffix for p in tmp_path.iterdir()] == [".lock"]  # no library, no temp


@needs_lleaves
def test_a_child_that_dies_is_a_compile_failure(tiny, tmp_path, monkeypatch):
    """The compile runs in a child process: its failure is an error here, never a crash."""
    monkeypatch.setattr(s2cloudless_model, "_CHILD", "import sys; sys.exit('no compiler')")
    with pytest.raises(RuntimeError, match="exited 1: no compiler"):
        s2cloudless_model.compile_model(tiny[0][0], tmp_path / "out.o")
    assert not (tmp_path / "out.o").exists()


def test_cache_dir_env_then_xdg_then_home(monkeypatch, tmp_path):
    cache_dir = s2cloudless_model.cache_dir
    assert cache_dir({"SEN12MS_BUILD_CACHE": "/x/c", "XDG_CACHE_HOME": "/y"}) == Path("/x/c")
    assert cache_dir({"XDG_CACHE_HOME": "/y"}) == Path("/y/sen12ms-build")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir({}) == tmp_path / ".cache" / "sen12ms-build"


# --- blocks, valid pixels, threads ---------------------------------------------------------------

def test_only_valid_pixels_in_bounded_blocks_on_the_threads_set(monkeypatch):
    rng = np.random.default_rng(3)
    l1c = rng.integers(1, 9000, (13, 60, 70)).astype(np.uint16)
    valid = rng.random((60, 70)) > 0.3
    calls = []

    def fn(x, threads):
        calls.append((x.shape, x.dtype, x.flags.c_contiguous, threads))
        return x[:, 0] + x[:, 9]  # any per-pixel function of the features

    fake = s2cloudless_model.Predictor("fake", fn)
    monkeypatch.setattr(s2cloudless_model, "BLOCK_PIXELS", 1000)
    monkeypatch.setattr(s2cloudless_model, "_THREADS", [3])
    p = s2cloudless_model.probability(l1c, valid, tuple(MODEL_BANDS), fake)
    assert sum(c[0][0] for c in calls) == valid.sum()
    assert all(c[0][0] <= 1000 and c[0][1] == 10 and c[1] == np.float64 and c[2] and c[3] == 3
               for c in calls)
    assert len(calls) == -(-int(valid.sum()) // 1000)
    expect = (l1c[0].astype(np.float32) / np.float32(1e4)).astype(np.float64) + \
        (l1c[12].astype(np.float32) / np.float32(1e4)).astype(np.float64)
    np.testing.assert_array_equal(p[valid], expect[valid].astype(np.float32))
    assert (p[~valid] == 0).all() and p.dtype == np.float32
    calls.clear()
    s2cloudless_model.probability(l1c, valid, tuple(MODEL_BANDS), fake, threads=2)
    assert {c[3] for c in calls} == {2}
    calls.clear()
    s2cloudless_model.probability(l1c, np.zeros_like(valid), tuple(MODEL_BANDS), fake)
    assert calls == []


def test_threads_are_the_run_cores_shared_among_workers(monkeypatch):
    assert pipeline.scorer_threads(1, cores=2) == 2
    assert pipeline.scorer_threads(2, cores=2) == 1
    assert pipeline.scorer_threads(3, cores=8) == 2
    assert pipeline.scorer_threads(4, cores=2) == 1  # never 0
    with pytest.raises(ValueError, match="threads must be >= 1"):
        s2cloudless_model.set_threads(0)
    monkeypatch.setattr(s2cloudless_model, "_THREADS", [1])
    s2cloudless_model.set_threads(4)
    assert s2cloudless_model.threads() == 4
