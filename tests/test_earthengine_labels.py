"""The Earth Engine graphs of the 10 m labels, checked as values: a small evaluator of the
serialized graphs (written here, independent of graphs.py) runs them on hand-made images
and collections, and the results are compared with hand-worked values.

* ESA WorldCover: ``reduceResolution(mode)`` then ``reproject`` onto the export grid. The
  evaluator's ``reduceResolution`` is Earth Engine's rule (each source pixel weighted by
  the area it shares with the output pixel; a masked pixel does not count), its mode the
  weighted majority (ties to the lower value).
* Dynamic World: the season's images (bounds and date filters, sort by time), mode of
  ``label`` and mean of the probabilities over the unmasked images, pinned to the first
  image's projection at 10 m. A composite without ``setDefaultProjection`` has Earth
  Engine's default projection (EPSG:4326 at 1 degree), which the evaluator gives it, so a
  graph that forgets the pin fails the projection check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ee")

from affine import Affine  # noqa: E402

from ee_helpers import _walk, invocations, offline_ee  # noqa: E402
from sen12ms_build.backends.earthengine import graphs  # noqa: E402
from sen12ms_build.geo import Grid  # noqa: E402

#: Earth Engine's default projection of a composite: EPSG:4326 at 1 degree.
DEFAULT_PROJ = {"crs": "EPSG:4326", "scale_m": 111319.49}


@pytest.fixture(scope="module")
def ee_offline():
    with offline_ee():
        yield


@dataclass
class Img:
    """An image of the evaluator: bands (float64 arrays), a mask per band, its projection
    (``crs``, ``transform`` of the pixel grid, ``scale_m``) and properties."""

    bands: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]
    proj: dict[str, Any]
    props: dict[str, Any] = field(default_factory=dict)
    bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)


def _img(bands: dict[str, np.ndarray], proj: dict, masks: dict | None = None, **kw) -> Img:
    bands = {k: np.asarray(v, np.float64) for k, v in bands.items()}
    masks = masks or {}
    return Img(bands, {k: np.asarray(masks.get(k, np.ones(v.shape, bool)), bool)
                       for k, v in bands.items()}, proj, **kw)


def _weighted_mode(values: list[float], weights: list[float]) -> float | None:
    acc: dict[float, float] = {}
    for v, w in zip(values, weights):
        acc[v] = acc.get(v, 0.0) + w
    if not acc:
        return None
    return min(acc, key=lambda v: (-acc[v], v))


def _reduce_resolution(img: Img, transform: Affine, shape: tuple[int, int]) -> Img:
    """Earth Engine's reduceResolution + reproject with a mode reducer, on the output grid
    ``transform`` / ``shape`` (same CRS): each source pixel weighted by its overlap area."""
    st = img.proj["transform"]
    out_b, out_m = {}, {}
    for name, src in img.bands.items():
        out = np.zeros(shape)
        ok = np.zeros(shape, bool)
        for i in range(shape[0]):
            for j in range(shape[1]):
                x0, y0 = transform @ (j, i)
                x1, y1 = transform @ (j + 1, i + 1)
                vals, wts = [], []
                for r in range(src.shape[0]):
                    for c in range(src.shape[1]):
                        if not img.mask[name][r, c]:
                            continue
                        sx0, sy0 = st @ (c, r)
                        sx1, sy1 = st @ (c + 1, r + 1)
                        ox = min(x1, sx1) - max(x0, sx0)
                        oy = min(y0, sy0) - max(y1, sy1)
                        if ox > 1e-12 and oy > 1e-12:
                            vals.append(float(src[r, c]))
                            wts.append(ox * oy)
                m = _weighted_mode(vals, wts)
                if m is not None:
                    out[i, j], ok[i, j] = m, True
        out_b[name], out_m[name] = out, ok
    return Img(out_b, out_m, {"crs": img.proj["crs"], "transform": transform})


def evaluate(expr: dict, collections: dict[str, list[Img]], out_shape: tuple[int, int]
             | None = None) -> Img:
    """Evaluate a labels graph on ``collections`` (id -> images); ``out_shape`` is the
    requested grid's size where the graph reprojects."""

    def invoke(name: str, raw: dict, ev: Any) -> Any:
        if name == "Collection.map":  # the mapped function, per element
            body = raw["baseAlgorithm"]["functionDefinitionValue"]
            arg = body["argumentNames"][0]
            return [_walk(expr, {"valueReference": body["body"]}, invoke, {arg: el})
                    for el in ev(raw["collection"])]
        a = {k: ev(v) for k, v in raw.items()}
        if name == "ImageCollection.load":
            return list(collections[a["id"]])
        if name == "GeometryConstructors.Polygon":
            ring = a["coordinates"][0]
            xs, ys = [p[0] for p in ring], [p[1] for p in ring]
            return (min(xs), min(ys), max(xs), max(ys))
        if name == "Feature":
            return a["geometry"]
        if name == "Filter.intersects":
            return ("bounds", a["rightValue"])
        if name == "DateRange":
            return (a["start"], a["end"])
        if name == "Filter.dateRangeContains":
            return ("date", a["rightField"], *a["leftValue"])
        if name == "Collection.filter":
            f = a["filter"]
            if f[0] == "bounds":
                b = f[1]
                return [im for im in a["collection"] if not (
                    im.bbox[2] < b[0] or im.bbox[0] > b[2] or im.bbox[3] < b[1]
                    or im.bbox[1] > b[3])]
            _, key, start, end = f
            return [im for im in a["collection"] if start <= im.props[key] < end]
        if name == "Collection.limit":  # a sort (by key, ascending)
            return sorted(a["collection"], key=lambda im: im.props[a["key"]])
        if name == "Collection.first":
            return a["collection"][0]
        if name == "Image.select":
            im = a["input"]
            return replace(im, bands={b: im.bands[b] for b in a["bandSelectors"]},
                           mask={b: im.mask[b] for b in a["bandSelectors"]})
        if name == "Image.projection":
            return dict(a["image"].proj)
        if name == "Projection.atScale":
            return {**a["projection"], "scale_m": a["meters"]}
        if name == "Projection":
            return {"crs": a["crs"]}
        if name in ("Reducer.mode",):
            return "mode"
        if name == "ImageCollection.reduce":
            assert a["reducer"] == "mode"
            ims = a["collection"]
            out_b, out_m = {}, {}
            for b in ims[0].bands:
                stack = np.stack([im.bands[b] for im in ims])
                ok = np.stack([im.mask[b] for im in ims])
                res = np.zeros(stack.shape[1:])
                for idx in np.ndindex(*res.shape):
                    v = stack[(slice(None), *idx)][ok[(slice(None), *idx)]]
                    res[idx] = _weighted_mode(v.tolist(), [1.0] * len(v)) or 0
                out_b[f"{b}_mode"], out_m[f"{b}_mode"] = res, ok.any(0)
            return Img(out_b, out_m, dict(DEFAULT_PROJ))
        if name == "reduce.mean":
            ims = a["collection"]
            out_b, out_m = {}, {}
            for b in ims[0].bands:
                stack = np.stack([im.bands[b] for im in ims])
                ok = np.stack([im.mask[b] for im in ims])
                n = ok.sum(0)
                out_b[b] = np.where(n > 0, (stack * ok).sum(0) / np.maximum(n, 1), 0)
                out_m[b] = n > 0
            return Img(out_b, out_m, dict(DEFAULT_PROJ))
        if name == "Image.constant":
            return a["value"]
        if name == "Image.multiply":
            im, k = a["image1"], a["image2"]
            return replace(im, bands={b: v * k for b, v in im.bands.items()})
        if name == "Image.round":
            im = a["value"]
            # Earth Engine's round: half away from zero
            return replace(im, bands={b: np.sign(v) * np.floor(np.abs(v) + 0.5)
                                      for b, v in im.bands.items()})
        if name == "Image.rename":
            im = a["input"]
            return replace(im, bands=dict(zip(a["names"], im.bands.values())),
                           mask=dict(zip(a["names"], im.mask.values())))
        if name == "Image.setDefaultProjection":
            return replace(a["image"], proj=dict(a["crs"]))
        if name == "Image.addBands":
            d, s = a["dstImg"], a["srcImg"]
            return replace(d, bands={**d.bands, **s.bands}, mask={**d.mask, **s.mask})
        if name == "Image.unmask":
            im, v = a["input"], a["value"]
            return replace(im, bands={b: np.where(im.mask[b], x, v)
                                      for b, x in im.bands.items()},
                           mask={b: np.ones(m.shape, bool) for b, m in im.mask.items()})
        if name == "Image.toUint8":
            im = a["value"]
            return replace(im, bands={b: np.clip(v, 0, 255).astype(np.uint8)
                                      for b, v in im.bands.items()})
        if name == "Image.reduceResolution":
            assert a["reducer"] == "mode"
            return ("reduceResolution", a["image"])
        if name == "Image.reproject":
            kind, im = a["image"]
            assert kind == "reduceResolution" and a["crs"]["crs"] == im.proj["crs"]
            t = Affine(*a["crsTransform"])
            return _reduce_resolution(im, t, out_shape)
        raise KeyError(f"evaluator: {name} not supported")

    return _walk(expr, {"valueReference": expr["result"]}, invoke)


