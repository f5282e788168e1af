"""Quicklooks: panel rendering, MODIS colours, layout and the written PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from sen12ms_build.curation import quicklook as ql


def test_colour_tables_follow_the_modis_palette_and_table_2():
    assert ql.hex_rgb(ql.IGBP[17][1]) == (28, 13, 255)  # water bodies
    assert ql.IGBP[12] == ("Croplands", "c24f44")
    assert sorted(ql.IGBP) == list(range(1, 18))
    assert sorted(ql.LCCS_LC) == [1, 2, 3, 11, 12, 13, 14, 15, 16, 21, 22, 31, 32, 41, 42, 43]
    assert ql.LCCS_LC[42][0] == "Shrubland/Grassland Mosaics"
    assert list(ql.SCHEMES) == ["IGBP", "LCCS land cover", "LCCS land use",
                                "LCCS surface hydrology"]


def test_class_colours_and_nodata():
    classes = np.array([[1, 17], [255, 99]], np.uint16)
    rgb = ql.class_colours(classes, ql.IGBP)
    assert tuple(rgb[0, 0]) == ql.hex_rgb("05450a") and tuple(rgb[0, 1]) == (28, 13, 255)
    assert tuple(rgb[1, 0]) == ql.NODATA_RGB and tuple(rgb[1, 1]) == (0, 0, 0)


def test_robust_stretch():
    x = np.linspace(0, 100, 101)[None, :].repeat(3, 0)
    valid = np.ones_like(x, bool)
    valid[0, 0] = False
    out = ql.stretch([x, x, x], valid, [(10, 90)] * 3)
    assert out[1, 0, 0] == 0 and out[1, 50, 0] == 128 and out[1, 100, 0] == 255
    assert tuple(out[0, 0]) == (0, 0, 0)
    lo, hi = ql.stretch_limits(x, valid)
    assert lo == pytest.approx(2.0) and hi == pytest.approx(98.0)
    s1 = np.stack([np.full((4, 4), -10.0), np.full((4, 4), -17.0)]).astype(np.float32)
    s1[:, 0, 0] = np.nan
    assert tuple(ql.s1_false_colour(s1)[0, 0]) == (0, 0, 0)


def test_layout_reduces_large_scenes_by_an_integer_factor():
    lay = ql.make_layout(3840, 3840, 5)
    assert lay.factor == 4 and lay.panel_width == 960
    x, y, side = lay.patch_box("rgb", 256, 512, 256)
    assert (x, y, side) == (lay.panels["rgb"][0] + 128, lay.panels["rgb"][1] + 64, 64)
    assert ql.make_layout(640, 640, 1).factor == 1


def _write(path, data, nodata):
    t = Affine(10, 0, 400000, 0, -10, 4000000)
    with rasterio.open(path, "w", driver="GTiff", count=data.shape[0], height=data.shape[1],
                       width=data.shape[2], dtype=data.dtype, crs="EPSG:32618", transform=t,
                       nodata=nodata) as f:
        f.write(data)


def test_quicklook_png(tmp_path):
    rng = np.random.default_rng(1)
    h, w = 300, 400
    s2 = rng.integers(300, 3000, (13, h, w)).astype(np.uint16)
    s1 = rng.normal(-12, 3, (2, h, w)).astype(np.float32)
    lc = np.full((4, h, w), 12, np.uint16)
    lc[0, :, 200:] = 17
    lc[1, :, :] = 31
    lc[1, 150:, :] = 3
    lc[:, :20, :20] = 255
    paths = {}
    for k, a, nd in (("s2", s2, 0), ("s1", s1, float("nan")), ("lc", lc, 255)):
        paths[k] = tmp_path / f"{k}.tif"
        _write(paths[k], a, nd)
    png = tmp_path / "ql" / "scene_1.png"
    lay = ql.write_quicklook(paths, png, "test scene")
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (lay.height, lay.width, 3)
    assert (lay.panel_width, lay.panel_height, lay.factor) == (400, 300, 1)
    assert json.loads(png.with_suffix(".json").read_text())["width"] == lay.width
    assert ql.read_layout(png) == lay
    x, y = lay.panels["igbp"]
    assert tuple(img[y + 100, x + 50]) == ql.hex_rgb(ql.IGBP[12][1])
    assert tuple(img[y + 100, x + 350]) == ql.hex_rgb(ql.IGBP[17][1])
    assert tuple(img[y + 5, x + 5]) == (0, 0, 0)  # no data
    x, y = lay.panels["lccs"]
    assert tuple(img[y + 100, x + 200]) == ql.hex_rgb(ql.LCCS_LC[31][1])
    assert tuple(img[y + 250, x + 200]) == ql.hex_rgb(ql.LCCS_LC[3][1])
    x, y = lay.panels["rgb"]
    rgb = ql.s2_composite(s2, ("B4", "B3", "B2"))
    assert np.array_equal(img[y:y + h, x:x + w], rgb)
    assert ql.quicklook_path(tmp_path, "ROIs1_spring", 3).as_posix().endswith(
        "quicklooks/ROIs1_spring/scene_3.png")


def test_scene_title_and_panel_titles_do_not_overlap(tmp_path):
    """The scene title lives in its own strip: a long title changes only rows above the
    panel titles, and the panel titles are inked rows of their own below it."""
    rng = np.random.default_rng(2)
    h, w = 120, 160
    paths = {}
    for k, a, nd in (("s2", rng.integers(300, 3000, (13, h, w)).astype(np.uint16), 0),
                     ("s1", rng.normal(-12, 3, (2, h, w)).astype(np.float32), float("nan")),
                     ("lc", np.full((4, h, w), 12, np.uint16), 255)):
        paths[k] = tmp_path / f"{k}.tif"
        _write(paths[k], a, nd)
    imgs = {}
    for name, title in (("bare", ""), ("titled", "ROIs2017_winter scene 1  " * 8)):
        lay = ql.write_quicklook(paths, tmp_path / name / "scene_1.png", title)
        imgs[name] = np.asarray(Image.open(tmp_path / name / "scene_1.png").convert("L"))
    changed = np.nonzero((imgs["bare"] != imgs["titled"]).any(axis=1))[0]
    assert changed.size and changed.max() < ql.HEADER_PX  # the title's ink: header only
    s1_x, s1_y = lay.panels["s1"]
    title_rows = imgs["bare"][ql.HEADER_PX:s1_y, s1_x:s1_x + lay.panel_width]
    assert (title_rows < 128).any()  # the S1 panel's title is drawn below the header
    assert s1_y == ql.HEADER_PX + ql.TITLE_PX
