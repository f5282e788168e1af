"""Atomic writes, proven by stopping a write half-way.

A child process overwrites a file that holds a complete previous version and is killed
(SIGKILL, no clean-up possible) at a deterministic point inside the write: after half of
the new content went to disk, before the write finished. Afterwards the final name must
either not exist or hold the complete previous version, byte for byte. An in-place write
(``io.atomic_path`` yielding the final name) leaves a half-written file there and fails.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build.raster import io
from sen12ms_build.raster.io import TMP_SUFFIX, atomic_write_text, sha256, write_raster

GEO = {"crs": "EPSG:32618", "transform": Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 4200000.0)}

#: The child: overwrite ``path`` with new content and SIGKILL itself half-way through.
#: ``raster``: rasterio's band writes are intercepted; the first half of the bands is written,
#: then the process dies before the remaining bands, the tags and the close.
#: ``text``: the text is written in two halves; the process dies after the first.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path

    import numpy as np
    import rasterio
    from affine import Affine

    from sen12ms_build.raster import io

    kind, path = sys.argv[1], Path(sys.argv[2])

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if kind == "raster":
        real_open = rasterio.open

        class HalfWriter:
            def __init__(self, ds):
                self.ds = ds

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self.ds.__exit__(*exc)

            def __getattr__(self, name):
                return getattr(self.ds, name)

            def write(self, data, *a, **kw):
                half = data.shape[0] // 2
                self.ds.write(data[:half], indexes=list(range(1, half + 1)))
                die()  # before the other bands, the tags and the close

        def open_(fp, mode="r", *a, **kw):
            ds = real_open(fp, mode, *a, **kw)
            return HalfWriter(ds) if mode == "w" else ds

        io.rasterio.open = open_
        data = np.full((4, 300, 300), 7, np.uint16)
        geo = {"crs": "EPSG:32618",
               "transform": Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 4200000.0)}
        io.write_raster(path, data, nodata=0, **geo)
    else:
        def half_then_die(self, text, *a, **kw):
            with open(self, "w") as f:
                f.write(text[: len(text) // 2])
                f.flush()
                os.fsync(f.fileno())
            die()

        Path.write_text = half_then_die
        io.atomic_write_text(path, "new line\\n" * 50000)
    print("the write finished: the kill did not happen", flush=True)
""")


def _previous_version(kind: str, path: Path) -> None:
    if kind == "raster":
        data = np.arange(4 * 300 * 300, dtype=np.uint32).reshape(4, 300, 300) % 60000
        write_raster(path, data.astype(np.uint16), nodata=0, **GEO)
    else:
        atomic_write_text(path, "old line\n" * 1000)


