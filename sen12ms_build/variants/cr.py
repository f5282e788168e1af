"""``variant: cr`` (SEN12MS-CR) in the pipeline: the cloudy input's stages beside the
paper's triplet, and its patches in the released layout (:mod:`..dataset.cr_layout`).

A scene goes through the paper's stages with these additions, each one a hook the
pipeline calls:

* **export**: the backend also writes the cloudy acquisition (``s2_cloudy.tif``,
  :mod:`sen12ms_build.backends.cloudy`) and records its pick (``meta["s2_cloudy"]``);
* **warp**: it is warped like the mosaic (same resampling), then :func:`write_scene_masks`
  computes its cloud and shadow masks on the UTM scene (:mod:`..mosaic.cloudy_masks`:
  s2cloudless at the loaders' settings, the mosaicking's shadow projection);
* **tile**: :func:`decide` adds the input's defect checks (:mod:`..curation.cloudy`) to
  the patch round of the target (its clouds never reject it), :func:`name_for` puts s1,
  s2 and lc into their ``ROIs<seed>_<season>_<mod>`` folders and :func:`extra_writer`
  writes the cloudy patch, its mask layer and the target's quality layer beside them.

The manifest's and ``scenes.csv``'s columns of the pair are :mod:`..dataset.cr_tables`'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..curation import cloudy as cloudy_checks
from ..dataset import cr_layout, cr_tables, provenance
from ..dataset.cr_tables import scene_values  # noqa: F401 (the pipeline's hook)
from ..mosaic import cloudy_masks
from ..raster.geotiff import write_or_gdal
from ..raster.io import write_raster

#: Scene files of the variant in the scene's ``utm`` folder.
UTM_FILES = {"s2_cloudy": "s2_cloudy.tif", "s2_cloudy_mask": "s2_cloudy_mask.tif"}
MASK_BANDS = ("cloud", "shadow")
#: Bumped when the variant's files or tags change (part of the tile stage's fingerprint).
CR_VERSION = 1


def mask_settings(cfg: Any) -> cloudy_masks.MaskSettings:
    """The masks' s2cloudless settings of a run (``cloud_removal.mask_*``)."""
    cr = cfg.cloud_removal
    return cloudy_masks.MaskSettings(cr.mask_threshold, cr.mask_average_over,
                                     cr.mask_dilation_size)


def utm_files(workdir: Path) -> dict[str, Path]:
    """The variant's UTM scene files of a scene's work folder."""
    return {k: Path(workdir) / "utm" / v for k, v in UTM_FILES.items()}


def write_scene_masks(cloudy: Path, out: Path, pick: Mapping[str, Any], cfg: Any) -> None:
    """The cloud and shadow masks of the UTM cloudy scene ``cloudy``, written to ``out``:
    (2, H, W) uint8, bands ``cloud`` and ``shadow`` (1 yes, 0 no, 255 outside the
    acquisition's footprint), on the same grid, DEFLATE."""
    import rasterio

    with rasterio.open(cloudy) as src:
        l1c = src.read()
        crs, transform = src.crs, src.transform
    masks = cloudy_masks.cloud_shadow(l1c, (abs(transform.a), abs(transform.e)),
                                      float(pick["solar_azimuth"]),
                                      float(pick["solar_zenith"]), mask_settings(cfg),
                                      cfg.mosaic_params)
    s = mask_settings(cfg)
    write_raster(out, masks, crs=crs, transform=transform, nodata=cloudy_masks.NODATA,
                 descriptions=MASK_BANDS, compress="deflate",
                 tags={"S2CLOUDLESS": f"threshold={s.threshold}, average_over={s.average_over}"
                       f", dilation_size={s.dilation_size}",
                       "SHADOW": "sen12ms_build.mosaic.scores.shadow_score",
                       "PRODUCT_ID": pick.get("product_id", "")})


def name_for(root: Path, seed: int, season: str, scene: int) -> Callable[[str, int], Path]:
    """The tiler's ``name_for``: s1, s2, lc patches in the ``cr`` tree."""
    def name(dd: str, patch: int) -> Path:
        return cr_layout.cr_patch_path(root, seed, season, dd, scene, patch)
    return name


