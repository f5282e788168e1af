"""Shared fixtures: the demo archive and one full demo run, built once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from sen12ms_build.config import load_config

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
DEMO_ROIS = REPO / "configs" / "demo_rois.csv"  # the demo's planned ROIs (cwd-independent)


@pytest.fixture(scope="session", autouse=True)
def build_cache(tmp_path_factory) -> Path:
    """The session's user cache (``SEN12MS_BUILD_CACHE``: the compiled s2cloudless model,
    docs/clouds.md), never the user's own: the checkout's ``.venv/share/sen12ms-build/cache``,
    where ``scripts/setup.sh`` compiled the model (its file name keys the model's sha256, the
    compiler's versions and options and the CPU, so it is never stale), else one folder under
    the session's temporary root, shared by the pytest-xdist workers (the cache's lock lets
    one of them compile while the other waits): a session compiles the model at most once."""
    from sen12ms_build.mosaic.s2cloudless_model import CACHE_ENV

    root = REPO / ".venv" / "share" / "sen12ms-build" / "cache"
    if not root.is_dir():
        base = tmp_path_factory.getbasetemp()
        root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "user-cache"
        root.mkdir(exist_ok=True)
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    yield root
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory) -> Path:
    """The full embedded demo archive (real Sentinel-2 ground, injected clouds)."""
    from sen12ms_build.demo.archive import write_demo_archive

    root = tmp_path_factory.mktemp("demo") / "archive"
    write_demo_archive(root, progress=False)
    return root


@pytest.fixture(scope="session")
def demo_config(demo_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out") / "sen12ms"
    return load_config(DEMO_CONFIG, {"backend.archive": str(demo_archive), "out": str(out),
                                     "sampling.rois_file": str(DEMO_ROIS)})


@pytest.fixture(scope="session")
def demo_run(demo_config):
    """The README's main job on the demo archive: (config, summary)."""
    from sen12ms_build.pipeline import run

    summary = run(demo_config, progress=False)
    return demo_config, summary


@pytest.fixture(scope="session")
def small_archive(demo_archive, tmp_path_factory) -> Path:
    """The demo archive's winter and spring acquisitions (copies we may damage)."""
    root = tmp_path_factory.mktemp("small") / "archive"
    for kind in ("s2", "s1", "lc"):
        (root / kind).mkdir(parents=True)
        for f in sorted((demo_archive / kind).glob("*.tif")):
            if kind == "lc" or f.name[:6] in ("201612", "201701", "201702", "201703",
                                              "201704", "201705"):
                shutil.copy(f, root / kind / f.name)
    return root


