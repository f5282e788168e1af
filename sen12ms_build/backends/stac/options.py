"""The ``backend.stac`` section of a run config: which profile serves each modality, checked
when the config is loaded.

::

    backend:
      name: stac
      stac:
        s2: {profile: cdse, level: l1c}          # l1c (default, 13 bands) or l2a (12 bands)
        s1: {profile: planetary-computer}        # product grd: raw GRD through the chain
        lc: {profile: earthdata}
        dem: {profile: planetary-computer}       # terrain for the Sentinel-1 chain
        labels: {profile: planetary-computer}    # ESA WorldCover (a run with labels)
        profiles: {}                             # the run's own profiles / mirrors
        cache: ~/.cache/sen12ms-build/stac       # downloaded granules (MODIS HDF4)
        timeout_s: 30
        retries: 5

A modality may also name a STAC API directly, without a profile (``endpoint``,
``collection``, ``format``, ``assets``); keys given beside ``profile`` override the
profile's product. :func:`parse` checks everything a run needs before it starts: known
profiles and products, the credentials a profile needs (one line naming the profile and the
variable to set), and the scorer against the level. Problems are :class:`OptionError` with
the key below ``backend.stac`` (the config loader adds the file and the prefix).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ...errors import Sen12msError
from . import credentials
from .profiles import FORMATS, Product, Profile, ProfileError, merge, parse_profile, resolve

log = logging.getLogger(__name__)

#: Modalities a run reads, and what a modality entry may hold.
MODALITY_KEYS = ("s2", "s1", "lc", "dem", "labels")
ENTRY_KEYS = {"profile", "level", "product", "endpoint", "collection", "format", "assets"}
LEVELS = ("l1c", "l2a")
S1_PRODUCTS = {"grd": "s1-grd"}
#: What a run reads when the section leaves a modality out.
DEFAULTS: dict[str, dict[str, str]] = {
    "s2": {"profile": "cdse", "level": "l1c"},
    "s1": {"profile": "planetary-computer", "product": "grd"},
    "lc": {"profile": "earthdata"},
    "dem": {"profile": "planetary-computer"},
    "labels": {"profile": "planetary-computer"},
}
#: Modalities parsed only when the run reads them (or the section names them).
OPTIONAL_KEYS = ("labels",)
SECTION_KEYS = set(MODALITY_KEYS) | {"profiles", "cache", "timeout_s", "retries",
                                     "page_size", "max_concurrent"}


class OptionError(Sen12msError, ValueError):
    """A bad ``backend.stac`` entry; ``key`` is below ``backend.stac``."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class Source:
    """Where one modality comes from: a profile and one of its products."""

    modality: str
    profile: Profile
    product: Product
    level: str | None = None  # s2 only

    @property
    def kind(self) -> str:
        return self.product.kind


@dataclass(frozen=True)
class StacOptions:
    """The parsed section (see the module doc)."""

    sources: Mapping[str, Source]
    cache: Path
    timeout_s: float = 30.0
    retries: int = 5
    page_size: int = 100
    max_concurrent: int = 8
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def s2_level(self) -> str:
        return self.sources["s2"].level or "l1c"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sen12ms-build" / "stac"


def _kind(modality: str, entry: Mapping[str, Any]) -> str:
    if modality == "s2":
        level = entry.get("level", "l1c")
        if level not in LEVELS:
            raise OptionError("s2.level", f"unknown level {level!r}; choose l1c or l2a")
        return f"s2-{level}"
    if modality == "s1":
        product = entry.get("product", "grd")
        if product not in S1_PRODUCTS:
            raise OptionError("s1.product", f"unknown product {product!r}; choose "
                              f"{' or '.join(S1_PRODUCTS)}")
        return S1_PRODUCTS[product]
    return {"lc": "lc-mcd12q1", "dem": "dem", "labels": "labels-worldcover"}[modality]


def _source(modality: str, entry: Mapping[str, Any], profiles: dict[str, Profile]) -> Source:
    for k in entry:
        if k not in ENTRY_KEYS:
            raise OptionError(f"{modality}.{k}", f"unknown key (known here: "
                              f"{', '.join(sorted(ENTRY_KEYS))})")
    if modality != "s2" and "level" in entry:
        raise OptionError(f"{modality}.level", "only s2 has a level")
    if modality != "s1" and "product" in entry:
        raise OptionError(f"{modality}.product", "only s1 chooses a product (grd)")
    kind = _kind(modality, entry)
    over = {k: entry[k] for k in ("collection", "format", "assets") if k in entry}
    name = entry.get("profile")
    if name is None:  # a STAC API written out in the config
        missing = [k for k in ("endpoint", "collection", "format", "assets") if k not in entry]
        if missing:
            raise OptionError(modality, "name a profile (one of "
                              f"{', '.join(sorted(profiles))}) or write out the STAC API: "
                              f"missing {', '.join(missing)}")
        raw = {"endpoint": entry["endpoint"], "products": {kind: over}}
        try:
            profile = parse_profile(f"custom-{modality}", raw, modality)
        except ProfileError as exc:
            raise OptionError(exc.key, str(exc).split(": ", 1)[-1]) from None
    else:
        if name not in profiles:
            raise OptionError(f"{modality}.profile", f"unknown profile {name!r}; choose one "
                              f"of {', '.join(sorted(profiles))} or define it under "
                              "backend.stac.profiles")
        profile = profiles[name]
        if "endpoint" in entry or over:
            base = {"endpoint": entry.get("endpoint", profile.endpoint)}
            product = profile.products.get(kind)
            raw_product = {} if product is None else {
                "collection": product.collection, "format": product.format,
                "assets": dict(product.assets), "offset": product.offset,
                "xml": dict(product.xml)}
            try:
                patched = parse_profile(name, {"endpoint": base["endpoint"], "products": {
                    kind: merge(raw_product, over)}}, modality)
            except ProfileError as exc:
                raise OptionError(exc.key, str(exc).split(": ", 1)[-1]) from None
            profile = Profile(name=profile.name, title=profile.title,
                              endpoint=patched.endpoint, auth=profile.auth,
                              quotas=profile.quotas,
                              products={**profile.products, kind: _keep_access(
                                  patched.products[kind], product)},
                              s3=profile.s3, signing=profile.signing, rewrite=profile.rewrite)
    try:
        product = profile.product(kind)
    except ProfileError as exc:
        raise OptionError(f"{modality}.profile", str(exc).split(": ", 1)[-1]) from None
    if product.format not in FORMATS:  # pragma: no cover - parse_profile checks
        raise OptionError(f"{modality}.format", f"unknown format {product.format!r}")
    return Source(modality, profile, product,
                  entry.get("level", "l1c") if modality == "s2" else None)


