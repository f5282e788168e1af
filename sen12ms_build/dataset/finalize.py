"""Finalize a dataset root: its metadata and self-descriptions from the scene records.

:func:`finalize` writes ``manifest.csv``, ``scenes.csv``, ``seasons.csv``, the split lists
and ``splits.json`` from every finished scene in the state file (with the reviewers'
decisions applied), then :func:`publish` writes the STAC catalog, ``croissant.json`` and the
data card. Both the pipeline (after every run) and the review (after ``apply-review``) call
it, so the dataset, not the orchestrator, owns it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..curation import decisions
from ..state import State, record_written, state_path
from . import layout, provenance

#: The root files :func:`finalize` and :func:`publish` write (beside the STAC catalog,
#: which records its own files).
ROOT_FILES = ("manifest.csv", "scenes.csv", "seasons.csv", "train_list.txt", "test_list.txt",
              "splits.json", "croissant.json", "croissant/train.csv", "croissant/test.csv",
              "README.md")

log = logging.getLogger(__name__)


def scene_records(root: Path) -> list[tuple[dict, list[dict]]]:
    """(scene record, patch records) of every finished scene under ``root``."""
    path = state_path(root)
    if not path.exists():
        return []
    with State(path) as state:
        rows = state.records("tile")
    return [({k: v for k, v in rec.items() if k != "patch_records"},
             rec.get("patch_records", [])) for _, _, rec in rows]


def extra_data_ids(records: Any) -> tuple[str, ...]:
    """The modalities the scene records add to the triplet (``modalities`` of a run with
    labels), in :data:`layout.EXTRA_DATA_IDS` order; empty for the paper's run."""
    found = {k for rec in records for k in rec.get("modalities", ())}
    return tuple(k for k in layout.EXTRA_DATA_IDS if k in found)


def finalize(root: Path, cfg: Any) -> dict[str, int]:
    """Write ``manifest.csv``, ``scenes.csv``, ``seasons.csv``, ``train_list.txt``,
    ``test_list.txt`` and ``splits.json`` from every finished scene under ``root``, then the
    dataset's descriptions (:func:`publish`: STAC catalog, ``croissant.json``, ``README.md``)."""
    from . import cr_tables, splits

    root = Path(root)
    if getattr(cfg, "variant", "sen12ms") == "cr-ts":  # its own tree and tables
        from .ts_finalize import finalize_ts

        return finalize_ts(root, cfg, scene_records(root))
    records = decisions.apply_to_records(root, scene_records(root))  # reviewer's decisions
    manifest, scenes = [], []
    kept_scenes = [r for r, _ in records if r["status"] == "kept"]
    sp = cfg.splits
    test, test_names, info = splits.assign(sp.method, root, kept_scenes, sp.test_fraction,
                                           sp.seed, sp.test_file, sp.leak_distance_m)
    train_list, test_list = [], []
    extra = extra_data_ids(r for r, _ in records)
    ids = (*layout.DATA_IDS, *extra, provenance.QA_ID)
    for rec, patches in records:
        scenes.append(rec)
        for p in patches:
            left, bottom, right, top = p["bounds"]
            if not p["kept"]:  # a reviewer's rejection leaves no quality layer behind
                layout.quality_path(root, rec["seed"], rec["season"], rec["scene"],
                                    p["patch"]).unlink(missing_ok=True)
            split = ""
            if p["kept"]:
                name = Path(p["files"]["s2"]).name
                in_test = name in test_names if test_names is not None else \
                    (rec["branch"], rec["scene"]) in test
                split = "test" if in_test else "train"
                (test_list if in_test else train_list).append(name)
            manifest.append({
                **p["values"],
                **provenance.manifest_values(p.get("tags", {})),
                "patch_id": f"{rec['branch']}_{rec['scene']}_p{p['patch']}",
                "branch": rec["branch"], "season": rec["season"], "scene": rec["scene"],
                "patch": p["patch"], "status": "kept" if p["kept"] else "rejected",
                "reason": p["reason"], "crs": rec.get("crs", ""), "left": left,
                "bottom": bottom, "right": right, "top": top, "review": p.get("review", ""),
                "roi_id": rec.get("roi_id", ""), "split": split,
                **{k: p["files"].get(k, "") for k in ids},
                **{f"sha256_{k}": p.get("sha256", {}).get(k, "") for k in ids},
                **cr_tables.manifest_values(cfg, rec, p)})
    layout.write_csv(root / "manifest.csv", cr_tables.manifest_header(cfg, extra), manifest)
    layout.write_csv(root / "scenes.csv", cr_tables.scenes_header(cfg, extra), scenes)
    layout.write_csv(root / "seasons.csv", layout.SEASONS_HEADER,
                     layout.seasons_rows([r for r, _ in records]))
    layout.write_lines(root / "train_list.txt", train_list)
    layout.write_lines(root / "test_list.txt", test_list)
    scene_split = {}
    for row in manifest:
        if row["split"]:
            scene_split.setdefault((row["branch"], int(row["scene"])), set()).add(row["split"])
    info.update(splits.footprint_report(
        root, [k for k, v in scene_split.items() if "train" in v],
        [k for k, v in scene_split.items() if "test" in v]) if scene_split else {})
    info.update(train_patches=len(train_list), test_patches=len(test_list))
    if train_list and not test_list and sp.method == "groups" and sp.test_fraction > 0:
        log.warning("splits: the %d kept scene(s) form %d overlap group(s), so a leak-free "
                    "split has no test set; sample ROIs further apart (or lower "
                    "splits.leak_distance_m) or set splits.method roi (which leaks)",
                    len(kept_scenes), len(info.get("groups", [])))
    splits.write_info(root, info)
    extra = []
    if getattr(cfg, "variant", "sen12ms") == "cr":  # the split in the authors' loaders' form
        from .cr_splits import write_cr_splits

        extra.append(write_cr_splits(root, manifest, info))
    publish(root, cfg)
    record_written(root, [root / f for f in ROOT_FILES if (root / f).exists()] + extra)
    return {"scenes": len(records), "patches": len(manifest),
            "train": len(train_list), "test": len(test_list)}


def publish(root: Path, cfg: Any) -> None:
    """The dataset's self-descriptions from its metadata: the STAC catalog (``stac/``),
    ``croissant.json`` and the data card ``README.md``. Each describes the patches with the
    run's own values (:func:`layout.patch_description`)."""
    from . import croissant
    from . import datacard
    from . import stac

    stac.write_catalog(root, cfg)
    croissant.write_croissant(root, cfg)
    datacard.write_datacard(root, cfg)