def write_tiny_config(tmp_path: Path, archive: Path, **extra) -> Path:
    """Two listed 3840 m ROIs (2 x 2 patches each), winter and spring."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rois = tmp_path / "rois.csv"
    rois.write_text("lon,lat,scene\n-75.64,37.70,1\n-75.60,37.65,2\n")
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["seasons"] = {k: data["seasons"][k] for k in ("winter", "spring")}
    data["sampling"].update(rois_file=str(rois), roi_size_m=3840)
    data["backend"]["archive"] = str(archive)
    data["out"] = str(tmp_path / "out")
    data.update(extra)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def tiny_config():
    """:func:`write_tiny_config`: a 2-ROI, 2-season config for quick whole runs."""
    return write_tiny_config


@pytest.fixture(scope="session")
def water_scene():
    """A small synthetic raster where a cloud's shadow falls on water, for the
    ``shadow_over_water`` switch: (l1c, cloud, water, dark_land, geometry).

    48 x 48 px of 20 m (the score scale), north up. The south half (rows 24-47) is bright
    land, covered by an opaque cloud (cloud score 1) on rows 28-47; the north half is water
    on columns 0-31 (nd(B8, B4) = -0.43, dark in B8 + B11 + B12) and dark vegetation on
    columns 32-47 (the control: a shadow candidate either way). The sun is due south at
    45 degrees zenith, so the cloud shades the ground north of it: the whole north half.
    ``l1c`` (13, 48, 48) uint16 DN; ``cloud`` (48, 48) float32; ``water`` / ``dark_land``
    (48, 48) bool; ``geometry`` = (pixel_size, solar_azimuth, solar_zenith)."""
    import numpy as np

    from sen12ms_build.products import S2_BANDS

    band = {b: i for i, b in enumerate(S2_BANDS)}
    l1c = np.full((13, 48, 48), 800, np.uint16)

    def paint(rows, cols, **refl):
        for b, r in refl.items():
            l1c[band[b], rows, cols] = round(r * 10000)

    paint(slice(24, 48), slice(None), B4=0.05, B8=0.30, B11=0.20, B12=0.10)  # bright land
    paint(slice(0, 24), slice(0, 32), B4=0.05, B8=0.02, B11=0.01, B12=0.01)  # water
    paint(slice(0, 24), slice(32, 48), B4=0.05, B8=0.10, B11=0.05, B12=0.03)  # dark land
    cloud = np.full((48, 48), 0.001, np.float32)
    cloud[28:] = 1.0
    water = np.zeros((48, 48), bool)
    water[:24, :32] = True
    dark_land = np.zeros((48, 48), bool)
    dark_land[:24, 32:] = True
    return l1c, cloud, water, dark_land, ((20.0, 20.0), 180.0, 45.0)


@pytest.fixture(scope="session")
def stac_demo(tmp_path_factory):
    """The demo ground served on loopback in the open archives' layouts
    (sen12ms_build.demo.stac_publish), a small crop: (archive, services) with the demo's fake
    credentials in the environment for the session."""
    from sen12ms_build.demo import stac_publish
    from sen12ms_build.demo.archive import write_demo_archive

    root = tmp_path_factory.mktemp("stac_demo")
    write_demo_archive(root / "archive", crop=STAC_DEMO_CROP, progress=False)
    published = stac_publish.publish(root / "archive", root / "published",
                                     seasons=("winter",))
    with stac_publish.demo_env(), stac_publish.serve(published, root / "cache") as svc:
        yield root / "archive", svc


#: The stac demo's crop (px): room for one 2560 m ROI (one 256 px patch) and a margin.
STAC_DEMO_CROP = 384

#: Fixtures that build the demo archive or run the pipeline on it (tens of seconds).
SLOW_FIXTURES = {"demo_archive", "demo_config", "demo_run", "small_archive", "stac_demo"}
#: Fixtures whose tree some tests change for a while (a resume test deletes and restores a
#: patch of the demo run): their users share one pytest-xdist worker.
RUN_FIXTURES = {"demo_config", "demo_run"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Marks and order of the collected tests.

    * ``slow``: every test that uses a slow fixture, so ``pytest -m "not slow"`` runs the
      quick tests alone (the mutation gate, scripts/mutation.py, does).
    * ``xdist_group``: the suite runs on two pytest-xdist workers (``--dist loadgroup`` in
      pyproject.toml); the users of the demo run share one worker, the other users of the
      demo archive another group, every other test file is a group of its own (so module
      fixtures are built once).
    * order: reversed with ``--reverse``, and always in CI (the environment's ``CI``), so
      CI proves the tests pass in another order than the one developers run.
    """
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & used:
            item.add_marker(pytest.mark.slow)
        group = ("demo_run" if RUN_FIXTURES & used else
                 "stac_demo" if "stac_demo" in used else
                 "demo_archive" if SLOW_FIXTURES & used else item.path.stem)
        item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("--reverse") or os.environ.get("CI", "").lower() in ("1", "true"):
        items.reverse()


def pytest_addoption(parser):
    """``--reverse``: run the collected tests in reverse order (tests pass in any order)."""
    parser.addoption("--reverse", action="store_true", default=False,
                     help="run the collected tests in reverse order")
