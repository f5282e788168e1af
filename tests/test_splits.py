"""The train/test split (layout.split_scenes, and the group split of splits.draw_groups): its
fraction, determinism and disjointness,
as unit tests on scene keys, and the fraction of the demo run's split lists.

The split is called through :func:`split` only, so that a later split by spatial groups
(scenes sharing a place never on both sides) extends these tests instead of replacing
them: add its property tests beside these, keep these properties.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from sen12ms_build.dataset import layout, splits

Key = tuple[str, int]


def keys(n: int, branches: tuple[str, ...] = ("ROIs1158_spring", "ROIs1868_summer")) -> list[Key]:
    """``n`` distinct (branch, scene) keys spread over the branches."""
    return [(branches[i % len(branches)], i // len(branches) + 1) for i in range(n)]


def split(scene_keys: list[Key], fraction: float, seed: int) -> tuple[set[Key], set[Key]]:
    """(train, test) sets of the keys."""
    test = layout.split_scenes(list(scene_keys), fraction, seed)
    return set(scene_keys) - test, test


def expected_n_test(n: int, fraction: float) -> int:
    """The documented count: ceil(n * fraction), at least one and at most n - 1 when there
    are two or more scenes; none with fewer or with fraction 0."""
    if n < 2 or fraction <= 0:
        return 0
    return min(max(1, math.ceil(n * fraction)), n - 1)


@pytest.mark.parametrize("n, fraction, n_test", [
    (12, 0.2, 3),  # ceil(2.4)
    (10, 0.2, 2),
    (10, 0.25, 3),  # ceil(2.5)
    (5, 0.5, 3),
    (2, 0.2, 1),  # at least one test scene
    (3, 0.9, 2),  # at least one training scene
    (20, 0.05, 1),
    (1, 0.5, 0),  # one scene: all training
    (12, 0.0, 0),
])
def test_test_share_follows_the_fraction(n, fraction, n_test):
    assert expected_n_test(n, fraction) == n_test
    for seed in (0, 1, 7):
        train, test = split(keys(n), fraction, seed)
        assert len(test) == n_test, (seed, sorted(test))
        assert len(train) == n - n_test


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 1 / 3])
def test_test_is_the_minority_for_small_fractions(fraction):
    for n in range(4, 40):
        train, test = split(keys(n), fraction, seed=3)
        assert len(test) <= len(train)
        assert len(test) == expected_n_test(n, fraction)


def test_deterministic_and_independent_of_input_order():
    ks = keys(25)
    _, a = split(ks, 0.2, seed=5)
    _, b = split(list(reversed(ks)), 0.2, seed=5)
    _, c = split(ks[7:] + ks[:7], 0.2, seed=5)
    assert a == b == c
    # the seed matters: over a few seeds the test set changes
    assert len({frozenset(split(ks, 0.2, seed=s)[1]) for s in range(6)}) > 1


def test_disjoint_and_complete():
    for n in (2, 3, 12, 31):
        for seed in (0, 11):
            ks = keys(n)
            train, test = split(ks, 0.3, seed)
            assert not train & test
            assert train | test == set(ks)
            assert test <= set(ks)


def test_every_scene_can_be_drawn():
    """The shuffle reaches every scene (not always the first or last ones)."""
    ks = keys(10)
    drawn: set[Key] = set()
    for seed in range(60):
        drawn |= split(ks, 0.2, seed)[1]
    assert drawn == set(ks)


def _utm_square(cx: float, cy: float, size: float, to_geo) -> "Polygon":
    from shapely.geometry import Polygon

    h = size / 2
    return Polygon([to_geo.transform(x, y) for x, y in
                    ((cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h))])


@pytest.mark.parametrize("gap, distance, n_groups", [
    (350.0, 0.0, 2), (350.0, 300.0, 2), (350.0, 400.0, 1), (0.0, 0.0, 1), (-100.0, 0.0, 1)])
def test_groups_join_footprints_within_the_leak_distance(gap, distance, n_groups):
    """Two 6.4 km UTM squares ``gap`` metres apart (east of each other; negative: overlap)
    are one group exactly when the gap is at most the leak distance (touching counts)."""
    from pyproj import Transformer

    from sen12ms_build.dataset.splits import distance_m, overlap_groups

    to_geo = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    a = _utm_square(440_000.0, 4_170_000.0, 6400.0, to_geo)
    b = _utm_square(440_000.0 + 6400.0 + gap, 4_170_000.0, 6400.0, to_geo)
    assert len(overlap_groups({"a": a, "b": b}, distance)) == n_groups
    assert distance_m(a, b) == pytest.approx(max(gap, 0.0), abs=0.5)


def _box_gap(a: tuple, b: tuple) -> float:
    """Distance between two axis-aligned boxes (left, bottom, right, top), metres."""
    dx = max(b[0] - a[2], a[0] - b[2], 0.0)
    dy = max(b[1] - a[3], a[1] - b[3], 0.0)
    return math.hypot(dx, dy)


@pytest.mark.slow
def test_demo_run_split_lists_follow_the_method(demo_run):
    """The demo run's train/test lists follow its split method: with ``groups`` whole
    groups of ROIs closer than ``splits.leak_distance_m`` go to one side. The demo's planned
    ROIs (configs/demo_rois.csv) form three such groups, so it has a test set, and no test
    scene lies within the leak distance of a train scene: checked on the UTM squares of
    the listed centres, computed here, not from the run's footprints."""
    import csv
    import json

    from pyproj import Transformer

    cfg, _ = demo_run
    root = Path(cfg.out)
    scene = lambda name: (layout.parse_patch_filename(name).season,  # noqa: E731
                          layout.parse_patch_filename(name).scene)
    train = {scene(n) for n in (root / "train_list.txt").read_text().split()}
    test = {scene(n) for n in (root / "test_list.txt").read_text().split()}
    assert test and train and not train & test
    meta = json.loads((root / "splits.json").read_text())
    assert cfg.splits.method == meta["method"] == "groups"
    assert meta["shared_area_m2"] == 0.0 and len(meta["groups"]) >= 2
    assert meta["leak_distance_m"] == cfg.splits.leak_distance_m > 0

    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32618", always_xy=True)
    half = cfg.sampling.roi_size_m / 2
    boxes = {}
    with open(cfg.sampling.rois_file, newline="") as f:
        for row in csv.DictReader(f):
            x, y = to_utm.transform(float(row["lon"]), float(row["lat"]))
            boxes[(row["season"], int(row["scene"]))] = (x - half, y - half, x + half, y + half)
    gaps = [_box_gap(boxes[a], boxes[b]) for a in train for b in test]
    assert min(gaps) >= cfg.splits.leak_distance_m, min(gaps)
    assert meta["min_train_test_distance_m"] == pytest.approx(min(gaps), abs=15.0)
    n = len(train | test)
    in_groups = sorted(k for g in meta["groups"] for k in g)
    assert len(in_groups) == len(set(in_groups)) == n  # every scene in exactly one group
    keys_ = sorted({(b, int(sc)) for b, sc in (k.split("/") for k in in_groups)})
    _, roi_test = split(keys_, cfg.splits.test_fraction, cfg.splits.seed)
    assert len(roi_test) == expected_n_test(n, cfg.splits.test_fraction), (len(roi_test), n)