# --- ESA WorldCover ---------------------------------------------------------------------------

X0, Y0 = -75.6, 37.7


def _wc_source(arr: np.ndarray, res: float, mask: np.ndarray | None = None) -> Img:
    return _img({"Map": arr}, {"crs": "EPSG:4326", "transform": Affine(res, 0, X0, 0, -res,
                                                                         Y0)},
                {"Map": mask} if mask is not None else None)


def test_worldcover_mode_of_the_finer_pixels_on_the_export_grid(ee_offline):
    grid = Grid("EPSG:4326", Affine(1e-4, 0, X0, 0, -1e-4, Y0), 3, 2)
    expr = graphs.encode(graphs.worldcover_image(grid, "v100"))
    # source pixels half the export pixel: each export pixel is a 2 x 2 block
    src = np.array([[10, 10, 40, 80, 30, 30],
                    [10, 80, 40, 40, 30, 50],
                    [80, 80, 90, 90, 60, 60],
                    [80, 10, 90, 10, 60, 60]])
    mask = np.ones(src.shape, bool)
    mask[1, 5] = False  # a masked source pixel does not vote
    got = evaluate(expr, {"ESA/WorldCover/v100": [_wc_source(src, 5e-5, mask)]}, (2, 3))
    # by hand: the majority of each 2 x 2 block
    assert got.bands["Map"].tolist() == [[10, 40, 30], [80, 90, 60]]
    assert got.bands["Map"].dtype == np.uint8


