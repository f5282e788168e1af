"""The serialized Earth Engine request graphs of S2, S1 and MODIS, built offline with
earthengine-api's bundled algorithm list (ee.apitestcase; earthengine-api pinned 1.7.50):
collections, filters, bands, thresholds, kernels, reducers, displacement, projections and
scales; and one definition of every mosaicking constant for numpy and Earth Engine."""

from __future__ import annotations

import ast
import inspect
import json
import math
from dataclasses import fields

import pytest

pytest.importorskip("ee")

import ee  # noqa: E402

from ee_helpers import calls, constants, invocations, offline_ee  # noqa: E402
from sen12ms_build import mosaic, scorers  # noqa: E402
from sen12ms_build.backends.earthengine import (graphs, landcover_image, s1_image,  # noqa: E402
                                                s2_mosaic)
from sen12ms_build.mosaic import MosaicParams  # noqa: E402
from sen12ms_build.products import (LC_BANDS, LC_MODIS_BANDS, S1_COLLECTION,  # noqa: E402
                                    S2_BANDS)
from sen12ms_build.roi import ROI  # noqa: E402

START, END = "2017-06-01", "2017-08-31"


@pytest.fixture(scope="module")
def ee_offline():
    with offline_ee():
        yield


@pytest.fixture(scope="module")
def region(ee_offline):
    return graphs.region_of(ROI.at(7, 1868, "land", 11.5, 48.1, 38400.0).ring())


@pytest.fixture(scope="module")
def s2_expr(region):
    return graphs.encode(s2_mosaic(region, START, END, with_aux=True))


def names(expr):
    return [n for n, _ in invocations(expr)]


def close(a, b):
    return isinstance(a, (int, float)) and not isinstance(a, bool) and math.isclose(
        a, b, rel_tol=1e-12, abs_tol=1e-12)


def has_number(values, x):
    return any(close(v, x) for v in values)


# --- Sentinel-2 ------------------------------------------------------------------------------

def test_s2_query_collection_region_and_period(s2_expr):
    loads = calls(s2_expr, "ImageCollection.load")
    assert {a["id"] for a in loads} == {"COPERNICUS/S2_HARMONIZED"}
    dates = calls(s2_expr, "DateRange")
    # the inclusive end date becomes filterDate's exclusive end
    assert {(a["start"], a["end"]) for a in dates} == {("2017-06-01", "2017-09-01")}
    bounds = calls(s2_expr, "Filter.intersects")
    polys = [a["rightValue"]["geometry"] for a in bounds]
    assert polys and all(p["__call__"] == "GeometryConstructors.Polygon"
                         and p["geodesic"] is False for p in polys)
    # sorted by acquisition time (the aux source index order)
    assert {"key": "system:time_start"} in [{"key": a["key"]} for a in
                                            calls(s2_expr, "Collection.limit")]
    # every image clipped before scoring
    assert calls(s2_expr, "Image.clip")


def test_s2_graph_selects_all_13_bands_and_outputs_uint16(s2_expr):
    selects = [a["bandSelectors"] for a in calls(s2_expr, "Image.select")]
    assert list(S2_BANDS) in selects
    root = s2_expr["values"][s2_expr["result"]]["functionInvocationValue"]
    assert root["functionName"] == "Image.addBands"  # 13 L1C bands + aux bands
    casts = names(s2_expr)
    assert casts.count("Image.toUint16") == 2
    unmasks = calls(s2_expr, "Image.unmask")
    fills = sorted(a["value"]["value"] for a in unmasks if "value" in a)
    assert fills == [0, 255] and all(a["sameFootprint"] is False for a in unmasks)
    assert ["source_index", "poor"] in selects


def test_s2_cloud_score_indicators_and_thresholds(s2_expr):
    p = MosaicParams()
    scales = {(a["low"], a["high"]) for a in calls(s2_expr, "Image.unitScale")}
    assert scales == {p.b2_range, p.b1_range, p.b1_b10_range, p.rgb_sum_range, p.ndmi_range,
                      p.ndsi_range}
    nds = [a["bandNames"] for a in calls(s2_expr, "Image.normalizedDifference")]
    assert ["B8", "B11"] in nds and ["B3", "B11"] in nds and ["B8", "B4"] in nds
    divides = calls(s2_expr, "Image.divide")
    assert any(a["image2"].get("value") == p.reflectance_scale for a in divides
               if isinstance(a["image2"], dict))
    maxes = [a["image2"] for a in calls(s2_expr, "Image.max") if isinstance(a["image2"], dict)
             and a["image2"].get("__call__") == "Image.constant"]
    assert {"__call__": "Image.constant", "value": p.cloud_score_floor} in maxes
    gts = [a["image2"]["value"] for a in calls(s2_expr, "Image.gt")
           if a["image2"].get("__call__") == "Image.constant"]
    assert p.cloud_thresh in gts
    lts = [a["image2"]["value"] for a in calls(s2_expr, "Image.lt")]
    assert p.ir_sum_thresh in lts and p.ndvi_thresh in lts


