"""Duplicate STAC items of one acquisition: keep the newest processing, record the others.

The archives hold the same Sentinel acquisition more than once: a datatake processed twice
(a newer processing baseline, or a reprocessing), copies from two receiving stations, and
Earth Search's ``_0`` / ``_1`` sequences of one tile and day. Mosaicking them as separate
acquisitions would weigh one scene twice. :func:`acquisition_key` names the acquisition an
item shows (platform, tile or orbit, sensing time), :func:`processing_rank` orders its
processings (newest last), and :func:`drop_duplicates` keeps one item per acquisition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

_S2_ID = re.compile(r"^(S2[A-D])_MSIL(?:1C|2A)_(\d{8}T\d{6})_N(\d{4})_R(\d{3})_T(\w{5})"
                    r"_(\d{8}T\d{6})")
_ES_ID = re.compile(r"^(S2[A-D])_(\d{1,2}[A-Z]{3})_(\d{8})_(\d+)_L(?:1C|2A)$")
_S1_ID = re.compile(r"^(S1[A-D])_(\w\w)_(GRD\w)_\w{4}_(\d{8}T\d{6})_(\d{8}T\d{6})_(\d{6})"
                    r"_(\w{6})_(\w{4})")


@dataclass(frozen=True)
class Dropped:
    """An item left out as a duplicate of ``kept``."""

    dropped: str
    kept: str
    reason: str

    def line(self) -> str:
        return f"{self.dropped} (duplicate of {self.kept}: {self.reason})"


def _platform(item: Mapping[str, Any]) -> str:
    p = str(item.get("properties", {}).get("platform", "")).lower()
    return p.replace("sentinel-", "s").replace("-", "")


def _tile(item: Mapping[str, Any]) -> str:
    props = item.get("properties", {})
    for key in ("s2:mgrs_tile", "grid:code", "s2:tile_id"):
        if props.get(key):
            v = str(props[key]).replace("MGRS-", "")
            m = re.search(r"T?(\d{2}[A-Z]{3})(?:_N|$)", v)
            return m.group(1) if m else v
    m = _S2_ID.match(item["id"])
    if m:
        return m.group(5)
    m = _ES_ID.match(item["id"])
    return m.group(2).zfill(5) if m else ""


def acquisition_key(item: Mapping[str, Any]) -> tuple[str, ...]:
    """What acquisition an item shows: Sentinel-2 (platform, MGRS tile, datatake sensing
    start or the sensing second), Sentinel-1 (platform, datatake id or the start time, and
    the slice: ``s1:slice_number``, else the product's start time), anything else its own
    id."""
    props = item.get("properties", {})
    iid = str(item["id"])
    if iid.startswith("S1") or "s1:datatake_id" in props or "sar:instrument_mode" in props:
        m = _S1_ID.match(iid)
        take = str(props.get("s1:datatake_id") or (m.group(7) if m else ""))
        start = str(props.get("start_datetime", props.get("datetime", "")))[:19]
        # a datatake is cut into slices (products) of ~25 s: each slice is an acquisition
        part = str(props.get("s1:slice_number") or (m.group(4) if m else "") or start)
        return ("s1", _platform(item) or (m.group(1).lower() if m else ""), take or start,
                part)
    if iid.startswith("S2") or any(k.startswith("s2:") for k in props):
        take = str(props.get("s2:datatake_id") or props.get("eopf:datatake_id") or "")
        take = re.sub(r"_N\d\d\.\d\d$", "", take)  # the same datatake in any baseline
        if not take:
            m = _S2_ID.match(iid)
            take = m.group(2) if m else str(props.get("datetime", ""))[:10]
        return ("s2", _platform(item) or iid[:3].lower(), _tile(item), take)
    return ("other", iid)


def processing_rank(item: Mapping[str, Any]) -> tuple:
    """Sort key of an item's processing, newest last: processing baseline, then the
    generation / processing time, then the sequence, then the id."""
    props = item.get("properties", {})
    iid = str(item["id"])
    base = str(props.get("s2:processing_baseline") or props.get("processing:version") or "")
    m = _S2_ID.match(iid)
    if not base and m:
        base = f"{m.group(3)[:2]}.{m.group(3)[2:]}"
    made = str(props.get("s2:generation_time") or props.get("s1:processing_datetime")
               or props.get("processing:datetime") or props.get("updated")
               or props.get("created") or "")
    if not made and m:
        made = m.group(6)
    seq = props.get("s2:sequence")
    if seq is None:
        es = _ES_ID.match(iid)
        seq = es.group(4) if es else 0
    try:
        seq = int(seq)
    except (TypeError, ValueError):
        seq = 0
    return base, made, seq, iid


def drop_duplicates(items: Iterable[Mapping[str, Any]]
                    ) -> tuple[list[Mapping[str, Any]], list[Dropped]]:
    """One item per acquisition (:func:`acquisition_key`), the newest processing
    (:func:`processing_rank`); the survivors keep their input order.

    Returns:
        (kept items, what was dropped and why).
    """
    items = list(items)
    best: dict[tuple, Mapping[str, Any]] = {}
    for it in items:
        key = acquisition_key(it)
        if key not in best or processing_rank(it) > processing_rank(best[key]):
            best[key] = it
    kept, dropped = [], []
    for it in items:
        winner = best[acquisition_key(it)]
        if winner is it:
            kept.append(it)
            continue
        a, b = processing_rank(it), processing_rank(winner)
        why = ("older processing baseline" if a[0] != b[0] else
               "older processing" if a[1] != b[1] else
               "lower sequence" if a[2] != b[2] else "same acquisition")
        dropped.append(Dropped(str(it["id"]), str(winner["id"]), why))
    return kept, dropped
