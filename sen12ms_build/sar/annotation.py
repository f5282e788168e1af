"""The product annotation of a Sentinel-1 GRD polarisation (``annotation/s1?-iw-grd-vv-*.xml``):
what range-Doppler geocoding needs, parsed with ElementTree.

* timing: first line's zero-Doppler time, line interval, lines and samples;
* range: the first pixel's two-way slant range time, the ground range pixel spacing and the
  slant-to-ground-range polynomials (``coordinateConversion``, GRD only);
* the orbit state vectors (Earth-fixed, WGS 84) the processor used;
* the geolocation grid (latitude, longitude, height per line and pixel: the processor's own
  geolocation, used by the tests as truth);
* the sub-swath bounds (``swathMerging``).

Times are float64 seconds since :attr:`ProductAnnotation.epoch` (the first line's time), so
that the numpy algorithms never handle ``datetime64``. ``xarray-sentinel`` reads the same
groups (``orbit``, ``gcp``, ``coordinate_conversion``); the tests check that both agree. It
is not used here because it decodes through ``xmlschema`` (about 3 s for one polarisation's
annotation, calibration and noise, against 0.2 s here) and takes files, not bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..raster.io import InputError
from . import xmltext as X


@dataclass(frozen=True)
class OrbitStateVectors:
    """Orbit state vectors in the Earth-fixed WGS 84 frame (ECEF).

    Attributes:
        time: (N,) float64 seconds since the annotation's epoch, increasing.
        position: (N, 3) float64 metres.
        velocity: (N, 3) float64 metres per second.
    """

    time: np.ndarray
    position: np.ndarray
    velocity: np.ndarray


@dataclass(frozen=True)
class GeolocationGrid:
    """The annotation's geolocation grid: (N,) arrays, one entry per grid point.

    ``latitude``/``longitude`` in degrees (WGS 84), ``height`` in metres above the ellipsoid,
    ``azimuth_time`` in seconds since the epoch, ``slant_range_time`` two-way in seconds,
    ``incidence_angle``/``elevation_angle`` in degrees; ``line``/``pixel`` the GRD raster's
    row and column (integers).
    """

    line: np.ndarray
    pixel: np.ndarray
    azimuth_time: np.ndarray
    slant_range_time: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    height: np.ndarray
    incidence_angle: np.ndarray
    elevation_angle: np.ndarray


@dataclass(frozen=True)
class SlantToGround:
    """``coordinateConversion``: per azimuth time, ground range (metres from the first
    pixel) = sum_k ``srgr[k]`` * (slant range - ``sr0``)**k, slant range in metres.

    Attributes:
        time: (K,) seconds since the epoch, increasing.
        sr0: (K,) reference slant range in metres.
        srgr: (K, D) coefficients, lowest degree first.
    """

    time: np.ndarray
    sr0: np.ndarray
    srgr: np.ndarray


@dataclass(frozen=True)
class SwathBounds:
    """One sub-swath's extent in the GRD raster (inclusive line and sample ranges)."""

    swath: str
    first_line: int
    last_line: int
    first_sample: int
    last_sample: int


@dataclass(frozen=True)
class ProductAnnotation:
    """What the chain reads from one polarisation's product annotation.

    Attributes:
        mission: ``S1A``, ``S1B``, ...
        polarisation: ``VV``, ``VH``, ...
        mode: ``IW``, ...
        product_type: ``GRD``.
        orbit_pass: ``ASCENDING`` or ``DESCENDING``.
        epoch: ``datetime64[ns]`` of the first line; every time below counts seconds from it.
        azimuth_time_interval: seconds between lines.
        slant_range_time: two-way slant range time of the first pixel (seconds).
        range_pixel_spacing: metres of ground range per pixel.
        lines, samples: raster size.
        incidence_angle_mid_swath: degrees.
        ellipsoid: (semi-major, semi-minor) axes in metres.
        orbit, geolocation, slant_to_ground, swaths: see their classes.
    """

    mission: str
    polarisation: str
    mode: str
    product_type: str
    orbit_pass: str
    epoch: np.datetime64
    azimuth_time_interval: float
    slant_range_time: float
    range_pixel_spacing: float
    lines: int
    samples: int
    incidence_angle_mid_swath: float
    ellipsoid: tuple[float, float]
    orbit: OrbitStateVectors
    geolocation: GeolocationGrid
    slant_to_ground: SlantToGround
    swaths: tuple[SwathBounds, ...]

    @property
    def last_line_time(self) -> float:
        """Seconds from the epoch to the last line."""
        return (self.lines - 1) * self.azimuth_time_interval


