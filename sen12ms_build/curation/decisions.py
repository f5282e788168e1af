"""The reviewer's record, ``<root>/review.json``, and how it overrides the automatic rounds.

This module needs neither the pipeline nor the review pages: the tile stage applies the
reviewer's decisions to a freshly tiled scene through :func:`honour_decisions`,
:func:`dataset.finalize.finalize` applies them to the records through :func:`apply_to_records`,
and :mod:`sen12ms_build.curation.review` writes them (``apply-review``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ..dataset import layout
from ..raster.io import InputError, sha256

log = logging.getLogger(__name__)

REVIEW_JSON = "review.json"


def patch_id(branch: str, scene: int, patch: int) -> str:
    """The manifest's ``patch_id``: ``<branch>_<scene>_p<patch>``."""
    return f"{branch}_{scene}_p{patch}"


def load_decisions(root: Path) -> dict[str, dict[str, dict]]:
    """``review.json`` of a dataset root: {"rejected": {id: info}, "readmitted": {id: info}}
    (empty when there is none)."""
    path = Path(root) / REVIEW_JSON
    if not path.exists():
        return {"rejected": {}, "readmitted": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable review record ({exc})") from exc
    return {"rejected": dict(data.get("rejected", {})),
            "readmitted": dict(data.get("readmitted", {}))}


def apply_to_records(root: Path, records: list[tuple[dict, list[dict]]],
                     decisions: Mapping[str, Mapping[str, dict]] | None = None
                     ) -> list[tuple[dict, list[dict]]]:
    """The scene and patch records with the reviewer's decisions applied (copies).

    A reviewer-rejected patch becomes ``kept: False``, ``reason: review`` (no files); a
    re-admitted patch that the rounds rejected becomes kept, with its files and checksums,
    if its files are in the tree, and keeps the rejecting check as its ``reason``. Every
    reviewed patch carries ``review`` (``rejected`` or ``readmitted``); each scene's
    ``patches_kept`` is recounted.
    """
    decisions = decisions if decisions is not None else load_decisions(root)
    rejected, readmitted = decisions["rejected"], decisions["readmitted"]
    if not rejected and not readmitted:
        return records
    out = []
    for rec, patches in records:
        new = []
        for p in patches:
            pid = patch_id(rec["branch"], rec["scene"], p["patch"])
            if pid in rejected:
                p = {**p, "review": "rejected"}
                if p["kept"]:
                    p.update(kept=False, reason="review", files={}, sha256={})
            elif pid in readmitted:
                p = {**p, "review": "readmitted"}
                if not p["kept"]:
                    files = _patch_files(root, rec, p["patch"])
                    if all((Path(root) / f).exists() for f in files.values()):
                        sums = readmitted[pid].get("sha256") or {
                            k: sha256(Path(root) / f) for k, f in files.items()}
                        p.update(kept=True, files=files, sha256=sums,
                                 reason="" if p["reason"] == "review" else p["reason"])
                    else:
                        log.warning("re-admitted patch %s has no files in the tree; run "
                                    "apply-review again to cut it", pid)
            new.append(p)
        rec = {**rec, "patches_kept": sum(p["kept"] for p in new)} if patches else rec
        out.append((rec, new))
    return out


def data_ids(rec: Mapping[str, Any]) -> tuple[str, ...]:
    """The patch files of a scene record: the triplet, and the modalities its run added
    (``modalities``: a run with labels)."""
    return tuple(rec.get("modalities") or layout.DATA_IDS)


def _patch_files(root: Path, rec: Mapping[str, Any], patch: int) -> dict[str, str]:
    return {dd: str(layout.patch_path(Path(root), rec["seed"], rec["season"], dd, rec["scene"],
                                      patch).relative_to(root))
            for dd in data_ids(rec)}


def cut_patch(utm: Mapping[str, Path], row: int, col: int, size: int,
              paths: Mapping[str, Path], tags: Mapping[str, str] | None = None) -> None:
    """Write a patch triplet cut from the scene's UTM rasters at (row, col), exactly as the
    tiler does (:func:`tiling.write_patch`)."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    from ..raster.tiling import write_patch

    win = Window(col, row, size, size)
    for dd, path in paths.items():
        with rasterio.open(utm[dd]) as src:
            data = src.read(window=win)
            t = src.transform @ Affine.translation(col, row)
            write_patch(Path(path), data, dd, src.crs, t, tags)


def honour_decisions(root: Path, branch: str, scene: int, patches: list[dict],
                     utm: Mapping[str, Path], name_for: Any, size: int,
                     ids: tuple[str, ...] = layout.DATA_IDS) -> list[dict]:
    """The patch round's records of a freshly tiled scene with ``review.json`` applied to
    the tree: reviewer-rejected patches are removed, re-admitted ones written. Records keep
    the tiler's form (absolute ``files``). ``ids``: the patch files of the run (the
    triplet, and any added modality)."""
    decisions = load_decisions(root)
    rejected, readmitted = decisions["rejected"], decisions["readmitted"]
    if not rejected and not readmitted:
        return patches
    out = []
    for p in patches:
        pid = patch_id(branch, scene, p["patch"])
        if pid in rejected:
            for dd in ids:
                Path(name_for(dd, p["patch"])).unlink(missing_ok=True)
            p = {**p, "kept": False, "reason": "review" if p["kept"] else p["reason"],
                 "files": {}, "review": "rejected"}
        elif pid in readmitted:
            if not p["kept"]:
                paths = {dd: Path(name_for(dd, p["patch"])) for dd in ids}
                cut_patch(utm, p["row"], p["col"], size, paths, p.get("tags"))
                p = {**p, "kept": True, "files": paths,
                     "reason": "" if p["reason"] == "review" else p["reason"]}
            p = {**p, "review": "readmitted"}
        out.append(p)
    return out
