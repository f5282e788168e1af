"""Housekeeping of a dataset root: the disk used by each of its parts, ``clean`` (the
intermediates of finished scenes, and GDAL's sidecars of the tool's files) and the peak
memory a run reports.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

from .dataset import layout
from .raster.io import InputError, remove_stale_temporaries
from .state import State, state_path

log = logging.getLogger(__name__)


#: Parts of a dataset root for :func:`disk_usage`: name -> glob patterns below the root.
DISK_PARTS = {
    # (cr-ts: ROIs<seed>/<roi>/, docs/variants.md)
    "patches": ("ROIs*/s1_*", "ROIs*/s2_*", "ROIs*/lc_*", "ROIs*/[0-9]*"),
    "quality layers": ("ROIs*/qa_*",),
    "stac": ("stac",),
    "quicklooks and review": ("quicklooks", "review"),
    "metadata": ("*.csv", "*.txt", "*.json", "README.md", "croissant", "rois"),
    "intermediates (.work)": (layout.WORK_DIR,),
}


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def disk_usage(root: Path) -> dict[str, int]:
    """Bytes used by each part of a dataset root (:data:`DISK_PARTS`)."""
    root = Path(root)
    return {part: sum(_bytes(p) for pat in pats for p in root.glob(pat))
            for part, pats in DISK_PARTS.items()}


def clean(root: Path) -> int:
    """Remove the scenes' intermediate files (``.work/<branch>/``: exports and UTM scenes)
    and the ``.aux.xml`` files GDAL leaves beside the dataset's files (``gdalinfo -stats``);
    keep the state file, so finished scenes still resume as finished (their tile stage's
    outputs are the patches). Only files the tool wrote (its record of written files) are
    removed, and the sidecars of those. Returns the bytes freed. Re-admitting a patch by
    review, the quicklooks and ``--force tile`` need the intermediates: the next run
    exports them again."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    path = state_path(root)
    if not path.exists():
        return 0
    with State(path) as state:
        work_dir = state.root / layout.WORK_DIR
        work = [f for f in state.written(work_dir)
                if f.relative_to(work_dir).parts[0].startswith("ROIs")]
        sidecars = [a for f in state.written() if (a := f.with_name(f"{f.name}.aux.xml"))
                    .is_file()]
        freed = sum(f.stat().st_size for f in work + sidecars if f.is_file())
        state.discard(work)
        for a in sidecars:  # GDAL's statistics of a file the tool wrote
            a.unlink()
        if sidecars:
            log.info("%s: %d .aux.xml file(s) of GDAL removed", root, len(sidecars))
    remove_stale_temporaries(root)
    return freed


def peak_memory_mib() -> float:
    """Peak resident memory of this process and its finished children, MiB (Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0
