"""The variants' settings (variant, cloud_removal) and the promise that the paper's run is
untouched by them: its fingerprints, config fingerprint and requests are those of a config
without the new keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from sen12ms_build.config import CloudRemovalConfig, ConfigError, config_from_dict

BASE = {"seasons": {"summer": {"seed": 1868, "start": "2017-06-01", "end": "2017-08-31"},
                    "winter": {"seed": 2017, "start": "2016-12-01", "end": "2017-02-28"}},
        "sampling": {"land_count": 1, "urban_count": 0},
        "backend": {"name": "local", "archive": "x"}}


def cfg(**extra):
    return config_from_dict({**BASE, **extra})


@pytest.mark.parametrize("extra,key", [
    ({"variant": "crts"}, "variant"),
    ({"cloud_removal": {"cloud_band": [60, 40]}}, "cloud_removal.cloud_band"),
    ({"cloud_removal": {"cloud_band": [10, 120]}}, "cloud_removal.cloud_band"),
    ({"cloud_removal": {"cloud_band": [10]}}, "cloud_removal.cloud_band"),
    ({"cloud_removal": {"time_points": 0}}, "cloud_removal.time_points"),
    ({"cloud_removal": {"start": "2017-05-01", "end": "2017-04-01"}}, "cloud_removal.end"),
    ({"cloud_removal": {"mask_threshold": 1.0}}, "cloud_removal.mask_threshold"),
    ({"cloud_removal": {"mask_average_over": -1}}, "cloud_removal.mask_average_over"),
    ({"cloud_removal": {"max_stripe_share": 2}}, "cloud_removal.max_stripe_share"),
    ({"cloud_removal": {"speed": 2}}, "cloud_removal.speed"),
])
def test_bad_variant_settings_name_their_key(extra, key):
    with pytest.raises(ConfigError) as err:
        cfg(**extra)
    assert err.value.key == key
    assert len(str(err.value).splitlines()) == 1


def test_variants_need_level_1c(monkeypatch):
    data = {**BASE, "variant": "cr", "backend": {"name": "stac", "stac": {
        "s2": {"profile": "planetary-computer", "level": "l2a"}}}}
    with pytest.raises(ConfigError, match="L1C") as err:
        config_from_dict(data, credentials=False)
    assert err.value.key == "variant"


def test_the_year_of_a_time_series_defaults_to_the_seasons_span():
    import datetime as dt

    c = cfg(variant="cr-ts")
    assert c.year_span == (dt.date(2016, 12, 1), dt.date(2017, 8, 31))
    c = cfg(variant="cr-ts", cloud_removal={"start": "2018-01-01", "end": "2018-12-31"})
    assert c.year_span == (dt.date(2018, 1, 1), dt.date(2018, 12, 31))


def test_the_papers_run_ignores_the_variant_settings():
    """Fingerprints (stages, config) and the backend request of the paper's dataset do not
    move with cloud_removal, and do with the variant."""
    from sen12ms_build.dataset.datacard import config_fingerprint
    from sen12ms_build.pipeline import stage_fingerprints
    from sen12ms_build.planning import scene_request
    from sen12ms_build.roi import ROI

    a = cfg()
    b = dataclasses.replace(a, cloud_removal=CloudRemovalConfig(time_points=7,
                                                                cloud_band=[30.0, 40.0]))
    roi = ROI.at(1, 1868, "land", -75.6, 37.7, 2560.0)
    assert stage_fingerprints(a, "summer", roi, "local") == \
        stage_fingerprints(b, "summer", roi, "local")
    assert config_fingerprint(a) == config_fingerprint(b)
    assert scene_request(a, "summer", roi) == scene_request(b, "summer", roi)
    assert scene_request(a, "summer", roi).variant == "sen12ms"
    c = dataclasses.replace(a, variant="cr")
    assert stage_fingerprints(c, "summer", roi, "local")[0] != \
        stage_fingerprints(a, "summer", roi, "local")[0]
    assert config_fingerprint(c) != config_fingerprint(a)
    assert scene_request(c, "summer", roi).cloudy.band == (10.0, 90.0)


def test_cli_variant_option_is_passed_and_checked(tmp_path):
    from sen12ms_build.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("seasons: {summer: {seed: 1, start: 2017-06-01, end: 2017-06-30}}\n"
                    "sampling: {land_count: 1, urban_count: 0}\n"
                    "backend: {name: earthengine}\n")
    res = CliRunner().invoke(main, ["run", "--config", str(path), "--variant", "nope",
                                    "--dry-run"])
    assert res.exit_code == 2 and "--variant" in res.output
    res = CliRunner().invoke(main, ["run", "--config", str(path), "--variant", "cr-ts",
                                    "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "cr-ts: 30 time points" in res.output and "patch files" in res.output


def test_demo_variant_writes_its_own_folder(monkeypatch, tmp_path):
    """``demo --variant cr`` builds into OUT/sen12ms-cr with the variant set; the default
    demo's folder name and config are unchanged."""
    from sen12ms_build import cli

    seen = {}

    def fake_run(config_path: Path, seasons, overrides, progress, **kw):
        seen.setdefault("runs", []).append(overrides)

    monkeypatch.setattr(cli, "_run", fake_run)
    monkeypatch.setattr("sen12ms_build.demo.archive.write_demo_archive",
                        lambda *a, **k: None)
    for variant in ("cr", "cr-ts", None):
        args = ["demo", "--out", str(tmp_path / "o")] + (["--variant", variant]
                                                          if variant else [])
        res = CliRunner().invoke(cli.main, args)
        assert res.exit_code == 0, res.output
    cr, ts, paper = seen["runs"]
    assert cr["out"].endswith("sen12ms-cr") and cr["variant"] == "cr"
    assert ts["out"].endswith("sen12ms-cr-ts") and ts["tiling.stride"] == 256
    assert ts["sampling.rois_file"].endswith("demo_rois_cr_ts.csv")
    assert paper["out"].endswith("sen12ms") and paper.get("variant") is None
    assert paper["sampling.rois_file"].endswith("demo_rois.csv")
