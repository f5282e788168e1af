"""STAC profiles as data: which API, which collection per product kind, which asset holds each
band, how hrefs become GDAL paths, which credential a profile needs and its published quotas.

The shipped profiles (``cdse``, ``earth-search``, ``planetary-computer``, ``earthdata``) are
entries of ``profiles.yaml`` beside this module; a run may add its own under
``backend.stac.profiles`` in the same shape (a mirror is a config entry, not a module), and
``extends: NAME`` starts from a shipped one. :func:`resolve` parses both into frozen
:class:`Profile` records and reports a bad entry as :class:`ProfileError` naming its key.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ...errors import Sen12msError

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")

#: Product kinds a profile may serve.
KINDS = ("s2-l1c", "s2-l2a", "s1-grd", "lc-mcd12q1", "dem", "labels-worldcover")
#: Asset formats the reader knows: JPEG 2000 (SAFE), Cloud-Optimized GeoTIFF, HDF4 granules.
FORMATS = ("jp2", "cog", "hdf4")
#: Credential kinds: none (anonymous), s3-keys (GDAL's AWS_* options from environment
#: variables), earthdata (an Earthdata login token, or a .netrc entry).
AUTH_KINDS = ("none", "s3-keys", "earthdata")
#: How a Level-2A product's DN offset is found (:mod:`.harmonize`).
OFFSET_RULES = ("auto", "raster", "baseline", "earthsearch-legacy", "none")
#: How a Sentinel-1 product's files are named beside its ``manifest.safe``: Planetary
#: Computer's renamed layout (``annotation/iw-vv.xml``) or the SAFE's own names.
XML_LAYOUTS = ("planetary-computer", "safe")


class ProfileError(Sen12msError, ValueError):
    """A profile entry that does not parse; ``key`` is its dotted key below the profiles."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class Auth:
    """The credential a profile (or one of its products) needs.

    Attributes:
        kind: one of :data:`AUTH_KINDS`.
        env: role -> environment variable holding it; for ``s3-keys`` the roles are GDAL's
            options (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), for ``earthdata``
            ``token``.
        netrc_host: a ``.netrc`` machine that may stand in for the variables.
        how: one line on how to get the credential (docs, error messages).
    """

    kind: str = "none"
    env: Mapping[str, str] = field(default_factory=dict)
    netrc_host: str | None = None
    how: str = ""


@dataclass(frozen=True)
class S3Access:
    """How ``s3://`` hrefs are read through GDAL's ``/vsis3/``."""

    endpoint: str | None = None  # AWS_S3_ENDPOINT (host[:port]); None: AWS itself
    virtual_hosting: bool = True  # AWS_VIRTUAL_HOSTING
    https: bool = True  # AWS_HTTPS
    region: str | None = None  # AWS_REGION
    requester_pays: bool = False  # AWS_REQUEST_PAYER=requester


@dataclass(frozen=True)
class Quotas:
    """A provider's published limits (``None``: none published)."""

    requests_per_minute: int | None = None
    concurrent: int | None = None  # connections per host
    bytes_per_month: float | None = None


@dataclass(frozen=True)
class Product:
    """One collection of a profile.

    Attributes:
        kind: one of :data:`KINDS`.
        collection: the STAC collection id.
        format: one of :data:`FORMATS`.
        assets: band name (the dataset's) -> asset key of the item.
        offset: Level-2A DN offset rule (:data:`OFFSET_RULES`).
        xml: Sentinel-1 XML assets: ``manifest``, ``calibration``, ``noise`` -> asset key
            (``{pol}`` stands for the lower-case polarisation), and ``layout``: how the
            SAFE's files are named beside the manifest (:data:`XML_LAYOUTS`).
        auth, s3, rewrite: override the profile's for this product (``None``: inherit).
    """

    kind: str
    collection: str
    format: str
    assets: Mapping[str, str]
    offset: str = "auto"
    xml: Mapping[str, str] = field(default_factory=dict)
    auth: Auth | None = None
    s3: S3Access | None = None
    rewrite: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Signing:
    """Planetary Computer style SAS signing: a token per storage container from
    ``endpoint/<account>/<container>`` (the ``planetary-computer`` package's client)."""

    endpoint: str
    #: blob hrefs name the account in the path (``http://host/<account>/<container>/...``,
    #: as storage emulators do) rather than in the host name (``<account>.blob...``)
    path_style: bool = False