# --- the group split (splits.method groups): overlap groups, a draw by hash ------------

def test_overlap_groups_union_find_and_hash_draw():
    # a chain a-b-c (b touches c), and d, e far away; f touches nothing
    a, b = box(0, 0, 1, 1), box(0.5, 0.5, 1.5, 1.5)
    c, d, e, f = box(1.5, 0, 2, 1), box(10, 10, 11, 11), box(10.5, 10, 12, 11), box(20, 20, 21, 21)
    groups = splits.overlap_groups({"a": a, "b": b, "c": c, "d": d, "e": e, "f": f})
    assert groups == [["a", "b", "c"], ["d", "e"], ["f"]]
    # 2000 separate ROIs: the test share is the fraction within 4 binomial sigmas
    keys = [(f"ROIs{i % 4}_s", i) for i in range(2000)]
    g = [[k] for k in keys]
    test = splits.draw_groups(g, 0.25, seed=3)
    assert abs(len(test) - 500) < 4 * math.sqrt(2000 * 0.25 * 0.75)
    assert test == splits.draw_groups(g, 0.25, seed=3)  # seeded
    assert test != splits.draw_groups(g, 0.25, seed=4)
    # stable under additions and input order: the first 1000 keep their sides when 1000
    # more join, in any order
    first = splits.draw_groups(g[:1000], 0.25, seed=3)
    shuffled = [g[i] for i in np.random.default_rng(0).permutation(2000)]
    assert splits.draw_groups(shuffled, 0.25, seed=3) & set(keys[:1000]) == first
    # a group's side follows its first member: a later member does not move it
    grown = [[keys[0], ("ROIs9_s", 9999)], *g[1:1000]]
    assert (keys[0] in first) == (keys[0] in splits.draw_groups(grown, 0.25, seed=3))
    # two or more groups: one test and one train at least, also when no draw / every draw
    # falls below the fraction
    for fraction in (1e-9, 0.999999):
        for n in (2, 3):
            t = splits.draw_groups(g[:n], fraction, seed=3)
            assert 1 <= len(t) <= n - 1
    assert splits.draw_groups(g[:1], 0.5, seed=3) == set()


