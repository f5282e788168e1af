"""Pluggable cloud scorers (sen12ms_build.mosaic.scorers) and the masked merge, on real rasters:
a real cloudy L1C crop (tests/fixtures/s2cloudless, CC BY-SA 4.0) and the demo archive."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from sen12ms_build import cli, mosaic
from sen12ms_build.mosaic import scorers
from sen12ms_build.config import ConfigError, config_from_dict, load_config
from sen12ms_build.methods import MergeMethod, Scorer, choices
from sen12ms_build.mosaic import MosaicParams

REAL = Path(__file__).parent / "fixtures" / "s2cloudless" / "real_l1c_96.npz"
HAVE_S2CLOUDLESS = importlib.util.find_spec("s2cloudless") is not None
needs_s2cloudless = pytest.mark.skipif(not HAVE_S2CLOUDLESS,
                                       reason="pip install 'sen12ms-build[s2cloudless]'")
LOCAL = [s for s in Scorer if "local" in scorers.get(s).backends]


@pytest.fixture(scope="module")
def real():
    d = np.load(REAL)
    return d["l1c"], d["cl_probs"], d["cl_mask"].astype(bool)


# --- registry and contract ---------------------------------------------------------------------

def test_every_scorer_is_registered_with_its_capabilities():
    assert set(scorers.REGISTRY) == set(Scorer)
    for s in Scorer:
        spec = scorers.get(s.value)
        assert spec.name is s and spec.backends <= {"local", "earthengine", "stac"}
        assert spec.backends
        assert (spec.fn is not None) == bool({"local", "stac"} & spec.backends)
    assert scorers.get("paper").backends == {"local", "earthengine", "stac"}
    assert scorers.get("scl").backends == {"stac"} and scorers.get("scl").includes_shadow
    assert scorers.get("cloudscoreplus").includes_shadow  # cs_cdf flags shadows too
    with pytest.raises(ValueError, match="choose one of paper, s2cloudless, cloudscoreplus, scl"):
        scorers.get("fmask")


@pytest.mark.parametrize("scorer", LOCAL, ids=str)
def test_local_scorers_keep_the_output_contract(real, scorer):
    if scorer is Scorer.S2CLOUDLESS and not HAVE_S2CLOUDLESS:
        pytest.skip("s2cloudless not installed")
    l1c, _, truth = real
    l1c = l1c.copy()
    l1c[:, :10, :] = 0  # a nodata strip
    valid = mosaic.footprint(l1c)
    p = MosaicParams(scorer=scorer.value)
    score = scorers.local_score(scorer, l1c, valid, p)
    assert score.dtype == np.float32 and score.shape == valid.shape
    assert score.min() >= 0.0 and score.max() <= 1.0
    assert (score[~valid] == 0).all()
    # real clouds are found (the paper's score only finds their brightest cores: 7 % here)
    hit = (score > p.cloud_thresh) & truth & valid
    assert hit.sum() > 0.05 * (truth & valid).sum()
    assert (score > p.cloud_thresh).sum() < 2 * (truth & valid).sum()


def test_calibration_maps_the_scorers_threshold_onto_cloud_thresh():
    p = np.linspace(0, 1, 1001, dtype=np.float32)
    c = scorers.calibrate(p, 0.4, 0.2)
    assert c.dtype == np.float32 and c[0] == 0 and c[-1] == pytest.approx(1.0)
    assert (np.diff(c) >= 0).all()
    assert ((c > 0.2) == (p > 0.4)).all()


# --- s2cloudless --------------------------------------------------------------------------------

@needs_s2cloudless
def test_s2cloudless_reads_the_bands_and_scale_the_model_was_trained_on(real):
    """Our band selection (10 of 13) and DN / 10000 reproduce the package's own reference
    probabilities of this real scene."""
    l1c, probs, _ = real
    p = scorers.s2cloudless_probability(l1c, np.ones(probs.shape, bool))
    np.testing.assert_allclose(p, probs, atol=1e-4)


@needs_s2cloudless
def test_s2cloudless_finds_more_real_cloud_than_the_paper(real):
    l1c, _, truth = real
    valid = np.ones(truth.shape, bool)
    paper = mosaic.cloud_score(l1c, MosaicParams(), valid) > 0.2
    s2c = scorers.s2cloudless_score(l1c, valid, MosaicParams(scorer="s2cloudless")) > 0.2
    recall = lambda m: (m & truth).sum() / truth.sum()  # noqa: E731
    precision = lambda m: (m & truth).sum() / m.sum()  # noqa: E731
    assert recall(s2c) >= 0.9 and precision(s2c) >= 0.8
    assert recall(s2c) > recall(paper)


@needs_s2cloudless
def test_score_image_projects_shadows_from_the_s2cloudless_clouds(real):
    l1c, _, _ = real
    p = MosaicParams(scorer="s2cloudless")
    s = mosaic.score_image(l1c, (20.0, 20.0), 150.0, 40.0, None, p)
    paper = mosaic.score_image(l1c, (20.0, 20.0), 150.0, 40.0, None, MosaicParams())
    assert s.cloud.dtype == np.float32 and s.shadow is not None
    assert s.cloudy_percentage == pytest.approx(
        100 * (s.cloud > p.cloud_thresh).mean())
    assert s.cloudy_percentage > paper.cloudy_percentage
    # the shadow score is the paper's, fed with the s2cloudless clouds
    valid = mosaic.footprint(l1c)
    shadow = mosaic.shadow_score(l1c, s.cloud, (20.0, 20.0), 150.0, 40.0, p)
    np.testing.assert_array_equal(s.shadow, np.where(valid, shadow, 0))
    # the paper's own score gets the same projection (its score holds no shadows)
    paper_shadow = mosaic.shadow_score(l1c, paper.cloud, (20.0, 20.0), 150.0, 40.0,
                                       MosaicParams())
    np.testing.assert_array_equal(paper.shadow, np.where(valid, paper_shadow, 0))


def test_missing_s2cloudless_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "s2cloudless" else
                        importlib.machinery.PathFinder.find_spec(name))
    with pytest.raises(scorers.ScorerUnavailable, match=r"sen12ms-build\[s2cloudless\]"):
        scorers.s2cloudless_probability(np.ones((13, 4, 4), np.uint16),
                                        np.ones((4, 4), bool))


# --- masked merge --------------------------------------------------------------------------------

def _stack(n=3, shape=(40, 40)):
    """Three images: 0 cloudy (quality low in its left half), 1 and 2 "best" ones, both
    poor at rows/cols 20:30 and image 1 also at 5:15; image 2 (clearest, on top) lacks data
    in the bottom rows."""
    rng = np.random.default_rng(5)
    images = rng.integers(1, 3000, (n, 13, *shape)).astype(np.uint16)
    quality = np.full((n, *shape), -0.05, np.float32)
    quality[0, :, :20] = -0.5
    quality[1, 5:15, 5:15] = -0.6
    quality[1, 20:30, 20:30] = -0.6  # both best images cloudy here
    quality[2, 20:30, 20:30] = -0.7
    valid = np.ones((n, *shape), bool)
    valid[2, 35:] = False
    quality[~valid] = -np.inf
    cloudy = [30.0, 3.0, 1.0]
    return images, quality, valid, cloudy


@pytest.mark.parametrize("method", list(MergeMethod), ids=str)
def test_merge_methods_numpy_and_running_agree(method):
    images, quality, valid, cloudy = _stack()
    p = MosaicParams(merge=method.value)
    poor = np.stack([mosaic.poor_mask(q, p) for q in quality])
    res = mosaic.merge(images, quality, valid, cloudy, p, poor)
    run = mosaic.RunningMerge(quality.shape[1:])
    for q, pr in zip(quality, poor):
        run.add(q, pr)
    source, chosen_poor, best = run.finish(cloudy, lambda i: (valid[i], poor[i]), p)
    np.testing.assert_array_equal(source, res.source)
    assert best == res.best == [1, 2]
    assert mosaic.poor_share_of(source, chosen_poor) == pytest.approx(res.poor_share)
    blob2 = (slice(20, 30), slice(20, 30))
    if method is MergeMethod.PAPER:
        assert (res.source[blob2] == 2).all()  # pasted, cloud and all
        assert res.poor_share > 0
    else:
        # the quality mosaic fills the best image's poor pixels: image 0 is clear there
        assert (res.source[blob2] == 0).all()
        assert (res.source[5:15, 5:15] == 2).all()  # image 2 covers image 1's blob
        assert res.poor_share == 0.0
        np.testing.assert_array_equal(res.mosaic[:, 20:30, 20:30], images[0][:, 20:30, 20:30])


def test_masked_merge_keeps_a_poor_best_pixel_when_nothing_is_better():
    images, quality, valid, cloudy = _stack()
    quality[0, 20:30, 20:30] = -0.9  # image 0 is worse there than the poor image 1
    p = MosaicParams(merge="masked")
    res = mosaic.merge(images, quality, valid, cloudy, p)
    assert (res.source[20:30, 20:30] == 1).all()
    assert res.poor_share > 0


# --- config and command line ---------------------------------------------------------------------

BASE = {"seasons": {"summer": {"seed": 1, "start": "2017-06-01", "end": "2017-08-31"}},
        "sampling": {"land_count": 1, "urban_count": 0}}


@pytest.mark.parametrize("scorer", list(Scorer), ids=str)
@pytest.mark.parametrize("backend", ["local", "earthengine"])
def test_capability_check_at_config_load(scorer, backend):
    data = {**BASE, "backend": {"name": backend}, "mosaic": {"scorer": scorer.value}}
    if backend in scorers.get(scorer).backends:
        assert config_from_dict(data).mosaic_params.scorer == scorer.value
    else:
        with pytest.raises(ConfigError) as exc:
            config_from_dict(data, "x.yaml")
        assert exc.value.key == "mosaic.scorer"
        assert str(exc.value).startswith("x.yaml: mosaic.scorer: ")


def test_missing_s2cloudless_is_refused_at_config_load(monkeypatch):
    monkeypatch.setattr(scorers, "s2cloudless_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"mosaic.scorer: .*sen12ms-build\[s2cloudless\]"):
        config_from_dict({**BASE, "mosaic": {"scorer": "s2cloudless"}})


@pytest.mark.parametrize("key, value", [("scorer", "fmask"), ("merge", "median")])
def test_unknown_method_names_the_key(key, value):
    with pytest.raises(ConfigError, match=f"mosaic.{key}: unknown {key} '{value}'"):
        config_from_dict({**BASE, "mosaic": {key: value}})


def test_cli_choices_are_the_enums():
    params = {p.name: p for p in cli.run_cmd.params}
    assert list(params["scorer"].type.choices) == choices(Scorer)
    assert list(params["merge_method"].type.choices) == choices(MergeMethod)
    demo = {p.name: p for p in cli.demo.params}
    assert list(demo["scorer"].type.choices) == choices(Scorer)


def test_cli_refuses_a_scorer_the_backend_cannot_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**BASE, "backend": {"name": "local",
                                                        "archive": str(tmp_path)}}))
    r = CliRunner().invoke(cli.main, ["run", "--config", str(cfg), "--scorer",
                                      "cloudscoreplus", "--dry-run"])
    assert r.exit_code != 0
    assert "mosaic.scorer: scorer 'cloudscoreplus' runs on the earthengine backend only" \
        in r.output
    assert "Traceback" not in r.output


def test_plus_config_loads_with_better_than_paper_choices():
    cfg = load_config(Path(__file__).parent.parent / "configs" / "sen12ms-plus.yaml",
                      {"backend.archive": "."})
    p = cfg.mosaic_params
    assert (p.scorer, p.merge) == ("s2cloudless", "masked")
    paper = load_config(Path(__file__).parent.parent / "configs" / "sen12ms.yaml")
    assert p.shadow_over_water and not paper.mosaic_params.shadow_over_water
    assert cfg.curation.patch_max_poor_share < paper.curation.patch_max_poor_share
    assert cfg.curation.scene_max_poor_share <= paper.curation.scene_max_poor_share
    # on Earth Engine the plus choices swap in Cloud Score+
    ee = load_config(Path(__file__).parent.parent / "configs" / "sen12ms-plus.yaml",
                     {"backend.name": "earthengine", "mosaic.scorer": "cloudscoreplus"})
    assert ee.mosaic_params.scorer == "cloudscoreplus"


def test_methods_travel_in_the_fingerprinted_params():
    base = MosaicParams().as_dict()
    for key, value in (("scorer", "s2cloudless"), ("merge", "masked"),
                       ("shadow_over_water", True)):
        assert MosaicParams().with_overrides({key: value}).as_dict() != base
    from sen12ms_build.dataset import layout

    assert {"scorer", "merge"} <= set(layout.SCENES_HEADER)


@needs_s2cloudless
@pytest.mark.slow
def test_run_records_scorer_and_merge_in_scenes_csv(small_archive, tmp_path, tiny_config):
    import csv

    cfg = tiny_config(tmp_path, small_archive)
    res = CliRunner().invoke(cli.main, ["run", "--config", str(cfg), "--season", "winter",
                                        "--scorer", "s2cloudless", "--merge", "masked"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "out" / "scenes.csv")))
    assert rows and {(r["scorer"], r["merge"], r["shadow_over_water"]) for r in rows} == {
        ("s2cloudless", "masked", "false")}


def test_calibration_floor_makes_clear_pixels_tie():
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.41, 1.0], np.float32)
    c = scorers.calibrate(p, 0.4, 0.2, p_floor=0.2, floor=0.001)
    assert c[0] == c[1] == c[2] == pytest.approx(0.001)
    assert c[2] < c[3] < c[4] < c[5] and c[6] == pytest.approx(1.0)
    assert c[4] == pytest.approx(0.2) and c[5] > 0.2


def test_classification_scale_off_the_score_grid_is_one_line_at_config_load():
    with pytest.raises(ConfigError, match=r"mosaic.s2cloudless_scale_m: 50 is not a whole "
                                          r"multiple of mosaic.score_scale_m \(20\)"):
        config_from_dict({**BASE, "mosaic": {"s2cloudless_scale_m": 50}})


@pytest.mark.parametrize("key, value", [("s2cloudless_scale_m", 20.0),
                                        ("s2cloudless_threshold", 0.5),
                                        ("cloudscoreplus_clear_thresh", 0.65)])
def test_a_scorers_constant_moves_only_the_fingerprints_of_runs_that_use_it(key, value):
    """Changing an s2cloudless (Cloud Score+) constant redoes the export of an s2cloudless
    (Cloud Score+) run and of no other: the stage fingerprints hold only the chosen
    scorer's own constants (``MosaicParams.fingerprint_dict``)."""
    from sen12ms_build.pipeline import stage_fingerprints
    from sen12ms_build.roi import ROI

    roi = ROI.at(1, 1, "land", -75.6, 37.7, 2560.0)
    owner = key.split("_", 1)[0]
    for scorer in ("paper", "s2cloudless", "cloudscoreplus"):
        backend = "earthengine" if scorer == "cloudscoreplus" else "local"
        data = {**BASE, "backend": {"name": backend}, "mosaic": {"scorer": scorer}}
        a = config_from_dict(data)
        b = config_from_dict({**data, "mosaic": {"scorer": scorer, key: value}})
        assert getattr(b.mosaic_params, key) == value != getattr(a.mosaic_params, key)
        fa = stage_fingerprints(a, "summer", roi, backend)
        fb = stage_fingerprints(b, "summer", roi, backend)
        assert (fa != fb) == (scorer == owner), scorer


