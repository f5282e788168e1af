"""The dataset variants beside the paper's triplets (``variant``, ``--variant``;
docs/variants.md): ``cr`` (SEN12MS-CR, :mod:`.cr`) and ``cr-ts`` (SEN12MS-CR-TS,
:mod:`.cr_ts`).

This module holds the small hooks the pipeline and the dataset's finalize call, each a
no-op (or the paper's behaviour) for ``variant: sen12ms``: the variant's part of the stage
fingerprints, the folders a scene's patches live in, the root's variant record (one root,
one variant), the extra columns of ``manifest.csv`` / ``scenes.csv``, and the variant's
own root files (its split file for the authors' loaders, its quicklooks). The user-facing
dataset classes are in :mod:`.loaders`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..dataset import cr_layout, layout, provenance
from ..errors import Sen12msError
from . import cr

#: The root file that records a variant tree's variant (absent for the paper's tree).
VARIANT_FILE = "variant.json"


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
    return [Path(root) / branch / f"{dd}_{scene}" for dd in (*layout.DATA_IDS,
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


def tree_variant(root: Path) -> str:
    """The variant a root was built with (``sen12ms`` when it records none)."""
    try:
        return str(json.loads((Path(root) / VARIANT_FILE).read_text())["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return "sen12ms"


def manifest_header(cfg: Any) -> list[str]:
    """``manifest.csv``'s header for the run's variant."""
    return [*layout.MANIFEST_HEADER, *(cr.MANIFEST_COLUMNS if variant_of(cfg) == "cr" else ())]


def scenes_header(cfg: Any) -> list[str]:
    """``scenes.csv``'s header for the run's variant."""
    return [*layout.SCENES_HEADER, *(cr.SCENE_COLUMNS if variant_of(cfg) == "cr" else ())]


def manifest_values(cfg: Any, scene: dict, patch: dict) -> dict[str, Any]:
    """The variant's manifest columns of one patch (nothing for the paper's)."""
    if variant_of(cfg) != "cr" or not scene.get("s2_cloudy"):
        return {}
    return cr.manifest_values(scene["s2_cloudy"], patch)


def finalize_root(root: Path, cfg: Any, records: list, manifest: list[dict],
                  info: dict) -> list[Path]:
    """The variant's own root files, after the paper's metadata: its split file for the
    authors' loaders. Returns the files written."""
    if variant_of(cfg) != "cr":
        return []
    from .splits import write_cr_splits

    return [write_cr_splits(root, manifest, info)]
