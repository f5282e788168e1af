"""Train/test splits: leak-free groups of overlapping ROIs, per ROI, or from a given list.

``splits.method`` (:data:`sen12ms_build.config.SPLIT_METHODS`):

* ``groups`` (default): ROIs whose footprints overlap, touch or lie within
  ``splits.leak_distance_m`` of each other, in any season, form one group
  (union-find over the footprints); whole groups go to train or test by a seeded hash of
  the group (:func:`draw_groups`): a group is test when its hash falls below
  ``test_fraction``, so each group's side depends on the seed and the group alone and a
  scene added later moves no other group (unless it joins one). No test footprint shares
  any area with a train footprint, over the whole dataset. The paper's per-season draw
  (``roi``) leaks: its 600 ROIs hold 20 overlapping pairs across seasons.
* ``roi``: each (branch, scene) drawn on its own (:func:`layout.split_scenes`, the
  behaviour before ``groups``); overlapping ROIs of different seasons can land on both sides.
* ``file``: the s2 patch file names listed in ``splits.test_file`` are the test set, every
  other kept patch is train (to reproduce a published split).

Footprints are the ROI squares (``<root>/rois/<branch>.geojson``, lon/lat rings of the UTM
scene square, which the patches tile).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Hashable, Iterable, Mapping

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely import STRtree
from shapely.geometry import Polygon, box

from ..errors import Sen12msError
from ..geo import utm_epsg
from ..roi import read_geojson

Key = tuple[str, int]  # (branch, scene)
SPLITS_JSON = "splits.json"
_GEOD = Geod(ellps="WGS84")


class SplitError(Sen12msError, ValueError):
    """A split cannot be made as configured (unreadable test list, missing footprints)."""


def footprints(root: Path, keys: Iterable[Key]) -> dict[Key, Polygon]:
    """The lon/lat footprint polygon of each (branch, scene), from ``rois/<branch>.geojson``.

    Raises:
        SplitError: a branch's ROI file or a scene in it is missing.
    """
    out: dict[Key, Polygon] = {}
    by_branch: dict[str, dict[int, Polygon]] = {}
    for branch, scene in keys:
        if branch not in by_branch:
            path = Path(root) / "rois" / f"{branch}.geojson"
            try:
                by_branch[branch] = {r.scene: Polygon(r.ring()) for r in read_geojson(path)}
            except (OSError, ValueError, KeyError) as exc:
                raise SplitError(f"{path}: cannot read the ROI footprints ({exc}); run the "
                                 "season again to rewrite it") from None
        if scene not in by_branch[branch]:
            raise SplitError(f"{branch} scene {scene} has no footprint in "
                             f"rois/{branch}.geojson; run the season again")
        out[(branch, scene)] = by_branch[branch][scene]
    return out


def _utm(poly: Polygon) -> Transformer:
    """lon/lat -> the UTM zone of the polygon's centroid (metres)."""
    c = poly.centroid
    return _to_utm(utm_epsg(c.x, c.y))


@functools.lru_cache(maxsize=128)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


def distance_m(a: Polygon, b: Polygon) -> float:
    """Shortest distance in metres between two lon/lat footprints (0 when they touch or
    overlap), measured in the UTM zone of ``a`` (footprints are tens of km: the scale error
    of a neighbouring zone is below 0.1 %)."""
    if a.intersects(b):
        return 0.0
    to = _utm(a)

    def project(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to.transform(xy[:, 0], xy[:, 1]))

    return float(shapely.distance(shapely.transform(a, project),
                                  shapely.transform(b, project)))


def _near(geoms: list[Polygon], i: int, tree: STRtree, distance: float) -> list[int]:
    """Indices of the footprints within ``distance`` metres of footprint ``i`` (touching
    counts), found among the bounding-box candidates grown by that distance in degrees."""
    g = geoms[i]
    if distance <= 0:
        return [int(j) for j in tree.query(g, predicate="intersects")]
    lat = max(abs(g.bounds[1]), abs(g.bounds[3]))
    dlat = distance / 110_000.0  # a degree of latitude is more than 110 km everywhere
    dlon = dlat / max(math.cos(math.radians(min(lat, 89.0))), 1e-6)
    x0, y0, x1, y1 = g.bounds
    cand = tree.query(box(x0 - dlon, y0 - dlat, x1 + dlon, y1 + dlat))
    return [int(j) for j in cand if distance_m(g, geoms[int(j)]) <= distance]


