"""A fast writer of small striped GeoTIFFs, the files GDAL's GTiff driver writes by default.

The tiler writes thousands of 256 x 256 patches; opening each one through GDAL costs several
times the write itself. :func:`encode_geotiff` assembles the same file in numpy and
``struct`` instead: a little-endian classic TIFF, pixel-interleaved (GDAL's default
``INTERLEAVE=PIXEL``), strips of ``8192 // row bytes`` rows (libtiff's default strip size,
which GDAL uses), uncompressed or DEFLATE (zlib level 6, GDAL's default), with

* the GeoTIFF keys (GeoKeyDirectory 34735, GeoDoubleParams 34736, GeoAsciiParams 34737)
  GDAL writes for the CRS, taken once per CRS from a 1 x 1 template written by GDAL
  (:func:`geokeys`), so every CRS is encoded exactly as GDAL would encode it;
* ModelPixelScale 33550 and ModelTiepoint 33922 from a north-up geotransform;
* GDAL_METADATA 42112 (dataset tags, default domain, and band descriptions, in GDAL's XML:
  items sorted by key as GDAL sorts them, values escaped twice as GDAL does) and
  GDAL_NODATA 42113;
* Photometric MinIsBlack with unspecified ExtraSamples beyond the first band, or RGB for
  three uint8 bands, as GDAL chooses by default.

What it does not do as GDAL does (rotated or south-up transforms, tags GDAL would rewrite,
non-integral nodata, very large files...) raises :class:`UnsupportedGeoTIFF`; callers then
write with rasterio. Reading a file of ours and GDAL's with rasterio gives the same profile,
CRS, transform, nodata, descriptions, tags and pixels (``tests/test_geotiff.py``); the bytes
differ only in layout (GDAL leaves its first directory in the file; ours comes first, then
the pixels, as in a cloud-optimised file).
"""

from __future__ import annotations

import logging
import math
import re
import struct
import threading
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from affine import Affine

from .io import atomic_path

__all__ = ["UnsupportedGeoTIFF", "encode_geotiff", "write_geotiff", "write_or_gdal", "geokeys",
           "read_ifd"]

log = logging.getLogger(__name__)

# TIFF field types
BYTE, ASCII, SHORT, LONG, DOUBLE = 1, 2, 3, 4, 12
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              16: 8, 17: 8, 18: 8}
#: libtiff's STRIPSIZE_DEFAULT: GDAL's uncompressed and DEFLATE strips hold 8192 bytes.
STRIP_BYTES = 8192
#: GDAL's default DEFLATE level (ZLEVEL).
ZLEVEL = 6
GEOKEY_TAGS = (34735, 34736, 34737)
#: numpy dtype -> TIFF SampleFormat (1 unsigned, 2 signed, 3 IEEE float).
_SAMPLE_FORMAT = {"uint8": 1, "uint16": 1, "uint32": 1, "int8": 2, "int16": 2, "int32": 2,
                  "float32": 3, "float64": 3}
_KEY = re.compile(r"[A-Za-z0-9_]+\Z")
# characters GDAL drops or rewrites in metadata (controls, byte-order mark), or a leading
# blank it strips from values: such tags go through GDAL
_ODD_VALUE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufeff]|\A[ \t]")
_MAX_BYTES = 1 << 31
_local = threading.local()


class UnsupportedGeoTIFF(ValueError):
    """A raster this writer does not encode as GDAL would; write it with rasterio."""


def read_ifd(buf: bytes) -> dict[int, tuple[int, int, bytes]]:
    """The first IFD of a little-endian classic TIFF.

    Args:
        buf: the file's bytes (at least up to the end of the first IFD's values).
    Returns:
        tag -> (field type, count, raw value bytes).
    Raises:
        ValueError: not a little-endian classic TIFF.
    """
    if buf[:4] != b"II*\x00":
        raise ValueError("not a little-endian classic TIFF")
    (off,) = struct.unpack_from("<I", buf, 4)
    (n,) = struct.unpack_from("<H", buf, off)
    out = {}
    for i in range(n):
        e = off + 2 + 12 * i
        tag, typ, count = struct.unpack_from("<HHI", buf, e)
        size = _TYPE_SIZE[typ] * count
        start = e + 8 if size <= 4 else struct.unpack_from("<I", buf, e + 8)[0]
        out[tag] = (typ, count, bytes(buf[start:start + size]))
    return out