def test_s2_kernels_reducers_and_morphology(s2_expr):
    p = MosaicParams()
    hoods = calls(s2_expr, "Image.reduceNeighborhood")
    kinds = sorted((h["reducer"]["__call__"], h["kernel"]["__call__"], h["kernel"]["radius"])
                   for h in hoods)
    assert kinds == sorted([("Reducer.mean", "Kernel.square", p.cloud_kernel_radius),
                            ("Reducer.max", "Kernel.square", p.shadow_max_radius_px),
                            ("Reducer.mean", "Kernel.square", p.quality_kernel_radius)])
    (fmin,) = calls(s2_expr, "Image.focalMin")
    (fmax,) = calls(s2_expr, "Image.focalMax")
    assert (fmin["kernelType"], fmin["radius"], fmin["iterations"], fmin["units"]) == (
        "circle", p.erode_radius_px, p.erode_iterations, "pixels")
    assert (fmax["kernelType"], fmax["radius"], fmax["iterations"], fmax["units"]) == (
        "circle", p.dilate_radius_px, p.dilate_iterations, "pixels")
    sums = [a for a in calls(s2_expr, "Image.reduce") if a["reducer"]["__call__"] ==
            "Reducer.sum"]
    assert sums  # B8 + B11 + B12


def test_s2_scores_pinned_to_20m_in_epsg4326(s2_expr):
    reps = calls(s2_expr, "Image.reproject")
    # cloud score, shadow opening, quality score
    assert len(reps) >= 3
    for r in reps:
        assert r["crs"] == {"__call__": "Projection", "crs": "EPSG:4326"}
        assert r["scale"] == MosaicParams().score_scale_m
    (stats,) = calls(s2_expr, "Image.reduceRegion")
    assert stats["reducer"]["__call__"] == "Reducer.sum"
    assert stats["scale"] == MosaicParams().score_scale_m
    assert stats["crs"] == {"__call__": "Projection", "crs": "EPSG:4326"}


def test_s2_shadow_projection_displaces_away_from_the_sun(s2_expr):
    (disp,) = calls(s2_expr, "Image.displace")
    # displacement image: constant(dx) + constant(dy)
    add = disp["displacement"]
    assert add["__call__"] == "Image.addBands"
    text = json.dumps(s2_expr)
    assert "MEAN_SOLAR_AZIMUTH_ANGLE" in text and "MEAN_SOLAR_ZENITH_ANGLE" in text
    adds = [a["right"] for a in calls(s2_expr, "Number.add")]
    assert 180 in adds  # az = azimuth + 180
    mults = [a["right"] for a in calls(s2_expr, "Number.multiply")
             if not isinstance(a["right"], dict)]
    assert -1 in mults and any(close(m, math.pi) for m in mults)
    assert "Number.sin" in names(s2_expr) and "Number.cos" in names(s2_expr)
    assert "Number.tan" in names(s2_expr)
    # mapped over the cloud heights, averaged
    assert list(MosaicParams().cloud_heights_m) in constants(s2_expr)
    assert "List.map" in names(s2_expr) and "ImageCollection.fromImages" in names(s2_expr)
    assert "reduce.mean" in names(s2_expr)  # ImageCollection.mean over the heights


def test_s2_merge_best_over_quality_mosaic(s2_expr):
    (qm,) = calls(s2_expr, "ImageCollection.qualityMosaic")
    assert qm["qualityBand"] == "quality"
    flt = calls(s2_expr, "Filter.lessThan")
    assert {(a["leftField"], a["rightValue"]) for a in flt} == {
        ("CLOUDY_PERCENTAGE", MosaicParams().keep_thresh)}
    sorts = {(a["key"], a.get("ascending")) for a in calls(s2_expr, "Collection.limit")}
    assert ("CLOUDY_PERCENTAGE", False) in sorts  # clearest last, i.e. on top
    (pair,) = [a for a in calls(s2_expr, "ImageCollection.fromImages")
               if isinstance(a["images"], list)]
    first, second = pair["images"]
    assert first["__call__"] == "ImageCollection.qualityMosaic"
    assert second["__call__"] == "ImageCollection.mosaic"  # best on top
    # poor mask = -quality > cloud_thresh
    assert "Image.multiply" in names(s2_expr)


