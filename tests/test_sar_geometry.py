"""Geometry of the GRD chain against independent truth: the real product's geolocation grid
(ESA's own latitude, longitude, height <-> line, pixel, azimuth and slant range times), NGA's
EGM96 test values, and the foreshortening that relief gives (h / tan(incidence) on the
ground), with the real Rome DEM."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.warp import Resampling, reproject

from sar_truth import N_EGM96_ROME, ROME_DEM, Luts, grid_point, manifest, xml
from sen12ms_build.geo import square_utm_bounds, utm_grid
from sen12ms_build.sar.annotation import parse_annotation
from sen12ms_build.sar.chain import sigma0_db_on_grid
from sen12ms_build.sar.geoid import undulation
from sen12ms_build.sar.geometry import (SPEED_OF_LIGHT, RadarGeometry, geodetic_to_ecef,
                                        incidence_angle)
from sen12ms_build.sar.product import GrdProduct
from sen12ms_build.sar.terrain import geocode_grid

pytestmark = pytest.mark.xdist_group("sar")

#: The geolocation grid node inside the Rome DEM (line, pixel).
NODE = (8020, 22202)
EPSG = 32633


@pytest.fixture(scope="module")
def geometry():
    return RadarGeometry(parse_annotation(xml("annotation")))


def test_egm96_matches_ngas_test_points():
    # NGA's EGM96 interpolation test points (outintpt.dat, as GeographicLib's docs list them)
    pts = [(38.6281550, 269.7791550, -31.628), (-14.6212170, 305.0211140, -2.969),
           (46.8743190, 102.4487290, -43.575), (-23.6174460, 133.8747120, 15.871),
           (38.6254730, 359.9995000, 50.066), (-0.4667440, 0.0023000, 17.329)]
    lat, lon, ref = map(np.array, zip(*pts))
    assert np.abs(undulation(lat, lon) - ref).max() < 0.3
    assert np.allclose(undulation(lat, lon - 360.0), undulation(lat, lon))
    assert undulation(42.0062038, 12.4934563) == pytest.approx(N_EGM96_ROME, abs=0.3)


def test_every_geolocation_grid_point_lands_on_its_line_and_pixel(geometry):
    g = parse_annotation(xml("annotation")).geolocation  # parsed arrays, truth from ESA
    pts = geodetic_to_ecef(g.latitude, g.longitude, g.height)
    rc = geometry.radar_coordinates(pts)
    assert np.abs(rc.time - g.azimuth_time).max() < 1e-5          # s (7.5 cm along track)
    srt = 2.0 * rc.slant_range / SPEED_OF_LIGHT
    assert np.abs(srt - g.slant_range_time).max() * SPEED_OF_LIGHT / 2 < 0.01  # m
    assert np.abs(rc.pixel - g.pixel).max() < 0.05
    # the grid's lines are nominal; its azimuth times differ from line * interval by up to
    # 0.27 ms (0.18 line) across range
    assert np.abs(rc.line - g.line).max() < 0.25
    inc = incidence_angle(pts, rc.satellite, g.latitude, g.longitude)
    assert np.abs(inc - g.incidence_angle).max() < 0.05           # degrees


def test_tie_point_geocoding_matches_the_exact_solution(geometry):
    grid = utm_grid(square_utm_bounds(12.4934563, 42.0062038, 4000, EPSG), EPSG, 20.0)
    yy, xx = np.mgrid[0:grid.height, 0:grid.width]
    rng = np.random.default_rng(7)
    height = 300 + 1200 * np.sin(xx / 23.0) * np.cos(yy / 17.0) + rng.normal(0, 20, xx.shape)
    height[5:9, 40:60] = np.nan
    geo = geocode_grid(geometry, grid, height)
    assert np.isnan(geo.line[5:9, 40:60]).all() and np.isfinite(geo.line[10:]).all()
    r, c = rng.integers(10, grid.height, 500), rng.integers(0, grid.width, 500)
    t = grid.transform
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(
        t.c + t.a * (c + 0.5), t.f + t.e * (r + 0.5))
    exact = geometry.radar_coordinates(geodetic_to_ecef(lat, lon, height[r, c]))
    assert np.abs(geo.line[r, c] - exact.line).max() < 0.01
    assert np.abs(geo.pixel[r, c] - exact.pixel).max() < 0.01
    assert np.abs(geo.look_angle[r, c] - exact.look_angle).max() < 1e-4


# --- a marked feature, placed by the geolocation grid ---------------------------------------

def _bright_spot_product() -> GrdProduct:
    """A product whose radar image is -15 dB with a 3 x 3 block of +5 dB at the node."""
    luts = Luts()

    def read(rows: slice, cols: slice) -> np.ndarray:
        r, c = np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop)
        db = np.full((len(r), len(c)), -15.0)
        db[np.ix_(np.abs(r - NODE[0]) <= 1, np.abs(c - NODE[1]) <= 1)] = 5.0
        return luts.dn(db, r, c)

    docs = {k: {"VV": xml(k), "VH": xml(k)} for k in ("annotation", "calibration", "noise")}
    return GrdProduct.from_xml(manifest(), docs["annotation"], docs["calibration"],
                               docs["noise"], {"VV": read, "VH": read}, product_id="spot")


def _spot_xy(grid, db: np.ndarray) -> np.ndarray:
    """Power-weighted centroid (map x, y) of the pixels above -5 dB."""
    sel = np.isfinite(db) & (db > -5.0)
    assert 1 <= sel.sum() < 60
    rows, cols = np.nonzero(sel)
    w = 10.0 ** (db[sel] / 10.0)
    t = grid.transform
    return np.array([t.c + t.a * (np.average(cols, weights=w) + 0.5),
                     t.f + t.e * (np.average(rows, weights=w) + 0.5)])


@pytest.fixture(scope="module")
def node_frame():
    """The node's map position, grid and the unit ground vector pointing away from the
    sensor (towards increasing pixel), all from the geolocation grid."""
    p = grid_point(*NODE)
    far = grid_point(NODE[0], NODE[1] + 1306)
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{EPSG}", always_xy=True)
    xy = np.array(to_utm.transform(p["longitude"], p["latitude"]))
    away = np.array(to_utm.transform(far["longitude"], far["latitude"])) - xy
    grid = utm_grid(square_utm_bounds(p["longitude"], p["latitude"], 2000, EPSG), EPSG)
    return p, xy, away / np.linalg.norm(away), grid


def test_feature_lands_on_the_geolocation_grid(node_frame):
    p, xy, _, grid = node_frame
    dem = np.full(grid.shape, p["height"], np.float32)  # the grid's own (ellipsoidal) height
    db, meta = sigma0_db_on_grid(_bright_spot_product(), grid, dem, dem_is_ellipsoidal=True)
    assert np.linalg.norm(_spot_xy(grid, db[0]) - xy) < 10.0  # one output pixel
    assert meta["covered"] > 0.99


def test_relief_shifts_the_feature_by_height_over_tan_incidence(node_frame):
    """A flat DEM at 0 m puts the spot h / tan(incidence) towards the sensor from where the
    real relief (the Rome DEM, EGM96 heights + N) puts it."""
    p, xy, away, grid = node_frame
    product = _bright_spot_product()
    flat, _ = sigma0_db_on_grid(product, grid, np.zeros(grid.shape, np.float32),
                                dem_is_ellipsoidal=True)
    dem = np.full(grid.shape, np.nan, np.float32)
    with rasterio.open(ROME_DEM) as src:
        reproject(src.read(1).astype(np.float32), dem, src_transform=src.transform,
                  src_crs="EPSG:4326", dst_transform=grid.transform, dst_crs=grid.crs,
                  src_nodata=src.nodata, dst_nodata=np.nan, resampling=Resampling.bilinear)
    relief, _ = sigma0_db_on_grid(product, grid, dem)  # geoid heights: the chain adds N
    at_flat, at_relief = _spot_xy(grid, flat[0]), _spot_xy(grid, relief[0])
    tan_inc = np.tan(np.radians(p["incidenceAngle"]))
    # expected: x = x_flat + h(x) / tan(inc) away from the sensor, h the ellipsoidal height
    # there (fixed point on the DEM, sampled here by nearest pixel)
    t = grid.transform
    x = at_flat.copy()
    for _ in range(5):
        col, row = int((x[0] - t.c) / t.a), int((x[1] - t.f) / t.e)
        h = float(dem[row, col]) + N_EGM96_ROME
        x = at_flat + away * h / tan_inc
    assert np.linalg.norm(at_relief - x) < 10.0
    shift = float(np.dot(at_relief - at_flat, away))
    assert shift == pytest.approx(h / tan_inc, abs=10.0) and shift > 50.0
    # and the relief-corrected spot is where ESA's grid (at its own height) puts it
    assert np.linalg.norm(at_relief - xy) < 10.0 + abs(h - p["height"]) / tan_inc


def test_zero_doppler_solution_agrees_with_sarsen(geometry):
    """sarsen 0.9.6 (its own orbit polynomial and Newton solver) on the geolocation grid's
    points: the same zero-Doppler times and slant ranges."""
    xr = pytest.importorskip("xarray")
    apps = pytest.importorskip("sarsen.apps")
    from sarsen import orbit

    ann = parse_annotation(xml("annotation"))
    times = ann.epoch + (ann.orbit.time * 1e9).astype("timedelta64[ns]")
    position = xr.DataArray(ann.orbit.position.T, dims=("axis", "azimuth_time"),
                            coords={"axis": [0, 1, 2], "azimuth_time": times})
    interp = orbit.OrbitPolyfitInterpolator.from_position(position)
    g = ann.geolocation
    ecef = geodetic_to_ecef(g.latitude, g.longitude, g.height)
    dem_ecef = xr.DataArray(ecef.T[:, None, :], dims=("axis", "y", "x"),
                            coords={"axis": [0, 1, 2]})
    acq = apps.simulate_acquisition(dem_ecef, interp)
    t_sarsen = (acq.azimuth_time.values[0] - ann.epoch) / np.timedelta64(1, "s")
    r_sarsen = acq.slant_range_time.values[0] * SPEED_OF_LIGHT / 2
    ours = geometry.radar_coordinates(ecef)
    assert np.abs(ours.time - t_sarsen).max() < 5e-5  # s: < 0.04 line
    assert np.abs(ours.slant_range - r_sarsen).max() < 0.1  # m
