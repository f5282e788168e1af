"""The numpy GeoTIFF writer against GDAL's own files: rasterio reads both the same."""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build.raster import geotiff
from sen12ms_build.raster.geotiff import UnsupportedGeoTIFF, encode_geotiff, read_ifd
from sen12ms_build.products import MODALITIES
from sen12ms_build.dataset.provenance import QA_BANDS, write_quality
from sen12ms_build.raster.tiling import write_patch

CRSS = {  # a UTM north, a UTM south, geographic
    "EPSG:32632": Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5300000.0),
    "EPSG:32723": Affine(10.0, 0.0, 330000.0, 0.0, -10.0, 7460000.0),
    "EPSG:4326": Affine(0.0001, 0.0, 11.25, 0.0, -0.0001, 48.5),
}
TAGS = {"SEN12MS_ROI_ID": "ROIs1158_spring_7", "S2_DATETIMES": "2017-03-01T10:20:31Z,x",
        "S2_SHARES": "0.75,0.25", "LC_YEAR": "", "A_B": 'x & <y> "z" \'w\' é\tend',
        "S2A": "1", "s2b": "2", "S2_X": "3"}  # sort order: GDAL compares upper-cased keys


def patch(key: str, shape=(256, 256), seed=0) -> np.ndarray:
    """Random pixels of a modality with some nodata."""
    m = MODALITIES[key]
    rng = np.random.default_rng(seed)
    if m.dtype == "float32":
        a = rng.normal(-12, 4, (m.count, *shape)).astype(np.float32)
    else:
        a = rng.integers(0, 10000 if key == "s2" else 18, (m.count, *shape)).astype(m.dtype)
    a[:, :3, :5] = m.nodata
    return a


def assert_same_raster(ours: Path, ref: Path) -> None:
    """rasterio sees the same dataset in both files."""
    with rasterio.open(ours) as a, rasterio.open(ref) as b:
        pa, pb = dict(a.profile), dict(b.profile)
        na, nb = pa.pop("nodata"), pb.pop("nodata")
        assert na == nb or (math.isnan(na) and math.isnan(nb))
        assert pa == pb  # driver, dtype, count, size, crs, transform, interleave, blocks
        assert a.crs.to_wkt() == b.crs.to_wkt()
        assert a.descriptions == b.descriptions
        assert a.colorinterp == b.colorinterp
        assert a.compression == b.compression
        for ns in (None, "IMAGE_STRUCTURE"):
            assert a.tags(ns=ns) == b.tags(ns=ns)
        for i in a.indexes:
            assert a.tags(i) == b.tags(i)
            assert a.checksum(i) == b.checksum(i)
        assert a.block_shapes == b.block_shapes
        np.testing.assert_array_equal(a.read(), b.read())  # NaN-aware


@pytest.mark.parametrize("crs", list(CRSS))
@pytest.mark.parametrize("key", list(MODALITIES))
def test_patch_reads_as_gdal_writes_it(tmp_path, key, crs, caplog):
    data = patch(key)
    ours, ref = tmp_path / "ours.tif", tmp_path / "gdal.tif"
    write_patch(ours, data, key, crs, CRSS[crs], TAGS)
    write_patch(ref, data, key, crs, CRSS[crs], TAGS, gdal=True)
    ifd = read_ifd(ours.read_bytes())
    assert ifd[259][2] == b"\x01\x00"  # uncompressed, as the published dataset
    # the GeoTIFF keys, the metadata XML and the nodata text are GDAL's, byte for byte
    ref_ifd = read_ifd(ref.read_bytes())
    for tag in (258, 262, 277, 278, 284, 338, 339, 33550, 33922, 34735, 34736, 34737, 42112,
                42113):
        assert ifd.get(tag) == ref_ifd.get(tag), tag
    with caplog.at_level(logging.DEBUG, logger="rasterio"):
        assert_same_raster(ours, ref)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with rasterio.open(ours) as src:
        assert src.tags()["S2_SHARES"] == "0.75,0.25"
        assert src.tags()["A_B"] == TAGS["A_B"]
        assert "LC_YEAR" not in src.tags()  # GDAL drops empty values when reading, both ways


@pytest.mark.parametrize("shape", [(256, 256), (37, 100), (1, 3000)])
def test_quality_layer_reads_as_gdal_writes_it(tmp_path, shape):
    rng = np.random.default_rng(1)
    aux = rng.choice([0, 1, 255], size=(4, *shape)).astype(np.uint8)
    ours, ref = tmp_path / "ours.tif", tmp_path / "gdal.tif"
    t = CRSS["EPSG:32632"]
    write_quality(ours, aux, "EPSG:32632", t, TAGS)
    write_quality(ref, aux, "EPSG:32632", t, TAGS, gdal=True)
    assert read_ifd(ours.read_bytes())[259][2] == b"\x08\x00"  # DEFLATE
    assert_same_raster(ours, ref)
    with rasterio.open(ours) as src:
        assert src.descriptions == QA_BANDS