def test_s2_pinned_best_images_replace_the_threshold(region):
    best = ["20170712T101029_20170712T101255_T32UPU", "20170612T101031_20170612T101439_T32UPU"]
    expr = graphs.encode(s2_mosaic(region, START, END, best_ids=best))
    assert not calls(expr, "Filter.lessThan")
    assert not calls(expr, "Image.reduceRegion")  # no statistics in the pixel graph
    (inlist,) = calls(expr, "Filter.listContains")  # ee.Filter.inList
    assert inlist == {"leftValue": best, "rightField": "system:index"}
    assert ("MERGE_ORDER", None) in {(a["key"], a.get("ascending"))
                                     for a in calls(expr, "Collection.limit")}


def test_s2_clip_geometry_separate_from_statistics_region(region):
    roi = ROI.at(7, 1868, "land", 11.5, 48.1, 38400.0)
    clip = graphs.region_of(roi.ring(), 2 * 0.0001)
    expr = graphs.encode(s2_mosaic(region, START, END, clip=clip))
    (c,) = calls(expr, "Image.clip")
    (stats,) = calls(expr, "Image.reduceRegion")
    ring = c["geometry"]["coordinates"][0]
    stats_ring = stats["geometry"]["coordinates"][0]
    # grown by two export pixels (a little more at the slanted corners)
    grow = min(p[0] for p in stats_ring) - min(p[0] for p in ring)
    assert 0.0002 - 1e-9 <= grow <= 0.00025


def test_s2_collection_is_configurable(region):
    expr = graphs.encode(s2_mosaic(region, START, END, collection="COPERNICUS/S2"))
    assert {a["id"] for a in calls(expr, "ImageCollection.load")} == {"COPERNICUS/S2"}


# --- one definition, two executions -------------------------------------------------------------

def _sentinel(name: str, value, i: int):
    """A distinctive replacement for a MosaicParams value."""
    if isinstance(value, tuple) and name == "cloud_heights_m":
        return tuple(range(333 + i, 7000, 617))
    if isinstance(value, tuple):
        return (0.0123 + i / 1000, 0.4567 + i / 1000)
    if isinstance(value, int):
        return 17 + i
    return 0.0731 + i / 1000


def test_every_mosaic_constant_reaches_the_earth_engine_graph(region):
    base = MosaicParams()
    default = constants(graphs.encode(s2_mosaic(region, START, END, base, with_aux=True)))
    for i, f in enumerate(fields(MosaicParams)):
        value = getattr(base, f.name)
        if isinstance(value, str) or f.name.startswith("s2cloudless_"):
            continue  # method choices and local-only scorer constants: test_scorers.py
        new = _sentinel(f.name, value, i)
        params = base.with_overrides({f.name: list(new) if isinstance(new, tuple) else new})
        ref = default
        if f.name.startswith("cloudscoreplus_"):  # read only when that scorer is chosen
            ref = constants(graphs.encode(s2_mosaic(
                region, START, END, base.with_overrides({"scorer": "cloudscoreplus"}),
                with_aux=True)))
            params = params.with_overrides({"scorer": "cloudscoreplus"})
        expr = graphs.encode(s2_mosaic(region, START, END, params, with_aux=True))
        got = constants(expr)
        if f.name == "cloud_heights_m":
            assert list(new) in got and list(value) not in got, f.name
            continue
        wanted = list(new) if isinstance(new, tuple) else [new]
        for x in wanted:
            assert has_number(got, x), f"{f.name}={x} missing from the S2 graph"
            assert not has_number(ref, x), f"sentinel {x} of {f.name} not distinctive"
        assert got != ref, f.name


def _params_attributes(module) -> set[str]:
    """Names read as ``params.<name>`` in a module's source."""
    tree = ast.parse(inspect.getsource(module))
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "params"}


def test_numpy_and_earth_engine_read_every_constant_from_mosaic_params():
    every = {f.name for f in fields(MosaicParams)}
    # scorer-specific constants are read by the backends that run that scorer only
    local_only = {n for n in every if n.startswith("s2cloudless_")}
    ee_only = {n for n in every if n.startswith("cloudscoreplus_")}
    numpy_side = _params_attributes(mosaic) | _params_attributes(scorers)
    assert every - ee_only <= numpy_side, every - ee_only - numpy_side
    assert every - local_only <= _params_attributes(graphs), \
        every - local_only - _params_attributes(graphs)
    # the Earth Engine module imports the very same dataclass and defaults
    assert graphs.MosaicParams is mosaic.MosaicParams
    assert graphs.DEFAULT_PARAMS is mosaic.DEFAULT_PARAMS