@dataclass(frozen=True)
class Profile:
    """One STAC source (see the module doc)."""

    name: str
    title: str
    endpoint: str
    auth: Auth
    quotas: Quotas
    products: Mapping[str, Product]
    s3: S3Access = field(default_factory=S3Access)
    signing: Signing | None = None
    rewrite: tuple[tuple[str, str], ...] = ()

    def product(self, kind: str) -> Product:
        """The product of ``kind``; :class:`ProfileError` naming what it has otherwise."""
        if kind not in self.products:
            have = ", ".join(sorted(self.products)) or "nothing"
            raise ProfileError(self.name, f"profile {self.name!r} has no {kind} product "
                               f"(it serves: {have})")
        return self.products[kind]

    def auth_for(self, kind: str) -> Auth:
        p = self.products.get(kind)
        return p.auth if p is not None and p.auth is not None else self.auth

    def s3_for(self, kind: str) -> S3Access:
        p = self.products.get(kind)
        return p.s3 if p is not None and p.s3 is not None else self.s3

    def rewrite_for(self, kind: str) -> tuple[tuple[str, str], ...]:
        p = self.products.get(kind)
        return (p.rewrite if p is not None else ()) + self.rewrite


# --- parsing --------------------------------------------------------------------------------

def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProfileError(key, f"expected a mapping, got {type(value).__name__}")
    return value


def _keys(data: Mapping[str, Any], known: set[str], key: str) -> None:
    for k in data:
        if k not in known:
            raise ProfileError(f"{key}.{k}", f"unknown key (known here: "
                               f"{', '.join(sorted(known))})")


def _str(data: Mapping[str, Any], name: str, key: str, default: Any = ...) -> Any:
    if name not in data or data[name] is None:
        if default is ...:
            raise ProfileError(f"{key}.{name}", "missing")
        return default
    v = data[name]
    if not isinstance(v, str) or not v:
        raise ProfileError(f"{key}.{name}", f"expected a non-empty string, got {v!r}")
    return v


