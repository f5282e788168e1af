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

import numpy as np
import pytest

pytest.importorskip("ee")

import ee  # noqa: E402

from ee_helpers import (calls, constants, evaluate, evaluate_image,  # noqa: E402
                        function_nodes, invocations, offline_ee)
from sen12ms_build import mosaic
from sen12ms_build.mosaic import scorers  # noqa: E402
from sen12ms_build.mosaic import image as mosaic_image  # noqa: E402
from sen12ms_build.mosaic import merging as mosaic_merging  # noqa: E402
from sen12ms_build.mosaic import scores as mosaic_scores  # noqa: E402
from sen12ms_build.backends.earthengine import (graphs, landcover_image, s1_image,  # noqa: E402
                                                s2_mosaic)
from sen12ms_build.mosaic import MosaicParams  # noqa: E402
from sen12ms_build.products import (AUX_MASKS, LC_BANDS, LC_MODIS_BANDS,  # noqa: E402
                                    S1_COLLECTION, S2_BANDS)
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
    # the aux bands of the local backend's aux raster, in its order
    assert list(AUX_MASKS.bands) == ["source_index", "poor", "cloud", "shadow"]
    assert list(AUX_MASKS.bands) in selects
    assert ["source_index", "poor"] not in selects


# --- the aux raster's cloud and shadow masks ---------------------------------------------------

@pytest.mark.parametrize("thresh", [MosaicParams().cloud_thresh, 0.35])
def test_cloud_and_shadow_masks_as_values_match_the_local_backend(ee_offline, thresh):
    """The serialized mask graph, evaluated on score arrays, gives the local backend's
    masks pixel for pixel (edges at the threshold included: ``>``, not ``>=``)."""
    p = MosaicParams().with_overrides({"cloud_thresh": thresh})
    rng = np.random.default_rng(3)
    cloud = rng.uniform(0, 1, (16, 16))  # float64 on both sides: the threshold exactly
    shadow = rng.uniform(0, 1, (16, 16))
    cloud[0, :4] = shadow[1, :4] = thresh  # at the threshold: not flagged
    shadow[2, :4], cloud[2, :4] = 0.9, 0.9  # both scores high: cloud wins
    expr = graphs.encode(graphs.cloud_shadow_masks(ee.Image("CLOUD"), ee.Image("SHADOW"), p))
    got = evaluate_image(expr, {"CLOUD": cloud, "SHADOW": shadow})
    assert list(got) == ["cloud", "shadow"]
    want_cloud, want_shadow = mosaic.cloud_shadow_masks(cloud, shadow, p)  # numpy side
    np.testing.assert_array_equal(got["cloud"], want_cloud)
    np.testing.assert_array_equal(got["shadow"], want_shadow)
    assert want_cloud.any() and want_shadow.any() and not (want_cloud & want_shadow).any()
    assert not got["cloud"][0, :4].any() and not got["shadow"][1, :4].any()
    assert got["cloud"][2, :4].all() and not got["shadow"][2, :4].any()


@pytest.mark.parametrize("over_water", [False, True])
def test_shadow_candidates_as_values_match_the_local_backend(ee_offline, water_scene,
                                                             over_water):
    """The serialized shadow-candidate graph, evaluated on a raster where a cloud's shadow
    falls on water, gives the numpy candidates pixel for pixel with ``shadow_over_water``
    off (the paper: water is never a candidate) and on (dark water is)."""
    l1c, cloud, water, dark_land, _geometry = water_scene
    p = MosaicParams(shadow_over_water=over_water)
    image = ee.Image.cat([ee.Image(b) for b in S2_BANDS])  # band b reads images[b]
    expr = graphs.encode(graphs.shadow_candidates(image, ee.Image("CLOUD"), p))
    arrays = {b: l1c[i] for i, b in enumerate(S2_BANDS)} | {"CLOUD": cloud}
    (got,) = evaluate_image(expr, arrays).values()
    want = mosaic.shadow_candidates(l1c, cloud, p)  # numpy side
    np.testing.assert_array_equal(got.astype(bool), want)
    assert got[dark_land].all() and not got[~(water | dark_land)].any()
    assert got[water].all() if over_water else not got[water].any()


def _mask_node(expr):
    """The resolved ``cloud_shadow_masks`` of a scored image (the addBands of the two
    renamed masks), found in a serialized S2 graph."""
    (node,) = [a for a in calls(expr, "Image.addBands")
               if a["dstImg"].get("__call__") == "Image.rename"
               and a["dstImg"]["names"] == ["cloud"]
               and a["dstImg"]["input"]["__call__"] == "Image.gt"]  # not the statistics
    return node


