"""Radiometry of the GRD chain with independent truth: a known sigma0 inverted through the
real product's calibration and noise LUTs (tests/sar_truth.py, scipy interpolation) into the
DN of a measurement GeoTIFF of the product's real size; the chain (GrdProduct.from_safe ->
sigma0_db_on_grid) must give the sigma0 back, and remove the sub-swath seams thermal noise
leaves."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from sar_truth import Luts, geolocation, grid_point, xml
from sen12ms_build.geo import square_utm_bounds, utm_grid
from sen12ms_build.raster.io import InputError
from sen12ms_build.sar.calibration import parse_calibration
from sen12ms_build.sar.chain import sigma0_db_on_grid
from sen12ms_build.sar.noise import parse_noise
from sen12ms_build.sar.product import GrdProduct
from sen12ms_build.sar.radiometry import border_mask, sigma0_window

pytestmark = pytest.mark.xdist_group("sar")

EPSG = 32633
#: The IW2 / IW3 seam: last sample of IW2 (swathMerging, noise azimuth blocks).
SEAM = 17700
LINE = 8020
TRUTH_DB = {"VV": -11.0, "VH": -25.0}  # VH: calm water, close to the noise floor
ROWS = slice(LINE - 700, LINE + 700)
COLS = slice(SEAM - 900, SEAM + 900)


def _seam_lonlat() -> tuple[float, float]:
    a, b = grid_point(LINE, 16978), grid_point(LINE, 18284)
    f = (SEAM + 0.5 - 16978) / 1306.0
    return (a["longitude"] + f * (b["longitude"] - a["longitude"]),
            a["latitude"] + f * (b["latitude"] - a["latitude"]))


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """A SAFE folder: the real XML and real-size VV, VH measurements holding the DN of the
    truth sigma0 in a window around the seam (zeros, i.e. no data, elsewhere)."""
    from sar_truth import make_safe

    luts = Luts()
    rows, cols = np.arange(ROWS.start, ROWS.stop), np.arange(COLS.start, COLS.stop)
    windows = {pol: [(ROWS, COLS, luts.dn(np.full((len(rows), len(cols)), db), rows, cols))]
               for pol, db in TRUTH_DB.items()}
    safe = make_safe(tmp_path_factory.mktemp("grd"), windows)
    return GrdProduct.from_safe(safe)


@pytest.fixture(scope="module")
def seam_grid():
    lon, lat = _seam_lonlat()
    return utm_grid(square_utm_bounds(lon, lat, 6000, EPSG), EPSG, 20.0)


@pytest.fixture(scope="module")
def result(product, seam_grid):
    dem = np.full(seam_grid.shape, 150.0, np.float32)
    return sigma0_db_on_grid(product, seam_grid, dem)


def test_chain_recovers_sigma0_through_the_real_luts(result, seam_grid):
    db, meta = result
    assert db.shape == (2,) + seam_grid.shape and db.dtype == np.float32
    assert meta["covered"] > 0.99 and meta["layover"] == 0.0
    inner = db[:, 2:-2, 2:-2]
    assert np.isfinite(inner).all()  # the whole grid lies in the written window
    # VV (DN ~190): every pixel within 0.1 dB
    assert np.abs(inner[0] - TRUTH_DB["VV"]).max() < 0.1
    # VH at -25 dB has DN ~50, half of their power noise: one DN is ~0.1 dB of sigma0, so
    # single pixels scatter by ~0.1 dB (quantisation, not the chain); 5 x 5 blocks (100 m)
    # are within 0.1 dB
    h, w = (s // 5 * 5 for s in inner.shape[1:])
    blocks = 10 * np.log10((10 ** (inner[1, :h, :w] / 10)).reshape(h // 5, 5, w // 5, 5)
                           .mean(axis=(1, 3)))
    assert np.abs(blocks - TRUTH_DB["VH"]).max() < 0.1
    for band, pol in enumerate(("VV", "VH")):
        assert abs(float((inner[band] - TRUTH_DB[pol]).mean())) < 0.01


def _seam_side(grid) -> np.ndarray:
    """Each output pixel's GRD pixel coordinate, from a plane fitted to the geolocation
    grid's nodes around the seam (independent of the chain's geometry)."""
    g = geolocation()
    near = (np.abs(g["line"] - LINE) <= 2005) & (np.abs(g["pixel"] - SEAM) <= 1306)
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{EPSG}", always_xy=True)
    x, y = to_utm.transform(g["longitude"][near], g["latitude"][near])
    coef, *_ = np.linalg.lstsq(np.column_stack([x, y, np.ones_like(x)]), g["pixel"][near],
                               rcond=None)
    t = grid.transform
    xx, yy = np.meshgrid(t.c + t.a * (np.arange(grid.width) + 0.5),
                         t.f + t.e * (np.arange(grid.height) + 0.5))
    return coef[0] * xx + coef[1] * yy + coef[2]


def _step(db_left: np.ndarray, db_right: np.ndarray) -> float:
    """Seam step: difference of the mean power (dB) on either side."""
    return abs(10 * np.log10(np.nanmean(10 ** (db_right / 10)))
               - 10 * np.log10(np.nanmean(10 ** (db_left / 10))))


def test_thermal_noise_removal_erases_the_subswath_seam(product, result, seam_grid):
    """VH over calm water: without noise removal the IW2/IW3 seam is a step of most of a
    dB; after the chain, no step."""
    pol = product.pol("VH")
    rows = np.arange(LINE - 100, LINE + 100)
    cols = np.arange(SEAM - 59, SEAM + 61)
    dn = pol.read_dn(slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    kw = dict(lines=16705, samples=26102, ipf=3.4)
    raw, _ = sigma0_window(dn, rows, cols, pol.calibration, pol.noise, denoise=False, **kw)
    left, right = cols <= SEAM, cols > SEAM
    before = _step(10 * np.log10(raw[:, left]), 10 * np.log10(raw[:, right]))
    assert before > 0.5

    db, _ = result
    side = _seam_side(seam_grid)
    guard = 10  # GRD pixels (100 m) either side of the seam, for the plane fit's error
    l_sel = (side < SEAM - guard) & (side > SEAM - 60 - guard)
    r_sel = (side > SEAM + guard) & (side < SEAM + 60 + guard)
    assert l_sel.sum() > 200 and r_sel.sum() > 200
    after = _step(db[1][l_sel], db[1][r_sel])
    assert after < 0.02 and after < before / 30


def test_the_chain_reads_only_the_window_the_grid_needs(product, seam_grid):
    seen = []
    vv, vh = product.pol("VV"), product.pol("VH")

    def spy(reader):
        def read(rows, cols):
            seen.append((rows, cols))
            return reader(rows, cols)
        return read

    from dataclasses import replace

    p = replace(product, polarisations={"VV": replace(vv, read_dn=spy(vv.read_dn)),
                                        "VH": replace(vh, read_dn=spy(vh.read_dn))})
    db, meta = sigma0_db_on_grid(p, seam_grid, np.zeros(seam_grid.shape, np.float32))
    assert len(seen) == 2 and seen[0] == seen[1]
    rows, cols = seen[0]
    area = (rows.stop - rows.start) * (cols.stop - cols.start)
    # 6 km of ground: ~600 lines x ~650 pixels of a 16705 x 26102 product (< 1 %)
    assert area < 0.01 * 16705 * 26102
    assert meta["window"] == {"rows": [rows.start, rows.stop], "cols": [cols.start, cols.stop]}


def test_border_rule_follows_esa_by_processor_version():
    rows, cols = np.arange(100, 104), np.array([0, 1, 1999, 2000, 2001, 5000])
    dn = np.array([[0, 25, 25, 25, 40, 0]] * 4, np.uint16)
    denoised = dn.astype(np.float32) ** 2 - 100.0
    new = border_mask(dn, denoised, rows, cols, lines=16705, samples=26102, ipf=3.4)
    # IPF >= 2.90 zeroes its own border noise: only DN = 0 is masked
    assert new.tolist() == [[True, False, False, False, False, True]] * 4
    old = border_mask(dn, denoised, rows, cols, lines=16705, samples=26102, ipf=2.84)
    # before 2.90, ESA's rule within 2000 pixels of the edges (rows 100..103 are inside the
    # first 2000 lines: the whole window is in the zone); DN < 30 is noise there
    assert old.tolist() == [[True, True, True, True, False, True]] * 4
    mid = np.arange(8000, 8004)
    old_mid = border_mask(dn, denoised, mid, cols, lines=16705, samples=26102, ipf=2.84)
    assert old_mid.tolist() == [[True, True, True, False, False, True]] * 4
    low = np.full((4, 6), 40, np.uint16)  # DN 40 but noise above the signal: masked
    assert border_mask(low, np.full((4, 6), 0.2, np.float32), mid, cols, lines=16705,
                       samples=26102, ipf=2.84).tolist() \
        == [[True, True, True, False, False, False]] * 4


def test_negative_power_clips_at_the_floor_and_old_ipf_is_refused():
    cal, noise = parse_calibration(xml("calibration")), parse_noise(xml("noise"))
    rows, cols = np.arange(8000, 8002), np.arange(17000, 17003)
    dn = np.full((2, 3), 5, np.uint16)  # 25 DN**2, far below the noise (~1400)
    s, _ = sigma0_window(dn, rows, cols, cal, noise, lines=16705, samples=26102, ipf=3.4)
    a = Luts().sigma_lut(rows, cols)
    assert np.allclose(s, 0.0123456789 / a ** 2, rtol=1e-4)  # ESA toolbox's floor
    with pytest.raises(InputError, match="IPF 2.43"):
        sigma0_window(dn, rows, cols, cal, noise, lines=16705, samples=26102, ipf=2.43)
