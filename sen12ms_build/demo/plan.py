"""The demo's acquisition plan: which Sentinel-2, Sentinel-1 and MODIS products the archive
holds, when they were sensed and which cloud design each Sentinel-2 acquisition carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .ground import TILE

#: The SEN12MS meteorological seasons (inclusive dates).
SEASONS: dict[str, tuple[str, str]] = {
    "winter": ("2016-12-01", "2017-02-28"),
    "spring": ("2017-03-01", "2017-05-30"),
    "summer": ("2017-06-01", "2017-08-31"),
    "fall": ("2017-09-01", "2017-11-30"),
}


@dataclass(frozen=True)
class S2Plan:
    """One demo Sentinel-2 acquisition and its cloud design.

    Attributes:
        sensing_time: UTC sensing time.
        spacecraft: ``Sentinel-2A`` or ``Sentinel-2B``.
        layout: ``clear`` (no cloud), ``sparse`` (a few isolated clouds, ~1-3 % cover),
            ``scattered`` (one cloud per 3.5 km cell) or ``streets`` (cloud streets in lanes
            along the sun's azimuth; the lanes of one season's acquisitions are disjoint).
        cover: for ``scattered``, the target cloud fraction (0..1); for ``streets``, the
            share of each lane's length under cloud (0..1).
        heights_m: (min, max) cloud height in metres, drawn uniformly per cloud.
        lane: index of this acquisition's lane (``streets`` only).
    """

    sensing_time: datetime
    spacecraft: str
    layout: str
    cover: float = 0.0
    heights_m: tuple[float, float] = (1000.0, 3000.0)
    lane: int = 0

    @property
    def season(self) -> str:
        return season_of(self.sensing_time)

    @property
    def stem(self) -> str:
        return f"{self.sensing_time:%Y%m%dT%H%M%S}_{TILE}"

    @property
    def product_id(self) -> str:
        """A Sentinel-2 product-like name (the processing baseline and orbit are plausible,
        not real)."""
        sc = "S2A" if self.spacecraft.endswith("A") else "S2B"
        t = f"{self.sensing_time:%Y%m%dT%H%M%S}"
        return f"{sc}_MSIL1C_{t}_N0205_R054_{TILE}_{t}"


@dataclass(frozen=True)
class S1Plan:
    """One demo Sentinel-1 IW GRD acquisition (simulated)."""

    sensing_time: datetime
    platform: str
    orbit_pass: str  # ASCENDING | DESCENDING

    @property
    def season(self) -> str:
        return season_of(self.sensing_time)

    @property
    def stem(self) -> str:
        return f"{self.sensing_time:%Y%m%dT%H%M%S}_{self.orbit_pass}"


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


#: Sentinel-2A revisits T18SVG every 10 days (2016-12-02 + 10 k); Sentinel-2B, operational
#: from mid 2017, 5 days later.
S2_PLAN: tuple[S2Plan, ...] = (
    # winter: three acquisitions, cloud streets in three disjoint lanes (every pixel is
    # clear in two of them), each well above the 5 % keep threshold
    S2Plan(_t("2016-12-22T15:52:12"), "Sentinel-2A", "streets", 0.70, (1000.0, 2000.0), 0),
    S2Plan(_t("2017-01-11T15:51:42"), "Sentinel-2A", "streets", 0.62, (1000.0, 2000.0), 1),
    S2Plan(_t("2017-01-31T15:51:22"), "Sentinel-2A", "streets", 0.72, (1000.0, 2000.0), 2),
    # spring: one fully clear acquisition among cloudy ones
    S2Plan(_t("2017-03-12T15:50:41"), "Sentinel-2A", "scattered", 0.22),
    S2Plan(_t("2017-04-01T15:50:51"), "Sentinel-2A", "scattered", 0.30),
    S2Plan(_t("2017-04-21T15:51:01"), "Sentinel-2A", "clear"),
    S2Plan(_t("2017-05-11T15:51:11"), "Sentinel-2A", "scattered", 0.18),
    # summer: one lightly clouded acquisition (under the keep threshold) among cloudy ones
    S2Plan(_t("2017-06-10T15:51:21"), "Sentinel-2A", "scattered", 0.20),
    S2Plan(_t("2017-06-30T15:51:31"), "Sentinel-2A", "sparse", 0.0, (1000.0, 2000.0)),
    S2Plan(_t("2017-07-20T15:51:41"), "Sentinel-2A", "scattered", 0.28),
    S2Plan(_t("2017-08-14T15:52:09"), "Sentinel-2B", "scattered", 0.24),
    # fall: like winter, three disjoint street lanes with different cover
    S2Plan(_t("2017-10-08T15:52:11"), "Sentinel-2A", "streets", 0.60, (1000.0, 2500.0), 0),
    S2Plan(_t("2017-10-23T15:52:19"), "Sentinel-2B", "streets", 0.72, (1000.0, 2500.0), 1),
    S2Plan(_t("2017-11-07T15:52:21"), "Sentinel-2A", "streets", 0.65, (1000.0, 2500.0), 2),
)

#: Sentinel-1A/B over the scene: ascending passes about 23:04 UTC, descending about 11:02 UTC.
S1_PLAN: tuple[S1Plan, ...] = (
    S1Plan(_t("2016-12-05T23:04:10"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-01-10T11:01:55"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-02-15T23:04:08"), "Sentinel-1B", "ASCENDING"),
    S1Plan(_t("2017-03-17T23:04:09"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-04-22T11:02:01"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-05-16T23:04:12"), "Sentinel-1B", "ASCENDING"),
    S1Plan(_t("2017-06-09T23:04:14"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-07-15T11:02:05"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-08-20T23:04:16"), "Sentinel-1B", "ASCENDING"),
    S1Plan(_t("2017-09-13T23:04:17"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-10-19T11:02:09"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-11-24T23:04:18"), "Sentinel-1B", "ASCENDING"),
)
LC_YEAR = 2016

#: Fixed seeds of the generator (change them and every file changes).
SEED_CLOUDS = 20170101
SEED_S1 = 20170102


def season_of(when: datetime) -> str:
    """SEN12MS season name of a date (:data:`SEASONS`); raises ``ValueError`` outside."""
    d = when.date().isoformat()
    for name, (start, end) in SEASONS.items():
        if start <= d <= end:
            return name
    raise ValueError(f"{d} lies in no SEN12MS season")
