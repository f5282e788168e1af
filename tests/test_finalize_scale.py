"""``finalize`` at scale, at test size: what the full-size benchmark
(``scripts/benchmark_finalize.py``, 180,662 patches) measures, checked by counts on small
synthesized datasets (``sen12ms_build.demo.scale``: records and footprints, no pixels).

* the STAC catalog the streaming writer makes is, byte for byte, the one pystac assembles
  and saves (``tests/stac_reference.py``), and its geoparquet the one stac-geoparquet's
  public API makes;
* a resumed run that finishes one more scene rewrites that scene's Items and the index
  files, nothing else (files counted by inode and modification time: the tree itself says
  what was written, not the code);
* the record of written files stays exact: every file of the dataset is in it, nothing
  else, also after Items were removed;
* no function's call count grows faster than the patches (cProfile counts at two sizes, ten
  times apart): no step is quadratic in patches or scenes;
* the splits' train/test distance and leak pairs, now found with STRtree queries, equal
  the answer over every pair.
"""

from __future__ import annotations

import cProfile
import csv
import filecmp
import math
import os
import pstats
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon

from sen12ms_build.config import load_config
from sen12ms_build.dataset import layout, splits, stac, stac_write
from sen12ms_build.dataset.finalize import ROOT_FILES, finalize
from sen12ms_build.demo import scale
from sen12ms_build.state import State, state_path

from stac_reference import reference_catalog, reference_item

REPO = Path(__file__).resolve().parent.parent
GRID = 8  # 64 patches per kept scene: small scenes, many of them


def config(root: Path, **over):
    return load_config(REPO / "configs" / "sen12ms.yaml", {"out": str(root), **over})


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (inode, modification time) of every file below ``root`` but
    ``.work`` (an atomic rewrite makes a new inode; an in-place one a new time)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d != ".work"]
        for name in files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_ino, st.st_mtime_ns)
    return out


