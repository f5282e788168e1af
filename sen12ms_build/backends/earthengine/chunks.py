"""Request planning for ``computePixels``: chunks, request counts and bytes (pure, no I/O).

Earth Engine limits a ``computePixels`` response to 48 MiB of *uncompressed* data (width x
height x bands x bytes per band value) and to 32,768 pixels per side; larger requests fail with
400 BAD_REQUEST. :func:`plan_chunks` splits an export grid into the fewest sub-windows that
respect both limits, with sides in multiples of 256 pixels (Earth Engine's tile size, and the
block size of the local GeoTIFFs the chunks are written into) so the windows stay balanced.

:func:`plan` adds these up for a list of (ROI, season) scenes: it is the planner behind
``--dry-run`` and the cost table of ``docs/earthengine.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from affine import Affine

from ...geo import Grid
from ...products import AUX, AUX_MASKS, EXTRA_MODALITIES, LC, S1, S2

#: computePixels response limit: 48 MiB of uncompressed pixel data.
MAX_REQUEST_BYTES = 50_331_648
#: computePixels limit on either side of the requested grid, in pixels.
MAX_SIDE_PX = 32_768
#: computePixels limit on the number of bands of one request.
MAX_BANDS = 1024
#: Earth Engine's default concurrent-request quota per project (we stay well under it).
PROJECT_CONCURRENCY_QUOTA = 40
#: Chunk sides are multiples of this (Earth Engine tiles and GeoTIFF blocks are 256 px).
ALIGN_PX = 256
#: Default side (pixels, 0.0001 degrees) of a Sentinel-2 mosaic chunk, chosen by compute,
#: not bytes. A chunk's cost grows with pixels x images x operations: each of the season's
#: N images (typically 15-40) is scored at 20 m with 40 shadow displacements, two 11 x 11
#: means and six opening passes, all within one interactive request, which Earth Engine
#: stops with "Computation timed out." or "User memory limit exceeded." (HTTP 400). The
#: 48 MiB byte limit alone allows 1,480,342 px (~1217^2) per chunk; heavy composites are
#: known to fail at such sizes and to pass at a quarter of the bytes or less (geedim#11:
#: "User memory limit exceeded" on a medoid composite, fixed with max_tile_size 8 MB instead
#: of 32 MB). 512 x 512 px = 8.5 MiB of 17 uint16 bands, 16 Earth Engine 256-px tiles, ~65k
#: score pixels at 20 m per image. On a compute error a chunk still splits in four (down to
#: MIN_CHUNK_PX), so a too-large default costs a few failed requests, not the scene.
S2_CHUNK_PX = 512
#: Floor of the splits: below it a scene falls back to a batch export.
MIN_CHUNK_PX = 128
#: Room for GeoTIFF headers and tags on top of the raw pixel bytes of a response.
GEOTIFF_OVERHEAD_BYTES = 16_384


@dataclass(frozen=True)
class Product:
    """What one request per chunk returns: band names and the common dtype of the bands.

    ``s2`` carries the four aux bands of :data:`~sen12ms_build.products.AUX_MASKS` (source
    image index, poor, cloud and shadow masks) after the 13 L1C bands, cast to uint16 like
    them, so one computation yields both ``s2.tif`` and ``s2_aux.tif``.
    """

    key: str
    bands: tuple[str, ...]
    dtype: str

    @property
    def bytes_per_pixel(self) -> int:
        return len(self.bands) * np.dtype(self.dtype).itemsize


def products(with_aux: bool = True, legacy_aux: bool = False,
             extra: tuple[str, ...] = ()) -> dict[str, Product]:
    """The requests of a scene, in download order: the three of the triplet, then one per
    added modality (``extra``: ``wc`` ESA WorldCover, ``dw`` Dynamic World, uint8).
    ``legacy_aux``: the two aux bands (:data:`~sen12ms_build.products.AUX`) of exports made
    before the cloud and shadow masks were added, to read such batch exports."""
    aux = AUX if legacy_aux else AUX_MASKS
    s2_bands = S2.bands + (aux.bands if with_aux else ())
    return {
        "s2": Product("s2", s2_bands, S2.dtype),
        "s1": Product("s1", S1.bands, S1.dtype),
        "lc": Product("lc", LC.bands, LC.dtype),
        **{k: Product(k, EXTRA_MODALITIES[k].bands, EXTRA_MODALITIES[k].dtype)
           for k in extra},
    }


@dataclass(frozen=True)
class Chunk:
    """A window of a grid: offsets and size in pixels (rows grow southwards)."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def name(self) -> str:
        """Stable file-name stem, e.g. ``r000512_c001024_512x768``."""
        return f"r{self.row_off:06d}_c{self.col_off:06d}_{self.height}x{self.width}"

    def grid(self, parent: Grid) -> Grid:
        """The chunk as a grid of its own: same CRS and pixel size, shifted origin."""
        t = parent.transform
        origin = (t.c + self.col_off * t.a + self.row_off * t.b,
                  t.f + self.col_off * t.d + self.row_off * t.e)
        transform = Affine(t.a, t.b, round(origin[0], 10), t.d, t.e, round(origin[1], 10))
        return Grid(parent.crs, transform, self.width, self.height)