def decide(target: Callable[[dict], tuple[bool, str, dict]], cfg: Any
           ) -> Callable[[dict], tuple[bool, str, dict]]:
    """The tiler's ``decide``: the target's patch round (``target``), then the cloudy
    input's defect checks; the values of both, and the masks' coverage, in the record."""
    def decision(arrays: dict) -> tuple[bool, str, dict]:
        keep, reason, values = target(arrays)
        cv = cloudy_checks.measure(arrays["s2_cloudy"])
        mask = arrays["s2_cloudy_mask"]
        cv["cloud_coverage"] = round(cloudy_masks.coverage(mask[0]), 6)
        cv["shadow_coverage"] = round(cloudy_masks.coverage(mask[1]), 6)
        values = {**values, **cv}
        if keep:
            ok, why = cloudy_checks.decide(cv, cfg.cloud_removal)
            if not ok:
                return False, why, values
        return keep, reason, values
    return decision


def cloudy_tags(pick: Mapping[str, Any], target_tags: Mapping[str, str],
                mask: np.ndarray) -> dict[str, str]:
    """The cloudy patch's GeoTIFF tags: the target's provenance keys that hold for it
    (version, ROI, season, S1), its own product, time and solar angles, its masks'
    coverage and the pair's dates and gap."""
    pair = cr_tables.pair_values(pick, target_tags)
    keep = ("SEN12MS_VERSION", "SEN12MS_ROI_ID", "SEN12MS_SEASON", "S1_PRODUCT_IDS",
            "S1_DATETIMES", "S1_ORBIT_STATES")
    return {**{k: str(target_tags.get(k, "")) for k in keep},
            "S2_PRODUCT_ID": pair["cloudy_product_id"], "S2_DATETIME": pair["cloudy_datetime"],
            "MEAN_SOLAR_AZIMUTH_ANGLE": f"{float(pick['solar_azimuth']):.6f}",
            "MEAN_SOLAR_ZENITH_ANGLE": f"{float(pick['solar_zenith']):.6f}",
            "CLOUD_COVERAGE": f"{cloudy_masks.coverage(mask[0]):.4f}",
            "SHADOW_COVERAGE": f"{cloudy_masks.coverage(mask[1]):.4f}",
            "TARGET_PRODUCT_ID": pair["target_product_id"],
            "TARGET_DATETIME": pair["target_datetime"],
            "TIME_GAP_DAYS": pair["time_gap_days"], "CLOUDY_PICK_RULE": pair["cloudy_pick_rule"]}


def extra_writer(cfg: Any, root: Path, seed: int, season: str, scene: int,
                 pick: Mapping[str, Any]) -> Callable[..., dict[str, Path]]:
    """The tiler's ``extra_for``: the cloudy patch, its mask layer and (``quality_layers``)
    the target's quality layer of a kept patch, beside the triplet; a rejected patch's are
    removed."""
    from ..products import S2

    def extra(patch: int, arrays: dict, crs: Any, transform: Any, tags: dict,
              keep: bool) -> dict[str, Path]:
        paths = {dd: cr_layout.cr_patch_path(root, seed, season, dd, scene, patch)
                 for dd in (cr_layout.CR_CLOUDY, cr_layout.CR_MASK, provenance.QA_ID)}
        if not keep:
            for p in paths.values():
                p.unlink(missing_ok=True)
            return {}
        out = {}
        mask = arrays["s2_cloudy_mask"]
        ctags = cloudy_tags(pick, tags, mask)
        write_or_gdal(paths[cr_layout.CR_CLOUDY], arrays["s2_cloudy"], crs=crs,
                      transform=transform, nodata=S2.nodata, dtype=S2.dtype,
                      descriptions=S2.descriptions, tags=ctags)
        out[cr_layout.CR_CLOUDY] = paths[cr_layout.CR_CLOUDY]
        write_or_gdal(paths[cr_layout.CR_MASK], mask, crs=crs, transform=transform,
                      nodata=cloudy_masks.NODATA, dtype="uint8", descriptions=MASK_BANDS,
                      tags=ctags, compress="deflate")
        out[cr_layout.CR_MASK] = paths[cr_layout.CR_MASK]
        if cfg.quality_layers and "aux" in arrays:
            provenance.write_quality(paths[provenance.QA_ID], arrays["aux"], crs, transform,
                                     tags)
            out[provenance.QA_ID] = paths[provenance.QA_ID]
        else:
            paths[provenance.QA_ID].unlink(missing_ok=True)
        return out
    return extra