def test_earth_engine_graphs_hold_no_algorithm_literal():
    """graphs.py may not restate a mosaicking constant as a literal."""
    tree = ast.parse(inspect.getsource(graphs))
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)}
    # 0/1: image algebra; 100: percent; 180: az + 180 and degrees; 1e10: maxPixels;
    # 9999: the S1 fill value; 10: rounding digits
    assert literals <= {0, 1, 10, 100, 180, 1e10, 9999.0}, literals


# --- Sentinel-1 --------------------------------------------------------------------------------

def test_s1_graph(region):
    expr = graphs.encode(s1_image(region, START, END))
    assert {a["id"] for a in calls(expr, "ImageCollection.load")} == {S1_COLLECTION}
    eqs = {(a["leftField"], a["rightValue"]) for a in calls(expr, "Filter.equals")}
    assert ("instrumentMode", "IW") in eqs
    pol = {(a["leftField"], a["rightValue"]) for a in calls(expr, "Filter.listContains")}
    assert pol == {("transmitterReceiverPolarisation", "VV"),
                   ("transmitterReceiverPolarisation", "VH")}
    assert {(a["start"], a["end"]) for a in calls(expr, "DateRange")} == {
        ("2017-06-01", "2017-09-01")}
    assert calls(expr, "Filter.intersects")
    assert ["VV", "VH"] in [a["bandSelectors"] for a in calls(expr, "Image.select")]
    # newest on top: ascending time sort, then a plain mosaic (no temporal reducer)
    (srt,) = calls(expr, "Collection.limit")
    assert srt["key"] == "system:time_start" and srt.get("ascending", True) is True
    assert calls(expr, "ImageCollection.mosaic")
    assert not any(n.startswith("Reducer.") for n in names(expr))
    assert "Image.toFloat" in names(expr)
    (unmask,) = calls(expr, "Image.unmask")
    assert unmask["value"]["value"] == graphs.S1_FILL and unmask["sameFootprint"] is False
    assert not calls(expr, "Image.clip")  # the export grid sets the extent


# --- MODIS land cover ----------------------------------------------------------------------------

def test_landcover_graph(region):
    expr = graphs.encode(landcover_image(region, 2016))
    assert {a["id"] for a in calls(expr, "ImageCollection.load")} == {"MODIS/061/MCD12Q1"}
    assert {(a["start"], a["end"]) for a in calls(expr, "DateRange")} == {
        ("2016-01-01", "2017-01-01")}
    (sel,) = calls(expr, "Image.select")
    assert sel["bandSelectors"] == list(LC_MODIS_BANDS) == [
        "LC_Type1", "LC_Prop1", "LC_Prop2", "LC_Prop3"]
    assert sel["newNames"] == list(LC_BANDS)
    (unmask,) = calls(expr, "Image.unmask")
    assert unmask["value"]["value"] == 255
    assert "Image.toUint16" in names(expr)
    # nearest neighbour only: no resampling or aggregation anywhere
    forbidden = {"Image.resample", "Image.reduceResolution", "Image.reproject"}
    assert not forbidden & set(names(expr))


def test_landcover_year_is_a_parameter(region):
    expr = graphs.encode(landcover_image(region, 2019))
    assert {(a["start"], a["end"]) for a in calls(expr, "DateRange")} == {
        ("2019-01-01", "2020-01-01")}


# --- summaries and grids ------------------------------------------------------------------------

def test_scene_summary_and_counts_graphs(region):
    expr = graphs.encode(graphs.scene_summary(region, START, END))
    text = json.dumps(expr)
    for key in ("CLOUDY_PERCENTAGE", "ROI_COVERAGE_PERCENT", "MEAN_SOLAR_AZIMUTH_ANGLE",
                "system:index", S1_COLLECTION, "MODIS/061/MCD12Q1"):
        assert key in text
    assert not calls(expr, "Image.displace")  # statistics need no shadows
    counts = graphs.encode(graphs.scene_counts(region, START, END))
    assert len(calls(counts, "Collection.size")) == 3


def test_pixel_grid_is_the_export_grid():
    grid = ROI.at(7, 1868, "land", 11.5, 48.1, 38400.0).export_grid()
    pg = graphs.pixel_grid(grid)
    assert pg["crsCode"] == "EPSG:4326"
    assert pg["affineTransform"]["scaleX"] == 0.0001
    assert pg["affineTransform"]["scaleY"] == -0.0001
    assert (pg["affineTransform"]["translateX"], pg["affineTransform"]["translateY"]) == (
        grid.transform.c, grid.transform.f)
    assert pg["dimensions"] == {"width": grid.width, "height": grid.height}


def test_graphs_build_without_initialisation_errors_for_bad_dates(ee_offline, region):
    with pytest.raises(ValueError):
        s1_image(region, START, "not-a-date")
    assert isinstance(s2_mosaic(region, START, END), ee.Image)