def _keep_access(patched: Product, original: Product | None) -> Product:
    """A product with overridden collection/assets keeps the original's access settings."""
    if original is None:
        return patched
    return Product(kind=patched.kind, collection=patched.collection, format=patched.format,
                   assets=patched.assets, offset=patched.offset, xml=patched.xml,
                   auth=original.auth, s3=original.s3, rewrite=original.rewrite)


def _number(data: Mapping[str, Any], key: str, default: float, cast: type,
            zero: bool = False) -> Any:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (v == 0 and not zero):
        raise OptionError(key, f"expected a {'non-negative' if zero else 'positive'} number, "
                          f"got {v!r}")
    return cast(v)


def parse(section: Mapping[str, Any] | None, scorer: str = "paper",
          check_credentials: bool = True, needs: tuple[str, ...] = ("s2", "s1", "lc")
          ) -> StacOptions:
    """The ``backend.stac`` mapping as :class:`StacOptions`.

    Args:
        section: the mapping (``None``: every default).
        scorer: ``mosaic.scorer`` of the run (checked against the Sentinel-2 level).
        check_credentials: fail when a profile's credential is missing (the dry run plans
            without them).
        needs: the modalities the run reads (their credentials are checked).

    Raises:
        OptionError: the first problem, with its key below ``backend.stac``.
    """
    section = dict(section or {})
    for k in section:
        if k not in SECTION_KEYS:
            raise OptionError(str(k), f"unknown key (known here: "
                              f"{', '.join(sorted(SECTION_KEYS))})")
    try:
        profiles = resolve(section.get("profiles"))
    except ProfileError as exc:
        raise OptionError(f"profiles.{exc.key}", str(exc).split(": ", 1)[-1]) from None
    sources = {}
    for m in MODALITY_KEYS:
        if m in OPTIONAL_KEYS and m not in needs and m not in section:
            continue
        entry = section.get(m)
        if entry is not None and not isinstance(entry, Mapping):
            raise OptionError(m, f"expected a mapping, got {type(entry).__name__}")
        sources[m] = _source(m, dict(entry) if entry is not None else dict(DEFAULTS[m]),
                             profiles)
    if check_credentials:
        wanted = set(needs) | ({"dem"} if "s1" in needs and sources["s1"].kind == "s1-grd"
                               else set())
        for m in MODALITY_KEYS:
            if m not in wanted or m not in sources:
                continue
            src = sources[m]
            why = credentials.missing(src.profile.auth_for(src.kind))
            if why:
                raise OptionError(f"{m}.profile", f"profile {src.profile.name!r} needs "
                                  f"credentials for {m}: {why}")
    level = sources["s2"].level or "l1c"
    warnings = []
    if scorer == "scl" and level != "l2a":
        raise OptionError("s2.level", "scorer 'scl' reads the Level-2A scene classification:"
                          " set backend.stac.s2.level l2a (or choose another scorer)")
    if level == "l2a" and scorer in ("paper", "s2cloudless"):
        warnings.append(f"scorer {scorer!r} on Level-2A: it was made for Level-1C "
                        "top-of-atmosphere reflectance (and L2A has no B10), so its clouds "
                        "are off its training data; the 'scl' scorer reads L2A's own "
                        "classification")
    if level == "l2a" and "SCL" not in sources["s2"].product.assets and scorer == "scl":
        raise OptionError("s2.assets", "scorer 'scl' needs an SCL asset in the s2 product")
    cache = Path(os.path.expanduser(str(section.get("cache") or default_cache())))
    return StacOptions(
        sources=sources, cache=cache,
        timeout_s=_number(section, "timeout_s", 30.0, float),
        retries=int(_number(section, "retries", 5, int, zero=True)),
        page_size=int(_number(section, "page_size", 100, int)),
        max_concurrent=int(_number(section, "max_concurrent", 8, int)),
        warnings=tuple(warnings))