def _choice(value: str, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise ProfileError(key, f"unknown value {value!r}; choose one of {', '.join(choices)}")
    return value


def _auth(data: Any, key: str) -> Auth:
    d = _mapping(data, key)
    _keys(d, {"kind", "env", "netrc_host", "how"}, key)
    env = _mapping(d.get("env"), f"{key}.env")
    for role, var in env.items():
        if not isinstance(var, str) or not var:
            raise ProfileError(f"{key}.env.{role}", "expected an environment variable name")
    kind = _choice(_str(d, "kind", key, "none"), AUTH_KINDS, f"{key}.kind")
    if kind != "none" and not env and not d.get("netrc_host"):
        raise ProfileError(key, f"auth kind {kind!r} needs env (role: VARIABLE) or netrc_host")
    return Auth(kind=kind, env=dict(env), netrc_host=d.get("netrc_host"),
                how=str(d.get("how", "")))


def _s3(data: Any, key: str) -> S3Access:
    d = _mapping(data, key)
    _keys(d, {"endpoint", "virtual_hosting", "https", "region", "requester_pays"}, key)
    for b in ("virtual_hosting", "https", "requester_pays"):
        if b in d and not isinstance(d[b], bool):
            raise ProfileError(f"{key}.{b}", f"expected true/false, got {d[b]!r}")
    return S3Access(endpoint=d.get("endpoint"), virtual_hosting=d.get("virtual_hosting", True),
                    https=d.get("https", True), region=d.get("region"),
                    requester_pays=d.get("requester_pays", False))


def _rewrite(data: Any, key: str) -> tuple[tuple[str, str], ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ProfileError(key, "expected a list of {from: PREFIX, to: PREFIX}")
    out = []
    for i, r in enumerate(data):
        r = _mapping(r, f"{key}[{i}]")
        _keys(r, {"from", "to"}, f"{key}[{i}]")
        out.append((_str(r, "from", f"{key}[{i}]"), _str(r, "to", f"{key}[{i}]")))
    return tuple(out)


def _quotas(data: Any, key: str) -> Quotas:
    d = _mapping(data, key)
    _keys(d, {"requests_per_minute", "concurrent", "bytes_per_month"}, key)
    vals = {}
    for k in ("requests_per_minute", "concurrent", "bytes_per_month"):
        v = d.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise ProfileError(f"{key}.{k}", f"expected a positive number or null, got {v!r}")
        vals[k] = v
    return Quotas(requests_per_minute=None if vals["requests_per_minute"] is None
                  else int(vals["requests_per_minute"]),
                  concurrent=None if vals["concurrent"] is None else int(vals["concurrent"]),
                  bytes_per_month=None if vals["bytes_per_month"] is None
                  else float(vals["bytes_per_month"]))


def _product(kind: str, data: Any, key: str) -> Product:
    _choice(kind, KINDS, key)
    d = _mapping(data, key)
    _keys(d, {"collection", "format", "assets", "offset", "xml", "auth", "s3", "rewrite"},
          key)
    assets = _mapping(d.get("assets"), f"{key}.assets")
    if not assets:
        raise ProfileError(f"{key}.assets", "missing: band -> asset key")
    for band, asset in assets.items():
        if not isinstance(asset, str) or not asset:
            raise ProfileError(f"{key}.assets.{band}", "expected an asset key")
    xml = _mapping(d.get("xml"), f"{key}.xml")
    _keys(xml, {"manifest", "calibration", "noise", "layout"}, f"{key}.xml")
    if "layout" in xml:
        _choice(str(xml["layout"]), XML_LAYOUTS, f"{key}.xml.layout")
    return Product(
        kind=kind, collection=_str(d, "collection", key),
        format=_choice(_str(d, "format", key), FORMATS, f"{key}.format"),
        assets=dict(assets),
        offset=_choice(_str(d, "offset", key, "auto"), OFFSET_RULES, f"{key}.offset"),
        xml=dict(xml),
        auth=_auth(d["auth"], f"{key}.auth") if d.get("auth") is not None else None,
        s3=_s3(d["s3"], f"{key}.s3") if d.get("s3") is not None else None,
        rewrite=_rewrite(d.get("rewrite"), f"{key}.rewrite"))


def parse_profile(name: str, data: Any, key: str | None = None) -> Profile:
    """One profile entry (its mapping, ``extends`` already resolved) as a :class:`Profile`."""
    key = key or name
    d = _mapping(data, key)
    _keys(d, {"title", "endpoint", "auth", "quotas", "products", "s3", "signing", "rewrite",
              "extends"}, key)
    products = _mapping(d.get("products"), f"{key}.products")
    signing = None
    if d.get("signing") is not None:
        s = _mapping(d["signing"], f"{key}.signing")
        _keys(s, {"endpoint", "path_style"}, f"{key}.signing")
        signing = Signing(_str(s, "endpoint", f"{key}.signing"),
                          bool(s.get("path_style", False)))
    return Profile(
        name=name, title=str(d.get("title", name)), endpoint=_str(d, "endpoint", key),
        auth=_auth(d.get("auth"), f"{key}.auth"), quotas=_quotas(d.get("quotas"),
                                                                f"{key}.quotas"),
        products={k: _product(k, v, f"{key}.products.{k}") for k, v in products.items()},
        s3=_s3(d.get("s3"), f"{key}.s3"), signing=signing,
        rewrite=_rewrite(d.get("rewrite"), f"{key}.rewrite"))


@functools.lru_cache(maxsize=1)
def shipped_raw() -> dict[str, Any]:
    """The shipped profiles' mappings, as written in ``profiles.yaml``."""
    return yaml.safe_load(PROFILES_FILE.read_text())


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: mappings merged key by key, anything else replaced."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve(user: Mapping[str, Any] | None = None) -> dict[str, Profile]:
    """Every profile: the shipped ones, then the run's (``backend.stac.profiles``), each
    optionally ``extends: NAME`` of one defined before it (shipped or earlier in the run's).

    Raises:
        ProfileError: an entry that does not parse (its key below the profiles).
    """
    raw = dict(shipped_raw())
    for name, entry in (user or {}).items():
        entry = _mapping(entry, str(name))
        base = entry.get("extends")
        if base is not None:
            if base not in raw:
                raise ProfileError(f"{name}.extends", f"unknown profile {base!r}; known: "
                                   f"{', '.join(sorted(raw))}")
            entry = merge(raw[base], {k: v for k, v in entry.items() if k != "extends"})
        raw[str(name)] = entry
    return {name: parse_profile(name, entry) for name, entry in raw.items()}


SHIPPED = tuple(shipped_raw())