def _crs_wkt(crs: Any) -> str:
    from rasterio.crs import CRS

    return CRS.from_user_input(crs).to_wkt()


@lru_cache(maxsize=32)
def _geokeys_for_wkt(wkt: str) -> tuple[tuple[int, int, int, bytes], ...]:
    from rasterio.crs import CRS
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8",
                      crs=CRS.from_wkt(wkt), transform=Affine(10, 0, 100, 0, -10, 200)) as dst:
            dst.write(np.zeros((1, 1, 1), np.uint8))
        ifd = read_ifd(mem.read())
    if 34735 not in ifd:
        raise UnsupportedGeoTIFF("GDAL writes no GeoKeyDirectory for this CRS")
    return tuple((tag, *ifd[tag]) for tag in GEOKEY_TAGS if tag in ifd)


def geokeys(crs: Any) -> tuple[tuple[int, int, int, bytes], ...]:
    """The GeoTIFF key tags GDAL writes for a CRS, as (tag, type, count, raw bytes).

    Found once per CRS (cached by its WKT) by letting GDAL write a 1 x 1 GeoTIFF in memory.

    Args:
        crs: anything ``rasterio.crs.CRS.from_user_input`` accepts.
    """
    last = _last_crs
    if last and last[0] is crs:  # the tiler passes one CRS object for a whole scene
        return last[1]
    keys = _geokeys_for_wkt(_crs_wkt(crs))
    globals()["_last_crs"] = (crs, keys)
    return keys


_last_crs: tuple[Any, tuple[tuple[int, int, int, bytes], ...]] | None = None


def _xml_escape(s: str) -> str:
    # CPLEscapeString(CPLES_XML): GDAL escapes each item value this way, then serialises
    # the XML tree, which escapes the text again (without quotes): so "&" -> "&amp;amp;".
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def gdal_metadata(tags: Mapping[str, Any] | None,
                  descriptions: Sequence[str | None] | None) -> str | None:
    """The GDAL_METADATA XML GDAL writes for dataset ``tags`` (default domain) and band
    ``descriptions``; None when there is nothing to write.

    Raises:
        UnsupportedGeoTIFF: a key or value GDAL would rewrite (keys other than
            ``[A-Za-z0-9_]``, keys equal but for case, control characters, leading blanks).
    """
    items = []
    if tags:
        values = {str(k): str(v) for k, v in tags.items()}
        keys = sorted(values, key=str.upper)  # GDAL sorts its metadata lists this way
        if len({k.upper() for k in keys}) != len(keys):
            raise UnsupportedGeoTIFF("tag keys equal but for case")
        for k in keys:
            v = values[k]
            if not _KEY.match(k) or _ODD_VALUE.search(v):
                raise UnsupportedGeoTIFF(f"tag {k!r} is not written as is by GDAL")
            items.append(f'  <Item name="{k}">{_xml_escape(v)}</Item>\n')
    for i, d in enumerate(descriptions or ()):
        if d:
            if _ODD_VALUE.search(d):
                raise UnsupportedGeoTIFF(f"band description {d!r} is not written as is by GDAL")
            items.append(f'  <Item name="DESCRIPTION" sample="{i}" role="description">'
                         f"{_xml_escape(d)}</Item>\n")
    if not items:
        return None
    return "<GDALMetadata>\n" + "".join(items) + "</GDALMetadata>\n"


def gdal_nodata(nodata: float) -> str:
    """GDAL_NODATA text as GDAL writes it ("nan", "0", "255", "-9999")."""
    if math.isnan(nodata):
        return "nan"
    if math.isinf(nodata):
        return "inf" if nodata > 0 else "-inf"
    if nodata != int(nodata) or abs(nodata) >= 2 ** 53:
        raise UnsupportedGeoTIFF("only integral or NaN nodata values")  # GDAL's %.18g
    return str(int(nodata))


def _entry(tag: int, typ: int, values: Sequence[Any] | bytes) -> tuple[int, int, int, bytes]:
    if typ == ASCII:
        raw = values if isinstance(values, bytes) else str(values).encode()
        raw += b"\x00"
        return tag, ASCII, len(raw), raw
    fmt = {SHORT: "H", LONG: "I", DOUBLE: "d"}[typ]
    return tag, typ, len(values), struct.pack(f"<{len(values)}{fmt}", *values)


def _short_or_long(values: Sequence[int]) -> int:
    return SHORT if max(values) <= 0xFFFF else LONG


