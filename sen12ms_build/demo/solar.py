"""Solar geometry of the demo, written independently of :mod:`sen12ms_build.mosaic`.

The demo's shadow truth must not come from the function under test
(``mosaic.shadow_offsets_px``), so the sun-vector -> ground-offset step is derived here
once more, in another form: the unit vector towards the sun in local east-north-up
coordinates, ``s = (sin A cos e, cos A cos e, sin e)`` (A the azimuth clockwise from north,
e = 90 deg - zenith the elevation), and the ray from a cloud at height h along ``-s`` meets
the ground after ``h / sin e``, at the horizontal offset ``-h (s_E, s_N) / s_U`` (metres
east, north). Image rows grow southwards, so the row offset is ``-north / pixel``.

Hand-worked cases (tests/test_demo_solar.py): sun due south at 45 deg elevation: a 1 km
high cloud's shadow lies 1 km north; sun due east: the shadow lies west; sun at 60 deg
elevation: the offset is h / tan(60 deg) = 0.577 h.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from .ground import PIXEL_M


def solar_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar azimuth and zenith (degrees) at a UTC time and place.

    NOAA's "General Solar Position Calculations" (Spencer 1971 Fourier series for the
    equation of time and the declination; hour angle from true solar time). Azimuth is
    clockwise from north, zenith from the vertical; no refraction correction. Accuracy is
    a fraction of a degree, ample for shadow geometry.
    """
    utc = when.astimezone(timezone.utc) if when.tzinfo else when
    doy = utc.timetuple().tm_yday
    hour = utc.hour + utc.minute / 60.0 + utc.second / 3600.0
    g = 2.0 * math.pi / 365.0 * (doy - 1 + (hour - 12.0) / 24.0)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
            - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g)
            - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    true_solar_min = hour * 60.0 + eqtime + 4.0 * lon
    ha = math.radians(true_solar_min / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zenith = math.degrees(math.acos(max(-1.0, min(1.0, cos_zen))))
    azimuth = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi)
                                      - math.tan(decl) * math.cos(phi))) + 180.0
    return azimuth % 360.0, zenith


def sun_vector(solar_azimuth: float, solar_zenith: float) -> tuple[float, float, float]:
    """Unit vector (east, north, up) pointing from the ground towards the sun.

    Args:
        solar_azimuth: degrees clockwise from north (90 = east, 180 = south).
        solar_zenith: degrees from the vertical, in [0, 90).
    """
    a = math.radians(solar_azimuth)
    e = math.radians(90.0 - solar_zenith)
    return math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)


def shadow_offset_m(solar_azimuth: float, solar_zenith: float,
                    height_m: float) -> tuple[float, float]:
    """(east, north) metres from a point at ``height_m`` above the ground to its shadow on
    flat ground: the ray away from the sun, ``-s * t``, reaches the ground at
    ``t = height_m / s_up``."""
    se, sn, su = sun_vector(solar_azimuth, solar_zenith)
    if su <= 0.0:
        raise ValueError(f"the sun is not above the horizon (zenith {solar_zenith} deg)")
    t = height_m / su
    return -se * t, -sn * t


def shadow_shift_px(solar_azimuth: float, solar_zenith: float, height_m: float,
                    pixel_m: float = PIXEL_M) -> tuple[int, int]:
    """(row, col) displacement in whole pixels from a cloud to its shadow on a north-up grid
    (rows grow southwards), rounded half away from zero."""
    east, north = shadow_offset_m(solar_azimuth, solar_zenith, height_m)
    return _round(-north / pixel_m), _round(east / pixel_m)


def _round(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def away_from_sun(solar_azimuth: float) -> tuple[float, float]:
    """Unit vector (dcol, drow) on a north-up image pointing away from the sun (where
    shadows fall)."""
    se, sn, _ = sun_vector(solar_azimuth, 90.0)  # horizontal component
    return -se, sn
