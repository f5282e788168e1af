"""The s2cloudless LightGBM model as a function ``(n, 10) reflectance -> (n,) probability``:
compiled once per machine with ``lleaves`` (LLVM) and cached, LightGBM's own ``predict``
when that cannot be had.

The model is Sentinel Hub's ``models/pixel_s2_cloud_detector_lightGBM_v0.1.txt`` inside the
``s2cloudless`` wheel (170 trees of 770 leaves over 10 bands). :func:`predictor` returns
one :class:`Predictor` per process:

* **compiled** (``lleaves`` installed, the ``s2cloudless`` extra): the model is compiled to
  machine code once per machine and kept in the user cache (:func:`cache_dir`), under a
  name keyed by the model file's sha256, the versions of lleaves and llvmlite, the compile
  options and the host CPU (the code is compiled for it). The compile runs in a child
  process (its 1.1 GB peak and any crash stay there), under an exclusive lock on the cache
  entry (concurrent workers wait for one compile instead of each running their own), into a
  temporary name in the same folder renamed into place: a second process never loads a
  half-written file. Later processes load the object file in ~0.2 s.
* **LightGBM** (lleaves not installed, or the compile failed): ``lightgbm.Booster.predict``,
  the call ``s2cloudless.S2PixelCloudDetector`` makes; one log line says why.

Both compute in float64 from the same float32 inputs and give the same probabilities
(largest difference 7e-16 on the s2cloudless test array; ``tests/test_s2cloudless_model.py``
asserts 1e-6 against ``Booster.predict``).

**Threads.** :func:`set_threads` fixes how many threads one process's predictions may use;
the default is 1. Nothing here probes the machine: the pipeline divides the cores the run
was given among its scene workers (``cores // workers`` each) and sets it in every worker,
so a process pool never runs more threads than cores (docs/clouds.md).

Why here: the model's loader belongs to the scorer that uses it (as the Booster's own
file read did), and ``mosaic/`` may import only base modules; this module imports none of
the package (the project's ``raster.io.atomic_path`` is above ``mosaic/``, so the atomic
rename is done here with the same temporary-then-``os.replace`` rule).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

log = logging.getLogger(__name__)

#: The model file inside the s2cloudless package (``s2cloudless.cloud_detector``).
MODEL_FILENAME = "pixel_s2_cloud_detector_lightGBM_v0.1.txt"
#: Environment variable naming the cache folder (overrides the XDG default).
CACHE_ENV = "SEN12MS_BUILD_CACHE"
#: Options of ``lleaves.Model.compile``. ``finline=False``: inlining 170 trees of 770 leaves
#: into one function took > 13 GB and > 20 CPU minutes before we stopped it; without it the
#: compile takes ~45 CPU s and 1.1 GB. ``fblocksize``: trees per cache block (every row goes
#: through one block before the next); 1-8 predict 1.5x faster than lleaves' default 34 on
#: image rows (neighbours take the same branches). Measured: docs/clouds.md.
COMPILE_OPTIONS: dict[str, Any] = {"finline": False, "fblocksize": 4}
#: Pixels classified per call: bounds the feature block (10 float64 per pixel, 20 MiB).
BLOCK_PIXELS = 1 << 18
#: Features the model reads.
N_FEATURES = 10

_THREADS = [1]


def set_threads(threads: int) -> None:
    """Threads this process's predictions may use (>= 1; default 1). Set by whoever owns
    the process's cores (the pipeline: ``cores // workers``), never probed here."""
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    _THREADS[0] = int(threads)


def threads() -> int:
    """The thread count set with :func:`set_threads`."""
    return _THREADS[0]


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """The cache folder: ``$SEN12MS_BUILD_CACHE`` if set, else
    ``$XDG_CACHE_HOME/sen12ms-build``, else ``~/.cache/sen12ms-build``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "sen12ms-build"


def model_file() -> Path:
    """The LightGBM text file inside the installed ``s2cloudless`` package (found, not
    imported). Raises ``FileNotFoundError`` if the package or its model is missing."""
    spec = importlib.util.find_spec("s2cloudless")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the s2cloudless package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the s2cloudless model file is missing")
    return path


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lleaves_installed() -> bool:
    """Whether the compiler (``lleaves``) can be imported (found, not imported)."""
    return importlib.util.find_spec("lleaves") is not None


def _host_cpu() -> tuple[str, str]:
    """LLVM's name and feature string of this CPU (what lleaves compiles for)."""
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot detect them here: lleaves then compiles without
        features = ""
    return llvm.get_host_cpu_name(), features