def _layout(entries: list[tuple[int, int, int, bytes]], strip_counts: list[int]
            ) -> bytes:
    """Header + IFD + out-of-line values, with the strip offsets filled in (the pixel data
    follows right after, strips back to back)."""
    entries = sorted(entries)
    n = len(entries)
    values_at = 8 + 2 + 12 * n + 4
    # sizes are known before the offsets: lay out once, fill the offsets in afterwards
    pos = values_at
    where = {}
    for tag, typ, count, raw in entries:
        if len(raw) > 4:
            where[tag] = pos
            pos += len(raw) + (len(raw) & 1)  # values start on a word boundary
    data_at = pos
    offsets = np.concatenate([[0], np.cumsum(strip_counts[:-1])]).astype(np.int64) + data_at
    head = bytearray(data_at)
    head[:8] = b"II*\x00" + struct.pack("<I", 8)
    struct.pack_into("<H", head, 8, n)
    for i, (tag, typ, count, raw) in enumerate(entries):
        if tag == 273:
            raw = struct.pack(f"<{len(offsets)}I", *offsets.tolist())
        e = 10 + 12 * i
        struct.pack_into("<HHI", head, e, tag, typ, count)
        if len(raw) > 4:
            struct.pack_into("<I", head, e + 8, where[tag])
            head[where[tag]:where[tag] + len(raw)] = raw
        else:
            head[e + 8:e + 8 + len(raw)] = raw
    return bytes(head)


def _interleave(out: np.ndarray, data: np.ndarray) -> None:
    """(C, H, W) -> (H, W, C) ``out``, cast as ``astype`` does. One strided copy per band:
    2-7x faster than ``out[...] = data.transpose(1, 2, 0)`` for 2 to 13 bands."""
    for b in range(data.shape[0]):
        out[:, :, b] = data[b]