def _round_up(x: int, step: int) -> int:
    return -(-x // step) * step


def _split(total: int, size: int) -> list[tuple[int, int]]:
    """(offset, size) of consecutive pieces of ``size`` covering ``total`` (the last one
    the remainder)."""
    out, off = [], 0
    while off < total:
        out.append((off, min(size, total - off)))
        off += size
    return out


def plan_chunks(width: int, height: int, bytes_per_pixel: int, *,
                max_bytes: int = MAX_REQUEST_BYTES, max_side: int = MAX_SIDE_PX,
                align: int = ALIGN_PX) -> list[Chunk]:
    """Fewest windows covering a ``width`` x ``height`` grid with every window at most
    ``max_side`` pixels per side and ``max_bytes`` of uncompressed data; sides are multiples
    of ``align`` except at the right and bottom edges. Ties go to the squarest windows.

    Raises ``ValueError`` if even one ``align`` x ``align`` window is too large.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"empty grid {width}x{height}")
    if bytes_per_pixel <= 0:
        raise ValueError("bytes_per_pixel must be positive")
    max_px = max_bytes // bytes_per_pixel
    if max_px < 1:
        raise ValueError(f"one pixel of {bytes_per_pixel} bytes exceeds {max_bytes} bytes")
    if align * align > max_px or align > max_side:
        align = 1
    best: tuple[int, float, int, int] | None = None  # (count, squareness, height, width)
    n_rows = max(1, math.ceil(height / max_side))
    while best is None or n_rows <= best[0]:
        ch = min(height, _round_up(math.ceil(height / n_rows), align))
        cw_max = min(max_side, max_px // ch)
        cw_max -= cw_max % align
        if cw_max >= 1 and ch <= max_side:
            n_cols = math.ceil(width / cw_max)
            cw = min(width, _round_up(math.ceil(width / n_cols), align))
            rows, cols = math.ceil(height / ch), math.ceil(width / cw)
            key = (rows * cols, abs(math.log(ch / cw)), ch, cw)
            if best is None or key[:2] < best[:2]:
                best = key
        n_rows += 1
        if n_rows > height:
            break
    if best is None:
        raise ValueError(f"cannot chunk a {width}x{height} grid of {bytes_per_pixel} bytes per "
                         f"pixel within {max_bytes} bytes")
    _, _, ch, cw = best
    return [Chunk(r, c, h, w) for r, h in _split(height, ch) for c, w in _split(width, cw)]


def chunk_bytes(chunk: Chunk, product: Product) -> int:
    """Uncompressed bytes of one chunk of ``product`` (what Earth Engine checks)."""
    return chunk.pixels * product.bytes_per_pixel


@dataclass
class ModalityPlan:
    """The requests of one product of one scene."""

    product: Product
    chunks: list[Chunk]

    @property
    def requests(self) -> int:
        return len(self.chunks)

    @property
    def raw_bytes(self) -> int:
        return sum(chunk_bytes(c, self.product) for c in self.chunks)

    @property
    def expected_bytes(self) -> int:
        """Upper bound of the bytes received: raw pixels plus GeoTIFF headers."""
        return self.raw_bytes + GEOTIFF_OVERHEAD_BYTES * len(self.chunks)


@dataclass
class ScenePlan:
    """All requests of one (ROI, season): one ``value:compute`` for the image lists and
    statistics, then the chunks of every product on the ROI's export grid."""

    roi_id: str
    season: str
    grid: Grid
    modalities: dict[str, ModalityPlan]
    images: dict[str, int] | None = None  # image counts per collection, when queried

    @property
    def pixel_requests(self) -> int:
        return sum(m.requests for m in self.modalities.values())

    @property
    def requests(self) -> int:
        return 1 + self.pixel_requests  # + value:compute

    @property
    def expected_bytes(self) -> int:
        return sum(m.expected_bytes for m in self.modalities.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "roi": self.roi_id, "season": self.season,
            "grid": {"width": self.grid.width, "height": self.grid.height,
                     "crs": self.grid.crs, "transform": list(self.grid.transform)[:6]},
            "requests": self.requests, "expected_bytes": self.expected_bytes,
            "chunks": {k: m.requests for k, m in self.modalities.items()},
            **({"images": self.images} if self.images is not None else {}),
        }


def plan_grid(grid: Grid, *, with_aux: bool = True, max_bytes: int = MAX_REQUEST_BYTES,
              max_side: int = MAX_SIDE_PX, s2_side: int | None = S2_CHUNK_PX,
              extra: tuple[str, ...] = ()) -> dict[str, ModalityPlan]:
    """Chunks of every product of a scene on ``grid``: Sentinel-2 (scored per request) in
    windows of at most ``s2_side`` pixels a side (None: bytes only), Sentinel-1, land
    cover and the added ``extra`` labels (plain composites, cheap) by bytes only."""
    out = {}
    for key, p in products(with_aux, extra=extra).items():
        side = min(max_side, s2_side) if key == "s2" and s2_side else max_side
        out[key] = ModalityPlan(p, plan_chunks(grid.width, grid.height, p.bytes_per_pixel,
                                               max_bytes=max_bytes, max_side=side))
    return out


@dataclass
class Plan:
    """Totals of a list of scenes (see :func:`plan`)."""

    scenes: list[ScenePlan] = field(default_factory=list)
    concurrency: int = 8

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.scenes)

    @property
    def pixel_requests(self) -> int:
        return sum(s.pixel_requests for s in self.scenes)

    @property
    def expected_bytes(self) -> int:
        return sum(s.expected_bytes for s in self.scenes)

    def by_product(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for s in self.scenes:
            for k, m in s.modalities.items():
                d = out.setdefault(k, {"requests": 0, "expected_bytes": 0})
                d["requests"] += m.requests
                d["expected_bytes"] += m.expected_bytes
        return out

    def s2_image_pixels(self) -> int | None:
        """Expected compute of the Sentinel-2 mosaics: score-scale (20 m) pixels x images
        scored, summed over the scenes (every chunk scores every image of its season over
        its own window); None when the image counts are unknown (no dry-run query)."""
        if not self.scenes or any(s.images is None for s in self.scenes):
            return None
        return sum(s.grid.width * s.grid.height // 4 * int(s.images.get("s2", 0))
                   for s in self.scenes)

    def summary(self) -> dict[str, object]:
        """Plain-dict totals (for logs, manifests and the docs' cost table)."""
        seasons = sorted({s.season for s in self.scenes})
        return {
            "scenes": len(self.scenes),
            "seasons": seasons,
            "requests": self.requests,
            "pixel_requests": self.pixel_requests,
            "value_requests": len(self.scenes),
            "expected_bytes": self.expected_bytes,
            "expected_gib": round(self.expected_bytes / 2**30, 2),
            "by_product": self.by_product(),
            "max_concurrency": self.concurrency,
            "s2_image_pixels_20m": self.s2_image_pixels(),
        }

    def format(self) -> str:
        """Human-readable table: one line per scene, then totals."""
        lines = [f"{'season':<8} {'roi':<24} {'grid (w x h)':>14} {'images s2/s1/lc':>16} "
                 f"{'requests':>8} {'MiB':>9}"]
        for s in self.scenes:
            imgs = ("/".join(str(s.images.get(k, "?")) for k in ("s2", "s1", "lc"))
                    if s.images is not None else "-")
            lines.append(f"{s.season:<8} {s.roi_id:<24} "
                         f"{f'{s.grid.width} x {s.grid.height}':>14} {imgs:>16} "
                         f"{s.requests:>8} {s.expected_bytes / 2**20:>9.1f}")
        names = {"s2": "Sentinel-2 mosaic", "s1": "Sentinel-1", "lc": "land cover",
                 "wc": "ESA WorldCover labels", "dw": "Dynamic World labels"}
        for key, d in self.by_product().items():
            sides = [max(c.height, c.width) for s in self.scenes
                     for c in s.modalities[key].chunks]
            lines.append(f"{key}: {d['requests']:,} computePixels request(s) "
                         f"({names.get(key, key)}, chunks up to {max(sides, default=0)} px a "
                         f"side), {d['expected_bytes'] / 2**30:.2f} GiB expected")
        lines.append(f"value:compute: {len(self.scenes):,} request(s) (image lists and "
                     "statistics, one per scene)")
        compute = self.s2_image_pixels()
        if compute is not None:
            lines.append(f"compute: {compute:,} Sentinel-2 image-pixels scored at 20 m "
                         "(pixels x images, each with 40 shadow displacements)")
        lines.append(f"total: {len(self.scenes)} scene(s), {self.requests} request(s) "
                     f"({self.pixel_requests} computePixels + {len(self.scenes)} value:compute), "
                     f"{self.expected_bytes / 2**30:.2f} GiB expected, "
                     f"at most {self.concurrency} request(s) in flight")
        return "\n".join(lines)


def plan(scenes: Iterable[tuple[object, str]], *, with_aux: bool = True,
         max_bytes: int = MAX_REQUEST_BYTES, max_side: int = MAX_SIDE_PX,
         s2_side: int | None = S2_CHUNK_PX, concurrency: int = 8,
         images: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
         extra: tuple[str, ...] = ()) -> Plan:
    """Plan the direct download of ``(roi, season)`` scenes (``roi``: :class:`ROI`).

    Pure: no Earth Engine call. ``images`` optionally maps ``(roi.id, season)`` to image
    counts per collection (from the dry run) to show beside the plan; ``extra``: the
    labels every scene adds (``("wc",)``...), planned and counted like the triplet.
    """
    out = Plan(concurrency=concurrency)
    for roi, season in scenes:
        grid = roi.export_grid()  # type: ignore[attr-defined]
        rid = roi.id  # type: ignore[attr-defined]
        out.scenes.append(ScenePlan(
            rid, season, grid, plan_grid(grid, with_aux=with_aux, max_bytes=max_bytes,
                                         max_side=max_side, s2_side=s2_side, extra=extra),
            images=dict(images[(rid, season)]) if images and (rid, season) in images else None))
    return out


def scenes_of(rois_by_season: Mapping[str, Sequence[object]]) -> list[tuple[object, str]]:
    """Flatten ``{season: [roi, ...]}`` into ``[(roi, season), ...]``."""
    return [(roi, season) for season, rois in rois_by_season.items() for roi in rois]
