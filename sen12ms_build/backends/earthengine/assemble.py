"""From Earth Engine GeoTIFF pieces (``computePixels`` chunks or batch-export files) to the
backend's outputs: verification, and the local mosaic of the pieces onto the export grid.

A piece is accepted only if it is a complete, decodable GeoTIFF in EPSG:4326 with the
expected band count, dtype, size and a transform on the export grid. The outputs are
written window by window into temporary files renamed into place when complete
(:func:`sen12ms_build.raster.io.atomic_path`), so a file is whole or absent.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from ...geo import Grid
from ...raster.io import GTIFF_PROFILE, InputError, OutputError, atomic_path
from ...products import AUX_MASKS, EXTRA_MODALITIES, LC, S1, S2, Modality
from .chunks import Chunk, Product
from .errors import TransientError
from .graphs import S1_FILL

log = logging.getLogger(__name__)

#: Tolerance on transform origins and pixel sizes, in degrees (1e-4 pixel at 0.0001 deg).
TRANSFORM_TOL = 1e-8


def _check_dataset(src: rasterio.io.DatasetReader, product: Product,
                   expected: Grid | None, where: str) -> None:
    if src.count != len(product.bands):
        raise InputError(f"{where}: expected {len(product.bands)} bands, found {src.count}")
    if src.dtypes[0] != product.dtype:
        raise InputError(f"{where}: expected {product.dtype}, found {src.dtypes[0]}")
    if src.crs is None or src.crs.to_epsg() != 4326:
        raise InputError(f"{where}: expected EPSG:4326, found {src.crs}")
    if expected is not None:
        if (src.width, src.height) != (expected.width, expected.height):
            raise InputError(f"{where}: expected {expected.width}x{expected.height} pixels, "
                             f"found {src.width}x{src.height}")
        if not src.transform.almost_equals(expected.transform, precision=TRANSFORM_TOL):
            raise InputError(f"{where}: transform {tuple(src.transform)[:6]} is not the "
                             f"requested {tuple(expected.transform)[:6]}")
    for _, window in src.block_windows(1):  # decode everything: catches truncation
        src.read(window=window)


def verify_bytes(data: bytes, product: Product, expected: Grid, where: str) -> None:
    """Raise :class:`TransientError` unless ``data`` is a complete GeoTIFF of ``product`` on
    ``expected`` (so that the request is retried)."""
    try:
        with MemoryFile(data) as mem, mem.open() as src:
            _check_dataset(src, product, expected, where)
    except InputError as exc:
        raise TransientError(f"invalid GeoTIFF: {exc}") from None
    except (RasterioError, OSError) as exc:
        raise TransientError(f"{where}: incomplete or unreadable GeoTIFF "
                             f"({len(data)} bytes; {exc})") from None


def verify_file(path: Path, product: Product, expected: Grid | None) -> bool:
    """True if ``path`` is a complete GeoTIFF of ``product`` (on ``expected`` if given)."""
    try:
        with rasterio.open(path) as src:
            _check_dataset(src, product, expected, str(path))
        return True
    except (InputError, RasterioError, OSError) as exc:
        log.warning("discarding cached piece %s: %s", path, exc)
        return False


def offset_on(grid: Grid, transform: Affine, width: int, height: int, where: str) -> Chunk:
    """The window of ``grid`` a piece with ``transform`` covers; the piece must share the
    grid's pixel size and lie on its pixel lattice, inside it."""
    t = grid.transform
    if not (abs(transform.a - t.a) < TRANSFORM_TOL and abs(transform.e - t.e) < TRANSFORM_TOL
            and transform.b == 0 and transform.d == 0):
        raise InputError(f"{where}: pixel size {transform.a}, {transform.e} is not the "
                         f"grid's {t.a}, {t.e}")
    col = (transform.c - t.c) / t.a
    row = (transform.f - t.f) / t.e
    c, r = round(col), round(row)
    if abs(col - c) > 1e-3 or abs(row - r) > 1e-3:
        raise InputError(f"{where}: not aligned with the export grid (offset {col}, {row} px)")
    if r < 0 or c < 0 or r + height > grid.height or c + width > grid.width:
        raise InputError(f"{where}: window {r},{c} {height}x{width} outside the "
                         f"{grid.height}x{grid.width} export grid")
    return Chunk(r, c, height, width)


@dataclass
class Target:
    """One output file: the bands it takes from the pieces (0-based indices), its modality
    (dtype, nodata, descriptions) and a conversion applied to each window."""

    path: Path
    modality: Modality
    bands: Sequence[int]
    convert: Callable[[np.ndarray], np.ndarray] | None = None
    tags: dict[str, object] = field(default_factory=dict)


def s1_to_nan(arr: np.ndarray) -> np.ndarray:
    """float32 Sentinel-1 window with :data:`graphs.S1_FILL` replaced by NaN."""
    out = arr.astype(np.float32, copy=True)
    out[out == np.float32(S1_FILL)] = np.nan
    return out