def encode_geotiff(data: np.ndarray, *, crs: Any, transform: Affine, nodata: float | None,
                   dtype: str | None = None, descriptions: Sequence[str | None] | None = None,
                   tags: Mapping[str, Any] | None = None, compress: str | None = None,
                   out: bytearray | None = None) -> bytes | bytearray | memoryview:
    """Encode a (C, H, W) array as the GeoTIFF GDAL writes with rasterio's defaults.

    Args:
        data: (C, H, W) pixels, cast to ``dtype`` as ``ndarray.astype`` does.
        crs: the CRS (anything rasterio accepts).
        transform: north-up geotransform (``b == d == 0``, ``a > 0``, ``e < 0``).
        nodata: the nodata value (NaN, an integer, or None for none).
        dtype: numpy dtype name of the file (default: ``data``'s).
        descriptions: band descriptions (GDAL_METADATA items).
        tags: dataset tags, GDAL default metadata domain (values written with ``str``).
        compress: None (uncompressed) or ``"deflate"`` (no predictor, level 6).
        out: a buffer to assemble an uncompressed file in (grown as needed), so that
            repeated calls reuse the same memory.
    Returns:
        the file's bytes (a view of ``out`` when given).
    Raises:
        UnsupportedGeoTIFF: anything GDAL would write otherwise (see the module docstring).
    """
    count, height, width = data.shape
    dtype = np.dtype(dtype or data.dtype)
    if dtype.name not in _SAMPLE_FORMAT:
        raise UnsupportedGeoTIFF(f"dtype {dtype.name}")
    if crs is None:
        raise UnsupportedGeoTIFF("no CRS")
    t = Affine(*transform[:6])
    if t.b != 0 or t.d != 0 or not t.a > 0 or not t.e < 0:
        raise UnsupportedGeoTIFF("not a north-up transform")
    if descriptions is not None and len(descriptions) != count:
        raise UnsupportedGeoTIFF("one description per band")
    if compress not in (None, "deflate"):
        raise UnsupportedGeoTIFF(f"compression {compress}")
    rgb = dtype.name == "uint8" and count in (3, 4)
    if rgb and count == 4:
        raise UnsupportedGeoTIFF("four uint8 bands (GDAL makes the fourth an alpha band)")
    row_bytes = width * count * dtype.itemsize
    if row_bytes * height >= _MAX_BYTES or width > 0xFFFFFFFF:
        raise UnsupportedGeoTIFF("too large for this writer")
    rows = min(height, max(1, STRIP_BYTES // row_bytes))
    xml = gdal_metadata(tags, descriptions)

    le = dtype.newbyteorder("<")
    n_strips = -(-height // rows)
    bounds = [min(i * rows, height) * row_bytes for i in range(n_strips + 1)]
    if compress == "deflate":
        pixels = np.empty((height, width, count), le)
        _interleave(pixels, data)
        flat = memoryview(pixels.reshape(-1).view(np.uint8))
        strips = [zlib.compress(flat[bounds[i]:bounds[i + 1]], ZLEVEL)
                  for i in range(n_strips)]
        counts = [len(p) for p in strips]
    else:
        counts = [bounds[i + 1] - bounds[i] for i in range(n_strips)]

    dim = _short_or_long([width, height])
    entries = [
        _entry(256, dim, [width]), _entry(257, dim, [height]),
        _entry(258, SHORT, [dtype.itemsize * 8] * count),
        _entry(259, SHORT, [8 if compress else 1]),
        _entry(262, SHORT, [2 if rgb else 1]),
        _entry(273, LONG, [0] * n_strips),  # filled in by _layout
        _entry(277, SHORT, [count]),
        _entry(278, _short_or_long([rows]), [rows]),
        _entry(279, _short_or_long(counts), counts),
        _entry(284, SHORT, [1]),
        _entry(339, SHORT, [_SAMPLE_FORMAT[dtype.name]] * count),
        _entry(33550, DOUBLE, [t.a, -t.e, 0.0]),
        _entry(33922, DOUBLE, [0.0, 0.0, 0.0, t.c, t.f, 0.0]),
        *geokeys(crs),
    ]
    if compress:
        entries.append(_entry(317, SHORT, [1]))  # GDAL writes Predictor=1 (none)
    if count > 1 and not rgb:
        entries.append(_entry(338, SHORT, [0] * (count - 1)))  # unspecified extra samples
    if xml is not None:
        entries.append(_entry(42112, ASCII, xml.encode()))
    if nodata is not None:
        entries.append(_entry(42113, ASCII, gdal_nodata(float(nodata))))
    head = _layout(entries, counts)
    if compress:
        return head + b"".join(strips)
    size = len(head) + height * row_bytes
    if out is None:
        out = bytearray(size)
    elif len(out) < size:
        out.extend(bytes(size - len(out)))
    out[:len(head)] = head
    _interleave(np.frombuffer(out, le, height * width * count, len(head)).reshape(
        height, width, count), data)  # straight into the file's buffer
    return memoryview(out)[:size]


def write_geotiff(path: Path | str, data: np.ndarray, **kwargs: Any) -> None:
    """Encode with :func:`encode_geotiff` (same keyword arguments) and write ``path``
    atomically (:func:`io.atomic_path`) in one ``write``.

    Raises:
        UnsupportedGeoTIFF: before anything is written, when the raster needs GDAL.
        io.OutputError: the file could not be written.
    """
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray()
    buf = encode_geotiff(data, out=buf, **kwargs)  # one buffer per thread, reused
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buf)


def write_or_gdal(path: Path | str, data: np.ndarray, *, crs: Any, transform: Affine,
                  nodata: float | None, dtype: str | None = None,
                  descriptions: Sequence[str | None] | None = None,
                  tags: Mapping[str, Any] | None = None, compress: str | None = None,
                  gdal: bool = False) -> None:
    """Write a small GeoTIFF atomically: assembled in numpy (:func:`write_geotiff`), or
    through rasterio (GDAL) with the same profile, descriptions and tags when this module
    does not cover the raster (e.g. a rotated transform) or with ``gdal=True`` (the
    reference the numpy writer is tested and benchmarked against). Arguments as
    :func:`encode_geotiff`'s."""
    if not gdal:
        try:
            write_geotiff(path, data, crs=crs, transform=transform, nodata=nodata,
                          dtype=dtype, descriptions=descriptions, tags=tags,
                          compress=compress)
            return
        except UnsupportedGeoTIFF as exc:
            log.debug("%s: written with rasterio (%s)", path, exc)
    import rasterio

    dtype = np.dtype(dtype or data.dtype).name
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1],
               "width": data.shape[2], "dtype": dtype, "crs": crs, "transform": transform,
               "nodata": nodata, **({"compress": compress} if compress else {})}
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data.astype(dtype, copy=False))
            if descriptions is not None:
                dst.descriptions = descriptions
            if tags:
                dst.update_tags(**tags)
