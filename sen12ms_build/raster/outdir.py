"""The output folder rule: the tool writes only into a new folder, an empty one, or a folder
it made itself.

As ``git clone`` and most builders have it, a command that writes a dataset or an archive
first checks its folder (:func:`check_output`): a folder that does not exist yet, or holds
nothing (a lock file left by this tool aside), is taken and marked; a folder holding the
tool's marker of the same kind is the tool's own and may be resumed or rebuilt; anything else
is refused with one line naming the folder and what to do, before any file is written. The
marker (:data:`MARKER`, written first by :func:`claim_output`) is a small JSON file holding
the kind of folder, the tool version and the fingerprint of the config it was last built
with.

Folders made before the marker existed are recognised by what only this tool writes there
(:data:`LEGACY_SIGNS`: a dataset's state file, an archive's ``archive.json``) and adopted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .io import LOCK_NAME, OutputError, atomic_write_text

log = logging.getLogger(__name__)

#: The marker file in every folder the tool made.
MARKER = ".sen12ms-build"
#: Kinds of folders the tool writes: a dataset root (``run``, ``demo``'s ``sen12ms``) and
#: an archive (``demo-archive``, ``demo``'s ``archive``).
KINDS = ("dataset", "archive")
#: Entries of a folder that still count as empty: a lock file this tool left.
IGNORED = (LOCK_NAME,)


def _legacy_dataset(root: Path) -> bool:
    from ..state import is_state_file, state_path

    return is_state_file(state_path(root))


def _legacy_archive(root: Path) -> bool:
    try:
        doc = json.loads((root / "archive.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == "sen12ms-build-archive"


#: How a folder made before the marker is recognised, per kind.
LEGACY_SIGNS = {"dataset": _legacy_dataset, "archive": _legacy_archive}


@dataclass(frozen=True)
class Claim:
    """A folder taken for writing: ``created`` when this call made it, ``fresh`` when it
    held nothing of the tool's before (new or empty), so that a failed first run may remove
    everything it wrote."""

    root: Path
    kind: str
    fresh: bool
    created: bool


def read_marker(root: Path | str) -> dict[str, Any] | None:
    """The marker of a folder the tool made, or ``None`` (no marker, or not one of ours)."""
    try:
        doc = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("tool") != "sen12ms-build" or \
            doc.get("kind") not in KINDS:
        return None
    return doc


def _entries(root: Path) -> list[str]:
    return sorted(n for n in os.listdir(root) if n not in IGNORED)


def check_output(root: Path | str, kind: str, option: str = "--out") -> str:
    """Whether the tool may write a ``kind`` folder at ``root``, without writing anything.

    Args:
        root: the folder.
        kind: one of :data:`KINDS`.
        option: how the user named the folder (for the message: what to change).

    Returns:
        ``"new"`` (does not exist), ``"empty"``, ``"ours"`` (the tool's marker of this kind)
        or ``"legacy"`` (made by an earlier version: :data:`LEGACY_SIGNS`).

    Raises:
        OutputError: the folder is a file, the tool's folder of another kind, or a folder
            the tool did not make (one line naming it and what to do).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown folder kind {kind!r}")
    root = Path(root)
    if not root.exists():
        if root.is_symlink():
            raise OutputError(f"{root} is a broken link; name another folder ({option})")
        return "new"
    if not root.is_dir():
        raise OutputError(f"{root} is a file, not a folder; name a new or empty folder "
                          f"({option})")
    marker = read_marker(root)
    if marker is not None:
        if marker["kind"] != kind:
            raise OutputError(f"{root} is a sen12ms-build {marker['kind']} folder, not a "
                              f"{kind} folder; name another folder ({option})")
        return "ours"
    try:
        entries = _entries(root)
    except OSError as exc:
        raise OutputError(f"cannot read the folder {root}: {exc.strerror or exc}") from exc
    if not entries:
        return "empty"
    if LEGACY_SIGNS[kind](root):
        return "legacy"
    shown = ", ".join(entries[:3]) + (" ..." if len(entries) > 3 else "")
    raise OutputError(f"{root} is not empty ({shown}) and was not made by sen12ms-build "
                      f"(no {MARKER} file); name a new or empty folder instead ({option}), so "
                      "that no file of yours is overwritten")


def claim_output(root: Path | str, kind: str, fingerprint: str = "",
                 option: str = "--out") -> Claim:
    """Check ``root`` (:func:`check_output`), create it if needed and write the marker
    first, before any other file. Returns the :class:`Claim`.

    Raises:
        OutputError: as :func:`check_output`, or the folder cannot be created.
    """
    root = Path(root)
    status = check_output(root, kind, option)
    created = status == "new"
    if created:
        try:
            root.mkdir(parents=True)
        except FileExistsError:  # made meanwhile: check again
            return claim_output(root, kind, fingerprint, option)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {root}: "
                              f"{exc.strerror or exc}") from exc
    if status == "legacy":
        log.info("%s: a %s folder of an earlier sen12ms-build version; marking it as the "
                 "tool's (%s)", root, kind, MARKER)
    old = read_marker(root) or {}
    doc = {"tool": "sen12ms-build", "kind": kind, "version": __version__,
           "config": fingerprint or old.get("config", ""),
           "created_by": old.get("created_by", __version__)}
    if doc != old:
        atomic_write_text(root / MARKER, json.dumps(doc, indent=1) + "\n")
    return Claim(root, kind, fresh=status in ("new", "empty"), created=created)


def require_made(root: Path | str, kind: str = "dataset", needs: str | None = None) -> None:
    """For the commands that work on a finished folder (``review``, ``apply-review``,
    ``report``, ``clean``): ``root`` must be the tool's ``kind`` folder (its marker, or an
    earlier version's signs) holding ``needs``.

    Raises:
        OutputError: no such folder, or not one the tool made (one line).
    """
    root = Path(root)
    if not root.is_dir():
        raise OutputError(f"{root}: no such folder")
    marker = read_marker(root)
    ours = marker["kind"] == kind if marker else LEGACY_SIGNS[kind](root)
    if not ours:
        made = "sen12ms-build run" if kind == "dataset" else "sen12ms-build demo-archive"
        raise OutputError(f"{root}: not a {kind} root made by `{made}` (no {MARKER} file); "
                          "name the folder the tool wrote")
    if needs and not (root / needs).exists():
        raise OutputError(f"{root}: a {kind} made by sen12ms-build, but without {needs}; "
                          "run the pipeline into it first")
