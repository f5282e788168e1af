"""The variants' splits in the form the authors' loaders take.

Both trees keep the project's leak-free split (:mod:`sen12ms_build.dataset.splits`: whole
overlap groups of ROIs on one side); these files hand it to the SEN12MS-CR(-TS) loaders
(``PatrickTUM/SEN12MS-CR-TS`` and ``PatrickTUM/UnCRtainTS``, ``data/dataLoader.py``),
whose splits are attributes filled in ``__init__``:

* ``splits_sen12mscr.json`` (``cr``): ``{"train": [...], "val": [], "test": [...],
  "all": [...]}`` in ``SEN12MSCR.splits``' form, one entry per scene,
  ``ROIs1158_spring_s1/s1_1/``. ``SEN12MSCR.get_paths`` keeps a patch when any entry is a
  *substring* of its s1 path, so its own entry ``ROIs1158_spring_s1/s1_1`` also takes
  ``s1_10``..``s1_199`` (``s1_1`` matches ``s1_106``, a test scene of theirs, into train);
  the trailing ``/`` ends the folder name and makes each entry match one scene only.
* ``splits_sen12mscrts.json`` (``cr-ts``): ``{"ROI": {"ROIs1868": ["17", ...]}, "splits":
  {"train": ["ROIs1868/17", ...], "val": [], "test": [...], "all": [...]}}``:
  ``SEN12MSCRTS.get_paths`` walks only the ROIs of its ``ROI`` dict and compares
  ``ROIs<seed>/<roi>`` exactly with the split's list.

Passing them (docs/variants.md)::

    ds = SEN12MSCR(root, split="all")            # their class, unchanged
    ds.splits = json.load(open(root / "splits_sen12mscr.json"))
    ds.split = "test"; ds.paths = ds.get_paths(); ds.n_samples = len(ds.paths)

``sen12ms_build.variants.loaders`` reads the manifest and matches scene ids exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from . import cr_layout
from ..raster.io import atomic_write_text

CR_SPLITS = "splits_sen12mscr.json"
TS_SPLITS = "splits_sen12mscrts.json"


def _by_split(keys: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    found: dict[str, set[Any]] = {"train": set(), "val": set(), "test": set()}
    for split, key in keys:
        found[split].add(key)
    out = {k: sorted(v, key=lambda e: (len(str(e)), str(e))) for k, v in found.items()}
    out["all"] = out["train"] + out["test"] + out["val"]
    return out


def cr_splits(manifest: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """The ``cr`` split lists (exact entries) from the manifest rows' ``split`` column."""
    keys = []
    for row in manifest:
        if row.get("split"):
            seed = int(str(row["branch"])[4:].split("_", 1)[0])
            keys.append((row["split"], cr_layout.authors_split_entry(
                seed, str(row["season"]), int(row["scene"]))))
    return _by_split(keys)


def write_cr_splits(root: Path, manifest: Iterable[dict[str, Any]], info: dict) -> Path:
    """Write ``splits_sen12mscr.json`` (see the module doc); returns its path."""
    path = Path(root) / CR_SPLITS
    data = {**cr_splits(manifest), "method": info.get("method", ""),
            "note": "SEN12MSCR.splits form; entries end in '/' so that the loader's "
                    "substring test matches one scene each (docs/variants.md)"}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def ts_splits(rois: Iterable[tuple[str, int, int]]) -> dict[str, Any]:
    """The ``cr-ts`` ``ROI`` dict and split lists from (split, seed, roi) triples."""
    rois = list(rois)
    roi: dict[str, list[str]] = {}
    for _, seed, r in rois:
        roi.setdefault(f"ROIs{seed}", [])
        if str(r) not in roi[f"ROIs{seed}"]:
            roi[f"ROIs{seed}"].append(str(r))
    for k in roi:
        roi[k].sort(key=int)
    return {"ROI": dict(sorted(roi.items())),
            "splits": _by_split((s, cr_layout.ts_roi_key(seed, r)) for s, seed, r in rois)}


def write_ts_splits(root: Path, rois: Iterable[tuple[str, int, int]], info: dict) -> Path:
    """Write ``splits_sen12mscrts.json`` (see the module doc); returns its path."""
    path = Path(root) / TS_SPLITS
    data = {**ts_splits(rois), "method": info.get("method", ""),
            "note": "SEN12MSCRTS.ROI and .splits form (docs/variants.md)"}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path
