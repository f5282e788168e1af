"""Small helpers to read Sentinel-1 SAFE XML (annotation, calibration, noise, manifest)
with the standard library's ElementTree: one clear error line for a missing or malformed
element, numbers and times as numpy values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from ..raster.io import InputError


def parse(xml: bytes, what: str) -> ET.Element:
    """The root element of ``xml``; ``what`` names the document in the error message.

    Raises:
        InputError: the bytes are not well-formed XML.
    """
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputError(f"{what}: not well-formed XML ({exc}); download it again") from None


def text(elem: ET.Element, path: str, what: str) -> str:
    """The stripped text of the first element at ``path`` below ``elem``.

    Raises:
        InputError: no such element, or it is empty.
    """
    found = elem.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise InputError(f"{what}: element {path!r} is missing; is this a Sentinel-1 "
                         "Level-1 GRD file?")
    return found.text.strip()


def number(elem: ET.Element, path: str, what: str) -> float:
    """The float value of the element at ``path``."""
    raw = text(elem, path, what)
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"{what}: element {path!r} holds {raw!r}, not a number") from None


def numbers(elem: ET.Element, path: str, what: str, dtype: type = np.float64) -> np.ndarray:
    """The whitespace-separated numbers of the element at ``path`` as a 1-D array."""
    raw = text(elem, path, what)
    try:
        return np.array(raw.split(), dtype=dtype)
    except ValueError:
        raise InputError(f"{what}: element {path!r} holds non-numbers") from None


def time(elem: ET.Element, path: str, what: str) -> np.datetime64:
    """The UTC time (``2021-12-23T05:11:22.594441``) at ``path`` as ``datetime64[ns]``."""
    raw = text(elem, path, what)
    try:
        return np.datetime64(raw.rstrip("Z"), "ns")
    except ValueError:
        raise InputError(f"{what}: element {path!r} holds {raw!r}, not a UTC time") from None


def seconds(t: np.datetime64 | np.ndarray, epoch: np.datetime64) -> np.ndarray | float:
    """Seconds (float64) from ``epoch`` to ``t``."""
    return (np.asarray(t, "datetime64[ns]") - epoch) / np.timedelta64(1, "s")