def splits_of(root: Path) -> dict[str, str]:
    with open(root / "manifest.csv", newline="") as f:
        return {r["patch_id"]: r["split"] for r in csv.DictReader(f) if r["status"] == "kept"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished synthesized dataset (600 patches kept in 10 scenes of 64, 24 scenes in
    all, 4 seasons): (root, config)."""
    root = tmp_path_factory.mktemp("scale") / "ds"
    cfg = config(root)
    scale.synthesize(root, cfg, 600, grid=GRID, seed=3)
    finalize(root, cfg)
    return root, cfg


# --- the catalog: the one pystac and stac-geoparquet make ------------------------------

@pytest.mark.parametrize("pool_min", [100, 4], ids=["here", "pool"])
def test_catalog_equals_what_pystac_saves(finished, tmp_path, monkeypatch, pool_min):
    """Every JSON file of ``stac/`` is byte for byte what pystac's ``Catalog.save`` writes
    for the same manifest, and ``items.parquet`` holds the table (and schema, metadata)
    stac-geoparquet's public API makes. Rows without a quality layer, without times,
    product ids or land-cover counts are spread so that the first of several batches
    lacks every optional field (the batches' schemas are unified). Made in this process
    and by a pool of two processes: the same bytes."""
    import pyarrow.parquet as pq

    src, cfg = finished
    root = tmp_path / "ds"
    root.mkdir()
    rows = layout.read_csv(src / "manifest.csv")
    kept = [i for i, r in enumerate(rows) if r["status"] == "kept"]
    for n, i in enumerate(kept):
        if n < 40 or n % 7 == 0:  # the first batch: no optional field at all
            rows[i].update(qa="", sha256_qa="", igbp_counts="", s2_datetimes="",
                           s1_datetimes="", s2_product_ids="", cloud_share="")
        elif n % 5 == 0:
            rows[i].update(s1_datetimes="", s1_orbit_states="", shadow_share="")
    layout.write_csv(root / "manifest.csv", layout.MANIFEST_HEADER, rows)
    monkeypatch.setattr(stac_write, "CHUNK", 40)  # 15 chunks: made by a pool of processes
    monkeypatch.setattr(stac_write, "POOL_MIN_CHUNKS", pool_min)
    counts = stac_write.write_catalog(root, cfg, processes=2)
    assert counts["items"] == len(kept) == 600
    reference_catalog(root, cfg, tmp_path / "ref")
    ours = sorted(p.relative_to(root / "stac") for p in (root / "stac").rglob("*")
                  if p.is_file())
    theirs = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*")
                    if p.is_file())
    assert ours == theirs
    assert len(ours) == 600 + 4 + 1 + 1  # items, collections, catalog, geoparquet
    differ = [p for p in ours if p.suffix == ".json"
              and not filecmp.cmp(root / "stac" / p, tmp_path / "ref" / p, shallow=False)]
    assert differ == []
    a = pq.read_table(root / "stac" / stac.PARQUET)
    b = pq.read_table(tmp_path / "ref" / stac.PARQUET)
    assert a.schema.equals(b.schema, check_metadata=True)
    assert a.equals(b)


@pytest.mark.parametrize("level", ["l1c", "l2a"])
def test_items_equal_those_of_pystac_extension_classes(finished, level):
    """``make_item`` fills the extension fields itself; pystac's ``ext``/``apply`` give
    the same Item (L2A: 12 bands, no B10)."""
    root, cfg = finished
    rows = [r for r in layout.read_csv(root / "manifest.csv") if r["status"] == "kept"][:30]
    rows[0].update(qa="", igbp_counts="", s2_datetimes="", s1_datetimes="")
    rows[1].update(s2_product_ids="", s1_product_ids="", s1_orbit_states="")
    fps = stac.footprints(rows)
    for row, fp in zip(rows, fps):
        item_dir = root / "stac" / row["branch"] / row["patch_id"]
        args = (row, root, item_dir, "2017-06-01T00:00:00Z", "2017-08-31T23:59:59Z", 10.0,
                level)
        ref = reference_item(*args).to_dict(include_self_link=False, transform_hrefs=False)
        assert stac.make_item(*args, footprint=fp).to_dict(
            include_self_link=False, transform_hrefs=False) == ref
        assert stac.make_item(*args).to_dict(
            include_self_link=False, transform_hrefs=False) == ref
    assert len(ref["assets"]["s2"]["eo:bands"]) == (12 if level == "l2a" else 13)


# --- a resumed run: that scene's files and the index files -----------------------------

INDEX_FILES = {*ROOT_FILES, "stac/catalog.json", f"stac/{stac.PARQUET}"}


def test_one_scene_resume_writes_that_scene_and_the_index_files(tmp_path):
    """A finished dataset, one more finished scene (as a resumed run leaves it), finalize:
    written are exactly the new scene's Items, its branch's collection, its ROI file and the
    index files; no other Item moves split (the draw is per group, by hash). A second
    finalize with nothing new writes no Item and no collection. The record of written files
    is exactly the dataset's files throughout, also once a scene is gone (its Items and
    their folders removed)."""
    root = tmp_path / "ds"
    cfg = config(root)
    scale.synthesize(root, cfg, 300, grid=GRID, seed=3)
    finalize(root, cfg)
    before, split_before = snapshot(root), splits_of(root)
    assert sum(p.startswith("stac/") and p.count("/") == 3 for p in before) == 300
    assert set(split_before.values()) == {"train", "test"}

    def recorded() -> set[str]:
        with State(state_path(root)) as st:
            return {str(p.relative_to(root)) for p in st.written()}

    assert recorded() == set(before)

    branch, scene = scale.add_scene(root, cfg, "summer", 50, grid=GRID)
    finalize(root, cfg)
    after, split_after = snapshot(root), splits_of(root)
    written = {p for p, v in after.items() if before.get(p) != v}
    new_items = {f"{branch}_{scene}_p{i}" for i in range(1, GRID ** 2 + 1)} & set(split_after)
    assert len(new_items) == 50
    assert {pid: split_after[pid] for pid in split_before} == split_before  # none moved
    items = {p for p in written if p.startswith("stac/") and p.count("/") == 3}
    assert items == {f"stac/{branch}/{pid}/{pid}.json" for pid in new_items}
    others = written - items
    assert others <= INDEX_FILES | {f"stac/{branch}/collection.json", f"rois/{branch}.geojson"}
    assert others >= {"manifest.csv", "scenes.csv", f"stac/{stac.PARQUET}",
                      f"stac/{branch}/collection.json", f"rois/{branch}.geojson"}
    assert not set(before) - set(after)  # nothing removed
    assert recorded() == set(after)

    finalize(root, cfg)  # nothing new: no Item, no collection is rewritten
    again = snapshot(root)
    rewritten = {p for p, v in again.items() if after.get(p) != v}
    assert rewritten <= INDEX_FILES
    assert not [p for p in rewritten if p.startswith("stac/")]

    with State(state_path(root)) as st:  # the scene is gone (e.g. other run settings)
        st.forget(branch, scene)
    finalize(root, cfg)
    assert not list((root / "stac" / branch).glob(f"{branch}_{scene}_p*"))  # folders too
    assert (root / "stac" / branch / "collection.json").exists()
    assert recorded() == set(snapshot(root))


# --- nothing grows faster than the patches ---------------------------------------------

def _calls(n: int, folder: Path) -> tuple[dict[tuple, int], int]:
    """Call count of every function during ``finalize`` of a synthesized dataset of ``n``
    kept patches, and the files it wrote."""
    root = folder / f"n{n}"
    cfg = config(root)
    scale.synthesize(root, cfg, n, grid=GRID, seed=1)
    prof = cProfile.Profile()
    prof.runcall(finalize, root, cfg)
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    return {k: v[1] for k, v in stats.items() if not _waiting(k)}, len(snapshot(root))


def _waiting(key: tuple) -> bool:
    """A function of the writer threads' hand-over (locks, conditions, the pool's queue,
    the clock a wait reads): how often the main thread waits depends on timing, not on the
    work."""
    path, _, name = key
    return ("threading.py" in path or "concurrent" in path or "queue.py" in path
            or any(w in name for w in ("lock", "Lock", "deque", "_thread", "monotonic")))


def test_no_step_grows_faster_than_the_patches(tmp_path):
    """Ten times the patches (and scenes) make at most about ten times the calls of every
    function: a step quadratic in patches or scenes (pairs of footprints, link resolution
    per item, a list scanned per patch) would make a hundred times more."""
    small, files_small = _calls(200, tmp_path)
    large, files_large = _calls(2000, tmp_path)
    assert 9 <= files_large / files_small <= 11
    worst = sorted(((large[k] / small.get(k, 1), k) for k in large if large[k] >= 100),
                   reverse=True)
    assert worst[0][0] <= 15, worst[:5]
    assert sum(large.values()) / sum(small.values()) <= 12


# --- splits: STRtree answers equal every pair's ----------------------------------------

def _squares(rng, n: int, lon0: float = 0.0, spread: float = 3.0) -> list[Polygon]:
    out = []
    for _ in range(n):
        x, y = lon0 + rng.uniform(-spread, spread), rng.uniform(-60, 60)
        d = rng.uniform(0.02, 0.3)
        out.append(Polygon([(x, y), (x + d, y), (x + d, y + d), (x, y + d)]))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_min_distance_equals_every_pair(seed):
    rng = np.random.default_rng(seed)
    a, b = _squares(rng, 25), _squares(rng, 15)
    brute = min(splits.distance_m(p, q) for p in a for q in b)
    assert math.isclose(splits.min_distance_m(a, b), brute, rel_tol=1e-12)


def test_min_distance_across_the_antimeridian():
    """Two footprints 0.02 degrees apart across 180 degrees of longitude are near; a
    degree-space nearest query alone would pick the one 2 degrees away."""
    east = Polygon([(179.9, 10), (179.99, 10), (179.99, 10.1), (179.9, 10.1)])
    west = Polygon([(-179.99, 10), (-179.9, 10), (-179.9, 10.1), (-179.99, 10.1)])
    far = Polygon([(177.0, 10), (177.9, 10), (177.9, 10.1), (177.0, 10.1)])
    brute = min(splits.distance_m(p, q) for p in [east] for q in [west, far])
    assert brute < 5_000
    assert math.isclose(splits.min_distance_m([east], [far, west]), brute, rel_tol=1e-12)


def test_shared_pairs_equal_every_pair():
    rng = np.random.default_rng(9)
    a = {("a", i): g for i, g in enumerate(_squares(rng, 30, spread=1.0))}
    b = {("b", i): g for i, g in enumerate(_squares(rng, 30, spread=1.0))}
    brute = [(ka, kb, splits.shared_area_m2([a[ka]], [b[kb]])) for ka in sorted(a)
             for kb in sorted(b)]
    brute = [t for t in brute if t[2] > 0]
    assert brute  # the draw has overlaps
    assert splits.shared_pairs(a, b) == brute
