"""What the Earth Engine graphs compute, as numbers: a one-pixel evaluator of the serialized
``ee.Image`` arithmetic (written here, independent of graphs.py) runs the request graphs of
the cloud score, Cloud Score+ calibration, quality, poor mask and per-image statistics on
hand-made pixels, and the results are compared with hand-worked values and the numpy side.

An image is a dict band -> float (or None where masked). Spatial operations
(reduceNeighborhood, focal filters, reproject) are identities: every input here is
spatially constant, and a neighbourhood mean or maximum of a constant is that constant.
Placeholders: ``ee.Image.constant(v)`` with a negative sentinel ``v`` reads the current
pixel's value of that sentinel, so ``reduceRegion`` can sum over several pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ee")

import ee  # noqa: E402

from ee_helpers import offline_ee  # noqa: E402
from sen12ms_build import mosaic  # noqa: E402
from sen12ms_build.backends.earthengine import graphs  # noqa: E402
from sen12ms_build.mosaic import MosaicParams  # noqa: E402
from sen12ms_build.products import S2_BANDS  # noqa: E402

CLOUD, VALID, CS = -101.0, -102.0, -103.0  # placeholders
AREA = 400.0  # pixel area (m2) at 20 m


@pytest.fixture(scope="module")
def ee_offline():
    with offline_ee():
        yield


def _bin(a: dict, b: dict, f) -> dict:
    if len(b) == 1 and len(a) > 1:
        (bv,) = b.values()
        return {k: None if v is None or bv is None else f(v, bv) for k, v in a.items()}
    if len(a) == 1 and len(b) > 1:
        (av,) = a.values()
        return {k: None if v is None or av is None else f(av, v) for k, v in b.items()}
    assert len(a) == len(b), (a, b)
    return {ka: None if va is None or vb is None else f(va, vb)
            for (ka, va), vb in zip(a.items(), b.values())}


_BINARY = {
    "Image.add": lambda x, y: x + y, "Image.subtract": lambda x, y: x - y,
    "Image.multiply": lambda x, y: x * y, "Image.divide": lambda x, y: x / y,
    "Image.min": min, "Image.max": max,
    "Image.lt": lambda x, y: float(x < y), "Image.gt": lambda x, y: float(x > y),
    "Image.and": lambda x, y: float(bool(x) and bool(y)),
}


def run(expr: dict, pixels: list[dict[float, float | None]]) -> Any:
    values = expr["values"]

    def ev(n: Any, px: dict) -> Any:
        if isinstance(n, list):
            return [ev(v, px) for v in n]
        if not isinstance(n, dict):
            return n
        if "valueReference" in n:
            return ev(values[n["valueReference"]], px)
        if "constantValue" in n:
            return n["constantValue"]
        if "arrayValue" in n:
            return [ev(v, px) for v in n["arrayValue"]["values"]]
        if "dictionaryValue" in n:
            return {k: ev(v, px) for k, v in n["dictionaryValue"]["values"].items()}
        inv = n["functionInvocationValue"]
        name, raw = inv["functionName"], inv.get("arguments", {})
        if name == "If":  # lazy, as on the server: the other branch may divide by zero
            return ev(raw["trueCase"] if ev(raw["condition"], px) else raw["falseCase"], px)
        if name == "Image.reduceRegion":  # sum of each band over the pixels
            sums: dict[str, float] = {}
            for p in pixels:
                for k, v in ev(raw["image"], p).items():
                    sums[k] = sums.get(k, 0.0) + (v or 0.0)
            assert ev(raw["reducer"], px) == "sum"
            return sums
        a = {k: ev(v, px) for k, v in raw.items()}
        if name == "Image.constant":
            v = a["value"]
            if isinstance(v, list):
                return {f"constant_{i}": float(x) for i, x in enumerate(v)}
            return {"constant": px[v] if v in px else float(v)}
        if name in _BINARY:
            return _bin(a["image1"], a["image2"], _BINARY[name])
        img = a.get("input", a.get("image", a.get("value")))
        if name == "Image.rename":
            return dict(zip(a["names"], img.values(), strict=True))
        if name == "Image.select":
            sel = a["bandSelectors"]
            out = {k: img[k] for k in sel}
            return dict(zip(a["newNames"], out.values())) if a.get("newNames") else out
        if name in ("Image.reproject", "Image.reduceNeighborhood", "Image.focalMin",
                    "Image.focalMax"):
            return img
        if name == "Image.unmask":
            fill = list(a["value"].values())[0]
            return {k: fill if v is None else v for k, v in img.items()}
        if name == "Image.clamp":
            return {k: None if v is None else min(max(v, a["low"]), a["high"]) for k, v in
                    img.items()}
        if name == "Image.where":
            (t,) = a["test"].values()
            (w,) = a["value"].values()
            return {k: w if t else v for k, v in img.items()}
        if name == "Image.not":
            return {k: float(not v) for k, v in img.items()}
        if name == "Image.unitScale":
            lo, hi = a["low"], a["high"]
            return {k: (v - lo) / (hi - lo) for k, v in img.items()}
        if name == "Image.normalizedDifference":
            p, q = (img[b] for b in a["bandNames"])
            return {"nd": 0.0 if p + q == 0 else (p - q) / (p + q)}
        if name == "Image.reduce":
            vals = list(img.values())
            return {a["reducer"]: {"sum": sum, "max": max}[a["reducer"]](vals)}
        if name == "Image.addBands":
            return {**a["dstImg"], **a["srcImg"]}
        if name == "Image.pixelArea":
            return {"area": px.get("area", AREA)}
        if name in ("Reducer.sum", "Reducer.max", "Reducer.mean"):
            return name.split(".")[1]
        if name in ("Projection", "Kernel.square", "GeometryConstructors.Point"):
            return name
        if name == "Dictionary.get":
            return a["dictionary"][a["key"]]
        if name == "Number.gt":
            return float(a["left"] > a["right"])
        if name == "Number.divide":
            return a["left"] / a["right"]
        if name == "Number.multiply":
            return a["left"] * a["right"]
        if name == "Element.set":
            obj = a["object"]
            return {"__props__": {**obj.get("__props__", {}), a["key"]: a["value"]}}
        raise KeyError(f"the test evaluator has no rule for {name}")

    return ev(values[expr["result"]], pixels[0] if pixels else {})


def s2_pixel(dn: dict[str, int]) -> ee.Image:
    return ee.Image.constant([float(dn[b]) for b in S2_BANDS]).rename(list(S2_BANDS))


def _spec_cloud_score(dn: dict[str, int]) -> float:
    """Hand-written from the spec's table (not from mosaic.py)."""
    r = {k: v / 10000.0 for k, v in dn.items()}

    def nd(p, q):
        return (p - q) / (p + q)

    return max(0.001, min(1.0, (r["B2"] - 0.1) / 0.4, (r["B1"] - 0.1) / 0.2,
                          (r["B1"] + r["B10"] - 0.15) / 0.05,
                          (r["B4"] + r["B3"] + r["B2"] - 0.2) / 0.6,
                          (nd(r["B8"], r["B11"]) + 0.1) / 0.2,
                          (nd(r["B3"], r["B11"]) - 0.8) / -0.2))


