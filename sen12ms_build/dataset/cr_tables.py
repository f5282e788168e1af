"""The ``cr`` variant's columns of ``manifest.csv`` and ``scenes.csv``, and the hooks
:mod:`.finalize` calls (each gives the paper's header, or nothing, for its dataset).

Per pair the manifest adds the cloudy input's files and checksums, the patch's cloud and
shadow coverage (shares of its mask), both acquisition dates (the input's; the target's
largest source in the patch), the gap in days, the pick's rule and the input's check
values; ``scenes.csv`` the scene's pick.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from . import cr_layout, layout


def _variant(cfg: Any) -> str:
    return str(getattr(cfg, "variant", "sen12ms") or "sen12ms") if cfg is not None else \
        "sen12ms"


#: Manifest columns of the variant, after the paper's.
MANIFEST_COLUMNS = ["s2_cloudy", "sha256_s2_cloudy", "s2_cloudy_mask",
                    "sha256_s2_cloudy_mask", "cloud_coverage", "shadow_coverage",
                    "cloudy_product_id", "cloudy_datetime", "target_product_id",
                    "target_datetime", "time_gap_days", "cloudy_pick_rule",
                    "cloudy_nodata", "cloudy_saturated", "cloudy_stripe"]
#: Scene columns of the variant (``scenes.csv``).
SCENE_COLUMNS = ["cloudy_product_id", "cloudy_datetime", "cloudy_percentage",
                 "dominant_product_id", "dominant_datetime", "scene_gap_days",
                 "cloudy_pick_rule"]


def _iso(s: str) -> str:
    t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pair_values(pick: Mapping[str, Any], target_tags: Mapping[str, str]) -> dict[str, str]:
    """The pair's dates of one patch: the cloudy acquisition's, the target's (the patch's
    largest source of the mosaic, first of its ``S2_DATETIMES``) and the gap in days."""
    cloudy_t = _iso(pick["time"])
    ids = [x for x in str(target_tags.get("S2_PRODUCT_IDS", "")).split(",") if x]
    times = [x for x in str(target_tags.get("S2_DATETIMES", "")).split(",") if x]
    target_t = times[0] if times else ""
    gap = ""
    if target_t:
        a = dt.datetime.fromisoformat(cloudy_t.replace("Z", "+00:00"))
        b = dt.datetime.fromisoformat(target_t.replace("Z", "+00:00"))
        gap = f"{abs((a - b).total_seconds()) / 86400:.2f}"
    return {"cloudy_product_id": str(pick["product_id"]), "cloudy_datetime": cloudy_t,
            "target_product_id": ids[0] if ids else "", "target_datetime": target_t,
            "time_gap_days": gap, "cloudy_pick_rule": str(pick.get("rule", ""))}


def pair_manifest_values(pick: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The variant's manifest columns of one patch record (:data:`MANIFEST_COLUMNS`)."""
    values = patch.get("values", {})
    out: dict[str, Any] = {k: values.get(k, "") for k in
                           ("cloud_coverage", "shadow_coverage", "cloudy_nodata",
                            "cloudy_saturated", "cloudy_stripe")}
    out.update(pair_values(pick, patch.get("tags", {})))
    for dd in (cr_layout.CR_CLOUDY, cr_layout.CR_MASK):
        out[dd] = patch["files"].get(dd, "")
        out[f"sha256_{dd}"] = patch.get("sha256", {}).get(dd, "")
    return out


def scene_values(pick: Mapping[str, Any] | None) -> dict[str, Any]:
    """The variant's ``scenes.csv`` columns of a scene's pick (:data:`SCENE_COLUMNS`)."""
    if not pick:
        return {}
    return {"cloudy_product_id": pick["product_id"], "cloudy_datetime": _iso(pick["time"]),
            "cloudy_percentage": pick["cloudy_percentage"],
            "dominant_product_id": pick["dominant"]["product_id"],
            "dominant_datetime": _iso(pick["dominant"]["time"]),
            "scene_gap_days": pick["gap_days"], "cloudy_pick_rule": pick["rule"]}


def manifest_header(cfg: Any, extra: Iterable[str] = ()) -> list[str]:
    """``manifest.csv``'s header for the run's variant and added modalities ``extra``
    (:func:`sen12ms_build.dataset.layout.manifest_header`)."""
    return [*layout.manifest_header(extra),
            *(MANIFEST_COLUMNS if _variant(cfg) == "cr" else ())]


def scenes_header(cfg: Any, extra: Iterable[str] = ()) -> list[str]:
    """``scenes.csv``'s header for the run's variant and added modalities ``extra``."""
    return [*layout.scenes_header(extra), *(SCENE_COLUMNS if _variant(cfg) == "cr" else ())]


def manifest_values(cfg: Any, scene: Mapping[str, Any], patch: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """The variant's manifest columns of one patch (nothing for the paper's)."""
    if _variant(cfg) != "cr" or not scene.get("s2_cloudy"):
        return {}
    return pair_manifest_values(scene["s2_cloudy"], patch)
