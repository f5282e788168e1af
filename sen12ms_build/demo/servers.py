"""Loopback stand-ins of the services the ``stac`` backend reads, for the offline demo and the
tests: a STAC API, a file server with HTTP range requests and SAS tokens, and S3 (moto).

Everything binds 127.0.0.1 on a free port, runs in daemon threads and stops when its
``with`` block ends. Each server counts the requests it answers (:attr:`Service.requests`:
path -> count) and can be told to misbehave (:class:`Faults`): answer 429 with
``Retry-After``, 503, wait longer than a client's timeout, or go away -- so every failure the
real services show is a test here.

* :class:`StacApiServer`: a STAC API landing page and ``/search`` (POST and GET) over a list
  of item dicts, with paging as Earth Search v1 does it (a ``next`` link that POSTs the
  search body with a ``next`` token), filtered by collection, bbox and datetime;
  ``repeat_across_pages`` repeats each page's last item on the next page (a moving page
  boundary, as a live catalogue shows).
* :class:`FileServer`: files under a folder over HTTP with ``Range`` support; with ``bearer``
  every request needs that ``Authorization: Bearer`` token (401 otherwise, as Earthdata); with
  ``sas=True`` every file needs a valid ``sig`` query parameter issued by its token endpoint
  (``/api/sas/v1/token/<account>/<container>``, the Planetary Computer's shape), and
  :meth:`FileServer.expire_tokens` revokes every token issued so far (403 until re-signed).
* :class:`S3Server`: moto's S3 in server mode (:class:`moto.server.ThreadedMotoServer`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import parse_qs, urlparse

HOST = "127.0.0.1"


class Faults:
    """Scripted misbehaviour of a server: a queue of faults, each for the next ``n`` requests
    whose path matches ``path`` (a regular expression)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[dict[str, Any]] = []

    def add(self, kind: str, n: int = 1, path: str = ".*", **kw: Any) -> None:
        """``kind``: ``status`` (answer ``status`` with ``headers`` and ``body``), ``delay``
        (sleep ``seconds`` first, then answer normally), ``drop`` (close the connection)."""
        with self._lock:
            self._queue.append({"kind": kind, "n": n, "path": re.compile(path), **kw})

    def take(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            for f in self._queue:
                if f["n"] > 0 and f["path"].search(path):
                    f["n"] -= 1
                    return f
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


class Service:
    """A threaded HTTP server on 127.0.0.1 (a free port), stopped by :meth:`close` or the end
    of its ``with`` block."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.faults = Faults()
        self._lock = threading.Lock()
        outer = self

        class Handler(self.handler):  # type: ignore[name-defined, misc]
            service = outer

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.05})
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}"

    def count(self, path: str, nbytes: int = 0) -> None:
        with self._lock:
            self.requests[path] += 1
            self.bytes_sent += nbytes

    def total(self, pattern: str = ".*") -> int:
        rx = re.compile(pattern)
        with self._lock:
            return sum(n for p, n in self.requests.items() if rx.search(p))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Base(BaseHTTPRequestHandler):
    service: Service
    protocol_version = "HTTP/1.1"

    def _fault(self) -> bool:
        """Apply the next matching fault; True when the request was answered by it."""
        f = self.service.faults.take(self.path)
        if f is None:
            return False
        if f["kind"] == "delay":
            time.sleep(float(f.get("seconds", 1.0)))
            return False
        if f["kind"] == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return True
        body = str(f.get("body", "")).encode()
        self.send_response(int(f.get("status", 503)))
        for k, v in (f.get("headers") or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return True

    def _json(self, status: int, doc: Any, ctype: str = "application/json") -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --- the STAC API ---------------------------------------------------------------------------

def _bbox_hit(a: Sequence[float], b: Sequence[float]) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _when(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class _StacHandler(_Base):
    service: "StacApiServer"

    def do_GET(self) -> None:  # noqa: N802
        u = urlparse(self.path)
        self.service.count(u.path)
        if self._fault():
            return
        if u.path in ("", "/"):
            return self._json(200, self.service.landing())
        if u.path == "/search":
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            body: dict[str, Any] = {}
            if "collections" in q:
                body["collections"] = q["collections"].split(",")
            if "bbox" in q:
                body["bbox"] = [float(x) for x in q["bbox"].split(",")]
            for k in ("datetime", "next"):
                if k in q:
                    body[k] = q[k]
            if "limit" in q:
                body["limit"] = int(q["limit"])
            return self._json(200, self.service.page(body), "application/geo+json")
        m = re.match(r"^/collections/([^/]+)$", u.path)
        if m:
            return self._json(200, {"type": "Collection", "id": m.group(1),
                                    "stac_version": "1.0.0", "links": []})
        self._json(404, {"code": "NotFound", "description": f"{u.path} not found"})

    def do_POST(self) -> None:  # noqa: N802
        u = urlparse(self.path)
        n = int(self.headers.get("Content-Length", 0) or 0)
        raw = self.rfile.read(n) if n else b"{}"
        self.service.count(u.path)
        if self._fault():
            return
        if u.path != "/search":
            return self._json(404, {"code": "NotFound", "description": u.path})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._json(400, {"code": "BadRequest", "description": "not JSON"})
        self._json(200, self.service.page(body), "application/geo+json")


class StacApiServer(Service):
    """A STAC API over ``items`` (see the module doc).

    Args:
        items: item dicts (each with ``collection``, ``bbox``, ``properties.datetime``).
        page_size: the server's largest page (a client's ``limit`` may ask for less).
    """

    handler = _StacHandler

    def __init__(self, items: Sequence[Mapping[str, Any]] = (), page_size: int = 100):
        self.items = list(items)
        self.page_size = page_size
        self.repeat_across_pages = False
        self.bodies: list[dict[str, Any]] = []  # every search body received
        super().__init__()

    def landing(self) -> dict[str, Any]:
        base = self.url
        return {"type": "Catalog", "id": "sen12ms-demo", "stac_version": "1.0.0",
                "description": "sen12ms-build loopback STAC API",
                "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                               "https://api.stacspec.org/v1.0.0/item-search",
                               "https://api.stacspec.org/v1.0.0/ogcapi-features",
                               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
                               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
                               "geojson"],
                "links": [{"rel": "self", "href": base + "/", "type": "application/json"},
                          {"rel": "root", "href": base + "/", "type": "application/json"},
                          {"rel": "search", "href": base + "/search",
                           "type": "application/geo+json", "method": "POST"},
                          {"rel": "search", "href": base + "/search",
                           "type": "application/geo+json", "method": "GET"}]}

    def matches(self, body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        cols = body.get("collections")
        bbox = body.get("bbox")
        lo = hi = None
        if body.get("datetime"):
            a, _, b = str(body["datetime"]).partition("/")
            lo = _when(a) if a not in ("", "..") else None
            hi = _when(b) if b not in ("", "..") else (lo if not _ else None)
        out = []
        for it in self.items:
            if cols and it.get("collection") not in cols:
                continue
            if bbox and it.get("bbox") and not _bbox_hit(bbox, it["bbox"]):
                continue
            t = _when(it["properties"].get("datetime") or it["properties"]["start_datetime"])
            if (lo and t < lo) or (hi and t > hi):
                continue
            out.append(it)
        return sorted(out, key=lambda i: (i["properties"].get("datetime") or "", i["id"]))

    def page(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One page of a search; ``next`` in the body is the offset token of the page."""
        with self._lock:
            self.bodies.append(dict(body))
        found = self.matches(body)
        limit = min(int(body.get("limit") or self.page_size), self.page_size)
        start = int(body.get("next") or 0)
        stop = start + limit
        feats = found[start:stop]
        if self.repeat_across_pages and start > 0:
            feats = [found[start - 1]] + feats  # the previous page's last item again
        links = [{"rel": "root", "href": self.url + "/", "type": "application/json"}]
        if stop < len(found):
            nxt = {k: v for k, v in body.items() if k != "next"}
            nxt["next"] = str(stop)
            links.insert(0, {"rel": "next", "title": "Next page of Items", "method": "POST",
                             "type": "application/geo+json", "href": self.url + "/search",
                             "merge": False, "body": nxt})
        return {"type": "FeatureCollection", "features": feats, "links": links,
                "numberMatched": len(found), "numberReturned": len(feats),
                "context": {"limit": limit, "matched": len(found),
                            "returned": len(feats)}}


