"""The ``stac`` backend's dry run: requests, bytes and granules per modality under each
profile, held against the profiles' published quotas -- offline, from the scenes' grids.

Nothing is searched: the counts come from the ROIs (size, position, period) and the
assumptions in :class:`Assumptions` (revisit, tiles per ROI, block sizes, bytes per pixel),
each stated in ``docs/stac.md``. The figures are estimates for planning (which profile, how
many months of a quota, how many workers), not promises.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ...products import S2_BANDS, S2_NATIVE_RES_M
from .options import StacOptions
from .profiles import Profile, resolve

#: MODIS sinusoidal tile size (m) and the grid's origin, for counting distinct granules.
MODIS_TILE_M = 1111950.5197665
MODIS_X0, MODIS_Y0 = -20015109.354, 10007554.677
MODIS_SINU = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"


@dataclass(frozen=True)
class Assumptions:
    """What the plan assumes (each figure is documented in docs/stac.md).

    Attributes:
        s2_revisit_days: days between acquisitions of one place by the constellation:
            10 with Sentinel-2A alone (before S2B's routine operations, 2017-07-01), 5 with
            both.
        s2_two_satellites_from: the date from which ``s2_revisit_days[1]`` applies.
        orbit_overlap: acquisitions per revisit from neighbouring relative orbits (side
            overlap; about 1.3 at mid latitudes).
        mgrs_tile_km / mgrs_step_km: MGRS tile size and spacing (tiles overlap by 9.8 km):
            an ROI of ``s`` km touches about ``(1 + s / step)`` tiles per axis on average.
        jp2_tile_px: JPEG 2000 tile side of the L1C/L2A SAFE bands (1024 px at every
            resolution); one range request per tile row touched (tiles of a row lie side by
            side in the codestream and GDAL merges consecutive ranges), plus two for the
            header.
        cog_block_px: COG block side (512 px on Planetary Computer, 1024 on Earth Search;
            the plan takes 512); one request per block row touched, one for the header.
        bytes_per_px: compressed bytes per pixel read: JP2 ``jp2``, deflate COG ``cog``.
        s1_revisit_days: Sentinel-1 revisit of one place with both passes (S1A + S1B,
            2016-2021: 6 days per pass, 2 passes).
        s1_xml_requests / s1_xml_bytes: XML per GRD item (manifest, 2 annotation, 2
            calibration, 2 noise) and their size.
        s1_grd_px: GRD pixel size (m); ``s1_bytes_per_px``: 2 bands x uint16 ~ 2.2 B/px
            compressed.
        dem_tiles_per_roi, dem_bytes_per_px: Copernicus DEM 1x1 degree COGs at 30 m.
        modis_granule_bytes: one MCD12Q1 HDF4 granule (4-12 MB; 8 MB taken).
        request_latency_s: a range request's round trip when planning the request rate.
        worldcover_bytes_per_px: ESA WorldCover ``map`` COGs (uint8 classes, deflate):
            compressed bytes per pixel read; ``worldcover_tile_km``: its 3 x 3 degree
            tiles' side (333 km of latitude): an ROI touches ``(1 + s / 333)^2`` of them.
    """

    s2_revisit_days: tuple[int, int] = (10, 5)
    s2_two_satellites_from: dt.date = dt.date(2017, 7, 1)
    orbit_overlap: float = 1.3
    mgrs_tile_km: float = 109.8
    mgrs_step_km: float = 100.0
    jp2_tile_px: int = 1024
    cog_block_px: int = 512
    bytes_per_px: dict[str, float] = field(default_factory=lambda: {"jp2": 1.1,
                                                                     "cog": 1.6})
    s1_revisit_days: float = 3.0
    s1_xml_requests: int = 7
    s1_xml_bytes: float = 7 * 1.5e6
    s1_grd_px: float = 10.0
    s1_bytes_per_px: float = 2.2
    dem_tiles_per_roi: float = 1.5
    dem_bytes_per_px: float = 2.5
    modis_granule_bytes: float = 8e6
    request_latency_s: float = 0.15
    worldcover_bytes_per_px: float = 0.35
    worldcover_tile_km: float = 333.0


@dataclass
class Line:
    """One row of the plan: a modality served by a profile."""

    modality: str
    profile: str
    product: str
    items: float = 0.0  # STAC items / granules read
    requests: float = 0.0
    bytes: float = 0.0
    searches: int = 0
    configured: bool = False
    quota_notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """The plan of a run (see the module doc); :meth:`format` gives the text table."""

    scenes: int
    lines: list[Line]
    assumptions: Assumptions
    workers: int = 1

    @property
    def broken(self) -> list[str]:
        return [f"{ln.profile} {ln.modality}: {n}" for ln in self.lines for n in ln.quota_notes
                if n.startswith("BREAKS")]

    def format(self) -> str:
        head = (f"{'modality':<9}{'profile':<20}{'product':<12}{'items':>10}"
                f"{'searches':>10}{'requests':>12}{'bytes':>12}")
        out = [f"stac dry run: {self.scenes} scene(s); estimates from the grids and ROI "
               "counts (assumptions: docs/stac.md)", head, "-" * len(head)]
        for ln in self.lines:
            mark = " *" if ln.configured else ""
            out.append(f"{ln.modality:<9}{ln.profile:<20}{ln.product:<12}{ln.items:>10,.0f}"
                       f"{ln.searches:>10,}{ln.requests:>12,.0f}{_bytes(ln.bytes):>12}{mark}")
            for n in ln.quota_notes:
                out.append(f"{'':<9}  {n}")
        out.append("* = the source this config reads")
        return "\n".join(out)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000.0
    return f"{n:.1f} PB"  # pragma: no cover


def _tiles_touched(extent_px: float, tile_px: int) -> float:
    """Expected tiles of ``tile_px`` a window of ``extent_px`` touches along one axis
    (a random offset): ``1 + extent / tile``."""
    return 1.0 + extent_px / tile_px


def s2_acquisitions(start: dt.date, end: dt.date, roi_km: float, a: Assumptions) -> float:
    """Expected Sentinel-2 items over one ROI in ``[start, end]`` (see :class:`Assumptions`)."""
    days = (end - start).days + 1
    split = min(max(a.s2_two_satellites_from, start), end + dt.timedelta(days=1))
    one = (split - start).days
    acq = one / a.s2_revisit_days[0] + (days - one) / a.s2_revisit_days[1]
    tiles = (1.0 + roi_km / a.mgrs_step_km) ** 2
    return acq * a.orbit_overlap * tiles


def s2_item_cost(roi_m: float, fmt: str, bands: Sequence[str], a: Assumptions
                 ) -> tuple[float, float]:
    """(requests, bytes) of reading ``bands`` of one item over an ROI of ``roi_m`` metres."""
    req = byt = 0.0
    for b in bands:
        res = S2_NATIVE_RES_M.get(b, 20)
        px = roi_m / res
        block = a.jp2_tile_px if fmt == "jp2" else a.cog_block_px
        t = _tiles_touched(px, block)
        touched = min(t * t, (10980 * 10 / res / block) ** 2)
        req += (2 if fmt == "jp2" else 1) + min(t, touched)
        byt += touched * block * block * a.bytes_per_px.get(fmt, 1.5)
    return req, byt


def worldcover_cost(roi_m: float, lat: float, a: Assumptions) -> tuple[float, float]:
    """(requests, bytes) of reading ESA WorldCover's ``map`` over an ROI of ``roi_m``
    metres at latitude ``lat``: its pixels are 1/12000 degree, the COG blocks
    :attr:`Assumptions.cog_block_px` a side; one request per block row touched and one for
    the header."""
    from ...labels import WORLDCOVER_RES_DEG

    px_x = roi_m / (WORLDCOVER_RES_DEG * 111320.0 * max(math.cos(math.radians(lat)), 0.01))
    px_y = roi_m / (WORLDCOVER_RES_DEG * 110574.0)
    tx = _tiles_touched(px_x, a.cog_block_px)
    ty = _tiles_touched(px_y, a.cog_block_px)
    return 1 + ty, tx * ty * a.cog_block_px ** 2 * a.worldcover_bytes_per_px


def _modis_tiles(requests: Sequence[Any]) -> int:
    from pyproj import Transformer

    to = Transformer.from_crs("EPSG:4326", MODIS_SINU, always_xy=True)
    tiles = set()
    for r in requests:
        x, y = to.transform(r.roi.lon, r.roi.lat)
        tiles.add((int((x - MODIS_X0) // MODIS_TILE_M), int((MODIS_Y0 - y) // MODIS_TILE_M),
                   r.landcover_year))
    return len(tiles)


def _quota_notes(line: Line, profile: Profile, a: Assumptions, workers: int,
                 threads: int) -> list[str]:
    q = profile.quotas
    notes = []
    if q.bytes_per_month:
        months = line.bytes / q.bytes_per_month
        verdict = (f"BREAKS the monthly volume by {100 * (months - 1):.0f} % "
                   f"({_bytes(line.bytes)} > {_bytes(q.bytes_per_month)}): spread the run "
                   f"over {math.ceil(months)} months") if months > 1 else \
            f"monthly volume: {100 * months:.1f} % of {_bytes(q.bytes_per_month)}"
        notes.append(verdict)
    # each worker process caps its reads of a host at the profile's limit
    conc = workers * min(threads, q.concurrent or threads)
    if q.concurrent and conc > q.concurrent:
        notes.append(f"BREAKS {q.concurrent} concurrent connections by "
                     f"{100 * (conc / q.concurrent - 1):.0f} % ({workers} workers x "
                     f"{min(threads, q.concurrent)} reads): run at most "
                     f"{max(1, q.concurrent // min(threads, q.concurrent))} worker(s)")
    if q.requests_per_minute:
        rate = conc * 60.0 / a.request_latency_s
        if rate > q.requests_per_minute:
            fit = max(1, int(q.requests_per_minute * a.request_latency_s / 60.0))
            notes.append(f"BREAKS {q.requests_per_minute} requests/min by "
                         f"{100 * (rate / q.requests_per_minute - 1):.0f} % at {conc} "
                         f"concurrent reads ({rate:,.0f}/min): use at most {fit}")
        else:
            notes.append(f"request rate: {rate:,.0f}/min at {conc} concurrent reads, within "
                         f"{q.requests_per_minute}/min")
    if q.concurrent and conc <= q.concurrent:
        notes.append(f"connections: {conc} of {q.concurrent} per host")
    return notes


def plan(requests: Sequence[Any], options: StacOptions | None = None, workers: int = 1,
         a: Assumptions | None = None, threads: int = 4) -> Plan:
    """The plan of ``requests`` (:class:`~sen12ms_build.backends.SceneRequest`) under every
    shipped profile that serves each modality; the configured sources are marked."""
    a = a or Assumptions()
    profiles = resolve()
    if options is not None:
        profiles.update({s.profile.name: s.profile for s in options.sources.values()})
    configured = {m: (s.profile.name, s.kind) for m, s in options.sources.items()} \
        if options else {}
    lines: list[Line] = []
    n = len(requests)
    labels = any(getattr(r, "labels", None) for r in requests)
    for name, prof in profiles.items():
        for kind, product in prof.products.items():
            modality = {"s2-l1c": "s2", "s2-l2a": "s2", "s1-grd": "s1",
                        "lc-mcd12q1": "lc", "dem": "dem",
                        "labels-worldcover": "labels"}[kind]
            if modality == "labels" and not labels:
                continue  # planned only for a run that reads them
            ln = Line(modality, name, kind,
                      configured=configured.get(modality) == (name, kind))
            if kind.startswith("s2"):
                bands = [b for b in S2_BANDS if kind == "s2-l1c" or b != "B10"]
                bands += ["SCL"] if kind == "s2-l2a" else []
                for r in requests:
                    items = s2_acquisitions(r.start, r.end, r.roi.size_m / 1000.0, a)
                    req, byt = s2_item_cost(r.roi.size_m, product.format, bands, a)
                    ln.items += items
                    ln.requests += items * req
                    ln.bytes += items * byt
                    ln.searches += 1 + int(items // 100)
            elif kind.startswith("s1"):
                for r in requests:
                    items = ((r.end - r.start).days + 1) / a.s1_revisit_days
                    px = (r.roi.size_m / a.s1_grd_px) ** 2
                    blocks = _tiles_touched(r.roi.size_m / a.s1_grd_px, a.cog_block_px)
                    ln.items += items
                    ln.requests += items * (a.s1_xml_requests + 2 * (1 + blocks))
                    ln.bytes += items * (a.s1_xml_bytes + px * a.s1_bytes_per_px)
                    ln.searches += 1
            elif kind == "dem":
                for r in requests:
                    px = (r.roi.size_m / 30.0) ** 2
                    ln.items += a.dem_tiles_per_roi
                    ln.requests += a.dem_tiles_per_roi * (1 + _tiles_touched(
                        r.roi.size_m / 30.0, a.cog_block_px))
                    ln.bytes += px * a.dem_bytes_per_px * 1.2
                    ln.searches += 1
            elif kind == "labels-worldcover":
                for r in requests:
                    ln.items += (1.0 + r.roi.size_m / 1000.0 / a.worldcover_tile_km) ** 2
                    req, byt = worldcover_cost(r.roi.size_m, r.roi.lat, a)
                    ln.requests += req
                    ln.bytes += byt
                    ln.searches += 1
            else:  # MODIS granules: whole files, one per tile and year, cached
                granules = _modis_tiles(requests)
                ln.items = granules
                ln.requests = granules * 2  # the download and its EDL redirect
                ln.bytes = granules * a.modis_granule_bytes
                ln.searches = n
            ln.requests += ln.searches
            ln.quota_notes = _quota_notes(ln, prof, a, workers, threads)
            lines.append(ln)
    lines.sort(key=lambda ln: (["s2", "s1", "dem", "lc", "labels"].index(ln.modality),
                               ln.profile, ln.product))
    return Plan(n, lines, a, workers)
