"""10 m land-cover labels as a fourth modality (issue 23): class tables, config, resampling
without invented classes, curation, dry-run bytes, and a labels run on the demo archive
(aligned uint8 WorldCover patches beside every triplet, described by the manifest, the
tags, STAC, Croissant, the data card and the quicklooks).

Truth comes from outside the code under test: the class values and colours of Planetary
Computer's recorded ``esa-worldcover`` item (tests/fixtures/stac), the DFC2020 organisers'
IGBP table written out below, hand-made rasters, and the demo's own ground classes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build import labels
from sen12ms_build.config import ConfigError, config_from_dict, load_config
from sen12ms_build.curation import rounds as curation
from sen12ms_build.config import CurationConfig
from sen12ms_build.geo import Grid
from sen12ms_build.products import WC
from sen12ms_build.raster.warp import warp_to_file

FIXTURES = Path(__file__).parent / "fixtures" / "stac"
BASE = {"seasons": {"summer": {"seed": 1, "start": "2017-06-01", "end": "2017-08-31"}}}
WC_CODES = {10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100}


# --- class tables -------------------------------------------------------------------------------

def test_worldcover_classes_are_those_of_the_published_items():
    item = json.loads((FIXTURES / "pc_esa-worldcover_item.json").read_text())
    published = {c["value"]: (c["description"], c["color-hint"])
                 for c in item["assets"]["map"]["classification:classes"]}
    ours = {c.value: (c.name, c.color) for c in labels.WORLDCOVER_CLASSES}
    assert ours == published
    assert item["assets"]["map"]["raster:bands"][0]["nodata"] == labels.WORLDCOVER_NODATA
    assert set(published) == WC_CODES


def test_igbp_to_dfc_is_the_contest_organisers_table():
    # github.com/lukasliebel/dfc2020_baseline, code/datasets.py, DFC2020_CLASSES
    organisers = [0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 6, 8, 9, 10]
    assert list(labels.IGBP_TO_DFC) == organisers
    assert labels.lut("igbp")[:18].tolist() == organisers


def test_numpy_and_earth_engine_share_one_mapping():
    for product in ("worldcover", "dynamicworld"):
        src, dst = labels.remap_lists(product)  # what ee.Image.remap gets
        lut = labels.lut(product)
        assert [int(lut[v]) for v in src] == dst
        assert set(dst) <= set(labels.DFC_CLASSES)
        others = np.setdiff1d(np.arange(256), src)
        assert not lut[others].any()  # nodata and non-classes map to 0 (no data)
    # the documented judgements (docs and labels.py): mangroves are wetlands, moss and
    # lichen grassland, flooded vegetation wetlands
    assert labels.lut("worldcover")[[95, 100, 90, 60]].tolist() == [5, 4, 5, 9]
    assert labels.lut("dynamicworld")[[0, 3, 6, 7]].tolist() == [10, 5, 7, 9]


def test_dynamic_world_bands_and_palette():
    assert labels.DW_PROB_BANDS == ("water", "trees", "grass", "flooded_vegetation", "crops",
                                    "shrub_and_scrub", "built", "bare", "snow_and_ice")
    assert [c.value for c in labels.DYNAMICWORLD_CLASSES] == list(range(9))
    # the Earth Engine catalogue's palette for `label`
    assert [c.color.lower() for c in labels.DYNAMICWORLD_CLASSES] == [
        "419bdf", "397d49", "88b053", "7a87c6", "e49635", "dfc35a", "c4281b", "a59b8f",
        "b39fe1"]


def test_histogram_dominant_and_purity():
    band = np.array([[10, 10, 40], [0, 40, 10]], np.uint8)
    counts = labels.class_counts(band, "worldcover")
    assert counts == {10: 3, 40: 2}
    assert labels.dominant(counts) == (10, 0.6)
    assert labels.dominant({}) == (None, 0.0)
    assert labels.dominant({40: 2, 10: 2}) == (10, 0.5)  # a tie: the lower value


# --- config -------------------------------------------------------------------------------------

def test_labels_default_to_none_and_add_one_modality():
    assert config_from_dict(BASE).extra_modalities == ()
    assert config_from_dict({**BASE, "labels": "none"}).extra_modalities == ()
    cfg = config_from_dict({**BASE, "labels": "worldcover", "worldcover_version": "v200"})
    assert cfg.extra_modalities == ("wc",) and cfg.worldcover_version == "v200"
    ee = config_from_dict({**BASE, "labels": "dynamicworld",
                           "backend": {"name": "earthengine"}})
    assert ee.extra_modalities == ("dw",)


@pytest.mark.parametrize("extra, key", [
    ({"labels": "corine"}, "labels"),
    ({"labels": "worldcover", "worldcover_version": "v300"}, "worldcover_version"),
    ({"labels": "dynamicworld"}, "labels"),  # local backend
    ({"labels": "dynamicworld", "backend": {"name": "stac"}}, "labels"),
    ({"reproject": {"resampling": {"wc": "bilinear"}}}, "reproject.resampling.wc"),
    ({"reproject": {"resampling": {"dw": "cubic"}}}, "reproject.resampling.dw"),
])
def test_bad_labels_settings_are_one_line_config_errors(extra, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, **extra}, credentials=False)
    msg = str(err.value)
    assert f"{key}:" in msg and "\n" not in msg
    if extra.get("labels") == "dynamicworld":
        assert "Earth Engine only" in msg


# --- resampling: no class is invented on a class boundary ---------------------------------------

def _classes_raster(path: Path, res: float = 1 / 12000) -> None:
    """Cropland (40) west of water (80), a boundary off the pixel grid, in EPSG:4326."""
    arr = np.full((1, 240, 240), 80, np.uint8)
    arr[:, :, :117] = 40
    arr[:, 100:140, 50:60] = 10  # a small wood
    with rasterio.open(path, "w", driver="GTiff", count=1, height=240, width=240,
                       dtype="uint8", crs="EPSG:4326", nodata=0,
                       transform=Affine(res, 0, -75.61, 0, -res, 37.71)) as f:
        f.write(arr)


def test_resampling_rule_mode_from_finer_pixels_else_nearest():
    assert labels.resampling_for((7.3, 9.3), (10.0, 10.0)) == "mode"
    assert labels.resampling_for((8.8, 11.1), (10.0, 10.0)) == "nearest"
    assert labels.resampling_for((463.0, 463.0), (10.0, 10.0)) == "nearest"


@pytest.mark.parametrize("method", ["nearest", "mode"])
def test_the_utm_warp_of_classes_invents_none(tmp_path, method):
    src = tmp_path / "wc.tif"
    _classes_raster(src)
    grid = Grid("EPSG:32618", Affine(10, 0, 446650, 0, -10, 4173550), 150, 150)
    out = warp_to_file(src, tmp_path / f"{method}.tif", grid, WC, method)
    with rasterio.open(out) as f:
        got = f.read(1)
    assert set(np.unique(got).tolist()) <= {0, 10, 40, 80}
    assert {40, 80} <= set(np.unique(got).tolist())  # the boundary is in the grid
    # the test can fail: bilinear on the same boundary invents classes (60 = bare)
    bil = warp_to_file(src, tmp_path / "bilinear.tif", grid, WC, "bilinear")
    with rasterio.open(bil) as f:
        assert set(np.unique(f.read(1)).tolist()) - {0, 10, 40, 80}


def test_the_local_backend_reads_worldcover_by_mode_without_new_classes(tmp_path):
    from sen12ms_build.backends.local import read_worldcover

    tile = tmp_path / "ESA_WorldCover_10m_2020_v100_N36W078_Map.tif"
    _classes_raster(tile)
    grid = Grid("EPSG:4326", Affine(1e-4, 0, -75.609, 0, -1e-4, 37.709), 150, 150)
    arr, used = read_worldcover([tile], grid)
    assert used == [tile.name] and arr.dtype == np.uint8 and arr.shape == (1, 150, 150)
    assert set(np.unique(arr).tolist()) <= {0, 10, 40, 80}
    # by hand: the boundary at 117/12000 degree east of -75.61 is -75.60025; export pixel
    # columns whose centres lie 2 columns or more from it are wholly one class
    lon = -75.609 + (np.arange(150) + 0.5) * 1e-4
    row = arr[0, 5]
    assert (row[lon < -75.6005] == 40).all() and (row[lon > -75.6000] == 80).all()


# --- curation -------------------------------------------------------------------------------------

def test_a_labels_patch_mostly_without_classes_is_rejected():
    rng = np.random.default_rng(0)
    s2 = rng.integers(500, 3000, (13, 64, 64)).astype(np.uint16)
    s1 = np.stack([rng.normal(-10, 1, (64, 64)), rng.normal(-17, 1, (64, 64))]
                  ).astype(np.float32)
    lc = np.full((4, 64, 64), 12, np.uint16)
    wc = np.full((1, 64, 64), 40, np.uint8)
    arrays = {"s1": s1, "s2": s2, "lc": lc, "wc": wc}
    cfg = CurationConfig(patch_max_labels_nodata_share=0.5)
    keep, reason, values = curation.patch_decision(arrays, cfg)
    assert keep and values["nodata_wc"] == 0.0
    wc[:, :40] = 0  # 62.5 % outside the product
    keep, reason, values = curation.patch_decision(arrays, cfg)
    assert not keep and reason == "nodata_wc" and values["nodata_wc"] == pytest.approx(0.625)
    # Dynamic World's nodata is 255, in any of its 10 bands
    dw = np.full((10, 64, 64), 100, np.uint8)
    dw[:, :8] = 255
    _, _, values = curation.patch_decision({**arrays, "dw": dw}, cfg)
    assert values["nodata_dw"] == pytest.approx(0.125)
    assert curation.get_check("nodata_wc").threshold(cfg, "patch") == 0.5


# --- dry runs: the bytes include the labels -------------------------------------------------

def test_earth_engine_plan_counts_the_labels_bytes():
    from sen12ms_build.backends import SceneRequest
    from sen12ms_build.backends.earthengine import chunks
    from sen12ms_build.backends.earthengine.backend import plan_requests
    from sen12ms_build.roi import ROI
    import datetime as dt

    roi = ROI(1, "1_land_1", 1, "land", -75.62, 37.67, 6400.0, 32618)
    mk = lambda lab: SceneRequest(roi, "summer", dt.date(2017, 6, 1),  # noqa: E731
                                  dt.date(2017, 8, 31), labels=lab)
    plain = plan_requests([mk(None)])
    wc = plan_requests([mk("worldcover")])
    dw = plan_requests([mk("dynamicworld")])
    g = roi.export_grid()
    # one uint8 band (WorldCover) or ten (Dynamic World) over the export grid, in one
    # request each (far below 48 MiB), plus one response's GeoTIFF overhead
    assert wc.expected_bytes - plain.expected_bytes == \
        g.width * g.height * 1 + chunks.GEOTIFF_OVERHEAD_BYTES
    assert dw.expected_bytes - plain.expected_bytes == \
        g.width * g.height * 10 + chunks.GEOTIFF_OVERHEAD_BYTES
    assert wc.requests == plain.requests + 1
    assert "wc:" in wc.format() and "ESA WorldCover" in wc.format()


def test_stac_plan_has_a_worldcover_line_only_with_labels():
    from sen12ms_build.backends import SceneRequest
    from sen12ms_build.backends.stac.plan import Assumptions, plan
    from sen12ms_build.roi import ROI
    import datetime as dt

    roi = ROI(1, "1_land_1", 1, "land", -75.62, 37.67, 38400.0, 32618)
    req = SceneRequest(roi, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31),
                       labels="worldcover")
    lines = [ln for ln in plan([req]).lines if ln.modality == "labels"]
    (ln,) = lines
    assert ln.profile == "planetary-computer" and ln.product == "labels-worldcover"
    # by hand: 38.4 km at 37.67 N is 38400 / (111320 cos 37.67 / 12000) = 5222 px by
    # 38400 / (110574 / 12000) = 4167 px of 1/12000 degree: 1 + 5222/512 = 11.2 by
    # 1 + 4167/512 = 9.14 blocks of 512 x 512 px at 0.35 B/px
    a = Assumptions()
    assert ln.bytes == pytest.approx(11.2 * 9.14 * 512 ** 2 * a.worldcover_bytes_per_px,
                                     rel=0.01)
    assert ln.bytes > 0 and "labels" in plan([req]).format()
    plain = SceneRequest(roi, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31))
    assert not [ln for ln in plan([plain]).lines if ln.modality == "labels"]


# --- a labels run on the demo archive -------------------------------------------------------

@pytest.fixture(scope="module")
def labels_run(demo_archive, tiny_config, tmp_path_factory):
    from sen12ms_build.pipeline import run

    winter = {"seed": 2017, "start": "2016-12-01", "end": "2017-02-28"}  # one season: fast
    path = tiny_config(tmp_path_factory.mktemp("labels"), demo_archive, labels="worldcover",
                       seasons={"winter": winter})
    cfg = load_config(path)
    summary = run(cfg, progress=False)
    return cfg, summary


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_labels_run_writes_an_aligned_worldcover_patch_beside_every_triplet(labels_run,
                                                                         demo_archive):
    from sen12ms_build.demo.ground import ground_classes, load_ground
    from sen12ms_build.demo.landcover import worldcover_classes

    cfg, summary = labels_run
    root = Path(cfg.out)
    kept = [r for r in _rows(root) if r["status"] == "kept"]
    assert kept and len(kept) == summary.patches_kept
    ground, grid = load_ground()
    truth = worldcover_classes(ground_classes(ground))  # the demo's own 10 m classes
    inv = ~grid.transform
    for r in kept:
        assert Path(root / r["wc"]).name == Path(r["s2"]).name.replace("_s2_", "_wc_")
        assert Path(r["wc"]).parent.name.startswith("wc_")
        with rasterio.open(root / r["wc"]) as f, rasterio.open(root / r["s2"]) as g:
            wc = f.read()
            assert f.dtypes[0] == "uint8" and f.count == 1 and f.nodata == 0
            assert (f.transform, f.crs, f.shape) == (g.transform, g.crs, g.shape)
            t = f.transform
        assert set(np.unique(wc).tolist()) <= WC_CODES | {0}
        # aligned: the patch agrees with the demo's classes at the same UTM pixels (two
        # resamplings of 10 m classes through the 0.0001 degree export grid)
        c0, r0 = (round(v) for v in inv * (t.c, t.f))
        ref = truth[r0:r0 + 256, c0:c0 + 256]
        agree = float((wc[0] == ref).mean())
        shifted = float((wc[0, :, 8:] == ref[:, :-8]).mean())
        assert agree > 0.85 and agree > shifted + 0.05, (r["patch_id"], agree, shifted)
        counts = dict(p.split(":") for p in r["labels_counts"].split(";"))
        assert sum(map(int, counts.values())) + int((wc == 0).sum()) == 256 * 256
        assert r["labels_product"] == "ESA/WorldCover/v100" and r["labels_period"] == "2020"
        assert int(counts[r["labels_dominant"]]) == max(map(int, counts.values()))


def test_labels_tags_stac_croissant_datacard_and_validate(labels_run):
    from sen12ms_build.dataset import stac as dstac
    from sen12ms_build.dataset.stac_validate import validate_catalog
    from sen12ms_build.dataset.validate import validate_tree

    cfg, _ = labels_run
    root = Path(cfg.out)
    assert validate_tree(root) == []
    assert validate_catalog(root) == []
    r = next(r for r in _rows(root) if r["status"] == "kept")
    with rasterio.open(root / r["wc"]) as f:
        tags = f.tags()
    assert tags["LABELS_PRODUCT"] == "ESA/WorldCover/v100" and tags["LABELS_VERSION"] == "v100"
    item_path = next((root / "stac").glob(f"*/{r['patch_id']}/{r['patch_id']}.json"))
    item = json.loads(item_path.read_text())
    asset = item["assets"]["wc"]
    assert dstac.CLASSIFICATION in item["stac_extensions"]
    published = json.loads((FIXTURES / "pc_esa-worldcover_item.json").read_text())
    want = {c["value"]: c["color-hint"] for c in published["assets"]["map"][
        "classification:classes"]}
    assert {c["value"]: c["color_hint"] for c in asset["classification:classes"]} == want
    assert (item_path.parent / asset["href"]).resolve() == (root / r["wc"]).resolve()
    croissant = json.loads((root / "croissant.json").read_text())
    fields = {f["name"] for rs in croissant["recordSet"] for f in rs["field"]}
    assert {"wc", "labels_counts", "labels_dominant", "labels_purity"} <= fields
    card = (root / "README.md").read_text()
    assert "© ESA WorldCover project 2020" in card and "CC-BY-4.0" in card


def test_labels_quicklook_shows_worldcover_in_its_official_colours(labels_run):
    from PIL import Image

    from sen12ms_build.curation import quicklook
    from sen12ms_build.dataset import layout

    cfg, _ = labels_run
    root = Path(cfg.out)
    r = next(r for r in _rows(root) if r["status"] == "kept")
    png = quicklook.quicklook_path(root, r["branch"], int(r["scene"]))
    lay = quicklook.read_layout(png)
    assert list(lay.panels)[-1] == "wc"
    img = np.asarray(Image.open(png).convert("RGB"))
    seed = int(r["branch"][4:].split("_")[0])
    wd = layout.scene_workdir(root, seed, r["season"], int(r["scene"]))
    with rasterio.open(wd / "utm" / "wc.tif") as f:
        wc = f.read(1)
    x0, y0 = lay.panels["wc"]
    colours = {c.value: c.color for c in labels.WORLDCOVER_CLASSES}
    for cls in np.unique(wc):
        rr, cc = np.nonzero(wc == cls)
        k = len(rr) // 2
        want = (0, 0, 0) if cls == 0 else quicklook.hex_rgb(colours[int(cls)].lower())
        assert tuple(img[y0 + rr[k] // lay.factor, x0 + cc[k] // lay.factor]) == want


def test_consistent_with_modis_where_both_are_defined(demo_archive):
    """The demo's WorldCover and MODIS maps are made independently from the same ground
    classes; where a MODIS cell is pure (90 % of its WorldCover pixels one class) both
    say the same simplified IGBP class."""
    from rasterio.warp import reproject
    from rasterio.enums import Resampling

    (wc_path,) = (demo_archive / "worldcover").glob("*_Map.tif")
    with rasterio.open(demo_archive / "lc" / "MCD12Q1_2016.tif") as f:
        igbp, mt, mcrs = f.read(1), f.transform, f.crs
    with rasterio.open(wc_path) as f:
        wc, wt, wcrs = f.read(1), f.transform, f.crs
    # each WorldCover pixel's MODIS cell (nearest: the cell its centre falls in)
    cell = np.full(wc.shape, -1, np.int32)
    ids = np.arange(igbp.size, dtype=np.int32).reshape(igbp.shape)
    reproject(ids, cell, src_transform=mt, src_crs=mcrs, dst_transform=wt, dst_crs=wcrs,
              resampling=Resampling.nearest, src_nodata=-1, dst_nodata=-1)
    ok = (cell >= 0) & (wc != 0)
    dfc_wc = labels.lut("worldcover")[wc[ok]]
    agree = total = 0
    for c in np.unique(cell[ok]):
        got = dfc_wc[cell[ok] == c]
        vals, n = np.unique(got, return_counts=True)
        if n.sum() < 1000 or n.max() < 0.9 * n.sum() or igbp.flat[c] == 255:
            continue
        total += 1
        agree += int(vals[n.argmax()] == labels.lut("igbp")[igbp.flat[c]])
    assert total >= 20 and agree / total >= 0.95, (agree, total)
