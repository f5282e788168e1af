"""The curation checks on hand-made arrays, the registry, the decisions and the scene round's
tile-by-tile measurement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build.curation import rounds as curation
from sen12ms_build.dataset import layout
from sen12ms_build.demo import defects
from sen12ms_build.config import ConfigError, CurationConfig, config_from_dict

RNG = np.random.default_rng(7)
B = {name: i for i, name in enumerate(curation.S2_BANDS)}


def s2_scene(h: int = 256, w: int = 256, blue: float = 0.09) -> np.ndarray:
    """Vegetation-like L1C DN with texture: B2 ~ ``blue``, red darker, NIR bright."""
    refl = np.empty((13, h, w), np.float64)
    tex = RNG.normal(1.0, 0.08, (h, w))
    base = [0.12, blue, 0.07, 0.05, 0.09, 0.2, 0.25, 0.3, 0.3, 0.1, 0.003, 0.15, 0.07]
    for b, v in enumerate(base):
        refl[b] = v * tex
    return np.clip(np.rint(refl * 10000), 1, 65534).astype(np.uint16)


def s1_scene(h: int = 256, w: int = 256) -> np.ndarray:
    """Speckled sigma0 (dB): VV ~ -10, VH ~ -17."""
    out = np.empty((2, h, w), np.float32)
    for i, db in enumerate((-10.0, -17.0)):
        speckle = RNG.standard_gamma(4.4, (h, w)) / 4.4
        out[i] = 10 * np.log10(10 ** (db / 10) * speckle)
    return out


def aux_of(source: np.ndarray, poor: np.ndarray | None = None) -> np.ndarray:
    poor = np.zeros(source.shape, np.uint8) if poor is None else poor.astype(np.uint8)
    return np.stack([source.astype(np.uint8), poor])


def test_registry_matches_config_and_manifest():
    cfg = CurationConfig()
    assert layout.CHECK_COLUMNS == list(curation.TRIPLET_CHECK_NAMES)
    # the checks of the added label modalities: their manifest columns, after the paper's
    assert [c for c in curation.CHECK_NAMES if c not in curation.TRIPLET_CHECK_NAMES] == \
        [layout.label_columns(dd)[0] for dd in layout.EXTRA_DATA_IDS]
    assert {"nodata_s1", "nodata_s2", "nodata_lc", "poor"} <= set(curation.CHECK_NAMES)
    for c in curation.CHECKS:
        for round_ in c.rounds:
            assert isinstance(c.threshold(cfg, round_), float)
        assert c.units and c.sees
    fields = {f.name for f in dataclasses.fields(CurationConfig)}
    keys = {f"{r}_max_{c.key}" for c in curation.CHECKS for r in c.rounds}
    assert fields == keys | {"haze_floor_margin"}


def test_config_checks_the_curation_keys():
    base = {"seasons": {"summer": {"seed": 1, "start": "2017-06-01", "end": "2017-08-31"}}}
    cfg = config_from_dict({**base, "curation": {"patch_max_seam_step": 1.5}})
    assert cfg.curation.patch_max_seam_step == 1.5  # a step may exceed 100 %
    for key, value in (("patch_max_seam_step", -0.1), ("patch_max_haze_share", 1.5),
                       ("haze_floor_margin", 0.0), ("scene_max_s1_stripe_share", -1)):
        with pytest.raises(ConfigError, match=f"curation.{key}"):
            config_from_dict({**base, "curation": {key: value}})


def test_nodata_and_poor_shares():
    s2 = s2_scene(10, 10)
    s2[:, :2, :] = 0  # 20 rows... 2 of 10 rows: all-band zeros
    s2[5, 5, 5] = 0  # a single zero band is valid data
    assert curation.nodata_share("s2", s2) == pytest.approx(0.2)
    lc = np.full((4, 10, 10), 12, np.uint16)
    lc[:, :, :3] = 255
    assert curation.nodata_share("lc", lc) == pytest.approx(0.3)
    aux = aux_of(np.zeros((10, 10)), np.zeros((10, 10)))
    aux[1, :5, :4] = 1
    aux[1, 9, :] = 255
    assert curation.poor_share(aux) == pytest.approx(20 / 90)


def test_saturation():
    s2 = s2_scene(100, 100)
    assert curation.saturated_share(s2) == 0.0
    s2[B["B4"], :10, :10] = 65535
    s2[B["B8"], 50, 50] = 21000  # impossible reflectance 2.1
    assert curation.saturated_share(s2) == pytest.approx(101 / 10000)
    s2[:, 90:, :] = 0  # no-data pixels are not counted
    assert curation.saturated_share(s2) == pytest.approx(101 / 9000)


def test_seam_step_sees_a_radiometric_offset_between_sources():
    s2 = s2_scene()
    source = np.zeros((256, 256), np.uint8)
    source[:, 128:] = 1
    source[100:140, 40:90] = 2  # an island of a third image
    assert curation.seam_step(s2, aux_of(source)) < 0.03  # same radiometry: texture only
    gained = s2.copy()
    gained[:, :, 128:] = np.rint(gained[:, :, 128:] * 1.25).astype(np.uint16)
    assert curation.seam_step(gained, aux_of(source)) == pytest.approx(0.25, abs=0.03)
    darker = s2.copy()
    darker[:, source == 2] = np.rint(darker[:, source == 2] * 0.8).astype(np.uint16)
    assert curation.seam_step(darker, aux_of(source)) == pytest.approx(0.25, abs=0.03)
    # pixels the mosaic knows are poor do not count
    poor = np.zeros_like(source)
    poor[:, 120:136] = 1
    assert curation.seam_step(gained, aux_of(source, poor)) < 0.03
    # a boundary shorter than the minimum does not count
    small = np.zeros_like(source)
    small[10:15, 10:15] = 1
    s2b = s2.copy()
    s2b[:, small == 1] = 60000
    assert curation.seam_step(s2b, aux_of(small)) == 0.0


def test_scene_seam_step_weights_pairs_by_boundary_length():
    keys = np.array([1] * 900 + [2] * 100)
    diffs = np.concatenate([np.zeros(900), np.full(100, np.log(2.0))])
    assert curation.seam_step_of(keys, diffs) == pytest.approx(1.0)  # the worst pair
    assert curation.seam_scene_step(keys, diffs) == pytest.approx(2 ** 0.1 - 1, rel=1e-6)


def test_s1_stripes_range_and_border_noise():
    s1 = s1_scene()
    assert curation.s1_stripe_share(s1) == 0.0
    assert curation.s1_range_share(s1) < 0.001
    assert curation.s1_border_share(s1) == 0.0
    striped = s1.copy()
    striped[:, :, 100:105] = 0.0  # a zero-filled 5-column stripe
    striped[:, 30, 200:220] = -20.0  # a constant run of 20 pixels in a row
    assert curation.s1_stripe_share(striped) == pytest.approx((5 * 256 + 20) / 256 ** 2)
    short = s1.copy()
    short[:, 30, 200:210] = -20.0  # 10 pixels: shorter than STRIPE_RUN
    assert curation.s1_stripe_share(short) == 0.0
    bad = s1.copy()
    bad[0, :16, :] = -70.0  # below any real backscatter
    bad[1, 100:116, :] = bad[0, 100:116, :] + 10.0  # cross-pol above co-pol
    assert curation.s1_range_share(bad) == pytest.approx(32 / 256, abs=1e-3)
    edge = s1.copy()
    edge[:, :, :20] = np.nan  # the image ends ...
    edge[:, :, 20:40] = -35.0 + RNG.normal(0, 1, (2, 256, 20))  # ... in border noise
    edge[:, :, 200:220] = -35.0  # as dark, but far from the edge: not border noise
    assert curation.s1_border_share(edge) == pytest.approx(20 / 236, abs=0.01)


def test_haze_lifts_the_blue_dark_object_floor():
    s2 = s2_scene(512, 512)
    floors, water = curation.block_floors(s2)
    assert floors.shape == (16, 16) and not water.any()
    refs = curation.dark_floors(floors, water)
    assert refs["s2_dark_floor"] == pytest.approx(0.09 * 0.87, abs=0.01)
    assert curation.haze_share(s2, None, refs, 0.05) == 0.0
    hazy = defects.apply_s2(s2, defects.DEFECTS[2], np.pad(np.ones((128, 256)),
                                                           ((0, 384), (0, 256))))
    share = curation.haze_share(hazy, None, refs, 0.05)
    assert share == pytest.approx(32 / 256)  # 4 x 8 blocks of 32 px under the veil
    # open water has its own clear floor: brighter blue than land is not haze
    sea = s2.copy()  # left half: water, blue brighter than land's, NIR below red
    sea[B["B2"], :, :256] = np.clip(s2[B["B2"], :, :256] * 1.4, 1, None).astype(np.uint16)
    sea[B["B4"], :, :256] = 400
    sea[B["B8"], :, :256] = 200
    f, w = curation.block_floors(sea)
    assert w[:, :8].all() and not w[:, 8:].any()
    assert curation.haze_share(sea, None, curation.dark_floors(f, w), 0.05) == 0.0


def test_decide_takes_the_first_failing_check_in_registry_order():
    cfg = CurationConfig()
    keep, reason, _ = curation.decide({"haze": 0.5, "nodata_lc": 0.1, "poor": 0.0}, cfg,
                                      "patch")
    assert (keep, reason) == (False, "nodata_lc")
    keep, reason, _ = curation.decide({"haze": 0.5, "seam": 0.05}, cfg, "patch")
    assert (keep, reason) == (False, "haze")
    keep, reason, _ = curation.decide({"seam": 0.2}, cfg, "scene")  # scene: 0.3
    assert keep and reason == ""


def test_patch_decision_measures_every_check():
    arrays = {"s1": s1_scene(), "s2": s2_scene(),
              "lc": np.full((4, 256, 256), 12, np.uint16),
              "aux": aux_of(np.zeros((256, 256)))}
    keep, reason, values = curation.patch_decision(arrays, CurationConfig(),
                                                   {"s2_dark_floor": 0.078})
    assert keep and reason == ""
    assert set(values) == set(curation.TRIPLET_CHECK_NAMES)
    _, _, no_ctx = curation.patch_decision(arrays, CurationConfig())
    assert "haze" not in no_ctx  # no scene floor, no haze check


def _write(path, data, nodata, crs="EPSG:32618"):
    t = Affine(10, 0, 400000, 0, -10, 4000000)
    with rasterio.open(path, "w", driver="GTiff", count=data.shape[0], height=data.shape[1],
                       width=data.shape[2], dtype=data.dtype, crs=crs, transform=t,
                       nodata=nodata) as f:
        f.write(data)


def test_scene_round_tiles_give_the_whole_scene_values(tmp_path):
    h = w = 700  # tiles of 512: uneven ones at the edges
    s2, s1 = s2_scene(h, w), s1_scene(h, w)
    s2[:, 600:, :] = 0
    s2[B["B3"], :30, :30] = 65535
    s1[:, :, 650:655] = 0.0
    lc = np.full((4, h, w), 12, np.uint16)
    lc[:, 500:520, 500:560] = 255
    source = np.zeros((h, w), np.uint8)
    source[:, 350:] = 1
    source[600:, :] = 255
    poor = np.zeros((h, w), np.uint8)
    poor[:50, :70] = 1
    poor[600:, :] = 255
    s2[:, :, 350:] = np.clip(s2[:, :, 350:] * 1.2, 0, 65534).astype(np.uint16)
    paths = {}
    for k, a, nd in (("s2", s2, 0), ("s1", s1, float("nan")), ("lc", lc, 255),
                     ("aux", aux_of(source, poor), 255)):
        paths[k] = tmp_path / f"{k}.tif"
        _write(paths[k], a, nd)
    values = curation.measure_scene(paths)
    arrays = {"s2": s2, "s1": s1, "lc": lc, "aux": aux_of(source, poor)}
    whole = curation.measure(arrays, {"s2_dark_floor": 0.08})
    for name in ("nodata_s2", "nodata_s1", "nodata_lc", "poor", "saturated", "s1_stripe",
                 "s1_range"):
        assert values[name] == pytest.approx(whole[name], abs=1e-6), name
    assert values["seam"] == pytest.approx(0.2, abs=0.03)
    assert "s2_dark_floor" in values and values["haze"] == 0.0
    keep, reason, vals = curation.scene_decision_from_files(paths, CurationConfig())
    assert (keep, reason) == (True, "") and vals == values