def _square(x0: float, y0: float, d: float):
    from shapely.geometry import Polygon

    return Polygon([(x0, y0), (x0 + d, y0), (x0 + d, y0 + d), (x0, y0 + d)])


def test_min_distance_finds_the_metre_nearest_beyond_the_degree_nearest():
    """At 60 degrees north a degree of longitude is half a degree of latitude's length: the
    footprint 0.02 degrees east (1.1 km) is nearer than the one 0.015 degrees north
    (1.7 km), though the degree-space nearest query picks the northern one. Also with the
    other footprint across the antimeridian, west of -180."""
    g = _square(10.0, 60.0, 0.01)
    east, north = _square(10.03, 60.0, 0.01), _square(10.0, 60.025, 0.01)
    d_east, d_north = splits.distance_m(g, east), splits.distance_m(g, north)
    assert d_east < d_north
    assert splits.min_distance_m([g], [north, east]) == d_east
    w = _square(-179.995, 10.0, 0.005)  # its west edge 0.005 degrees from -180
    across = _square(179.98, 10.0, 0.01)  # 1.65 km away, on the other side
    far = _square(-179.9, 10.0, 0.01)  # 9.9 km east
    brute = min(splits.distance_m(w, q) for q in (across, far))
    assert brute < 2_000
    assert math.isclose(splits.min_distance_m([w], [far, across]), brute, rel_tol=1e-12)


def test_touching_footprints_share_no_area():
    a, b = _square(0, 0, 0.1), _square(0.1, 0, 0.1)  # one common edge
    assert splits.shared_area_m2([a], [b]) == 0.0
    assert splits.shared_pairs({"a": a}, {"b": b}) == []
    c = _square(0.05, 0, 0.1)
    assert [(ka, kb) for ka, kb, _ in splits.shared_pairs({"a": a}, {"b": b, "c": c})] == \
        [("a", "c")]


def test_assign_groups_roi_and_the_report(tmp_path):
    """``assign`` on ROI files: ``groups`` joins only footprints that overlap or touch by
    default (two 2.56 km squares 50 m apart stay apart, and join at a leak distance of
    100 m); ``roi`` is the per-scene draw of ``layout.split_scenes`` and lists no groups;
    the footprint report of a split without a test set has no train-test distance."""
    from sen12ms_build.roi import ROI, write_geojson

    lat = 45.0
    dlon = 2610.0 / (111_320.0 * math.cos(math.radians(lat)))  # 2.56 km + ~50 m, east
    rois = [ROI.at(1, 7, "land", 10.0, lat, 2560.0), ROI.at(2, 7, "land", 10.0 + dlon, lat,
                                                            2560.0),
            ROI.at(3, 7, "land", 11.0, lat, 2560.0)]
    (tmp_path / "rois").mkdir()
    write_geojson(rois, tmp_path / "rois" / "ROIs7_summer.geojson")
    gap = splits.distance_m(Polygon(rois[0].ring()), Polygon(rois[1].ring()))
    assert 10 < gap < 100
    scenes = [{"branch": "ROIs7_summer", "scene": r.scene, "season": "summer",
               "kind": "land"} for r in rois]
    _, _, info = splits.assign("groups", tmp_path, scenes, 0.3, 0)
    assert len(info["groups"]) == 3
    _, _, info = splits.assign("groups", tmp_path, scenes, 0.3, 0, leak_distance_m=100.0)
    assert len(info["groups"]) == 2
    keys = [("ROIs7_summer", r.scene) for r in rois]
    test, names, info = splits.assign("roi", tmp_path, scenes, 0.3, 5)
    assert test == layout.split_scenes(keys, 0.3, 5) and names is None
    assert "groups" not in info and info["method"] == "roi"
    report = splits.footprint_report(tmp_path, keys, [])
    assert report["train_scenes"] == 3 and report["test_scenes"] == 0
    assert "min_train_test_distance_m" not in report
    report = splits.footprint_report(tmp_path, keys[:2], keys[2:])
    assert report["min_train_test_distance_m"] > 50_000