def test_scored_images_carry_the_masks_through_the_merge(s2_expr):
    """Every scored image gets the cloud and shadow masks of its own scores (masked outside
    its footprint, like source_index and poor), so the merge picks each pixel's masks with
    its pixels: the masks of the image the pixel was taken from."""
    p = MosaicParams()
    node = _mask_node(s2_expr)
    cloud_gt = node["dstImg"]["input"]
    assert cloud_gt["__call__"] == "Image.gt" and cloud_gt["image2"]["value"] == p.cloud_thresh
    assert cloud_gt["image1"]["__call__"] == "Image.rename"
    assert cloud_gt["image1"]["names"] == ["cloudScore"]
    shadow = node["srcImg"]
    assert shadow["names"] == ["shadow"] and shadow["input"]["__call__"] == "Image.and"
    shadow_gt = shadow["input"]["image1"]
    assert shadow_gt["image1"]["names"] == ["shadowScore"]
    assert shadow["input"]["image2"] == {"__call__": "Image.not", "value": cloud_gt}
    # masked by the footprint, cat with the other per-image aux bands
    masked = [a for a in calls(s2_expr, "Image.updateMask")
              if a["image"] == {"__call__": "Image.addBands", **node}]
    assert len(masked) == 1
    # the export selects the four aux bands after the merge (qualityMosaic / mosaic)
    (aux_sel,) = [a for a in calls(s2_expr, "Image.select")
                  if a["bandSelectors"] == list(AUX_MASKS.bands)]
    assert aux_sel["input"]["__call__"] == "ImageCollection.mosaic"


def test_scorer_with_shadows_gives_occlusion_as_cloud_and_no_shadow(region):
    """Cloud Score+ (``includes_shadow``): its score is occlusion, clouds and shadows; the
    shadow score is the constant 0, so the shadow mask is 0 and the cloud mask holds all
    the scorer flags."""
    p = MosaicParams().with_overrides({"scorer": "cloudscoreplus"})
    expr = graphs.encode(s2_mosaic(region, START, END, p, with_aux=True))
    assert not calls(expr, "Image.displace")
    shadow_score = _mask_node(expr)["srcImg"]["input"]["image1"]["image1"]
    assert shadow_score == {"__call__": "Image.rename", "names": ["shadowScore"],
                            "input": {"__call__": "Image.constant", "value": 0}}
    occlusion = np.array([[0.0, 0.1, 0.5, 1.0]])
    mask = graphs.encode(graphs.cloud_shadow_masks(
        ee.Image("CLOUD"), ee.Image.constant(0).rename("shadowScore"), p))
    got = evaluate_image(mask, {"CLOUD": occlusion})
    np.testing.assert_array_equal(got["cloud"], occlusion > p.cloud_thresh)
    assert not got["shadow"].any()


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


def _graph_displacements(expr, azimuth, zenith):
    """(east, north) metres the serialized graph's ``displace`` samples at, per height:
    the graph's own ee.Number arithmetic evaluated with the given solar angles."""
    (disp,) = function_nodes(expr, "Image.displace")
    props = {"MEAN_SOLAR_AZIMUTH_ANGLE": azimuth, "MEAN_SOLAR_ZENITH_ANGLE": zenith}
    return {h: tuple(evaluate(expr, disp["arguments"]["displacement"], props, {"h": h}))
            for h in MosaicParams().cloud_heights_m}


# (azimuth, zenith, height) -> (east, north) of the cloud seen from its shadow, worked by hand
HAND_WORKED = [
    (180.0, 45.0, 1000, (0.0, -1000.0)),  # sun due south, 45 deg: shadow 1 km north
    (90.0, 45.0, 1000, (1000.0, 0.0)),  # sun due east: shadow 1 km west
    (270.0, 45.0, 1000, (-1000.0, 0.0)),  # sun due west: shadow east
    (0.0, 45.0, 1000, (0.0, 1000.0)),  # sun due north (southern summer): shadow south
    (135.0, 60.0, 200, (200 * math.sqrt(3) / math.sqrt(2), -200 * math.sqrt(3) / math.sqrt(2))),
]


@pytest.mark.parametrize("azimuth,zenith,height,where", HAND_WORKED)
def test_shadow_displacement_values_on_both_backends(s2_expr, azimuth, zenith, height, where):
    """The one formula (mosaic.shadow_displacement_m) as numbers: with floats (numpy side),
    and the serialized Earth Engine graph's own arithmetic evaluated with these angles."""
    east, north = mosaic.shadow_displacement_m(azimuth, zenith, height)
    assert east == pytest.approx(where[0], abs=1e-9)
    assert north == pytest.approx(where[1], abs=1e-9)
    if height in MosaicParams().cloud_heights_m:
        graph = _graph_displacements(s2_expr, azimuth, zenith)[height]
        assert graph == pytest.approx(where, abs=1e-9)


