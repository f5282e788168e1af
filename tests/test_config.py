"""Every config error names the file and the key, and says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sen12ms_build.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def base() -> dict:
    return yaml.safe_load(DEMO.read_text())


def test_shipped_configs_load():
    demo = load_config(DEMO)
    assert demo.branch("winter") == "ROIs2017_winter"
    paper = load_config(REPO / "configs" / "sen12ms.yaml")
    assert {n: (s.seed, str(s.start), str(s.end)) for n, s in paper.seasons.items()} == {
        "spring": (1158, "2017-03-01", "2017-05-30"),
        "summer": (1868, "2017-06-01", "2017-08-31"),
        "fall": (1970, "2017-09-01", "2017-11-30"),
        "winter": (2017, "2016-12-01", "2017-02-28")}
    assert paper.landcover_year == 2016
    assert paper.tiling.patch_size == 256 and paper.tiling.stride == 128


@pytest.mark.parametrize("edit, key, words", [
    (lambda d: d["tiling"].update(stirde=64), "tiling.stirde", "unknown key"),
    (lambda d: d.update(outt="x"), "outt", "unknown key"),
    (lambda d: d["tiling"].update(patch_size="big"), "tiling.patch_size", "integer"),
    (lambda d: d["tiling"].update(stride=300), "tiling.stride", "larger than patch_size"),
    (lambda d: d["tiling"].update(patch_size=-256), "tiling.patch_size", "> 0"),
    (lambda d: d["sampling"].update(roi_size_m=-5), "sampling.roi_size_m", "> 0"),
    (lambda d: d["sampling"].update(land_count=-1), "sampling.land_count", ">= 0"),
    (lambda d: d["seasons"]["spring"].update(end="2017-02-01"), "seasons.spring.end",
     "before start"),
    (lambda d: d["seasons"]["spring"].update(start="March"), "seasons.spring.start",
     "YYYY-MM-DD"),
    (lambda d: d["seasons"].update(monsoon=d["seasons"]["spring"]), "seasons.monsoon",
     "unknown season"),
    (lambda d: d["mosaic"].update(cloud_treshold=0.3), "mosaic", "cloud_treshold"),
    (lambda d: d["mosaic"].update(shadow_over_water="false"), "mosaic",
     "shadow_over_water must be true or false"),  # not bool("false"), which is True
    (lambda d: d["reproject"]["resampling"].update(lc="bilinear"),
     "reproject.resampling.lc", "must not be interpolated"),
    (lambda d: d["backend"].update(name="gee"), "backend.name", "unknown backend"),
    (lambda d: d["curation"].update(patch_max_poor_share=2), "curation.patch_max_poor_share",
     "0..1"),
    (lambda d: d["sampling"].update(region=[10, 5, 0, 1]), "sampling.region", "lon/lat box"),
    (lambda d: d["sampling"].update(min_city_population=700),
     "sampling.min_city_population", "500, 1000, 5000, 15000"),
])
def test_config_errors_name_file_and_key(tmp_path, edit, key, words):
    data = base()
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg and words in msg, msg


def test_unknown_season_requested():
    cfg = load_config(DEMO)
    with pytest.raises(ConfigError, match="unknown season 'autumn'.*spring, summer, fall"):
        cfg.season("autumn")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiling: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_overrides_replace_keys():
    cfg = load_config(DEMO, {"out": "/tmp/x", "backend.name": "earthengine",
                             "backend.archive": None})
    assert cfg.out == "/tmp/x" and cfg.backend.name == "earthengine"
    assert cfg.backend.archive == "demo_out/archive"
    assert cfg.mosaic_params.keep_thresh == 5.0
