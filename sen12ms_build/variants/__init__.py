"""The dataset variants beside the paper's triplets (``variant``, ``--variant``;
docs/variants.md): ``cr`` (SEN12MS-CR, :mod:`.cr`) and ``cr-ts`` (SEN12MS-CR-TS,
:mod:`.cr_ts`).

This module holds the small hooks the pipeline calls, each a no-op (or the paper's
behaviour) for ``variant: sen12ms``: the variant's part of the stage fingerprints, the
folders a scene's patches live in and the root's variant record (one root, one variant).
The dataset's side (tables, splits in the authors' form, descriptions, validation) lives in
``sen12ms_build.dataset`` (``cr_tables``, ``cr_splits``, ``ts_finalize``, ``cr_describe``,
``ts_describe``, ``cr_validate``); the user-facing dataset classes in :mod:`.loaders`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..dataset import cr_layout, layout, provenance
from ..dataset.cr_validate import VARIANT_FILE, tree_variant
from ..errors import Sen12msError
from . import cr



class VariantMismatch(Sen12msError, ValueError):
    """A root holds a dataset of another variant than the run's."""


def variant_of(cfg: Any) -> str:
    """``cfg.variant`` (``sen12ms`` without a config)."""
    return str(getattr(cfg, "variant", "sen12ms") or "sen12ms") if cfg is not None else \
        "sen12ms"


def fingerprint_parts(cfg: Any) -> tuple:
    """The variant's settings in the export stage's fingerprint: nothing for the paper's
    dataset (its fingerprints stay as they were), else the variant and its section."""
    from dataclasses import asdict

    v = variant_of(cfg)
    if v == "sen12ms":
        return ()
    return (v, asdict(cfg.cloud_removal), cr.CR_VERSION)


def scene_folders(cfg: Any, root: Path, branch: str, scene: int) -> list[Path]:
    """The folders that hold one scene's patch files (and quality layers) in the tree of the
    run's variant."""
    seed, season = branch[4:].split("_", 1)
    if variant_of(cfg) == "cr":
        return cr_layout.cr_scene_folders(root, int(seed), season, scene)
    if variant_of(cfg) == "cr-ts":
        return [cr_layout.ts_roi_folder(root, int(seed), scene)]
    return [Path(root) / branch / f"{dd}_{scene}" for dd in (*layout.ALL_DATA_IDS,
                                                              provenance.QA_ID)]


def remove_stale_patches(cfg: Any, root: Path, branch: str, scene: int,
                         keep: Iterable[Path], owned: Iterable[Path]) -> int:
    """:func:`layout.remove_stale_patches` in the run's variant's folders."""
    if variant_of(cfg) == "sen12ms":
        return layout.remove_stale_patches(root, branch, scene, keep, owned)
    keep = {Path(p).resolve() for p in keep}
    folders = [f.resolve() for f in scene_folders(cfg, root, branch, scene)]
    n = 0
    for f in map(Path, owned):
        r = f.resolve()
        if f.suffix == ".tif" and any(r.is_relative_to(d) for d in folders) \
                and r not in keep and f.exists():
            f.unlink()
            n += 1
    return n


def claim_root(root: Path, cfg: Any) -> None:
    """Record the run's variant in a variant root (``variant.json``); a root that holds
    another variant's dataset is refused (one root, one tree layout).

    Raises:
        VariantMismatch: the root was built with another variant.
    """
    from ..raster.io import atomic_write_text
    from ..state import record_written

    root = Path(root)
    v = variant_of(cfg)
    path = root / VARIANT_FILE
    had = tree_variant(root)
    if had != v and (had != "sen12ms" or any(root.glob("ROIs*"))):
        raise VariantMismatch(
            f"{root} holds a {had!r} dataset; this run builds variant {v!r}: write it into "
            "another --out folder")
    if v != "sen12ms":
        text = json.dumps({"variant": v}) + "\n"
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
        record_written(root, [path])


