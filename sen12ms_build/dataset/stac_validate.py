"""Offline validation of a dataset's STAC catalog (``stac/``, written by
:mod:`sen12ms_build.dataset.stac`): every JSON file against the STAC 1.1.0 core schema and
the extension schemas it declares, with the schemas shipped in :data:`SCHEMA_DIR` (STAC 1.1.0
core, GeoJSON, and the extensions' versions pystac writes; nothing is downloaded), and every
local asset href against the file it points to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from .stac import STAC_DIR, catalog_files

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "stac"
_CORE = "https://schemas.stacspec.org/v1.1.0"


def _registry():
    from referencing import Registry, Resource

    resources = []
    for p in SCHEMA_DIR.rglob("*.json"):
        doc = json.loads(p.read_text())
        res = Resource.from_contents(doc)
        uri = doc.get("$id", "").rstrip("#")
        if uri:
            resources.append((uri, res))
        if p.parent.name == "v1.1.0" and p.stem not in ("catalog", "collection"):
            # STAC 1.1.0's common.json declares "$id": ".../commonjson" (upstream typo);
            # item.json refers to it as "common.json": register the file's real address too
            resources.append((f"{_CORE}/item-spec/json-schema/{p.name}", res))
    return Registry().with_resources(resources)


def _core_uri(obj: dict) -> str:
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}[obj["type"]]
    return (f"https://schemas.stacspec.org/v{obj.get('stac_version', '1.1.0')}/"
            f"{kind}-spec/json-schema/{kind}.json")


def iter_stac_files(root: Path) -> Iterator[Path]:
    """The catalog's JSON files (:func:`catalog_files`)."""
    yield from (p for p in catalog_files(root) if p.suffix == ".json")


def validate_catalog(root: Path) -> list[str]:
    """One line per schema violation (or unreadable file, missing asset) of the catalog
    below ``<root>/stac``; empty when valid. Offline: schemas from :data:`SCHEMA_DIR`."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    root = Path(root)
    cat = root / STAC_DIR / "catalog.json"
    if not cat.exists():
        return [f"{cat}: missing (no STAC catalog)"]
    registry = _registry()
    validators: dict[str, Any] = {}
    problems = []
    for path in iter_stac_files(root):
        try:
            obj = json.loads(path.read_text())
            uris = [_core_uri(obj), *obj.get("stac_extensions", [])]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{path}: not a STAC JSON file ({exc})")
            continue
        for uri in uris:
            if uri not in validators:
                try:
                    schema = registry.contents(uri)
                except (Unresolvable, LookupError):
                    problems.append(f"{path}: no offline schema for {uri}")
                    continue
                validators[uri] = Draft7Validator(schema, registry=registry)
            err = best_match(validators[uri].iter_errors(obj))
            if err is not None:
                where = "/".join(map(str, err.absolute_path)) or "(top)"
                problems.append(f"{path}: invalid against {uri} at {where}: "
                                f"{err.message[:200]}")
        for key, asset in obj.get("assets", {}).items():
            href = asset.get("href", "")
            if "://" not in href and not (path.parent / href).exists():
                problems.append(f"{path}: asset {key} points to a missing file {href}")
    return problems
