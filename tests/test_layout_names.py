"""The tree's names and the seasons.csv columns (layout), at their boundaries: the mutants
scripts/mutation.py found surviving in layout.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sen12ms_build.dataset import layout


def test_patch_and_workdir_paths():
    root = Path("/data/out")
    assert layout.patch_path(root, 1158, "spring", "s2", 7, 3) == Path(
        "/data/out/ROIs1158_spring/s2_7/ROIs1158_spring_s2_7_p3.tif")
    assert layout.scene_workdir(root, 2017, "winter", 12) == Path(
        "/data/out/.work/ROIs2017_winter/scene_12")


def test_patch_names_are_immutable_values():
    p = layout.parse_patch_filename("ROIs1970_fall_lc_4_p21.tif")
    assert p == layout.PatchName(1970, "fall", "lc", 4, 21)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.patch = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="not a SEN12MS patch"):
        layout.parse_patch_filename("ROIs1970_fall_lc_4.tif")


def test_climate_zone_boundaries():
    t = layout.TROPIC_DEG
    assert t == 23.44
    assert layout.climate_zone(0.0) == "tropical"
    assert layout.climate_zone(-(t - 0.01)) == "tropical"
    assert layout.climate_zone(t) == "temperate"  # |lat| < 23.44 is tropical, not equal
    assert layout.climate_zone(-45.0) == "temperate"
    assert layout.climate_zone(90.0 - t - 0.01) == "temperate"
    assert layout.climate_zone(90.0 - t) == "polar"  # |lat| >= 66.56
    assert layout.climate_zone(-80.0) == "polar"


@pytest.mark.parametrize("season, lat, expected", [
    ("winter", 45.0, "winter"),
    ("winter", -34.6, "summer"),  # Buenos Aires in the winter branch: austral summer
    ("spring", -10.0, "fall"),
    ("summer", 0.0, "summer"),  # the equator counts as north
    ("fall", -0.001, "spring"),
])
def test_climatic_season(season, lat, expected):
    assert layout.climatic_season(season, lat) == expected


def test_seasons_rows_hemisphere_at_the_equator():
    scene = {"branch": "ROIs1868_summer", "season": "summer", "scene": 3, "roi_id": 9,
             "kind": "land", "lon": 10.0, "lat": 0.0, "utm_zone": 32,
             "start": "2017-06-01", "end": "2017-08-31"}
    (row,) = layout.seasons_rows([scene])
    got = dict(zip(layout.SEASONS_HEADER, row, strict=True))
    assert got["hemisphere"] == "north" and got["climatic_season"] == "summer"
    assert got["climate_zone"] == "tropical" and got["lat"] == "0.00000"
    (row,) = layout.seasons_rows([{**scene, "lat": -40.0}])
    got = dict(zip(layout.SEASONS_HEADER, row, strict=True))
    assert got["hemisphere"] == "south" and got["climatic_season"] == "winter"
    assert got["climate_zone"] == "temperate"


def test_patch_description_says_the_runs_patches():
    """SEN12MS's 256 px at 10 m without a config; a run's own size and resolution with one."""
    from types import SimpleNamespace

    from sen12ms_build.dataset.layout import patch_description

    assert patch_description(None) == "256 x 256 px at 10 m"
    cfg = SimpleNamespace(tiling=SimpleNamespace(patch_size=128),
                          reproject=SimpleNamespace(resolution_m=20.0))
    assert patch_description(cfg) == "128 x 128 px at 20 m"
