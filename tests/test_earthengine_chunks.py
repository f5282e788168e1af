"""The computePixels chunk planner: every chunk within Earth Engine's request limits, the
chunks tiling the export grid exactly, and the plan totals."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sen12ms_build.backends import SceneRequest
from sen12ms_build.backends.earthengine import EarthEngineOptions, plan_requests
from sen12ms_build.backends.earthengine.chunks import (ALIGN_PX, MAX_REQUEST_BYTES,
                                                       MAX_SIDE_PX, S2_CHUNK_PX, Chunk, chunk_bytes,
                                                       plan, plan_chunks, plan_grid,
                                                       products)
from sen12ms_build.roi import ROI


def partition(intervals: set[tuple[int, int]], total: int) -> bool:
    """True if (offset, size) intervals cover [0, total) exactly once."""
    pos = 0
    for off, size in sorted(intervals):
        if off != pos or size <= 0:
            return False
        pos += size
    return pos == total


def check_tiling(chunks: list[Chunk], width: int, height: int, bpp: int,
                 max_bytes: int = MAX_REQUEST_BYTES, max_side: int = MAX_SIDE_PX) -> None:
    for c in chunks:
        assert 0 < c.width <= max_side and 0 < c.height <= max_side
        assert c.pixels * bpp <= max_bytes
        # interior sides are multiples of 256 (Earth Engine tiles, GeoTIFF blocks)
        if c.col_off + c.width < width:
            assert c.width % ALIGN_PX == 0
        if c.row_off + c.height < height:
            assert c.height % ALIGN_PX == 0
    rows = {(c.row_off, c.height) for c in chunks}
    cols = {(c.col_off, c.width) for c in chunks}
    # the chunks are the cells of a row partition x column partition: no gap, no overlap
    assert partition(rows, height) and partition(cols, width)
    assert {(c.row_off, c.col_off) for c in chunks} == {(r, q) for r, _ in rows
                                                        for q, _ in cols}
    assert len(chunks) == len(rows) * len(cols)


def test_check_tiling_on_small_grid_by_pixels():
    chunks = plan_chunks(1000, 700, 30, max_bytes=30 * 300_000)
    cover = np.zeros((700, 1000), np.uint8)
    for c in chunks:
        cover[c.row_off:c.row_off + c.height, c.col_off:c.col_off + c.width] += 1
    assert (cover == 1).all()
    check_tiling(chunks, 1000, 700, 30, max_bytes=30 * 300_000)


def test_scene_products_and_bytes_per_pixel():
    p = products(with_aux=True)
    assert p["s2"].bytes_per_pixel == 17 * 2  # 13 L1C + 4 aux bands (AUX_MASKS), uint16
    assert products(legacy_aux=True)["s2"].bytes_per_pixel == 15 * 2  # earlier: 2 aux
    assert p["s1"].bytes_per_pixel == 2 * 4  # VV, VH float32
    assert p["lc"].bytes_per_pixel == 4 * 2  # 4 land-cover bands uint16
    assert products(with_aux=False)["s2"].bytes_per_pixel == 26


@pytest.mark.parametrize("lat", [0.0, 48.1, 60.0, 75.0, -54.0])
def test_sen12ms_roi_chunks_within_limits(lat):
    roi = ROI.at(1, 1, "land", 10.0, lat, 38400.0)
    grid = roi.export_grid()
    # by bytes only (s2_side=None): close to the fewest requests the 48 MiB limit allows
    for key, mp in plan_grid(grid, s2_side=None).items():
        check_tiling(mp.chunks, grid.width, grid.height, mp.product.bytes_per_pixel)
        lower = -(-grid.width * grid.height * mp.product.bytes_per_pixel // MAX_REQUEST_BYTES)
        assert lower <= mp.requests <= 2 * lower + 1, (key, mp.requests, lower)
    # by compute (the default): S2 chunks at most S2_CHUNK_PX a side, S1/LC unchanged
    plans = plan_grid(grid)
    s2 = plans["s2"]
    check_tiling(s2.chunks, grid.width, grid.height, s2.product.bytes_per_pixel)
    assert max(max(c.height, c.width) for c in s2.chunks) <= S2_CHUNK_PX
    assert s2.requests == (-(-grid.width // S2_CHUNK_PX)) * (-(-grid.height // S2_CHUNK_PX))
    assert plans["s1"].chunks == plan_grid(grid, s2_side=None)["s1"].chunks


def test_large_roi_respects_both_limits():
    # a 400 km ROI at 70 N: 0.0001 degree pixels make it ~105,000 x 36,000 pixels,
    # beyond the 32,768 px side limit in one direction
    roi = ROI.at(1, 1, "land", 25.0, 70.0, 400_000.0)
    grid = roi.export_grid()
    assert grid.width > MAX_SIDE_PX
    for key, mp in plan_grid(grid).items():
        check_tiling(mp.chunks, grid.width, grid.height, mp.product.bytes_per_pixel)
        assert max(chunk_bytes(c, mp.product) for c in mp.chunks) <= MAX_REQUEST_BYTES


def test_side_limit_alone_splits_a_thin_grid():
    chunks = plan_chunks(100_000, 300, 1)
    check_tiling(chunks, 100_000, 300, 1)
    assert len(chunks) == 4  # ceil(100000 / 32768), bytes are no constraint here


def test_random_grids_tile_exactly():
    rng = random.Random(0)
    for _ in range(60):
        w, h = rng.randint(1, 40_000), rng.randint(1, 40_000)
        bpp = rng.choice([1, 2, 8, 26, 30])
        max_bytes = rng.choice([MAX_REQUEST_BYTES, 4 << 20, 1 << 20])
        chunks = plan_chunks(w, h, bpp, max_bytes=max_bytes)
        assert sum(c.pixels for c in chunks) == w * h
        rows = {(c.row_off, c.height) for c in chunks}
        cols = {(c.col_off, c.width) for c in chunks}
        assert partition(rows, h) and partition(cols, w)
        assert all(c.pixels * bpp <= max_bytes for c in chunks)
        assert all(c.width <= MAX_SIDE_PX and c.height <= MAX_SIDE_PX for c in chunks)


def test_small_limits_fall_back_to_unaligned_chunks():
    chunks = plan_chunks(100, 100, 30, max_bytes=30 * 500)  # 500 pixels per request
    assert all(c.pixels <= 500 for c in chunks)
    assert sum(c.pixels for c in chunks) == 10_000
    assert len(chunks) <= 25


def test_invalid_requests():
    with pytest.raises(ValueError):
        plan_chunks(0, 10, 2)
    with pytest.raises(ValueError):
        plan_chunks(10, 10, 64, max_bytes=32)


def test_chunk_grid_is_a_window_of_the_export_grid():
    grid = ROI.at(1, 1, "land", 11.5, 48.1, 38400.0).export_grid()
    c = plan_grid(grid)["s2"].chunks[-1]
    g = c.grid(grid)
    assert g.crs == "EPSG:4326" and g.res == grid.res
    assert g.transform.c == pytest.approx(grid.transform.c + c.col_off * 0.0001, abs=1e-12)
    assert g.transform.f == pytest.approx(grid.transform.f - c.row_off * 0.0001, abs=1e-12)
    assert (g.width, g.height) == (c.width, c.height)


def test_plan_totals_and_table():
    rois = [ROI.at(i, 1868, "land", 10.0 + i, lat, 38400.0)
            for i, lat in enumerate([0.0, 30.0, 60.0], start=1)]
    p = plan([(r, "summer") for r in rois], images={(rois[0].id, "summer"): {"s2": 18,
                                                                              "s1": 9, "lc": 1}})
    s = p.summary()
    assert s["scenes"] == 3
    assert s["requests"] == s["pixel_requests"] + 3  # one value:compute per scene
    assert s["pixel_requests"] == sum(v["requests"] for v in s["by_product"].values())
    raw = sum(sum(chunk_bytes(c, m.product) for c in m.chunks)
              for sc in p.scenes for m in sc.modalities.values())
    assert raw < s["expected_bytes"] < raw * 1.01
    text = p.format()
    assert "18/9/1" in text and "total: 3 scene(s)" in text
    # per modality: requests and bytes; compute only when every scene's images are known
    for key in ("s2", "s1", "lc"):
        d = s["by_product"][key]
        assert f"{key}: {d['requests']:,} computePixels request(s)" in text
        assert f"{d['expected_bytes'] / 2**30:.2f} GiB expected" in text
    assert "value:compute: 3 request(s)" in text
    assert s["s2_image_pixels_20m"] is None and "\ncompute:" not in text
    counted = plan([(r, "summer") for r in rois],
                   images={(r.id, "summer"): {"s2": 10, "s1": 3, "lc": 1} for r in rois})
    g = [r.export_grid() for r in rois]
    want = sum(x.width * x.height // 4 * 10 for x in g)
    assert counted.s2_image_pixels() == want
    assert f"compute: {want:,} Sentinel-2 image-pixels scored at 20 m" in counted.format()


def test_plan_requests_follows_the_options():
    import datetime as dt

    roi = ROI.at(1, 1868, "land", 11.5, 48.1, 38400.0)
    req = SceneRequest(roi, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31))
    full = plan_requests([req])
    small = plan_requests([req], EarthEngineOptions(max_request_bytes=8 << 20,
                                                    export_aux=False))
    assert small.pixel_requests > full.pixel_requests
    assert small.scenes[0].modalities["s2"].product.bytes_per_pixel == 26


def test_docs_cost_of_a_full_reproduction_is_the_planners():
    """docs/earthengine.md quotes the planner on the configured 600 scenes."""
    import re
    from pathlib import Path

    from sen12ms_build.config import load_config
    from sen12ms_build.planning import season_rois

    repo = Path(__file__).resolve().parents[1]
    doc = (repo / "docs" / "earthengine.md").read_text()
    quoted = dict(re.findall(r"(\w+)=(\d+)", re.search(r"<!-- planner: (.*?) -->",
                                                        doc).group(1)))
    cfg = load_config(repo / "configs" / "sen12ms.yaml")
    scenes = [(roi, season) for season in cfg.seasons for roi in season_rois(cfg, season)]
    s = plan(scenes).summary()
    assert {k: int(v) for k, v in quoted.items()} == {
        "scenes": s["scenes"], "requests": s["requests"], "pixel_requests": s["pixel_requests"],
        "expected_bytes": s["expected_bytes"]}
    # the table: requests before (bytes only) and after (compute-sized S2), per modality
    before = plan(scenes, s2_side=None).summary()
    rows = {m.group(1): [int(x.replace(",", "")) for x in m.groups()[1:3]] for m in
            re.finditer(r"\| (S2|S1|land cover)[^|]*\| ([\d,]+) \| ([\d,]+) \|", doc)}
    for label, key in (("S2", "s2"), ("S1", "s1"), ("land cover", "lc")):
        assert rows[label] == [before["by_product"][key]["requests"],
                               s["by_product"][key]["requests"]], label
    total = re.search(r"\*\*total\*\* \| \*\*([\d,]+)\*\* \| \*\*([\d,]+)\*\*", doc)
    assert [int(x.replace(",", "")) for x in total.groups()] == [before["requests"],
                                                                  s["requests"]]
