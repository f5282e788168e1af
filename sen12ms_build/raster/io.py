"""File I/O at the edges: atomic writes and GeoTIFF checks.

Every file the pipeline produces is written under a temporary name in its destination
folder and renamed into place when complete, so a file is either whole or absent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from ..errors import Sen12msError

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


#: Mode of every output file: 0666 less the process umask (as ``open`` would create it).
FILE_MODE = _file_mode()


class OutputError(Sen12msError, RuntimeError):
    """An output could not be written (full disk, permissions); nothing half-written is left."""


class InputError(Sen12msError, RuntimeError):
    """An input raster is missing, corrupt, truncated or not what it should be."""


def explain_os_error(exc: OSError, path: Path) -> str:
    """A one-line reason for a failed write of ``path``."""
    if exc.errno == errno.ENOSPC:
        return f"cannot write {path}: no space left on the device"
    if exc.errno in (errno.EFBIG, errno.EDQUOT):
        return f"cannot write {path}: {exc.strerror} (file size limit or disk quota)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied writing {path}"
    if exc.errno is None and "written" in str(exc):  # numpy's short write
        return (f"cannot write {path}: {exc} (disk full, file size limit or disk quota)")
    return f"cannot write {path}: {exc}"


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success, remove it
    on any failure. Raises :class:`OutputError` for OS errors (full disk, permissions)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600; outputs get the usual umask mode
        os.close(fd)
    except OSError as exc:
        raise OutputError(explain_os_error(exc, path)) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise OutputError(explain_os_error(exc, path)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text)
        except OSError as exc:
            raise OutputError(explain_os_error(exc, Path(path))) from exc


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write a file atomically in few system calls (for the many small files of a STAC
    catalog): :func:`atomic_path`'s temporary name, written through the descriptor that
    made it, then renamed; its folder is made when missing."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    try:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=folder)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise OutputError(explain_os_error(exc, Path(path))) from exc
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(explain_os_error(exc, Path(path))) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


GTIFF_PROFILE: dict[str, Any] = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "interleave": "pixel",
}
#: Creation options of the pipeline's intermediate rasters (exports, UTM scenes): ZSTD at
#: level 1 with a predictor writes ~5x faster than deflate at about the same size.
FAST_COMPRESSION: dict[str, Any] = {"compress": "zstd", "zstd_level": 1}


def predictor(dtype: str) -> int:
    """TIFF predictor for a dtype: 3 (floating point) or 2 (horizontal differencing)."""
    return 3 if np.dtype(dtype).kind == "f" else 2


def write_raster(path: Path | str, data: np.ndarray, *, crs: Any, transform: Any,
                 nodata: float | None, descriptions: tuple[str, ...] | None = None,
                 tags: dict[str, Any] | None = None, **profile: Any) -> None:
    """Write a (C, H, W) array as a GeoTIFF atomically, with band descriptions and tags."""
    count, height, width = data.shape
    prof = {**GTIFF_PROFILE, "count": count, "height": height, "width": width,
            "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
            **profile}
    if width < 256 or height < 256:
        prof["tiled"] = False
        prof.pop("blockxsize", None)
        prof.pop("blockysize", None)
    if prof.get("compress") in ("deflate", "zstd", "lzw"):
        prof.setdefault("predictor", predictor(data.dtype.name))
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with rasterio.open(tmp, "w", **prof) as dst:
                dst.write(data)
                if descriptions:
                    for i, d in enumerate(descriptions, start=1):
                        dst.set_band_description(i, d)
                if tags:
                    dst.update_tags(**{k: str(v) for k, v in tags.items()})
        except RasterioIOError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
            raise OutputError(explain_os_error(cause, path) if cause else
                              f"cannot write {path}: {exc}") from exc


def sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: The names :func:`atomic_path` gives its temporaries: ``.<name>.<8 random chars>.tmp``
#: (``tempfile.mkstemp``); nothing else is taken for one.
TMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(TMP_SUFFIX) + "$")


def remove_stale_temporaries(root: Path | str) -> int:
    """Delete temporary files left by an interrupted run below ``root`` (only names
    :func:`atomic_path` gives, :data:`TMP_RE`); returns the count."""
    n = 0
    for p in Path(root).rglob(f"*{TMP_SUFFIX}"):
        if TMP_RE.match(p.name) and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    if n:
        log.info("removed %d temporary file(s) left by an interrupted run", n)
    return n


# --- one run per output folder --------------------------------------------------------------

LOCK_NAME = ".sen12ms.lock"


class LockedError(Sen12msError, RuntimeError):
    """Another run holds the output folder's lock."""


@contextlib.contextmanager
def output_lock(root: Path | str) -> Iterator[Path]:
    """Hold ``<root>/.sen12ms.lock`` for the duration of a run.

    The lock is an advisory ``fcntl.flock`` on the file: the operating system releases it
    when the holder ends, however it ends (a killed run leaves a file but no lock). The
    file records the holder (pid, host, start time) for the message a second run gets, and
    is removed when the holder releases it (a finished run leaves no lock file). A lock
    taken on a file another holder removed meanwhile is taken again on the new file.
    Raises :class:`LockedError` naming the holder when another process holds it.
    """
    import datetime as dt
    import fcntl
    import socket

    path = Path(root) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise OutputError(explain_os_error(exc, path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{root} is in use by another run ({holder}); wait for it to "
                              f"finish, or use another --out") from None
        try:  # the file we locked is still the one at the path (not removed by a holder)
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = (f"pid {os.getpid()} on {socket.gethostname()}, started "
                f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):  # released: no lock file left behind
                path.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