def aux_to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint16 aux bands (source index, poor[, cloud, shadow]) as uint8 with 255 for no
    data; source indices above 254 (more than 255 images) are clamped to 254."""
    out = np.where(arr == AUX_MASKS.nodata, AUX_MASKS.nodata, np.minimum(arr, 254))
    return out.astype(np.uint8)


def targets_for(key: str, out_dir: Path, files: dict[str, str], with_aux: bool,
                tags: dict[str, object] | None = None, aux: Modality = AUX_MASKS
                ) -> list[Target]:
    """The outputs of one product (``s2`` also writes the aux raster, with the bands of
    ``aux``: :data:`AUX_MASKS`, or :data:`AUX` for legacy pieces)."""
    out_dir = Path(out_dir)
    tags = tags or {}
    if key == "s2":
        out = [Target(out_dir / files["s2"], S2, range(S2.count), None, tags)]
        if with_aux:
            out.append(Target(out_dir / files["aux"], aux,
                              range(S2.count, S2.count + aux.count), aux_to_uint8, tags))
        return out
    if key == "s1":
        return [Target(out_dir / files["s1"], S1, range(S1.count), s1_to_nan, tags)]
    if key == "lc":
        return [Target(out_dir / files["lc"], LC, range(LC.count), None, tags)]
    if key in EXTRA_MODALITIES:  # the 10 m labels (wc, dw): uint8 as downloaded
        m = EXTRA_MODALITIES[key]
        return [Target(out_dir / files[key], m, range(m.count), None, tags)]
    raise ValueError(f"unknown product {key!r}")


@dataclass
class AuxStats:
    """Counts gathered from the aux bands while assembling (for the scene's metadata)."""

    covered: int = 0
    poor: int = 0
    roi: int = 0
    covered_in_roi: int = 0
    sources: dict[int, int] = field(default_factory=dict)  # pixels per source image index

    @property
    def poor_share(self) -> float:
        return self.poor / self.covered if self.covered else 0.0

    @property
    def mosaic_coverage(self) -> float:
        return self.covered_in_roi / self.roi if self.roi else 0.0


def assemble(grid: Grid, pieces: Iterable[Path], product: Product, targets: Sequence[Target],
             *, expect_full_cover: bool = True, roi_mask: np.ndarray | None = None,
             stats: AuxStats | None = None) -> None:
    """Mosaic GeoTIFF ``pieces`` of ``product`` onto ``grid`` into every target.

    Each piece is placed by its own transform (:func:`offset_on`). With
    ``expect_full_cover`` the pieces must tile the grid exactly (no gap, no overlap).
    ``stats`` (``s2`` with aux bands) collects covered / poor pixel counts, and
    ``roi_mask`` ((H, W) bool) the covered share of the ROI.
    """
    pieces = list(pieces)
    covered = np.zeros(grid.shape, np.uint8) if expect_full_cover else None
    with contextlib.ExitStack() as stack:
        dsts = []
        for t in targets:
            tmp = stack.enter_context(atomic_path(t.path))
            prof = {**GTIFF_PROFILE, "count": len(t.bands), "height": grid.height,
                    "width": grid.width, "dtype": t.modality.dtype, "crs": grid.crs,
                    "transform": grid.transform, "nodata": t.modality.nodata}
            if grid.width < 256 or grid.height < 256:
                prof.update(tiled=False)
                prof.pop("blockxsize"), prof.pop("blockysize")
            if t.modality.dtype == "float32":
                prof["predictor"] = 3
            try:
                dst = stack.enter_context(rasterio.open(tmp, "w", **prof))
            except (RasterioError, OSError) as exc:
                raise OutputError(f"cannot write {t.path}: {exc}") from exc
            for i, d in enumerate(t.modality.descriptions, start=1):
                dst.set_band_description(i, d)
            if t.tags:
                dst.update_tags(**{k: str(v) for k, v in t.tags.items()})
            dsts.append(dst)
        for path in pieces:
            try:
                with rasterio.open(path) as src:
                    where = str(path)
                    if src.count != len(product.bands) or src.dtypes[0] != product.dtype:
                        raise InputError(f"{where}: expected {len(product.bands)} "
                                         f"{product.dtype} bands, found {src.count} "
                                         f"{src.dtypes[0]}")
                    win = offset_on(grid, src.transform, src.width, src.height, where)
                    data = src.read()
            except RasterioError as exc:
                raise InputError(f"{path}: unreadable GeoTIFF ({exc})") from exc
            if covered is not None:
                covered[win.row_off:win.row_off + win.height,
                        win.col_off:win.col_off + win.width] += 1
            window = Window(win.col_off, win.row_off, win.width, win.height)
            for t, dst in zip(targets, dsts):
                arr = data[list(t.bands)]
                if t.convert is not None:
                    arr = t.convert(arr)
                dst.write(arr.astype(t.modality.dtype, copy=False), window=window)
                if stats is not None and t.modality.key == "aux":
                    src_idx, poor = arr[0], arr[1]
                    cov = src_idx != AUX_MASKS.nodata
                    stats.covered += int(cov.sum())
                    stats.poor += int((cov & (poor == 1)).sum())
                    for idx, n in enumerate(np.bincount(src_idx[cov].astype(np.int64))):
                        if n:
                            stats.sources[idx] = stats.sources.get(idx, 0) + int(n)
                    if roi_mask is not None:
                        m = roi_mask[win.row_off:win.row_off + win.height,
                                     win.col_off:win.col_off + win.width]
                        stats.roi += int(m.sum())
                        stats.covered_in_roi += int((m & cov).sum())
        if covered is not None and not (covered == 1).all():
            gaps, overlaps = int((covered == 0).sum()), int((covered > 1).sum())
            raise InputError(f"pieces of {product.key} do not tile the export grid: "
                             f"{gaps} pixel(s) missing, {overlaps} covered twice")