def compiled_name(model_sha256: str) -> str:
    """The cache file name of the compiled model: model sha256, compiler versions, compile
    options and host CPU (name and a hash of its LLVM feature string)."""
    cpu, features = _host_cpu()
    options = ",".join(f"{k}={v}" for k, v in sorted(COMPILE_OPTIONS.items()))
    tail = hashlib.sha256(f"{options}|{cpu}|{features}".encode()).hexdigest()[:12]
    return (f"s2cloudless-{model_sha256[:16]}-lleaves{importlib.metadata.version('lleaves')}"
            f"-llvmlite{importlib.metadata.version('llvmlite')}-{cpu}-{tail}.o")


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``lock_path`` (POSIX ``flock``; a no-op where there is
    none: the atomic rename alone keeps readers safe, only the duplicate work remains)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: The compile child: ``python -c _CHILD MODEL OUT OPTIONS_JSON``. It needs only lleaves (not
#: this package), and ``OUT`` must not exist (lleaves would load it instead).
_CHILD = ("import json, sys, lleaves; "
          "lleaves.Model(model_file=sys.argv[1]).compile(cache=sys.argv[2], "
          "**json.loads(sys.argv[3]))")


def compile_model(model: Path, out: Path) -> None:
    """Compile ``model`` with lleaves (:data:`COMPILE_OPTIONS`) into the object file ``out``
    (which must not exist) in a child process, so its memory peak (1.1 GB) and any crash
    stay there.

    Raises:
        RuntimeError: the child failed (with its last error line).
    """
    if out.exists():
        raise FileExistsError(out)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(out),
                           json.dumps(COMPILE_OPTIONS)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(f"lleaves compile exited {proc.returncode}: "
                           f"{lines[-1] if lines else 'no object file written'}")


def compiled_model(model: Path, cache: Path) -> tuple[Any, Path, float | None]:
    """The lleaves model of ``model``, compiled into ``cache`` unless it is there already.

    Returns:
        (``lleaves.Model``, the object file, compile wall seconds or ``None`` if loaded).
    Raises:
        RuntimeError: the compile failed (its last error line); OSError: the cache folder.
    """
    import lleaves

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / compiled_name(sha256(model))
    seconds = None
    with _exclusive(path.with_name(path.name + ".lock")):
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
            t0 = time.perf_counter()
            try:
                compile_model(model, tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            seconds = time.perf_counter() - t0
    m = lleaves.Model(model_file=str(model))
    m.compile(cache=str(path), **COMPILE_OPTIONS)  # loads the object file
    return m, path, seconds


@dataclass(frozen=True)
class Predictor:
    """The model as a function.

    Attributes:
        backend: ``lleaves`` (compiled) or ``lightgbm`` (``Booster.predict``).
        fn: ``fn(x, threads) -> p``: ``x`` (n, 10) float64 C-contiguous reflectance of the
            model's bands, ``p`` (n,) float64 cloud probability.
        path: the compiled object file (``None`` for LightGBM).
        compile_seconds: wall seconds of this process's compile (``None``: loaded, or
            LightGBM).
    """

    backend: str
    fn: Callable[[np.ndarray, int], np.ndarray]
    path: Path | None = None
    compile_seconds: float | None = None

    def predict(self, x: np.ndarray, threads: int | None = None) -> np.ndarray:
        """(n,) float64 probabilities of (n, 10) float64 features (:data:`BLOCK_PIXELS` rows
        at most per call), on ``threads`` threads (default :func:`threads`)."""
        return self.fn(x, threads or _THREADS[0])


def lightgbm_predictor(model: Path) -> Predictor:
    """LightGBM's own predict of ``model`` (what ``S2PixelCloudDetector`` runs)."""
    from lightgbm import Booster

    booster = Booster(model_file=str(model))
    return Predictor("lightgbm", lambda x, n: booster.predict(x, num_threads=n))


def load_predictor(model: Path, cache: Path, compiled: bool = True) -> Predictor:
    """The compiled model from ``cache`` (compiling it there once), or LightGBM's predict
    when ``compiled`` is False, lleaves is not installed or the compile fails (one log
    line)."""
    if not compiled:
        return lightgbm_predictor(model)
    if not lleaves_installed():
        log.warning("s2cloudless: lleaves is not installed, so the model runs in LightGBM's "
                    "own predict (same probabilities, ~6x the CPU); "
                    "pip install 'sen12ms-build[s2cloudless]'")
        return lightgbm_predictor(model)
    try:
        m, path, seconds = compiled_model(model, cache)
    except Exception as exc:  # noqa: BLE001 - any compiler failure: LightGBM's predict
        log.warning("s2cloudless: compiling the model with lleaves failed (%s: %s), so it "
                    "runs in LightGBM's own predict (same probabilities, ~6x the CPU)",
                    type(exc).__name__, exc)
        return lightgbm_predictor(model)
    if seconds is not None:
        log.info("s2cloudless: model compiled with lleaves in %.0f s, cached as %s",
                 seconds, path)
    return Predictor("lleaves", lambda x, n: m.predict(x, n_jobs=n), path, seconds)


_COMPILED = [True]


def set_compiled(enabled: bool) -> None:
    """Use the compiled model (default) or LightGBM's predict in this process (for the
    benchmark's comparison; the probabilities are the same)."""
    _COMPILED[0] = bool(enabled)


@functools.lru_cache(maxsize=4)
def _cached(model: str, cache: str, compiled: bool) -> Predictor:
    return load_predictor(Path(model), Path(cache), compiled)


def predictor() -> Predictor:
    """This process's predictor of the installed model (:func:`load_predictor` once per
    model file, cache folder and :func:`set_compiled` choice)."""
    return _cached(str(model_file()), str(cache_dir()), _COMPILED[0])


def features(l1c: np.ndarray, flat_index: np.ndarray, bands: tuple[int, ...],
             scale: float = 10000.0) -> np.ndarray:
    """The model's input for some pixels: reflectance = DN / ``scale`` in float32 (what the
    s2cloudless package is fed), stored as float64 (what both predictors compute in).

    Args:
        l1c: (13, h, w) uint16 L1C digital numbers.
        flat_index: (n,) indices into the flattened (h, w) grid.
        bands: the model's 10 bands as indices into the 13.
    Returns:
        (n, 10) float64, C-contiguous.
    """
    x = np.empty((flat_index.size, len(bands)), np.float64)
    s = np.float32(scale)
    for j, b in enumerate(bands):
        x[:, j] = np.divide(l1c[b].reshape(-1)[flat_index], s, dtype=np.float32)
    return x


def probability(l1c: np.ndarray, valid: np.ndarray, bands: tuple[int, ...],
                model: Predictor | None = None, threads: int | None = None) -> np.ndarray:
    """Cloud probability of the valid pixels, classified in blocks of :data:`BLOCK_PIXELS`.

    Args:
        l1c: (13, h, w) uint16 L1C digital numbers.
        valid: (h, w) bool; only these pixels are classified.
        bands: the model's 10 bands as indices into the 13.
        model: the predictor (default :func:`predictor`).
        threads: threads per block (default :func:`threads`).
    Returns:
        (h, w) float32 probability, 0 outside ``valid``.
    """
    out = np.zeros(valid.shape, np.float32)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    model = model or predictor()
    flat = out.reshape(-1)
    for i in range(0, idx.size, BLOCK_PIXELS):
        block = idx[i:i + BLOCK_PIXELS]
        flat[block] = model.predict(features(l1c, block, bands), threads)
    return out
