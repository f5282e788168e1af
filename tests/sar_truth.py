"""Test-side truth for the Sentinel-1 GRD chain, written independently of sen12ms_build.sar:

* the real S1B IW GRDH product's metadata (sen12ms_build/demo/data/s1b_grd, from the sarsen
  0.9.6 sdist; tests/fixtures/sentinel1/README.md), read with ElementTree here;
* ESA's calibration equations inverted: DN = sqrt(sigma0 * A**2 + N), with A (sigmaNought)
  and N (noise range x azimuth) interpolated bilinearly by scipy's RegularGridInterpolator
  over the LUT nodes (the chain interpolates with its own code);
* synthetic SAFE folders: the real XML plus a measurement GeoTIFF of the product's real size
  (sparse: only the windows a test writes hold data).
"""

from __future__ import annotations

import lzma
import shutil
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from scipy.interpolate import RegularGridInterpolator

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sentinel1"
SAFE_NAME = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
#: the real product's XML (package data of the demo, which builds its GRD products from it)
SAFE = (Path(__file__).resolve().parent.parent / "sen12ms_build" / "demo" / "data"
        / "s1b_grd" / SAFE_NAME)
STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
ROME_DEM = FIXTURES / "Rome-30m-DEM.tif"
PC_ITEM = FIXTURES / "pc-sentinel-1-grd-item.json"
LINES, SAMPLES = 16705, 26102  # imageInformation numberOfLines / numberOfSamples
#: EGM96 geoid height at the Rome grid node (42.0062 N, 12.4935 E) from NGA's 15' grid
#: (us_nga_egm96_15), bilinear: independent of the chain's decimated 0.5 degree grid.
N_EGM96_ROME = 48.62


def xml(kind: str) -> bytes:
    """The fixture's VV ``annotation``, ``calibration``, ``noise`` or ``rfi`` XML bytes."""
    rel = {"annotation": f"annotation/{STEM}.xml",
           "calibration": f"annotation/calibration/calibration-{STEM}.xml",
           "noise": f"annotation/calibration/noise-{STEM}.xml",
           "rfi": f"annotation/rfi/rfi-{STEM}.xml"}[kind]
    return lzma.decompress((SAFE / (rel + ".xz")).read_bytes())


def manifest() -> bytes:
    return (SAFE / "manifest.safe").read_bytes()


def _floats(text: str) -> np.ndarray:
    return np.array(text.split(), np.float64)