PIXELS = {
    "clear land": dict.fromkeys(S2_BANDS, 800) | {"B8": 3000, "B11": 1500, "B1": 900},
    "bright cloud": dict.fromkeys(S2_BANDS, 4000) | {"B11": 3500, "B8": 4200, "B10": 900},
    "half": dict.fromkeys(S2_BANDS, 1500) | {"B1": 1800, "B2": 2500, "B10": 200,
                                            "B8": 2600, "B11": 2500},
    "thick cloud": dict.fromkeys(S2_BANDS, 9000) | {"B11": 4000},  # every indicator > 1
    "snow": dict.fromkeys(S2_BANDS, 6000) | {"B11": 500, "B10": 500},
}


@pytest.mark.parametrize("name", sorted(PIXELS))
def test_cloud_score_graph_equals_the_spec(ee_offline, name):
    dn = PIXELS[name]
    got = run(graphs.encode(graphs.cloud_score(s2_pixel(dn))), [{}])
    want = _spec_cloud_score(dn)
    assert got["cloudScore"] == pytest.approx(want, abs=1e-9)
    img = np.array([[[dn[b]]] for b in S2_BANDS], np.uint16)
    numpy = mosaic.cloud_score(img, MosaicParams(cloud_kernel_radius=0))[0, 0]
    assert float(numpy) == pytest.approx(want, abs=1e-5)


def test_the_pixels_span_the_score(ee_offline):
    scores = {n: _spec_cloud_score(d) for n, d in PIXELS.items()}
    assert scores["clear land"] < 0.2 < scores["bright cloud"]
    assert scores["snow"] < 0.2 and 0.05 < scores["half"] < 0.95
    assert scores["thick cloud"] == 1.0


@pytest.mark.parametrize("cs, want", [(1.0, 0.0), (0.8, 0.1), (0.6, 0.2), (0.3, 0.6),
                                      (0.0, 1.0), (1.4, 0.0), (None, 1.0)])
def test_cloudscoreplus_calibration(ee_offline, cs, want):
    """1 - cs_cdf rescaled so that Google's clear threshold 0.6 is the cloud threshold 0.2:
    linear from (cs 1, score 0) to (0.6, 0.2) and from (0.6, 0.2) to (0, 1); a masked
    cs_cdf (no Cloud Score+ image) counts as fully occluded."""
    img = ee.Image.constant(CS).rename(graphs.CS_BAND)
    got = run(graphs.encode(graphs.cloudscoreplus_score(
        img, MosaicParams(scorer="cloudscoreplus"))), [{CS: cs}])
    assert got["cloudScore"] == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("cloud, shadow, quality, poor", [
    (0.1, 0.05, -0.1, 0.0), (0.1, 0.3, -0.3, 1.0), (0.5, 0.0, -0.5, 1.0),
    (0.2, 0.2, -0.2, 0.0)])