# --- files over HTTP --------------------------------------------------------------------------

class _FileHandler(_Base):
    service: "FileServer"

    def _serve(self, head: bool) -> None:
        u = urlparse(self.path)
        self.service.count(u.path)
        if self._fault():
            return
        if u.path.startswith("/api/sas/v1/token/"):
            return self._json(200, self.service.issue_token())
        if self.service.bearer and \
                self.headers.get("Authorization") != f"Bearer {self.service.bearer}":
            body = b"HTTP Basic: Access denied.\n"
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.service.sas:
            self.service.tick()
            sig = parse_qs(u.query).get("sig", [""])[0]
            if not self.service.valid(sig):
                self.service.refused += 1
                body = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>'
                        b"AuthenticationFailed</Code><Message>Server failed to authenticate "
                        b"the request.</Message></Error>")
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        path = self.service.resolve(u.path)
        if path is None:
            body = b"<Error><Code>BlobNotFound</Code></Error>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        start, end = 0, size - 1
        status = 200
        if rng:
            m = re.match(r"bytes=(\d*)-(\d*)", rng)
            if m:
                a, b = m.groups()
                if a == "":
                    start, end = max(0, size - int(b)), size - 1
                else:
                    start, end = int(a), min(int(b) if b else size - 1, size - 1)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        n = end - start + 1
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(n))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(n)
        self.service.count("#bytes", 0)
        self.service.bytes_sent += len(data)
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(True)