class Luts:
    """sigmaNought and noise LUTs of the fixture, interpolated with scipy."""

    def __init__(self) -> None:
        cal = ET.fromstring(xml("calibration"))
        vec = cal.findall(".//calibrationVector")
        lines = np.array([float(v.findtext("line")) for v in vec])
        pixels = _floats(vec[0].findtext("pixel"))
        values = np.stack([_floats(v.findtext("sigmaNought")) for v in vec])
        self._sigma = RegularGridInterpolator((lines, pixels), values)
        noise = ET.fromstring(xml("noise"))
        vec = noise.findall(".//noiseRangeVector")
        lines = np.array([float(v.findtext("line")) for v in vec])
        pixels = _floats(vec[0].findtext("pixel"))
        values = np.stack([_floats(v.findtext("noiseRangeLut")) for v in vec])
        self._range = RegularGridInterpolator((lines, pixels), values)
        self._blocks = []
        for v in noise.findall(".//noiseAzimuthVector"):
            self._blocks.append((int(v.findtext("firstAzimuthLine")),
                                 int(v.findtext("lastAzimuthLine")),
                                 int(v.findtext("firstRangeSample")),
                                 int(v.findtext("lastRangeSample")),
                                 _floats(v.findtext("line")),
                                 _floats(v.findtext("noiseAzimuthLut"))))

    def sigma_lut(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(R, C) sigmaNought LUT A at product lines ``rows`` and pixels ``cols``."""
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        return self._sigma(np.stack([rr, cc], -1))

    def noise(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(R, C) thermal noise power (DN**2)."""
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        rng = self._range(np.stack([rr, cc], -1))
        az = np.zeros_like(rng)
        for l0, l1, s0, s1, lines, lut in self._blocks:
            inside = (rr >= l0) & (rr <= l1) & (cc >= s0) & (cc <= s1)
            az[inside] = np.interp(rr[inside], lines, lut)
        return rng * az

    def dn(self, sigma0_db: np.ndarray, rows: np.ndarray, cols: np.ndarray,
           seed: int = 0) -> np.ndarray:
        """uint16 DN that ESA's equation turns into ``sigma0_db``, rounded to integers
        stochastically (floor(x + U), U uniform in [0, 1), seeded): unbiased, and the
        rounding errors of neighbours are independent (plain rounding of a smooth field gives
        errors correlated over large areas, which bias area means by up to half a DN)."""
        a = self.sigma_lut(rows, cols)
        power = 10.0 ** (np.asarray(sigma0_db, np.float64) / 10.0) * a * a \
            + self.noise(rows, cols)
        u = np.random.default_rng([seed, int(rows[0]), int(cols[0])]).random(power.shape)
        return np.clip(np.floor(np.sqrt(power) + u), 1, 65535).astype(np.uint16)


def geolocation() -> dict[str, np.ndarray]:
    """The annotation's geolocation grid: (N,) arrays line, pixel, latitude, longitude,
    height, incidenceAngle."""
    root = ET.fromstring(xml("annotation"))
    pts = root.findall(".//geolocationGridPoint")
    keys = ("line", "pixel", "latitude", "longitude", "height", "incidenceAngle")
    return {k: np.array([float(p.findtext(k)) for p in pts]) for k in keys}


def grid_point(line: int, pixel: int) -> dict[str, float]:
    g = geolocation()
    i = int(np.flatnonzero((g["line"] == line) & (g["pixel"] == pixel))[0])
    return {k: float(v[i]) for k, v in g.items()}


def make_safe(root: Path, windows: dict[str, list[tuple[slice, slice, np.ndarray]]]) -> Path:
    """A SAFE folder under ``root``: the fixture's manifest and XML (VH gets copies of the
    VV documents, the sdist ships VV only) and, per polarisation, a tiled GeoTIFF of the
    product's real size (uint16, DN 0 = no data) holding the given DN windows.

    Args:
        windows: ``{"VV": [(rows, cols, dn), ...], "VH": [...]}``.
    Returns:
        The SAFE folder.
    """
    safe = root / SAFE_NAME
    (safe / "annotation" / "calibration").mkdir(parents=True, exist_ok=True)
    (safe / "measurement").mkdir(exist_ok=True)
    shutil.copy(SAFE / "manifest.safe", safe / "manifest.safe")
    vh = STEM.replace("-vv-", "-vh-").replace("-001", "-002")
    for pol, stem in (("VV", STEM), ("VH", vh)):
        for kind, rel in (("annotation", f"annotation/{stem}.xml"),
                          ("calibration", f"annotation/calibration/calibration-{stem}.xml"),
                          ("noise", f"annotation/calibration/noise-{stem}.xml")):
            text = xml(kind)
            if pol == "VH":
                text = text.replace(b"<polarisation>VV</polarisation>",
                                    b"<polarisation>VH</polarisation>")
            (safe / rel).write_bytes(text)
        profile = {"driver": "GTiff", "width": SAMPLES, "height": LINES, "count": 1,
                   "dtype": "uint16", "tiled": True, "blockxsize": 512, "blockysize": 512,
                   "compress": "deflate", "sparse_ok": True}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(safe / "measurement" / f"{stem}.tiff", "w", **profile)
        with dst:
            for rows, cols, dn in windows.get(pol, []):
                dst.write(dn, 1, window=Window(cols.start, rows.start, dn.shape[1],
                                               dn.shape[0]))
    return safe