def parse_annotation(xml: bytes, what: str = "product annotation") -> ProductAnnotation:
    """Parse one polarisation's product annotation (Sentinel-1 Level-1 GRD).

    Args:
        xml: the annotation file's bytes.
        what: how error messages name the file (e.g. its path).
    Returns:
        The parsed :class:`ProductAnnotation`.
    Raises:
        InputError: not a GRD product annotation (a calibration, noise or RFI file, say), or
            an element is missing or malformed.
    """
    root = X.parse(xml, what)
    if root.tag != "product" or root.find("imageAnnotation") is None:
        raise InputError(f"{what}: <{root.tag}> is not a Sentinel-1 product annotation "
                         "(find the product annotation through manifest.safe)")
    head = root.find("adsHeader")
    if head is None:
        raise InputError(f"{what}: element 'adsHeader' is missing")
    product_type = X.text(head, "productType", what)
    if product_type != "GRD":
        raise InputError(f"{what}: product type {product_type}, the chain reads GRD only")
    info = "imageAnnotation/imageInformation"
    epoch = X.time(root, f"{info}/productFirstLineUtcTime", what)
    orbit = _orbit(root, epoch, what)
    ellipsoid = (X.number(root, "imageAnnotation/processingInformation/ellipsoidSemiMajorAxis",
                          what),
                 X.number(root, "imageAnnotation/processingInformation/ellipsoidSemiMinorAxis",
                          what))
    return ProductAnnotation(
        mission=X.text(head, "missionId", what),
        polarisation=X.text(head, "polarisation", what),
        mode=X.text(head, "mode", what),
        product_type=product_type,
        orbit_pass=X.text(root, "generalAnnotation/productInformation/pass", what).upper(),
        epoch=epoch,
        azimuth_time_interval=X.number(root, f"{info}/azimuthTimeInterval", what),
        slant_range_time=X.number(root, f"{info}/slantRangeTime", what),
        range_pixel_spacing=X.number(root, f"{info}/rangePixelSpacing", what),
        lines=int(X.number(root, f"{info}/numberOfLines", what)),
        samples=int(X.number(root, f"{info}/numberOfSamples", what)),
        incidence_angle_mid_swath=X.number(root, f"{info}/incidenceAngleMidSwath", what),
        ellipsoid=ellipsoid,
        orbit=orbit,
        geolocation=_geolocation(root, epoch, what),
        slant_to_ground=_slant_to_ground(root, epoch, what),
        swaths=_swaths(root, what),
    )


def _orbit(root, epoch, what) -> OrbitStateVectors:
    items = root.findall("generalAnnotation/orbitList/orbit")
    if len(items) < 4:
        raise InputError(f"{what}: {len(items)} orbit state vectors, at least 4 are needed")
    t, p, v = [], [], []
    for o in items:
        t.append(X.seconds(X.time(o, "time", what), epoch))
        p.append([X.number(o, f"position/{a}", what) for a in "xyz"])
        v.append([X.number(o, f"velocity/{a}", what) for a in "xyz"])
    t_arr = np.asarray(t, np.float64)
    order = np.argsort(t_arr, kind="stable")
    t_arr = t_arr[order]
    if np.any(np.diff(t_arr) <= 0):
        raise InputError(f"{what}: orbit state vectors repeat a time")
    return OrbitStateVectors(t_arr, np.asarray(p, np.float64)[order],
                             np.asarray(v, np.float64)[order])


def _geolocation(root, epoch, what) -> GeolocationGrid:
    items = root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    if not items:
        raise InputError(f"{what}: the geolocation grid is empty")
    fields = {"line": [], "pixel": [], "azimuth_time": [], "slant_range_time": [],
              "latitude": [], "longitude": [], "height": [], "incidence_angle": [],
              "elevation_angle": []}
    tags = {"slant_range_time": "slantRangeTime", "incidence_angle": "incidenceAngle",
            "elevation_angle": "elevationAngle"}
    for g in items:
        for key, vals in fields.items():
            if key == "azimuth_time":
                vals.append(X.seconds(X.time(g, "azimuthTime", what), epoch))
            else:
                vals.append(X.number(g, tags.get(key, key), what))
    arrays = {k: np.asarray(v, np.float64) for k, v in fields.items()}
    arrays["line"] = arrays["line"].astype(np.int64)
    arrays["pixel"] = arrays["pixel"].astype(np.int64)
    return GeolocationGrid(**arrays)


def _slant_to_ground(root, epoch, what) -> SlantToGround:
    items = root.findall("coordinateConversion/coordinateConversionList/coordinateConversion")
    if not items:
        raise InputError(f"{what}: no coordinateConversion records (slant to ground range); "
                         "a GRD annotation has them")
    t, sr0, coef = [], [], []
    for c in items:
        gr0 = X.number(c, "gr0", what)
        if gr0 != 0.0:
            raise InputError(f"{what}: coordinateConversion gr0 = {gr0}, expected 0")
        t.append(X.seconds(X.time(c, "azimuthTime", what), epoch))
        sr0.append(X.number(c, "sr0", what))
        coef.append(X.numbers(c, "srgrCoefficients", what))
    degree = max(len(c) for c in coef)
    srgr = np.zeros((len(coef), degree))
    for i, c in enumerate(coef):
        srgr[i, :len(c)] = c
    t_arr = np.asarray(t)
    order = np.argsort(t_arr, kind="stable")
    return SlantToGround(t_arr[order], np.asarray(sr0)[order], srgr[order])


def _swaths(root, what) -> tuple[SwathBounds, ...]:
    out = []
    for merge in root.findall("swathMerging/swathMergeList/swathMerge"):
        swath = X.text(merge, "swath", what)
        for b in merge.findall("swathBoundsList/swathBounds"):
            out.append(SwathBounds(swath, *(int(X.number(b, k, what)) for k in (
                "firstAzimuthLine", "lastAzimuthLine", "firstRangeSample", "lastRangeSample"))))
    return tuple(out)