@needs_s2cloudless
@pytest.mark.parametrize("average, dilation", [(2, 1), (4, 2), (1, 0)])
def test_averaging_and_dilation_are_the_packages(real, average, dilation):
    """The scorer's post-processing of the probability thresholds as the package's own
    ``S2PixelCloudDetector.get_mask_from_prob`` (OpenCV's disk filter and dilation) away
    from the image edge, where the package reflects the image and we average the valid
    pixels only."""
    from s2cloudless import S2PixelCloudDetector

    _, probs, _ = real
    p = probs.astype(np.float32)
    valid = np.ones(p.shape, bool)
    params = MosaicParams(s2cloudless_average_px=average, s2cloudless_dilation_px=dilation)
    ours = scorers._average_dilate(p, valid, params) > params.s2cloudless_threshold
    theirs = S2PixelCloudDetector(threshold=params.s2cloudless_threshold,
                                  average_over=average or None,
                                  dilation_size=dilation or None).get_mask_from_prob(
                                      p[None])[0].astype(bool)
    m = average + dilation
    inner = (slice(m, -m), slice(m, -m)) if m else (slice(None), slice(None))
    assert 0.05 < theirs[inner].mean() < 0.95
    assert (ours[inner] != theirs[inner]).mean() <= 0.001


def test_scl_score_needs_the_scl_plane_not_a_tall_image():
    """``scl`` reads the plane after the 13 bands: a 13-band image is refused however tall,
    a 14-plane image is scored however small."""
    from sen12ms_build.products import SCL_PLANE, SCL_POOR_VALUE

    params = MosaicParams(scorer="scl")
    tall = np.full((SCL_PLANE, 40, 3), 1000, np.uint16)
    with pytest.raises(scorers.ScorerUnavailable, match="Level-2A scene classification"):
        scorers.scl_score(tall, np.ones((40, 3), bool), params)
    small = np.full((SCL_PLANE + 1, 2, 2), 1000, np.uint16)
    small[SCL_PLANE] = [[0, SCL_POOR_VALUE], [SCL_POOR_VALUE, 0]]
    score = scorers.scl_score(small, np.ones((2, 2), bool), params)
    np.testing.assert_array_equal(score > params.cloud_thresh, [[False, True], [True, False]])