def test_worldcover_invents_no_class_on_a_class_boundary(ee_offline):
    """Cropland (40) beside water (80) at WorldCover's own 1/12000 degree: a boundary
    seven source pixels in, inside the sixth export pixel. Bilinear would give 60 (bare)
    there; the mode keeps 40 where cropland covers most of the export pixel."""
    grid = Grid("EPSG:4326", Affine(1e-4, 0, X0, 0, -1e-4, Y0), 10, 2)
    src = np.full((3, 12), 80)
    src[:, :7] = 40
    expr = graphs.encode(graphs.worldcover_image(grid, "v200"))
    got = evaluate(expr, {"ESA/WorldCover/v200": [_wc_source(src, 1 / 12000)]}, (2, 10))
    # export pixel 5 spans [5e-4, 6e-4): 7/12000 = 5.83e-4 leaves 83 % of it cropland;
    # export pixels 0-4 lie in cropland, 6-9 in water
    assert got.bands["Map"][0].tolist() == [40] * 6 + [80] * 4
    assert set(np.unique(got.bands["Map"]).tolist()) <= {40, 80}


def test_worldcover_graph_projection_scale_and_no_interpolation(ee_offline):
    t = Affine(1e-4, 0, -75.6123, 0, -1e-4, 37.7456)
    grid = Grid("EPSG:4326", t, 640, 800)
    expr = graphs.encode(graphs.worldcover_image(grid, "v200"))
    names = [n for n, _ in invocations(expr)]
    assert "Image.resample" not in names  # nearest / mode only, never bilinear
    (load,) = [a for n, a in invocations(expr) if n == "ImageCollection.load"]
    assert load["id"] == "ESA/WorldCover/v200"
    (rep,) = [a for n, a in invocations(expr) if n == "Image.reproject"]
    assert rep["crsTransform"] == [t.a, t.b, t.c, t.d, t.e, t.f]  # the export grid itself
    assert rep["crs"]["crs"] == "EPSG:4326"
    (rr,) = [a for n, a in invocations(expr) if n == "Image.reduceResolution"]
    assert rr["reducer"]["__call__"] == "Reducer.mode"


# --- Dynamic World ----------------------------------------------------------------------------

UTM = {"crs": "EPSG:32618", "transform": Affine(10, 0, 440000, 0, -10, 4170000),
       "scale_m": 10}
REGION = [(-75.6, 37.6), (-75.5, 37.6), (-75.5, 37.7), (-75.6, 37.7), (-75.6, 37.6)]
DW_NAMES = ["water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub",
            "built", "bare", "snow_and_ice"]


def _dw(label: list[list[int]], probs: dict[str, float], time: str, mask=None,
        bbox=(-75.7, 37.5, -75.4, 37.8)) -> Img:
    lab = np.array(label, np.float64)
    bands = {"label": lab}
    for n in DW_NAMES:
        bands[n] = np.full(lab.shape, probs.get(n, 0.0))
    masks = {b: mask for b in bands} if mask is not None else None
    proj = dict(UTM)
    proj["transform"] = UTM["transform"]
    return _img(bands, proj, masks, props={"system:time_start": time}, bbox=bbox)


