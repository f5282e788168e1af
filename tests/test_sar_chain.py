"""The GRD chain's interface (sigma0_db_on_grid, GrdProduct), layover and shadow against a
flat-earth model of a ridge, and the S1 selection rule both backends share."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from pyproj import Transformer

from sar_truth import PC_ITEM, Luts, grid_point, manifest, xml
from sen12ms_build.geo import square_utm_bounds, utm_grid
from sen12ms_build.raster.io import InputError
from sen12ms_build.sar import S1_PROCESSING
from sen12ms_build.sar.chain import sigma0_db_on_grid
from sen12ms_build.sar.product import GrdProduct
from sen12ms_build.sar.selection import (GrdCandidate, candidate_from_stac,
                                         paint_newest_on_top, select_grd)

pytestmark = pytest.mark.xdist_group("sar")

EPSG = 32633
NODE = (8020, 22202)


def _constant_product(db: float = -12.0, pols=("VV", "VH")) -> GrdProduct:
    luts = Luts()

    def read(rows: slice, cols: slice) -> np.ndarray:
        r, c = np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop)
        return luts.dn(np.full((len(r), len(c)), db), r, c)

    docs = {k: {p: xml(k) for p in pols} for k in ("annotation", "calibration", "noise")}
    return GrdProduct.from_xml(manifest(), docs["annotation"], docs["calibration"],
                               docs["noise"], {p: read for p in pols}, product_id="const")


@pytest.fixture(scope="module")
def frame():
    """Node position and unit ground vectors away from the sensor (increasing pixel) and
    along track (increasing line), from the geolocation grid."""
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{EPSG}", always_xy=True)

    def xy(line, pixel):
        p = grid_point(line, pixel)
        return np.array(to_utm.transform(p["longitude"], p["latitude"]))

    centre = xy(*NODE)
    away = xy(NODE[0], NODE[1] + 1306) - centre
    along = xy(NODE[0] + 2005, NODE[1]) - centre
    return (grid_point(*NODE), centre, away / np.linalg.norm(away),
            along / np.linalg.norm(along))


def test_layover_and_shadow_of_a_ridge_follow_flat_earth_geometry(frame):
    node, centre, away, along = frame
    inc = np.radians(node["incidenceAngle"])
    grid = utm_grid(square_utm_bounds(node["longitude"], node["latitude"], 6000, EPSG), EPSG,
                    20.0)
    t = grid.transform
    xx, yy = np.meshgrid(t.c + t.a * (np.arange(grid.width) + 0.5),
                         t.f + t.e * (np.arange(grid.height) + 0.5))
    # ground distance from the ridge line, away from the sensor; the ridge runs along track
    xr = (xx - centre[0]) * away[0] + (yy - centre[1]) * away[1]

    def ridge(x):  # 1500 m: foreslope 68 deg facing the sensor, backslope 75 deg
        return np.where(x < 0, np.clip(1500 * (1 + x / 600), 0, None),
                        np.clip(1500 * (1 - x / 400), 0, None))

    dem = (ridge(xr) + node["height"]).astype(np.float32)
    db, meta = sigma0_db_on_grid(_constant_product(), grid, dem, dem_is_ellipsoidal=True)

    # flat-earth truth on a fine profile: s = x sin(inc) - z cos(inc) (range), a point is in
    # layover when another point shares its range, in shadow when the ray to the sensor,
    # rising 1 / tan(inc) per metre towards it, passes below terrain nearer the sensor
    x = np.arange(-3000.0, 3000.0, 1.0)
    z = ridge(x)
    s = x * np.sin(inc) - z * np.cos(inc)
    lay = (s < np.maximum.accumulate(np.r_[-np.inf, s[:-1]])) \
        | (s > np.minimum.accumulate(np.r_[s[1:], np.inf][::-1])[::-1])
    ray = z + x / np.tan(inc)
    shade = ray < np.maximum.accumulate(np.r_[-np.inf, ray[:-1]])
    expect = np.interp(xr, x, (lay | shade).astype(float)) > 0.5
    edges = x[np.flatnonzero(np.diff((lay | shade).astype(int)))]
    far = np.min(np.abs(xr[..., None] - edges), axis=-1) > 60.0  # 3 pixels off the edges
    # range profiles cross the grid's rows at a slant (~0.25 row per column here): in the
    # first and last rows, the part of a profile that casts layover or shadow lies outside
    # the grid, where the chain knows no terrain (documented in sen12ms_build.sar.chain)
    far[:40] = far[-40:] = False
    masked = np.isnan(db[0])
    assert edges.size == 2  # one masked band: passive layover .. end of the shadow
    assert np.array_equal(masked[far], expect[far])
    exp_lay = (np.interp(xr, x, lay.astype(float)) > 0.5).mean()
    exp_shadow = (np.interp(xr, x, (shade & ~lay).astype(float)) > 0.5).mean()
    assert meta["layover"] == pytest.approx(exp_lay, abs=0.03) and exp_lay > 0.1
    assert meta["shadow"] == pytest.approx(exp_shadow, abs=0.03) and exp_shadow > 0.1
    assert np.isfinite(db[:, ~expect & far]).all()


def test_outputs_metadata_and_provenance(frame):
    node = frame[0]
    grid = utm_grid(square_utm_bounds(node["longitude"], node["latitude"], 1000, EPSG), EPSG)
    db, meta = sigma0_db_on_grid(_constant_product(), grid,
                                 np.full(grid.shape, 40.0, np.float32))
    assert db.shape == (2, 100, 100) and db.dtype == np.float32
    assert meta["processing"] == S1_PROCESSING and "sar" in S1_PROCESSING
    assert meta["orbit_pass"] == "DESCENDING" and meta["relative_orbit"] == 22
    assert meta["platform"] == "SENTINEL-1B" and meta["product_id"] == "const"
    assert meta["covered"] == 1.0 and meta["ipf_version"] == "003.40"


def test_grid_outside_the_product_is_all_nodata():
    grid = utm_grid(square_utm_bounds(9.0, 45.0, 1000, 32632), 32632)  # Milan: not imaged
    db, meta = sigma0_db_on_grid(_constant_product(), grid, np.zeros(grid.shape, np.float32))
    assert np.isnan(db).all() and meta["covered"] == 0.0 and meta["window"] is None


def test_nan_dem_is_nodata_and_bad_input_is_one_clear_error(frame):
    node = frame[0]
    grid = utm_grid(square_utm_bounds(node["longitude"], node["latitude"], 500, EPSG), EPSG)
    dem = np.full(grid.shape, 50.0, np.float32)
    dem[:10] = np.nan
    db, _ = sigma0_db_on_grid(_constant_product(), grid, dem)
    assert np.isnan(db[:, :10]).all() and np.isfinite(db[:, 11:-1, 1:-1]).all()
    with pytest.raises(InputError, match="resample the DEM onto the grid"):
        sigma0_db_on_grid(_constant_product(), grid, dem[:-1])
    with pytest.raises(InputError, match="no VH polarisation"):
        sigma0_db_on_grid(_constant_product(pols=("VV",)), grid, dem)


def test_from_safe_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="no manifest.safe"):
        GrdProduct.from_safe(tmp_path)
    (tmp_path / "X.SAFE").mkdir()
    (tmp_path / "X.SAFE" / "manifest.safe").write_bytes(manifest())
    with pytest.raises(InputError, match="missing .named in manifest.safe"):
        GrdProduct.from_safe(tmp_path / "X.SAFE")


# --- selection: IW, VV+VH, the period, newest on top ------------------------------------

def _cand(pid, when, mode="IW", pols=("VV", "VH"), ptype="GRD", ring=None):
    return GrdCandidate(pid, datetime.fromisoformat(when).replace(tzinfo=timezone.utc), mode,
                        ptype, pols, "ASCENDING", 1, ring)


def test_selection_keeps_iw_dual_pol_grd_of_the_period_oldest_first():
    cands = [_cand("late", "2017-03-31T23:59:00"), _cand("early", "2017-03-01T00:00:01"),
             _cand("ew", "2017-03-10T10:00:00", mode="EW"),
             _cand("vv-only", "2017-03-10T10:00:00", pols=("VV",)),
             _cand("slc", "2017-03-10T10:00:00", ptype="SLC"),
             _cand("after", "2017-04-01T00:00:00"), _cand("before", "2017-02-28T23:59:59"),
             _cand("early", "2017-03-01T00:00:01")]
    chosen = select_grd(cands, "2017-03-01", "2017-03-31")
    assert [c.product_id for c in chosen] == ["early", "late"]  # painted in order: late on top


def test_selection_drops_footprints_that_miss_the_roi():
    roi = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
    hit = _cand("hit", "2017-06-01T00:00:00", ring=((0.5, 0.5), (2, 0.5), (2, 2), (0.5, 2)))
    miss = _cand("miss", "2017-06-02T00:00:00", ring=((5, 5), (6, 5), (6, 6), (5, 6)))
    assert [c.product_id for c in select_grd([miss, hit], "2017-06-01", "2017-06-30", roi)] \
        == ["hit"]


def test_candidate_from_planetary_computers_item():
    import json

    c = candidate_from_stac(json.loads(PC_ITEM.read_text()))
    assert c.product_id.startswith("S1A_IW_GRDH_1SDV_20230628T210705")
    assert (c.mode, c.product_type, c.polarisations) == ("IW", "GRD", ("VV", "VH"))
    assert c.orbit_pass == "DESCENDING" and c.relative_orbit == 119
    assert c.start == datetime(2023, 6, 28, 21, 7, 5, 989235, tzinfo=timezone.utc)
    assert select_grd([c], "2023-06-28", "2023-06-28") == [c]


def test_paint_newest_on_top():
    old = np.full((2, 2, 2), -10.0, np.float32)
    new = np.full((2, 2, 2), -20.0, np.float32)
    new[:, 0, 0] = np.nan
    new[1, 1, 1] = np.nan  # one band missing: the pixel keeps the older acquisition
    out = paint_newest_on_top([old, new])
    assert out[0].tolist() == [[-10.0, -20.0], [-20.0, -10.0]]
    assert np.isnan(paint_newest_on_top([new])[:, 0, 0]).all()
