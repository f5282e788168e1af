"""io.output_lock in one process (flock conflicts between two opens of the same file) and
the fast compression profile of intermediate rasters."""

from __future__ import annotations

import fcntl
import os

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build.raster import io


def test_second_lock_names_the_holder_and_release_clears_it(tmp_path):
    lock = tmp_path / io.LOCK_NAME
    lock.write_text("pid 1 on stale-host, started long ago " * 200)  # dead holder's text
    with io.output_lock(tmp_path) as path:
        assert path == lock
        text = lock.read_text()
        assert text.startswith(f"pid {os.getpid()} on ") and "started " in text
        assert "stale-host" not in text  # the old text is replaced, not appended to
        with pytest.raises(io.LockedError) as err:
            with io.output_lock(tmp_path):
                pass
        msg = str(err.value)
        assert f"is in use by another run (pid {os.getpid()} on " in msg
        assert msg.startswith(str(tmp_path)) and "use another --out" in msg
    assert not lock.exists()  # released: no lock file left behind (issue 20, case 16)
    with io.output_lock(tmp_path):  # free again
        pass


def test_a_lock_on_a_file_removed_meanwhile_is_taken_again(tmp_path, monkeypatch):
    """A run that opened the lock file just before its holder released (and removed) it
    must not hold a lock on the removed file while a third run locks a new one."""
    real_flock, calls = fcntl.flock, []

    def flock_after_release(fd, op):
        if op & fcntl.LOCK_EX:
            calls.append(fd)
            if len(calls) == 1:  # the holder releases between our open and our flock
                (tmp_path / io.LOCK_NAME).unlink()
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_release)
    with io.output_lock(tmp_path) as path:
        assert len(calls) == 2 and path.exists()  # locked, found removed, locked again
        with pytest.raises(io.LockedError):  # the live file is the held one
            with io.output_lock(tmp_path):
                pass


def test_a_holder_that_wrote_nothing_is_unknown(tmp_path):
    fd = os.open(tmp_path / io.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(io.LockedError, match=r"another run \(unknown\)"):
            with io.output_lock(tmp_path):
                pass
    finally:
        os.close(fd)


def test_lock_in_a_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(io.OutputError):
        with io.output_lock(tmp_path / "missing"):
            pass


def test_fast_compression_writes_zstd(tmp_path):
    assert io.FAST_COMPRESSION == {"compress": "zstd", "zstd_level": 1}  # documented: level 1
    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    io.write_raster(tmp_path / "z.tif", data, crs="EPSG:32632", nodata=0,
                    transform=Affine(10, 0, 0, 0, -10, 0), descriptions=("a", "b", "c"),
                    **io.FAST_COMPRESSION)
    with rasterio.open(tmp_path / "z.tif") as src:
        assert src.compression.name.lower() == "zstd"
        assert src.descriptions == ("a", "b", "c")
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
        np.testing.assert_array_equal(src.read(), data)


def test_sha256_reads_one_mebibyte_at_a_time(tmp_path, monkeypatch):
    """Bounded memory on multi-gigabyte scenes: the default chunk is 1 MiB."""
    import builtins
    import hashlib

    data = os.urandom((1 << 20) + 5)
    (tmp_path / "f").write_bytes(data)
    sizes = []
    real_open = builtins.open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            sizes.append(n)
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(io, "open", lambda p, mode="r": Spy(real_open(p, mode)),
                        raising=False)
    assert io.sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    assert sizes == [1 << 20] * 3  # two reads with data, one empty at the end