def overlap_groups(polys: Mapping[Hashable, Polygon],
                   distance: float = 0.0) -> list[list[Hashable]]:
    """Connected groups of footprints that overlap, touch or lie within ``distance`` metres
    of each other (union-find), each sorted, the list sorted by its first member."""
    keys = sorted(polys)
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    geoms = [polys[k] for k in keys]
    tree = STRtree(geoms)
    for i in range(len(geoms)):
        for j in _near(geoms, i, tree, distance):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list] = {}
    for i, k in enumerate(keys):
        groups.setdefault(find(i), []).append(k)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def group_draw(group: list[Hashable], seed: int) -> float:
    """The group's seeded draw in [0, 1): the first 8 bytes of
    ``sha256("<seed>:<first member>")`` over 2**64, the first member being the smallest key
    (``(branch, scene)`` written ``branch/scene``). A function of the seed and that key
    alone, the same on every machine and Python (no ``hash()`` salt)."""
    first = min(group)
    name = "/".join(map(str, first)) if isinstance(first, tuple) else str(first)
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def draw_groups(groups: list[list[Hashable]], test_fraction: float,
                seed: int) -> set[Hashable]:
    """Members of the groups drawn for test.

    A group is test when its :func:`group_draw` is below ``test_fraction`` (a split by hash,
    as TensorFlow Datasets splits by a hash of the example key): each group's side depends
    on the seed and its first member only, so adding scenes to a finished dataset moves no
    existing group, and a resumed run gives the split of an uninterrupted one. The test
    share of the scenes is ``test_fraction`` in expectation, in every season and ROI kind
    alike (the draw ignores both); it is not exact (binomial: 0.2 +- 0.016 over the paper's
    600 ROIs).

    With two or more groups at least one is test and one train: if no draw falls below
    ``test_fraction`` the group with the smallest draw is test, if every draw does the one
    with the largest is train (only small datasets: a 3-group demo draws no test group with
    a chance of ``(1 - test_fraction) ** 3``).
    """
    if len(groups) < 2 or test_fraction <= 0:
        return set()
    u = [group_draw(g, seed) for g in groups]
    test = [i for i, x in enumerate(u) if x < test_fraction]
    if not test:
        test = [min(range(len(groups)), key=u.__getitem__)]
    elif len(test) == len(groups):
        test.remove(max(range(len(groups)), key=u.__getitem__))
    return {k for i in test for k in groups[i]}


def shared_area_m2(a: Iterable[Polygon], b: Iterable[Polygon]) -> float:
    """Geodesic area (m², WGS 84) shared between any polygon of ``a`` and any of ``b``
    (0.0 for disjoint or merely touching sets)."""
    b = list(b)
    if not b:
        return 0.0
    tree = STRtree(b)
    total = 0.0
    for g in a:
        for j in tree.query(g, predicate="intersects"):
            inter = g.intersection(b[int(j)])
            if not inter.is_empty and inter.area > 0:
                total += abs(_GEOD.geometry_area_perimeter(inter)[0])
    return total


