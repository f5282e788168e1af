"""Credentials and ``ee.Initialize``: fail before any work, say what to run, leak nothing.

Sources, in order:

1. a service-account JSON key: option ``service_account_key`` or the environment variable
   ``EARTHENGINE_SERVICE_ACCOUNT_KEY`` (a path; the key's content is never logged);
2. the persistent credentials of ``earthengine authenticate`` (``~/.config/earthengine``)
   or Application Default Credentials (``gcloud auth application-default login``).

The Cloud project comes from option ``project``, else ``EARTHENGINE_PROJECT`` or
``GOOGLE_CLOUD_PROJECT``, else the credentials' quota project (``earthengine
set_project``) or the service account's own project. ``credentials="none"`` sends no
credentials at all: only for an Earth Engine emulator (the tests' loopback server).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .errors import EarthEngineAuthError, EarthEngineError

log = logging.getLogger(__name__)

KEY_ENV = "EARTHENGINE_SERVICE_ACCOUNT_KEY"
PROJECT_ENVS = ("EARTHENGINE_PROJECT", "GOOGLE_CLOUD_PROJECT")
HOW_TO = ("Run `earthengine authenticate` (and `earthengine set_project PROJECT`), or set "
          "backend.earthengine.service_account_key (or $EARTHENGINE_SERVICE_ACCOUNT_KEY) to a "
          "service-account JSON key file, and backend.earthengine.project (or "
          "$EARTHENGINE_PROJECT) to a Cloud project registered for Earth Engine.")


@dataclass
class Connection:
    """An initialized Earth Engine session: project, credentials (or None) and a
    ``requests`` session that authorizes the REST calls of direct download."""

    project: str
    credentials: Any
    session: requests.Session
    source: str  # "service_account", "persistent" or "none" (never the key itself)

    def __repr__(self) -> str:  # never show credentials
        return f"Connection(project={self.project!r}, source={self.source!r})"


def _safe(exc: BaseException) -> str:
    """An exception's message unless it could contain key material."""
    msg = str(exc)
    if "PRIVATE KEY" in msg or "private_key" in msg:
        return type(exc).__name__
    return msg[:500]


def load_credentials(service_account_key: str | None, mode: str = "persistent"
                     ) -> tuple[Any, str, str | None]:
    """(credentials, source, project of the key) or raise :class:`EarthEngineAuthError`."""
    import ee

    if mode == "none":
        return None, "none", None
    if mode != "persistent":
        raise ValueError(f"credentials must be 'persistent' or 'none', not {mode!r}")
    key = service_account_key or os.environ.get(KEY_ENV)
    if key:
        path = Path(key).expanduser()
        if not path.is_file():
            raise EarthEngineAuthError(f"service-account key file not found: {path}. {HOW_TO}")
        try:
            info = json.loads(path.read_text())
            key_project = info.get("project_id") if isinstance(info, dict) else None
            creds = ee.ServiceAccountCredentials(None, key_file=str(path))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise EarthEngineAuthError(
                f"{path} is not a valid service-account JSON key ({_safe(exc)}). {HOW_TO}"
            ) from None
        return creds, "service_account", key_project
    try:
        creds = ee.data.get_persistent_credentials()
    except ee.EEException:
        raise EarthEngineAuthError(f"no Earth Engine credentials found. {HOW_TO}") from None
    return creds, "persistent", None


def resolve_project(project: str | None, credentials: Any, key_project: str | None) -> str:
    """The Cloud project to bill, or raise :class:`EarthEngineAuthError`."""
    for candidate in (project, *(os.environ.get(e) for e in PROJECT_ENVS),
                      getattr(credentials, "quota_project_id", None), key_project):
        if candidate:
            return str(candidate)
    raise EarthEngineAuthError(f"no Cloud project given for Earth Engine. {HOW_TO}")


def connect(*, project: str | None = None, service_account_key: str | None = None,
            credentials: str = "persistent", url: str | None = None) -> Connection:
    """Load credentials, ``ee.Initialize`` (which validates them against Earth Engine with
    one request) and build the authorized session for direct downloads."""
    import ee
    import google.auth.exceptions

    creds, source, key_project = load_credentials(service_account_key, credentials)
    proj = resolve_project(project, creds, key_project)
    try:
        ee.Initialize(creds, url=url, project=proj)
    except ee.EEException as exc:
        raise EarthEngineAuthError(
            f"Earth Engine refused to initialize for project {proj!r}: {_safe(exc)}. {HOW_TO}"
        ) from None
    except google.auth.exceptions.GoogleAuthError as exc:
        raise EarthEngineAuthError(
            f"the {source.replace('_', ' ')} credentials were rejected (project {proj!r}): "
            f"{_safe(exc)}. {HOW_TO}") from None
    except Exception as exc:  # httplib2/requests transport failures, discovery errors
        raise EarthEngineError(f"cannot reach Earth Engine at {url or 'the default endpoint'}"
                               f" ({type(exc).__name__}: {_safe(exc)})") from None
    if creds is not None:
        from google.auth.transport.requests import AuthorizedSession

        session: requests.Session = AuthorizedSession(creds)
    else:
        session = requests.Session()
    log.info("Earth Engine initialized for project %s (%s credentials)", proj, source)
    return Connection(proj, creds, session, source)