class FileServer(Service):
    """Files under ``root`` over HTTP with range requests (see the module doc)."""

    handler = _FileHandler

    def __init__(self, root: Path, sas: bool = False, token_ttl_s: float = 3600.0,
                 bearer: str | None = None):
        self.root = Path(root).resolve()
        self.sas = sas
        self.bearer = bearer  # an Earthdata-like bearer token every request must carry
        self.token_ttl_s = token_ttl_s
        self._tokens: set[str] = set()
        self.issued: list[str] = []  # every signature handed out
        self.tokens_issued = 0
        self.refused = 0  # requests answered 403
        self._expire_in: int | None = None
        super().__init__()

    def expire_tokens_after(self, n: int) -> None:
        """Revoke every token once ``n`` more signed requests have come in (mid-run)."""
        with self._lock:
            self._expire_in = n

    def tick(self) -> None:
        with self._lock:
            if self._expire_in is not None:
                self._expire_in -= 1
                if self._expire_in <= 0:
                    self._tokens.clear()
                    self._expire_in = None

    def resolve(self, url_path: str) -> Path | None:
        p = (self.root / url_path.lstrip("/")).resolve()
        if self.root not in p.parents or not p.is_file():
            return None
        return p

    def issue_token(self) -> dict[str, str]:
        """A SAS token as the Planetary Computer's endpoint answers it."""
        sig = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(sig)
            self.issued.append(sig)
            self.tokens_issued += 1
        now = dt.datetime.now(dt.UTC)
        exp = now + dt.timedelta(seconds=self.token_ttl_s)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        token = (f"st={now:{fmt}}&se={exp:{fmt}}&sp=rl&sv=2021-06-08&sr=c"
                 f"&skoid=demo&sktid=demo&skt={now:{fmt}}&ske={exp:{fmt}}&sks=b"
                 f"&skv=2021-06-08&sig={sig}")
        return {"msft:expiry": exp.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": token}

    def valid(self, sig: str) -> bool:
        with self._lock:
            return sig in self._tokens

    def expire_tokens(self) -> None:
        """Revoke every token issued so far (reads answer 403 until signed again)."""
        with self._lock:
            self._tokens.clear()


# --- S3 ----------------------------------------------------------------------------------------

class S3Server:
    """moto's S3 on 127.0.0.1 (server mode); :meth:`put` uploads files with boto3."""

    def __init__(self) -> None:
        import socket

        from moto.server import ThreadedMotoServer

        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=f"http://{self.endpoint}",
                            aws_access_key_id="demo-access-key",
                            aws_secret_access_key="demo-secret-key", region_name="us-east-1")

    def put(self, bucket: str, files: Mapping[str, Path]) -> None:
        """Create ``bucket`` (if needed) and upload ``key -> file``."""
        c = self.client()
        try:
            c.create_bucket(Bucket=bucket)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        for key, path in files.items():
            c.upload_file(str(path), bucket, key)

    def close(self) -> None:
        self.server.stop()

    def __enter__(self) -> "S3Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_until(pred: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``pred`` until it holds or ``timeout_s`` passes."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return True
        time.sleep(0.02)
    return False
