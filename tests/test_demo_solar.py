"""The demo's own solar geometry (sen12ms_build.demo.solar) on hand-worked cases.

The demo's shadow truth is placed with this geometry, written independently of
``mosaic.shadow_offsets_px`` (the function under test), so these cases are worked out by
hand here, not computed with either function.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from sen12ms_build.demo import solar

SQRT_HALF = math.sqrt(0.5)


@pytest.mark.parametrize("azimuth, zenith, height, east, north", [
    # sun due south at 45 deg elevation: a 1 km high cloud's shadow lies 1 km north
    (180.0, 45.0, 1000.0, 0.0, 1000.0),
    # sun due east at 45 deg: shadow 1 km west
    (90.0, 45.0, 1000.0, -1000.0, 0.0),
    # sun due west: shadow east; sun due north: shadow south
    (270.0, 45.0, 1000.0, 1000.0, 0.0),
    (0.0, 45.0, 1000.0, 0.0, -1000.0),
    # sun in the south-east at 45 deg: shadow 1 km to the north-west
    (135.0, 45.0, 1000.0, -1000.0 * SQRT_HALF, 1000.0 * SQRT_HALF),
    # sun at 60 deg elevation (zenith 30): offset h / tan(60) = 0.57735 h
    (180.0, 30.0, 3000.0, 0.0, 3000.0 / math.sqrt(3.0)),
    # sun at 30 deg elevation (zenith 60): offset h * sqrt(3)
    (180.0, 60.0, 1000.0, 0.0, 1000.0 * math.sqrt(3.0)),
    # sun overhead: the shadow lies under the cloud
    (123.0, 0.0, 2000.0, 0.0, 0.0),
])
def test_shadow_offset_hand_worked(azimuth, zenith, height, east, north):
    e, n = solar.shadow_offset_m(azimuth, zenith, height)
    assert e == pytest.approx(east, abs=1e-6)
    assert n == pytest.approx(north, abs=1e-6)


@pytest.mark.parametrize("azimuth, zenith, height, pixel, shift", [
    (180.0, 45.0, 1000.0, 10.0, (-100, 0)),  # 1 km north = 100 rows up (rows grow south)
    (90.0, 45.0, 1000.0, 10.0, (0, -100)),  # 1 km west = 100 columns left
    (270.0, 45.0, 1000.0, 20.0, (0, 50)),  # east, at 20 m pixels
    (0.0, 45.0, 1000.0, 10.0, (100, 0)),  # sun north: shadow south
    (135.0, 45.0, 1000.0, 10.0, (-71, -71)),  # 707 m north and west
    (180.0, 60.0, 500.0, 10.0, (-87, 0)),  # 866 m
])
def test_shadow_shift_px_hand_worked(azimuth, zenith, height, pixel, shift):
    assert solar.shadow_shift_px(azimuth, zenith, height, pixel) == shift


def test_away_from_sun_points_where_shadows_fall():
    # (dcol, drow): sun south -> up the image (north); sun east -> left (west)
    assert solar.away_from_sun(180.0) == pytest.approx((0.0, -1.0), abs=1e-12)
    assert solar.away_from_sun(90.0) == pytest.approx((-1.0, 0.0), abs=1e-12)
    assert solar.away_from_sun(315.0) == pytest.approx((SQRT_HALF, SQRT_HALF), abs=1e-12)


def test_sun_vector_is_a_unit_vector_towards_the_sun():
    e, n, u = solar.sun_vector(180.0, 30.0)
    assert (e, n, u) == pytest.approx((0.0, -0.5, math.sqrt(3.0) / 2.0), abs=1e-12)
    e, n, u = solar.sun_vector(90.0, 60.0)
    assert (e, n, u) == pytest.approx((math.sqrt(3.0) / 2.0, 0.0, 0.5), abs=1e-12)


def test_sun_below_the_horizon_is_refused():
    with pytest.raises(ValueError, match="horizon"):
        solar.shadow_offset_m(180.0, 95.0, 1000.0)


def test_solar_position_physics():
    """Solar noon zenith = |latitude - declination| at the solstices, azimuth 180 there;
    a winter morning has a low sun in the south-east."""
    from datetime import timedelta

    lat, lon = 37.67, -75.62
    for day, decl in (("2017-06-21", 23.44), ("2016-12-21", -23.44)):
        start = datetime.fromisoformat(f"{day}T16:30:00").replace(tzinfo=timezone.utc)
        az, zen = min((solar.solar_position(start + timedelta(minutes=m), lon, lat)
                       for m in range(70)), key=lambda a: a[1])
        assert zen == pytest.approx(lat - decl, abs=0.3)
        assert az == pytest.approx(180.0, abs=3.0)
    az, zen = solar.solar_position(datetime(2017, 1, 11, 15, 51, tzinfo=timezone.utc), lon, lat)
    assert 155 < az < 165 and 58 < zen < 66
