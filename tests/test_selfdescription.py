"""A dataset that explains itself: provenance tags, quality layers, leak-free splits, STAC,
Croissant, data card, clean; and `validate` failing on each broken case."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen12ms_build.dataset import layout
from sen12ms_build.dataset import provenance
from sen12ms_build.dataset import splits
from sen12ms_build.dataset import stac_validate
from sen12ms_build.config import load_config
from sen12ms_build.housekeeping import clean
from sen12ms_build.pipeline import run
from sen12ms_build.products import LC, S1, S2
from sen12ms_build.demo.archive import S1_PROCESSING_DEMO
from sen12ms_build.demo.grd import RELATIVE_ORBIT
from sen12ms_build.roi import ROI
from sen12ms_build.dataset.selfdescription import check_all
from sen12ms_build.dataset.validate import validate_tree


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny_run(small_archive, tiny_config, tmp_path_factory):
    """Two ROIs far enough apart to form two overlap groups, two seasons each (4 scenes,
    16 patches): one group is test, one train."""
    path = tiny_config(tmp_path_factory.mktemp("selfdesc"), small_archive, quicklooks=False)
    cfg = load_config(path)
    summary = run(cfg, progress=False)
    return Path(cfg.out), cfg, summary


@pytest.fixture
def damaged(tiny_run, tmp_path):
    """A copy of the tiny tree we may break."""
    root, _, _ = tiny_run
    dst = tmp_path / "tree"
    shutil.copytree(root, dst, ignore=shutil.ignore_patterns(".work"))
    return dst


# --- provenance -----------------------------------------------------------------------------

def test_every_patch_carries_its_provenance(tiny_run):
    root, cfg, _ = tiny_run
    kept = [r for r in rows(root / "manifest.csv") if r["status"] == "kept"]
    assert len(kept) == 16
    for r in kept:
        tags = {}
        for dd, m in (("s1", S1), ("s2", S2), ("lc", LC)):
            with rasterio.open(root / r[dd]) as f:
                tags[dd] = {k: v for k, v in f.tags().items() if k != "AREA_OR_POINT"}
                assert f.descriptions == m.descriptions  # band descriptions unchanged
        assert tags["s1"] == tags["s2"] == tags["lc"]
        t = tags["s2"]
        assert set(provenance.TAG_KEYS) <= set(t)
        ids, times, shares = (t[k].split(",") for k in ("S2_PRODUCT_IDS", "S2_DATETIMES",
                                                       "S2_SHARES"))
        assert ids[0].startswith(("S2A_MSIL1C_", "S2B_MSIL1C_")) and len(ids) == len(times)
        assert abs(sum(map(float, shares)) - 1.0) < 1e-3  # a patch is fully covered
        season = cfg.seasons[r["season"]]
        assert all(str(season.start) <= x[:10] <= str(season.end) for x in times)
        assert set(t["S1_ORBIT_STATES"].split(",")) <= {"ascending", "descending"}
        # the demo archive's S1 says what it is (simulated) and its passes' relative orbits
        n1 = len(t["S1_PRODUCT_IDS"].split(","))
        assert t["S1_PROCESSING"] == S1_PROCESSING_DEMO
        assert [int(o) for o in t["S1_RELATIVE_ORBITS"].split(",")] == [
            RELATIVE_ORBIT[s.upper()] for s in t["S1_ORBIT_STATES"].split(",")] and n1
        assert r["s1_relative_orbits"] == t["S1_RELATIVE_ORBITS"].replace(",", ";")
        assert t["LC_PRODUCT"] == "MODIS/061/MCD12Q1" and t["LC_YEAR"] == "2016"
        assert t["SEN12MS_ROI_ID"] == r["roi_id"] and t["SEN12MS_SEASON"] == r["season"]
        assert 0 <= float(t["MAX_S1_S2_GAP_DAYS"]) <= 92
        # the manifest repeats the tags (lists ;-separated)
        assert r["s2_product_ids"] == t["S2_PRODUCT_IDS"].replace(",", ";")
        assert r["cloud_share"] == t["CLOUD_SHARE"] and r["split"] in ("train", "test")


def test_shares_follow_the_source_map():
    aux = np.full((4, 4, 4), 0, np.uint8)
    aux[0, :, :1] = 1       # a quarter of the pixels from image 1
    aux[2, 0, :] = 1        # one row of cloud
    aux[3, 1, :2] = 1       # two shadow pixels
    sources = {"s2": [{"id": "A", "datetime": "2017-04-01T10:00:00Z"},
                      {"id": "B", "datetime": "2017-04-11T10:00:00Z"}],
               "s1": [{"id": "S", "datetime": "2017-04-21T10:00:00Z", "orbit_state": "ascending"}],
               "roi_id": "x", "season": "spring", "lc_product": "MODIS/061/MCD12Q1",
               "lc_year": 2016}
    t = provenance.patch_tags(sources, aux)
    assert (t["S2_PRODUCT_IDS"], t["S2_SHARES"]) == ("A,B", "0.7500,0.2500")
    assert (t["CLOUD_SHARE"], t["SHADOW_SHARE"]) == ("0.2500", "0.1250")
    assert t["MAX_S1_S2_GAP_DAYS"] == "20.00"
    q = provenance.quality_array(aux)
    assert q.dtype == np.uint8 and (q[0] == aux[2]).all() and (q[2] == aux[0]).all()
    # a two-band aux (Earth Engine): the poor mask stands for cloud or shadow
    t2 = provenance.patch_tags(sources, aux[:2])
    assert t2["QA_MASKS"] == "cloud_or_shadow" and t2["SHADOW_SHARE"] == ""
    assert (provenance.quality_array(aux[:2])[1] == 255).all()


def test_quality_layers_beside_the_triplets(tiny_run):
    root, _, _ = tiny_run
    kept = [r for r in rows(root / "manifest.csv") if r["status"] == "kept"]
    for r in kept:
        qa = root / r["qa"]
        assert qa.parent.name.startswith("qa_")
        assert qa.parent.parent == (root / r["s2"]).parent.parent
        with rasterio.open(qa) as q, rasterio.open(root / r["s2"]) as s2:
            assert q.descriptions == provenance.QA_BANDS and q.dtypes[0] == "uint8"
            assert (q.crs, q.transform) == (s2.crs, s2.transform)
            a = q.read()
            s2_valid = S2.nodata_mask(s2.read()) == 0
        assert set(np.unique(a[0])) <= {0, 1} and set(np.unique(a[1])) <= {0, 1}
        n = len(r["s2_product_ids"].split(";"))
        assert set(np.unique(a[2][s2_valid])) <= set(range(16)) and n >= 1
        assert abs(float((a[0] == 1).mean()) - float(r["cloud_share"])) < 1e-4


# --- splits ---------------------------------------------------------------------------------

def test_groups_split_shares_no_area(tiny_run):
    root, _, _ = tiny_run
    info = json.loads((root / "splits.json").read_text())
    assert info["method"] == "groups" and len(info["groups"]) == 2
    kept = [r for r in rows(root / "manifest.csv") if r["status"] == "kept"]
    side = {}
    for r in kept:
        side.setdefault((r["branch"], int(r["scene"])), set()).add(r["split"])
    assert all(len(v) == 1 for v in side.values())
    train = [k for k, v in side.items() if v == {"train"}]
    test = [k for k, v in side.items() if v == {"test"}]
    assert train and test
    polys = splits.footprints(root, side)
    assert splits.shared_area_m2([polys[k] for k in train], [polys[k] for k in test]) == 0.0
    assert info["shared_area_m2"] == 0.0 and info["test_patches"] == 8


def test_demo_split_has_zero_overlap_over_the_whole_dataset(demo_run):
    cfg, _ = demo_run
    root = Path(cfg.out)
    kept = [r for r in rows(root / "manifest.csv") if r["status"] == "kept"]
    keys = {(r["branch"], int(r["scene"])) for r in kept}
    polys = splits.footprints(root, keys)
    train = [polys[(r["branch"], int(r["scene"]))] for r in kept if r["split"] == "train"]
    test = [polys[(r["branch"], int(r["scene"]))] for r in kept if r["split"] == "test"]
    assert splits.shared_area_m2(train, test) == 0.0
    # the per-ROI draw of the same scenes leaks: some test footprint overlaps a train one
    roi_test = layout.split_scenes(sorted(keys), cfg.splits.test_fraction, 0)
    leak = splits.shared_area_m2([polys[k] for k in keys - roi_test],
                                 [polys[k] for k in roi_test])
    assert leak > 1e6  # m²


def _roi(scene, lon, lat, kind="land", seed=1):
    return ROI.at(scene, seed, kind, lon, lat, 6400)


def test_file_split_and_bad_method(tiny_run, tmp_path):
    root, cfg, _ = tiny_run
    from dataclasses import replace

    from sen12ms_build.config import ConfigError, config_from_dict
    from sen12ms_build.dataset.finalize import finalize

    with pytest.raises(ConfigError, match="splits.method: unknown method 'blocks'"):
        config_from_dict({"splits": {"method": "blocks"}, "sampling": {"rois_file": "x"},
                          "seasons": {"winter": {"seed": 1, "start": "2016-12-01",
                                                 "end": "2017-02-28"}}})
    with pytest.raises(ConfigError, match="splits.test_file"):
        config_from_dict({"splits": {"method": "file"}, "sampling": {"rois_file": "x"},
                          "seasons": {"winter": {"seed": 1, "start": "2016-12-01",
                                                 "end": "2017-02-28"}}})
    names = sorted(p.name for p in root.glob("ROIs1158_spring/s2_2/*.tif"))[:3]
    listed = tmp_path / "published_test.txt"
    listed.write_text("# a published split\n" + "\n".join(names) + "\n")
    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    fcfg = replace(cfg, out=str(tree), splits=replace(cfg.splits, method="file",
                                                      test_file=str(listed)))
    counts = finalize(tree, fcfg)
    assert counts["test"] == 3 and sorted((tree / "test_list.txt").read_text().split()) == names
    assert json.loads((tree / "splits.json").read_text())["method"] == "file"


# --- STAC, Croissant, data card ---------------------------------------------------------------

def test_stac_catalog_is_valid_offline(tiny_run, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise AssertionError("network access during STAC validation")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    root, _, _ = tiny_run
    assert stac_validate.validate_catalog(root) == []
    cat = json.loads((root / "stac" / "catalog.json").read_text())
    assert sorted(link["href"] for link in cat["links"] if link["rel"] == "child") == [
        "./ROIs1158_spring/collection.json", "./ROIs2017_winter/collection.json"]
    item = json.loads(next((root / "stac").glob("ROIs1158_spring/*/*.json")).read_text())
    assert set(item["assets"]) == {"s1", "s2", "lc", "qa"}
    assert any("/eo/" in e for e in item["stac_extensions"])
    for ext in ("sar", "projection", "label", "ml-aoi"):
        assert any(f"/{ext}/" in e for e in item["stac_extensions"])
    p = item["properties"]
    assert p["sar:polarizations"] == ["VV", "VH"] and p["sar:frequency_band"] == "C"
    assert p["proj:code"] == "EPSG:32618" and p["ml-aoi:split"] in ("train", "test")
    assert [b["name"] for b in item["assets"]["s2"]["eo:bands"]] == list(S2.bands)
    # the geoparquet copy holds the same items
    import pyarrow.parquet as pq

    table = pq.read_table(root / "stac" / "items.parquet")
    assert table.num_rows == 16 and "ml-aoi:split" in table.column_names


def test_croissant_with_mlcroissant(tiny_run):
    mlc = pytest.importorskip("mlcroissant")
    root, _, _ = tiny_run
    ds = mlc.Dataset(jsonld=str(root / "croissant.json"))
    names = {rs.name for rs in ds.metadata.record_sets}
    assert names == {"train", "test"}
    recs = []
    for i, rec in enumerate(ds.records(record_set="test")):
        recs.append(rec)
        if i == 2:
            break
    assert len(recs) == 3
    s2 = recs[0]["test/s2"]
    s2 = s2.decode() if isinstance(s2, bytes) else s2
    assert (root / s2).exists()
    doc = json.loads((root / "croissant.json").read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert "box" in doc["spatialCoverage"]["geo"] and "/" in doc["temporalCoverage"]


def test_data_card(tiny_run):
    root, _, _ = tiny_run
    text = (root / "README.md").read_text()
    for needle in ("| ROIs1158_spring | spring | 2 | 2 | 8 |", "IGBP class histogram",
                   "Water Bodies", "Method `groups`", "CC-BY", "MCD12Q1",
                   "config fingerprint", "Schmitt M"):
        assert needle in text, needle


# --- clean and resume ------------------------------------------------------------------------

def test_clean_keeps_finished_scenes_finished(tiny_run, tiny_config, small_archive, tmp_path):
    root, cfg, _ = tiny_run
    from dataclasses import replace

    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    before = (tree / "manifest.csv").read_bytes()
    freed = clean(tree)
    assert freed > 0 and not list((tree / ".work").glob("ROIs*"))
    assert (tree / ".work" / "state.sqlite").exists()
    again = run(replace(cfg, out=str(tree)), progress=False)
    assert again.patches_kept == 16 and not list((tree / ".work").glob("ROIs*/*/export"))
    assert (tree / "manifest.csv").read_bytes() == before
    assert set(again.disk) >= {"patches", "quality layers", "stac", "intermediates (.work)"}
    assert again.disk["patches"] > 0


# --- validate: each broken case gives a clear line -------------------------------------------

def test_validate_passes_on_the_built_tree(tiny_run):
    root, _, _ = tiny_run
    assert validate_tree(root) == []


def _first_kept(root):
    return next(r for r in rows(root / "manifest.csv") if r["status"] == "kept")


def test_validate_broken_tags(damaged):
    kept = [r for r in rows(damaged / "manifest.csv") if r["status"] == "kept"]
    with rasterio.open(damaged / kept[0]["s1"], "r+") as f:
        f.update_tags(S2_SHARES="0.6,0.6")
    with rasterio.open(damaged / kept[1]["s2"], "r+") as f:
        f.update_tags(S2_PRODUCT_IDS="")  # GDAL drops a key set to ""
    probs = check_all(damaged, checksums=False)
    pid = kept[0]["patch_id"]
    assert f"{pid}: s1/s2/lc carry different provenance tags" in probs
    assert f"{pid}: S2_SHARES sum to 1.2000 > 1" in probs
    assert f"{damaged / kept[1]['s2']}: provenance tag(s) missing: S2_PRODUCT_IDS (rebuild " \
        "with `run --force tile`)" in probs


def test_validate_missing_quality_layer(damaged):
    r = _first_kept(damaged)
    (damaged / r["qa"]).unlink()
    probs = check_all(damaged, checksums=False)
    assert any(r["qa"] in p and "quality layer missing" in p for p in probs)


def test_validate_split_leak(damaged):
    # move one train scene's patches to the test list: its group partner stays in train
    info = json.loads((damaged / "splits.json").read_text())
    train = (damaged / "train_list.txt").read_text().split()
    test = (damaged / "test_list.txt").read_text().split()
    moved = [n for n in train if "_spring_" in n]
    (damaged / "train_list.txt").write_text("\n".join(n for n in train if n not in moved) + "\n")
    (damaged / "test_list.txt").write_text("\n".join(test + moved) + "\n")
    assert info["method"] == "groups"
    probs = check_all(damaged, checksums=False)
    assert any(p.startswith("split leak: train ROIs2017_winter") and "m²" in p for p in probs)


def test_validate_broken_stac(damaged):
    item = next((damaged / "stac").glob("ROIs2017_winter/*/*.json"))
    d = json.loads(item.read_text())
    del d["properties"]["sar:polarizations"]
    d["properties"]["ml-aoi:split"] = "holdout"
    item.write_text(json.dumps(d))
    probs = check_all(damaged, checksums=False)
    assert any(str(item) in p and "invalid against" in p for p in probs)


def test_validate_broken_croissant(damaged):
    pytest.importorskip("mlcroissant")
    doc = json.loads((damaged / "croissant.json").read_text())
    doc["recordSet"][0]["field"][0]["source"]["fileObject"]["@id"] = "nowhere.csv"
    (damaged / "croissant.json").write_text(json.dumps(doc))
    probs = check_all(damaged, checksums=False)
    assert any("croissant.json: mlcroissant:" in p for p in probs)
    (damaged / "croissant" / "test.csv").write_text("patch_id\n")
    probs = check_all(damaged, checksums=False)
    assert any("checksum of croissant/test.csv does not match" in p for p in probs)


def test_sources_from_earth_engine_metadata():
    """The Earth Engine backend's metadata: S2 asset ids with times, S1 system:index strings
    (their start time is in the name), no orbit pass."""
    meta = {"s2_images": [{"id": "COPERNICUS/S2_HARMONIZED/20170421T155101_20170421T155101_"
                                 "T18SVG", "time": "2017-04-21T15:51:01.123Z"}],
            "s1_images": ["S1A_IW_GRDH_1SDV_20170317T230409_20170317T230434_015756_019EEB_1C1B"]}
    src = provenance.scene_sources(meta, "spring", "1158_land_1", 2016)
    assert src["s2"] == [{"id": "20170421T155101_20170421T155101_T18SVG",
                          "datetime": "2017-04-21T15:51:01Z"}]
    assert src["s1"][0]["datetime"] == "2017-03-17T23:04:09Z"
    t = provenance.patch_tags(src, np.zeros((2, 8, 8), np.uint8))
    assert t["MAX_S1_S2_GAP_DAYS"] == "34.70" and t["S1_ORBIT_STATES"] == ""