@pytest.mark.parametrize("azimuth,zenith", [(163.2, 27.5), (101.0, 62.0), (250.0, 40.0),
                                            (12.0, 70.0)])
def test_graph_displacement_matches_numpy_offsets_for_every_height(s2_expr, azimuth, zenith):
    """Every height: the graph samples where numpy's shadow_offsets_px looks (in pixels
    of 20 m), so the east-west and north-south signs and the heights agree as values."""
    p = MosaicParams()
    graph = _graph_displacements(s2_expr, azimuth, zenith)
    assert sorted(graph) == list(p.cloud_heights_m)
    offsets = mosaic.shadow_offsets_px((20.0, 20.0), azimuth, zenith, p.cloud_heights_m)
    for h, (row, col) in zip(p.cloud_heights_m, offsets):
        east, north = graph[h]
        assert (int(round(-north / 20.0)), int(round(east / 20.0))) == (row, col), h
    # the farthest height: d = tan(zenith) * 9950 m, the sun's side
    east, north = graph[p.cloud_heights_m[-1]]
    d = math.tan(math.radians(zenith)) * p.cloud_heights_m[-1]
    assert math.hypot(east, north) == pytest.approx(d)
    assert math.copysign(1, east) == math.copysign(1, math.sin(math.radians(azimuth)))
    assert math.copysign(1, north) == math.copysign(1, math.cos(math.radians(azimuth)))


def test_s2_shadow_projection_is_averaged_over_the_heights(s2_expr):
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
        if isinstance(value, bool):  # a switch: the graph takes another shape
            expr = graphs.encode(s2_mosaic(region, START, END,
                                           base.with_overrides({f.name: not value}),
                                           with_aux=True))
            assert expr != graphs.encode(s2_mosaic(region, START, END, base, with_aux=True))
            continue
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
    numpy_side = set().union(*(_params_attributes(m) for m in (
        mosaic_scores, mosaic_image, mosaic_merging, scorers)))
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
    assert literals <= {0, 1, 4, 10, 100, 180, 1e10, 9999.0}, literals  # 4: tileScale


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


# --- the backends agree: each decision pinned on both sides ---------------------------------

def _consumers(expr, name):
    """Resolved ``Image.reproject`` calls whose input is a call of ``name``."""
    return [r for r in calls(expr, "Image.reproject")
            if isinstance(r.get("image"), dict) and r["image"].get("__call__") == name]


def test_every_kernel_runs_at_the_score_scale_in_the_graph(s2_expr):
    """Earth Engine runs an operation in the projection its output is requested in: each
    neighbourhood operation's *output* is reprojected to 20 m (pinning its kernel), not
    only its input. The quality mean is one of them."""
    p = MosaicParams()
    pinned = _consumers(s2_expr, "Image.reduceNeighborhood")
    radii = sorted((r["image"]["reducer"]["__call__"], r["image"]["kernel"]["radius"])
                   for r in pinned)
    assert radii == sorted([("Reducer.mean", p.cloud_kernel_radius),
                            ("Reducer.max", p.shadow_max_radius_px),
                            ("Reducer.mean", p.quality_kernel_radius)])
    for r in pinned:
        assert r["scale"] == p.score_scale_m
        assert r["crs"] == {"__call__": "Projection", "crs": "EPSG:4326"}
        # and the kernel's input is computed at the score scale too (as the scripts do)
        inner = r["image"]["image"]
        while inner.get("__call__") in ("Image.focalMax", "Image.focalMin"):
            inner = inner["image"]
        assert inner["__call__"] == "Image.reproject" and inner["scale"] == p.score_scale_m


def test_quality_mean_window_is_at_the_score_scale_in_numpy():
    """numpy side of the same decision: on a 10 m grid one cloudy 20 m block changes the
    quality over +-(cloud radius + quality radius) blocks of 20 m, i.e. 2 x 2 x 10 + 2 px."""
    p = MosaicParams()
    n = 96
    l1c = np.zeros((13, n, n), np.uint16)
    clear = {"B1": 300, "B2": 400, "B3": 600, "B4": 500, "B8": 3000, "B11": 2000, "B12": 1000}
    for name, i in zip(S2_BANDS, range(13)):
        l1c[i] = clear.get(name, 800)
    l1c[:, 46:48, 46:48] = 8000  # one 20 m block (rows/cols 46-47 = block 23)
    sc = mosaic.score_image(l1c, (10.0, 10.0), 180.0, 30.0, params=p)
    q = sc.quality
    changed = np.abs(q - q[0, 0]) > 1e-6
    rows = np.flatnonzero(changed.any(axis=1))
    reach = p.cloud_kernel_radius + p.quality_kernel_radius  # in 20 m blocks
    assert rows[0] == 46 - 2 * reach and rows[-1] == 47 + 2 * reach
    assert len(rows) == 2 * 2 * reach + 2


