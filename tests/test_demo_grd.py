"""The demo's Sentinel-1 published as raw GRD products (sen12ms_build.demo.grd): the GRD chain
run on them must give back the demo's truth sigma0, and the products must look like real ones
(manifest facts, GCPs, pass geometry)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sen12ms_build.demo.grd import DEM_HEIGHT_M, pc_assets, write_grd_product
from sen12ms_build.demo.plan import S1_PLAN, SEED_S1
from sen12ms_build.sar.annotation import parse_annotation
from sen12ms_build.sar.chain import sigma0_db_on_grid
from sen12ms_build.sar.geometry import RadarGeometry, geodetic_to_ecef
from sen12ms_build.sar.product import GrdProduct

pytestmark = pytest.mark.xdist_group("sar")
CROP = 256


@pytest.fixture(scope="module")
def ground():
    """The central 256 x 256 pixels of the demo ground and acquisition 0's truth sigma0."""
    from sen12ms_build.demo.ground import (crop_window, ground_classes, load_ground,
                                           reflectance_indices, window_grid)
    from sen12ms_build.demo.sar import simulate_s1

    full, grid_full = load_ground()
    r0, c0, h, w = win = crop_window(grid_full.shape, CROP)
    g = np.ascontiguousarray(full[:, r0:r0 + h, c0:c0 + w])
    truth = simulate_s1(ground_classes(g), reflectance_indices(g)["ndvi"],
                        np.random.default_rng([SEED_S1, 0]), S1_PLAN[0].season)
    return window_grid(grid_full, win), truth


@pytest.fixture(scope="module")
def published(ground, tmp_path_factory):
    grid, truth = ground
    root = tmp_path_factory.mktemp("grd")
    return root, write_grd_product(root, S1_PLAN[0], 0, grid, truth)


def _blocks(db: np.ndarray, k: int) -> np.ndarray:
    h, w = (s // k * k for s in db.shape)
    lin = 10.0 ** (db[:h, :w] / 10.0)
    return 10.0 * np.log10(lin.reshape(h // k, k, w // k, k).mean(axis=(1, 3)))


def test_chain_recovers_the_demo_truth(ground, published):
    """Truth -> radar: each radar pixel samples the truth bilinearly (linear power) at its
    ground position; radar -> map: the chain samples bilinearly again. The two resamplings
    move power between neighbouring pixels (speckle, ENL 4.4, does not survive them pixel by
    pixel), so truth and output are compared as 32 x 32 pixel block means (320 m, linear
    power), 2 pixels off the ground's edges."""
    grid, truth = ground
    root, entry = published
    product = GrdProduct.from_safe(root / entry["safe"])
    dem = np.full(grid.shape, DEM_HEIGHT_M, np.float32)
    db, meta = sigma0_db_on_grid(product, grid, dem)
    inner = (slice(2, -2), slice(2, -2))
    assert np.isfinite(db[(slice(None),) + inner]).all()
    for band in (0, 1):
        diff = _blocks(db[band][inner], 32) - _blocks(truth[band][inner], 32)
        assert np.abs(diff).max() < 0.1
        # the mean power of the whole ground
        assert _blocks(db[band][inner], 252)[0, 0] \
            == pytest.approx(_blocks(truth[band][inner], 252)[0, 0], abs=0.02)
    assert meta["product_id"] == entry["product_id"] and meta["orbit_pass"] == "ASCENDING"


def test_products_look_like_real_ones(ground, published):
    grid, _ = ground
    root, entry = published
    plan = S1_PLAN[0]
    assert entry["product_id"].startswith("S1A_IW_GRDH_1SDV_" + f"{plan.sensing_time:%Y%m%d}")
    assert entry["orbit_pass"] == plan.orbit_pass and entry["platform"] == "SENTINEL-1A"
    safe = root / entry["safe"]
    for rel in entry["assets"].values():
        assert (safe / rel).is_file(), rel
    assert set(entry["assets"]) >= {"safe-manifest", "schema-calibration-vv",
                                    "schema-noise-vh", "vv", "vh"}
    with rasterio.open(safe / entry["assets"]["vv"]) as src:
        gcps, crs = src.gcps
        assert (src.height, src.width) == (16705, 26102) and src.crs is None
        assert len(gcps) == 210 and crs.to_epsg() == 4326
    # the ground lies inside the product's footprint (GCP corners)
    lons, lats = zip(*entry["footprint"])
    from pyproj import Transformer

    left, bottom, right, top = grid.bounds
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(
        (left + right) / 2, (bottom + top) / 2)
    assert min(lons) < lon < max(lons) and min(lats) < lat < max(lats)


def test_ascending_heads_north_and_descending_south(ground, tmp_path):
    from sen12ms_build.demo.grd import demo_documents

    grid, _ = ground
    for index in (0, 1):  # the plan's first ascending and first descending acquisitions
        docs = demo_documents(S1_PLAN[index], index, grid)
        ann = parse_annotation(docs.annotation["VV"])
        geo = RadarGeometry(ann)
        g = ann.geolocation
        centre = geodetic_to_ecef(g.latitude.mean(), g.longitude.mean(), 0.0)
        t = geo.zero_doppler_time(centre[None])
        _, vel, _ = geo.orbit.state(t)
        north = vel[0, 2] > 0  # z velocity at mid latitudes
        assert north == (S1_PLAN[index].orbit_pass == "ASCENDING")
        # the grid it writes is where its own orbit puts it
        rc = geo.radar_coordinates(geodetic_to_ecef(g.latitude, g.longitude, g.height))
        assert np.abs(rc.pixel - g.pixel).max() < 0.01
        assert docs.stem["VH"].split("-")[3] == "vh"


def test_pc_assets_name_the_planetary_computer_keys():
    assets = pc_assets("P", {"VV": "s1a-iw-grd-vv-x-001", "VH": "s1a-iw-grd-vh-x-002"})
    assert assets["vh"] == "measurement/s1a-iw-grd-vh-x-002.tiff"
    assert assets["schema-noise-vv"] == "annotation/calibration/noise-s1a-iw-grd-vv-x-001.xml"