@pytest.mark.parametrize("shape", [(250, 256), (37, 100), (5, 3000)])
def test_strips_of_any_size(tmp_path, shape):
    """Last strips shorter than the others, rows wider than a strip."""
    for key in MODALITIES:
        data = patch(key, shape, seed=2)
        ours, ref = tmp_path / f"{key}.tif", tmp_path / f"{key}_gdal.tif"
        write_patch(ours, data, key, "EPSG:32632", CRSS["EPSG:32632"], {})
        write_patch(ref, data, key, "EPSG:32632", CRSS["EPSG:32632"], {}, gdal=True)
        assert_same_raster(ours, ref)


def test_cast_like_astype(tmp_path):
    """write_patch casts as before (astype): float64 s2 values land truncated in uint16."""
    data = patch("s2").astype(np.float64) + 0.7
    ours, ref = tmp_path / "ours.tif", tmp_path / "gdal.tif"
    write_patch(ours, data, "s2", "EPSG:32632", CRSS["EPSG:32632"], {})
    write_patch(ref, data, "s2", "EPSG:32632", CRSS["EPSG:32632"], {}, gdal=True)
    assert_same_raster(ours, ref)


@pytest.mark.parametrize("case", ["rotated", "south-up", "no crs", "odd key", "leading blank",
                                  "control char", "case twins", "fractional nodata"])
def test_unsupported_rasters_raise(case):
    data, kw = patch("s2"), {"crs": "EPSG:32632", "transform": CRSS["EPSG:32632"],
                             "nodata": 0, "descriptions": MODALITIES["s2"].descriptions}
    if case == "rotated":
        kw["transform"] = CRSS["EPSG:32632"] @ Affine.rotation(10)
    elif case == "south-up":
        kw["transform"] = Affine(10, 0, 0, 0, 10, 0)
    elif case == "no crs":
        kw["crs"] = None
    elif case == "odd key":
        kw["tags"] = {"a:b": "1"}
    elif case == "leading blank":
        kw["tags"] = {"A": " 1"}
    elif case == "control char":
        kw["tags"] = {"A": "1\x01"}
    elif case == "case twins":
        kw["tags"] = {"A": "1", "a": "2"}
    else:
        kw["nodata"] = 0.5
    with pytest.raises(UnsupportedGeoTIFF):
        encode_geotiff(data, **kw)


def test_rotated_patch_falls_back_to_rasterio(tmp_path):
    t = CRSS["EPSG:32632"] @ Affine.rotation(10)
    write_patch(tmp_path / "p.tif", patch("s1"), "s1", "EPSG:32632", t, TAGS)
    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.transform.almost_equals(t)
        assert src.tags()["SEN12MS_ROI_ID"] == TAGS["SEN12MS_ROI_ID"]


def test_geokeys_once_per_crs(monkeypatch):
    from rasterio.crs import CRS

    geotiff._geokeys_for_wkt.cache_clear()
    monkeypatch.setattr(geotiff, "_last_crs", None)
    for _ in range(3):
        for crs in CRSS:
            geotiff.geokeys(CRS.from_string(crs))  # equal CRSs, new objects
    info = geotiff._geokeys_for_wkt.cache_info()
    assert (info.misses, info.hits) == (3, 6)
    crs = CRS.from_string("EPSG:32632")
    assert geotiff.geokeys(crs) is geotiff.geokeys(crs)
    assert geotiff._geokeys_for_wkt.cache_info().hits == 7  # same object: not even the WKT


@pytest.mark.skipif(not shutil.which("gdalinfo"), reason="needs gdal-bin")
def test_gdalinfo_reads_it_without_warnings(tmp_path):
    """The system's GDAL (another build than rasterio's) reads our file cleanly."""
    path, ref = tmp_path / "s2.tif", tmp_path / "s2_gdal.tif"
    write_patch(path, patch("s2"), "s2", "EPSG:32723", CRSS["EPSG:32723"], TAGS)
    write_patch(ref, patch("s2"), "s2", "EPSG:32723", CRSS["EPSG:32723"], TAGS, gdal=True)
    out = [subprocess.run(["gdalinfo", "-checksum", "-mdd", "all", str(p)], capture_output=True,
                          text=True, check=True) for p in (path, ref)]
    assert out[0].stderr == ""
    assert out[0].stdout.replace(str(path), "X") == out[1].stdout.replace(str(ref), "X")