def test_cloudy_percentage_denominator_is_the_covered_roi_on_both_backends(region):
    """Decision (docs/earthengine.md): CLOUDY_PERCENTAGE = cloudy area inside the ROI over
    the image's footprint inside the ROI (the area it covers there), x 100."""
    expr = graphs.encode(graphs.s2_collection(region, START, END).map(
        lambda img: graphs.add_statistics(ee.Image(img), graphs.cloud_score(ee.Image(img)),
                                          graphs.footprint(ee.Image(img)), region)))
    divides = [(a["left"], a["right"]) for a in calls(expr, "Number.divide")
               if isinstance(a["left"], dict) and isinstance(a["right"], dict)]

    def key(node):
        while isinstance(node, dict) and node.get("__call__") == "Number":
            node = node.get("number", node.get("input"))
        return node.get("key") if isinstance(node, dict) else None

    pairs = {(key(left), key(right)) for left, right in divides}
    assert ("cloud", "covered") in pairs  # CLOUDY_PERCENTAGE
    assert ("covered", "roi") in pairs  # ROI_COVERAGE_PERCENT
    # numpy: an image covering half the ROI, cloudy on a quarter of what it covers
    roi = np.ones((8, 8), bool)
    valid = np.zeros((8, 8), bool)
    valid[:, :4] = True
    cloud = np.zeros((8, 8), np.float32)
    cloud[:2, :4] = 1.0
    assert mosaic.cloudy_percentage(cloud, valid, roi) == 25.0
    assert mosaic.roi_coverage_percent(valid, roi) == 50.0


def test_merge_order_has_a_deterministic_tie_breaker_on_both_backends(region):
    """Equal CLOUDY_PERCENTAGE (granules of one datatake): the earlier image (collection
    order) lies lower; the collection order itself breaks equal times by system:index."""
    assert mosaic.best_images([3.0, 1.0, 3.0, 1.0, 7.0]) == [0, 2, 1, 3]
    assert mosaic.merge_order_key(3.0, 0) < mosaic.merge_order_key(3.0, 2) \
        < mosaic.merge_order_key(1.0, 1)
    expr = graphs.encode(graphs.best_collection(
        graphs.scored_collection(region, START, END)))
    sorts = calls(expr, "Collection.limit")
    outer = [s for s in sorts if s.get("key") == graphs.CLOUDY_PERCENTAGE]
    assert len(outer) == 1 and outer[0]["ascending"] is False
    inner = outer[0]["collection"]
    assert inner["__call__"] == "Collection.limit" and inner["key"] == graphs.SOURCE_INDEX
    time_sorts = [s for s in sorts if s.get("key") == "system:time_start"]
    assert time_sorts and all(s["collection"]["__call__"] == "Collection.limit"
                              and s["collection"]["key"] == "system:index" for s in time_sorts)


def test_statistics_use_tile_scale_at_the_documented_scale(region):
    expr = graphs.encode(graphs.statistics_collection(region, START, END))
    (stats,) = calls(expr, "Image.reduceRegion")
    assert stats["tileScale"] == graphs.STATS_TILE_SCALE
    assert stats["scale"] == MosaicParams().score_scale_m
    assert "bestEffort" not in stats  # it would coarsen the scale silently


def _indicator(node):
    """A cloud-score indicator of the serialized graph as a formula over band names."""
    call = node["__call__"]
    if call == "Image.select":
        (band,) = node["bandSelectors"]
        return band
    if call == "Image.add":
        return f"{_indicator(node['image1'])}+{_indicator(node['image2'])}"
    if call == "Image.normalizedDifference":
        return "nd({},{})".format(*node["bandNames"])
    raise AssertionError(call)


def test_each_indicator_is_rescaled_over_its_own_range_on_both_backends(s2_expr):
    """The range belongs to the right indicator (a swapped pair would keep the set of
    ranges), and both backends rescale the same way: a DN image at the range's ends scores
    0 and 1 in numpy's rescale, as unitScale(low, high) does."""
    p = MosaicParams()
    graph = {_indicator(a["input"]): (a["low"], a["high"])
             for a in calls(s2_expr, "Image.unitScale")}
    assert graph == {"B2": p.b2_range, "B1": p.b1_range, "B1+B10": p.b1_b10_range,
                     "B4+B3+B2": p.rgb_sum_range, "nd(B8,B11)": p.ndmi_range,
                     "nd(B3,B11)": p.ndsi_range}
    for low, high in graph.values():
        assert mosaic.rescale(np.float64(low), (low, high)) == 0.0
        assert mosaic.rescale(np.float64(high), (low, high)) == pytest.approx(1.0)
    # the decreasing NDSI range scores high below its lower end (clouds are not snow)
    assert mosaic.rescale(np.float64(0.5), p.ndsi_range) > 1.0