def test_dynamicworld_mode_and_mean_of_the_season(ee_offline):
    expr = graphs.encode(graphs.dynamicworld_image(graphs.region_of(REGION), "2017-03-01",
                                                   "2017-05-30"))
    half = np.array([[True, True], [True, False]])  # image c misses one pixel
    a = _dw([[1, 4], [0, 6]], {"trees": 0.6, "crops": 0.2}, "2017-04-10")
    b = _dw([[1, 4], [4, 6]], {"trees": 0.2, "crops": 0.4}, "2017-03-20")
    c = _dw([[2, 1], [0, 7]], {"trees": 0.0, "crops": 0.9}, "2017-05-01", mask=half)
    late = _dw([[8, 8], [8, 8]], {"snow_and_ice": 1.0}, "2017-06-02")  # after the season
    away = _dw([[8, 8], [8, 8]], {"snow_and_ice": 1.0}, "2017-04-01",
               bbox=(10.0, 50.0, 10.1, 50.1))  # elsewhere
    got = evaluate(expr, {"GOOGLE/DYNAMICWORLD/V1": [a, late, away, b, c]})
    # by hand: label mode per pixel over a, b, c (c masked at the bottom right)
    assert got.bands["label"].tolist() == [[1, 4], [0, 6]]
    # mean probability x 250, rounded: trees (0.6 + 0.2 + 0.0) / 3 = 0.2667 -> 66.7 -> 67
    # where all three count, (0.6 + 0.2) / 2 = 0.4 -> 100 at the pixel c misses
    assert got.bands["trees"].tolist() == [[67, 67], [67, 100]]
    # crops: (0.2 + 0.4 + 0.9) / 3 = 0.5 -> 125; (0.2 + 0.4) / 2 = 0.3 -> 75
    assert got.bands["crops"].tolist() == [[125, 125], [125, 75]]
    assert got.bands["snow_and_ice"].max() == 0  # the late and the far image do not count
    assert list(got.bands) == ["label", *DW_NAMES]
    assert all(v.dtype == np.uint8 for v in got.bands.values())


def test_dynamicworld_is_pinned_to_the_first_images_projection_at_10_m(ee_offline):
    expr = graphs.encode(graphs.dynamicworld_image(graphs.region_of(REGION), "2017-03-01",
                                                   "2017-05-30"))
    first = _dw([[1]], {"trees": 1.0}, "2017-03-05")
    later = _dw([[1]], {"trees": 1.0}, "2017-04-05")
    later.proj = {"crs": "EPSG:32619", "transform": Affine(10, 0, 0, 0, -10, 0),
                  "scale_m": 10}
    got = evaluate(expr, {"GOOGLE/DYNAMICWORLD/V1": [later, first]})
    # the oldest image's projection (sorted by time), at 10 m: not EPSG:4326 at 1 degree
    assert got.proj["crs"] == "EPSG:32618" and got.proj["scale_m"] == 10
    assert got.proj != DEFAULT_PROJ
    names = [n for n, _ in invocations(expr)]
    assert "Image.resample" not in names
    assert names.count("Image.setDefaultProjection") == 2  # label and probabilities


def test_dynamicworld_nodata_where_no_image_covers(ee_offline):
    expr = graphs.encode(graphs.dynamicworld_image(graphs.region_of(REGION), "2017-03-01",
                                                   "2017-05-30"))
    none = np.array([[True, False]])
    got = evaluate(expr, {"GOOGLE/DYNAMICWORLD/V1": [
        _dw([[3, 3]], {"water": 0.5}, "2017-03-05", mask=none)]})
    assert got.bands["label"].tolist() == [[3, 255]]
    assert got.bands["water"].tolist() == [[125, 255]]


def test_scene_summary_and_counts_list_the_label_images(ee_offline):
    region = graphs.region_of(REGION)
    for labels, coll in (("worldcover", "ESA/WorldCover/v100"),
                         ("dynamicworld", "GOOGLE/DYNAMICWORLD/V1")):
        for expr in (graphs.encode(graphs.scene_counts(region, "2017-03-01", "2017-05-30",
                                                       labels=labels)),
                     graphs.encode(graphs.scene_summary(region, "2017-03-01", "2017-05-30",
                                                        labels=labels))):
            ids = [a["id"] for n, a in invocations(expr) if n == "ImageCollection.load"]
            assert coll in ids
    plain = graphs.encode(graphs.scene_counts(region, "2017-03-01", "2017-05-30"))
    ids = [a["id"] for n, a in invocations(plain) if n == "ImageCollection.load"]
    assert not any("WorldCover" in i or "DYNAMICWORLD" in i for i in ids)
    assert math.isclose(graphs.LABEL_MAX_PIXELS, 1024)  # re-exported from labels