def read_test_file(path: Path | str) -> set[str]:
    """The s2 patch file names of a test list (one per line; blank lines and ``#`` ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SplitError(f"splits.test_file {path}: cannot read ({exc.strerror or exc})") \
            from None
    except UnicodeDecodeError:
        raise SplitError(f"splits.test_file {path}: not a UTF-8 text file (one s2 patch file "
                         "name per line)") from None
    return {Path(x.strip()).name for x in lines if x.strip() and not x.startswith("#")}


def assign(method: str, root: Path, scenes: list[dict], test_fraction: float, seed: int,
           test_file: str | None = None, leak_distance_m: float = 0.0
           ) -> tuple[set[Key], set[str] | None, dict]:
    """The test scenes (``groups``, ``roi``) or test patch names (``file``) and a JSON-able
    summary of the split (written to ``splits.json`` and the dataset's metadata).

    Args:
        scenes: records of the kept scenes (``branch``, ``scene``, ``season``, ``kind``).
        leak_distance_m: ``groups``: footprints this close (metres) are one group.
    Returns:
        (test scene keys, test s2 names or None, info).
    """
    from . import layout

    keys = [(r["branch"], int(r["scene"])) for r in scenes]
    info: dict = {"method": method, "seed": seed, "test_fraction": test_fraction}
    if method == "file":
        names = read_test_file(test_file or "")
        info["test_file"] = str(test_file)
        return set(), names, info
    if method == "roi":
        return layout.split_scenes(keys, test_fraction, seed), None, info
    polys = footprints(root, keys)
    groups = overlap_groups(polys, leak_distance_m)
    test = draw_groups(groups, test_fraction, seed)
    info["leak_distance_m"] = leak_distance_m
    info["draw"] = "sha256(seed:first member) / 2**64 < test_fraction, per group"
    info["groups"] = [[f"{b}/{s}" for b, s in g] for g in groups]
    return test, None, info


def footprint_report(root: Path, train: Iterable[Key], test: Iterable[Key]) -> dict:
    """Scene counts, the shared area between train and test footprints (m²) and the
    shortest distance between a train and a test footprint (m; absent without a test
    or train set)."""
    train, test = sorted(set(train)), sorted(set(test))
    polys = footprints(root, [*train, *test])
    area = shared_area_m2([polys[k] for k in train], [polys[k] for k in test])
    out = {"train_scenes": len(train), "test_scenes": len(test),
           "shared_area_m2": round(area, 1)}
    if train and test:
        out["min_train_test_distance_m"] = round(min_distance_m(
            [polys[k] for k in train], [polys[k] for k in test]), 1)
    return out


def min_distance_m(a: list[Polygon], b: list[Polygon]) -> float:
    """The shortest :func:`distance_m` from a footprint of ``a`` to one of ``b`` (both
    non-empty), without measuring every pair: an STRtree of ``b`` gives each footprint of
    ``a`` its nearest in degrees, whose distance in metres bounds the answer; then only the
    footprints of ``b`` inside each one's box grown by that bound (in degrees, as
    :func:`_near` grows it, 1 % wider for the UTM scale) are measured. Zero as soon as two
    touch or overlap."""
    tree = STRtree(b)
    ia, ib = tree.query_nearest(a, all_matches=False)
    best = min(distance_m(a[int(i)], b[int(j)]) for i, j in zip(ia, ib))
    for g in a:
        if best == 0.0:
            break
        for j in _near_candidates(g, tree, best * 1.01):
            best = min(best, distance_m(g, b[int(j)]))
    return best


def _near_candidates(g: Polygon, tree: STRtree, distance: float) -> list[int]:
    """Indices of the tree's footprints whose boxes lie within ``distance`` metres of
    ``g``'s box (a superset of those within ``distance`` metres of ``g``)."""
    lat = max(abs(g.bounds[1]), abs(g.bounds[3]))
    dlat = distance / 110_000.0  # a degree of latitude is more than 110 km everywhere
    dlon = dlat / max(math.cos(math.radians(min(lat + dlat, 89.0))), 1e-6)
    x0, y0, x1, y1 = g.bounds
    boxes = [box(x0 - dlon, y0 - dlat, x1 + dlon, y1 + dlat)]
    if x0 - dlon < -180.0 or x1 + dlon > 180.0:  # across the antimeridian: the other side
        shift = 360.0 if x0 - dlon < -180.0 else -360.0
        boxes.append(box(x0 - dlon + shift, y0 - dlat, x1 + dlon + shift, y1 + dlat))
    return sorted({int(j) for bx in boxes for j in tree.query(bx)})


def shared_pairs(a: Mapping[Hashable, Polygon], b: Mapping[Hashable, Polygon]
                 ) -> list[tuple[Hashable, Hashable, float]]:
    """(key of ``a``, key of ``b``, geodesic m²) of every pair of footprints that shares
    area (touching is not sharing), sorted by key: one STRtree query per footprint of
    ``a``, not one test per pair."""
    kb = sorted(b)
    tree = STRtree([b[k] for k in kb])
    out = []
    for ka in sorted(a):
        for j in sorted(int(j) for j in tree.query(a[ka], predicate="intersects")):
            area = shared_area_m2([a[ka]], [b[kb[j]]])
            if area > 0:
                out.append((ka, kb[j], area))
    return out


def write_info(root: Path, info: dict) -> None:
    from ..raster.io import atomic_write_text

    atomic_write_text(Path(root) / SPLITS_JSON, json.dumps(info, indent=1) + "\n")


def read_info(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / SPLITS_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return None


__all__ = ["assign", "distance_m", "draw_groups", "footprint_report", "footprints",
           "min_distance_m", "overlap_groups", "read_info", "read_test_file", "shared_area_m2",
           "shared_pairs", "write_info", "group_draw", "SplitError"]