def _kill_half_way(kind: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, kind, str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind, name", [("raster", "scene.tif"), ("text", "manifest.csv")])
def test_a_write_killed_half_way_leaves_the_previous_version(tmp_path, kind, name):
    path = tmp_path / "out" / name
    _previous_version(kind, path)
    before = sha256(path)
    proc = _kill_half_way(kind, path)
    # the child really died by the signal, in the middle of the write
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert "the write finished" not in proc.stdout
    # the final name holds the complete previous version, byte for byte
    assert path.exists()
    assert sha256(path) == before
    if kind == "raster":
        with rasterio.open(path) as src:
            assert src.read().shape == (4, 300, 300)
    # the half-written content exists only under a temporary name beside it
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert leftovers and all(p.name.endswith(TMP_SUFFIX) for p in leftovers)
    assert all(p.name.startswith(f".{name}.") for p in leftovers)


@pytest.mark.parametrize("kind, name", [("raster", "scene.tif"), ("text", "manifest.csv")])
def test_a_first_write_killed_half_way_leaves_no_file(tmp_path, kind, name):
    path = tmp_path / "out" / name
    path.parent.mkdir()
    proc = _kill_half_way(kind, path)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert not path.exists()


# --- the rest of io: error lines, GeoTIFF profile, checksums, leftovers ------------------------

@pytest.mark.parametrize("err, words", [
    (errno.ENOSPC, "no space left on the device"),
    (errno.EFBIG, "file size limit or disk quota"),
    (errno.EDQUOT, "file size limit or disk quota"),
    (errno.EACCES, "permission denied writing"),
    (errno.EPERM, "permission denied writing"),
    (errno.EROFS, "permission denied writing"),
    (errno.EIO, "cannot write /x/y.tif: "),
])
def test_explain_os_error_one_line_per_cause(err, words):
    line = io.explain_os_error(OSError(err, os.strerror(err)), Path("/x/y.tif"))
    assert words in line and "/x/y.tif" in line and "\n" not in line
    others = {"no space left", "file size limit", "permission denied"} - {
        w for w in ("no space left", "file size limit", "permission denied") if w in words}
    assert not any(o in line for o in others)


def test_explain_numpy_short_write():
    line = io.explain_os_error(OSError("100 requested and 12 written"), Path("/x/a.npy"))
    assert "disk full, file size limit or disk quota" in line
    plain = io.explain_os_error(OSError("something else"), Path("/x/a.npy"))
    assert "disk full" not in plain and plain == "cannot write /x/a.npy: something else"


def test_output_mode_follows_the_umask(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    assert io.FILE_MODE == 0o666 & ~mask
    atomic_write_text(tmp_path / "a.txt", "x\n")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == io.FILE_MODE


@pytest.mark.parametrize("shape, tiled", [((1, 300, 300), True), ((1, 300, 200), False),
                                          ((1, 100, 300), False), ((1, 256, 300), True),
                                          ((1, 300, 256), None)])
def test_write_raster_profile(tmp_path, shape, tiled):
    data = (np.arange(np.prod(shape)) % 1000).astype(np.uint16).reshape(shape)
    path = tmp_path / "r.tif"
    write_raster(path, data, nodata=0, descriptions=("B2",), tags={"K": 1.5}, **GEO)
    with rasterio.open(path) as src:
        assert src.read().tolist() == data.tolist()
        if tiled is not None:  # a 256-wide tiled raster reads back as untiled
            assert src.profile["tiled"] is tiled
        if tiled is not False:
            assert src.block_shapes[0] == (256, 256)
        assert src.compression.name.lower() == "deflate"
        assert src.descriptions == ("B2",) and src.tags()["K"] == "1.5"
        assert src.interleaving.name.lower() in ("pixel", "band")
    with rasterio.open(path) as src:  # integer data: horizontal differencing
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
    fpath = tmp_path / "f.tif"
    write_raster(fpath, data.astype(np.float32), nodata=None, **GEO)
    with rasterio.open(fpath) as src:  # floating point predictor
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"
    npath = tmp_path / "n.tif"
    write_raster(npath, data, nodata=0, compress="none", **GEO)
    with rasterio.open(npath) as src:  # no compression, no predictor
        assert "PREDICTOR" not in src.tags(ns="IMAGE_STRUCTURE")


def test_predictor_by_dtype():
    assert io.predictor("float32") == 3 and io.predictor("float64") == 3
    assert io.predictor("uint16") == 2 and io.predictor("int8") == 2


def test_sha256_reads_in_chunks(tmp_path):
    import hashlib

    data = os.urandom(3 * 1000 + 17)
    (tmp_path / "f").write_bytes(data)
    assert io.sha256(tmp_path / "f", chunk=1000) == hashlib.sha256(data).hexdigest()
    assert io.sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_remove_stale_temporaries_counts_only_ours(tmp_path):
    (tmp_path / "a").mkdir()
    # atomic_path's names: ".<name>.<8 random characters of mkstemp>.tmp"
    (tmp_path / "a" / f".x.tif.a1b2c3d4{TMP_SUFFIX}").write_text("")
    (tmp_path / f".y.csv.zz_9yy0q{TMP_SUFFIX}").write_text("")
    (tmp_path / f"keep{TMP_SUFFIX}").write_text("")  # not one of ours (no leading dot)
    (tmp_path / f".notes{TMP_SUFFIX}").write_text("")  # a user's: no random part
    assert io.remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob(f"*{TMP_SUFFIX}")) == \
        [f".notes{TMP_SUFFIX}", f"keep{TMP_SUFFIX}"]
    assert io.remove_stale_temporaries(tmp_path) == 0


def test_the_names_atomic_path_gives_are_those_removed(tmp_path):
    """The pattern of stale temporaries matches what mkstemp really names them, as a
    killed run leaves one; a user's dotfile ending in .tmp is not taken for one."""
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "a.csv") as tmp:
            name = tmp.name
            raise RuntimeError("killed")
    (tmp_path / name).write_text("partial")  # what a SIGKILL would have left
    (tmp_path / ".a.csv.tmp").write_text("mine")
    assert io.remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".a.csv.tmp"]