def test_quality_and_poor_mask(ee_offline, cloud, shadow, quality, poor):
    c = ee.Image.constant(CLOUD).rename("cloudScore")
    s = ee.Image.constant(-104.0).rename("shadowScore")
    q = graphs.quality_score(c, s)
    px = [{CLOUD: cloud, -104.0: shadow}]
    assert run(graphs.encode(q), px)[graphs.QUALITY_BAND] == pytest.approx(quality)
    assert run(graphs.encode(graphs.poor_mask(q)), px)[graphs.POOR_BAND] == poor
    np_q = mosaic.quality_score(np.float32([[cloud]]), np.float32([[shadow]]),
                                np.ones((1, 1), bool))
    assert float(np_q[0, 0]) == pytest.approx(quality, abs=1e-6)
    assert bool(mosaic.poor_mask(np_q)[0, 0]) == bool(poor)


def test_statistics_percentages(ee_offline):
    img = ee.Image.constant(0).rename("x")
    cloud = ee.Image.constant(CLOUD)
    valid = ee.Image.constant(VALID)
    expr = graphs.encode(graphs.add_statistics(img, cloud, valid, ee.Geometry.Point([0, 0])))
    pixels = [{CLOUD: 0.5, VALID: 1.0}, {CLOUD: 0.1, VALID: 1.0}, {CLOUD: 0.9, VALID: 0.0},
              {CLOUD: 0.2, VALID: 1.0}]
    props = run(expr, pixels)["__props__"]
    assert props[graphs.CLOUDY_PERCENTAGE] == pytest.approx(100 / 3)  # 0.2 is not cloud
    assert props[graphs.ROI_COVERAGE_PERCENT] == pytest.approx(75.0)
    none = run(expr, [{CLOUD: 0.9, VALID: 0.0}, {CLOUD: 0.0, VALID: 0.0}])["__props__"]
    assert none[graphs.CLOUDY_PERCENTAGE] == 100 and none[graphs.ROI_COVERAGE_PERCENT] == 0
    # a sliver: reduceRegion weighs pixels by the share of them inside the region
    sliver = run(expr, [{CLOUD: 0.0, VALID: 1.0, "area": 0.5}])["__props__"]
    assert sliver[graphs.CLOUDY_PERCENTAGE] == 0
    one = run(expr, [{CLOUD: 0.0, VALID: 1.0}])["__props__"]  # one covered pixel (area 400 m2)
    assert one[graphs.CLOUDY_PERCENTAGE] == 0 and one[graphs.ROI_COVERAGE_PERCENT] == 100


def test_end_exclusive_and_region(ee_offline):
    assert graphs.end_exclusive("2017-08-31") == "2017-09-01"
    assert graphs.end_exclusive("2016-12-31T23:59:59") == "2017-01-01"
    assert graphs.end_exclusive("2016-02-28") == "2016-02-29"
    ring = [(11.0, 48.0), (11.5, 48.0), (11.5, 48.5), (11.0, 48.5), (11.0, 48.0)]
    enc = graphs.encode(graphs.region_of(ring))
    points = [v["constantValue"] for v in enc["values"].values() if "constantValue" in v]
    points += [p["constantValue"] for p in str_find_points(enc)]
    assert sorted(map(tuple, points)) == sorted(set(ring))  # no margin by default
    grown = str(graphs.encode(graphs.region_of(ring, 0.123456789012)))
    assert "10.876543211" in grown and "48.623456789" in grown  # rounded to 1e-10 degrees
    assert "10.8765432109" not in grown


def str_find_points(enc: dict) -> list[dict]:
    out = []

    def walk(n):
        if isinstance(n, dict):
            if isinstance(n.get("constantValue"), list) and len(n["constantValue"]) == 2:
                out.append(n)
                return
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    for key, v in enc["values"].items():
        if "constantValue" not in v:
            walk(v)
    return out


def test_s1_fill_value(ee_offline):
    assert graphs.S1_FILL == -9999.0
    assert math.isfinite(graphs.S1_FILL)


def test_paper_merge_lays_whole_footprints_and_masked_only_clear_pixels(ee_offline):
    import json

    col = ee.ImageCollection("TEST/SCORED")
    paper = json.dumps(graphs.encode(graphs.merge(col, MosaicParams(merge="paper"))))
    masked = json.dumps(graphs.encode(graphs.merge(col, MosaicParams(merge="masked"))))
    assert '"Image.not"' not in paper and '"Image.updateMask"' not in paper
    assert '"Image.not"' in masked and '"Image.updateMask"' in masked
    assert f'"{graphs.POOR_BAND}"' in masked


def test_s2_mosaic_without_aux_has_the_13_bands_only(ee_offline):
    region = graphs.region_of([(11.0, 48.0), (11.1, 48.0), (11.1, 48.1), (11.0, 48.0)])
    expr = graphs.encode(graphs.s2_mosaic(region, "2017-06-01", "2017-08-31"))
    root = expr["values"][expr["result"]]["functionInvocationValue"]
    assert root["functionName"] == "Image.toUint16"  # with_aux adds bands on top of it
