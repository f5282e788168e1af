"""Test helpers for the Earth Engine backend: offline graph building and a loopback
Earth Engine / Cloud Storage emulator.

* :func:`offline_ee` initializes earthengine-api with its bundled algorithm list
  (``ee.apitestcase``, pinned with earthengine-api==1.7.50), enough to build and serialize
  real request graphs without credentials or network.
* :func:`invocations` flattens a serialized Cloud API expression into its function calls.
* :class:`FakeEarthEngine` is a real HTTP server on 127.0.0.1 (ephemeral port) speaking the
  REST methods the backend and earthengine-api use: discovery, ``algorithms.list``,
  ``value:compute``, ``image:computePixels`` (real GeoTIFF bytes written by rasterio),
  ``image:export``, ``operations.get/list``, the Cloud Storage JSON API (list, media
  download) and an OAuth token endpoint. It injects 429s, 5xx, slow, truncated and corrupt
  responses on request.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

FIXTURES = Path(__file__).parent / "fixtures" / "earthengine"
PROJECT = "test-project"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- offline graphs ----------------------------------------------------------------------------

@contextlib.contextmanager
def offline_ee() -> Iterator[None]:
    """earthengine-api initialized from its bundled algorithms.json (no network)."""
    import ee
    import ee.apitestcase

    # ApiTestCase.InitializeApi replaces ee.data._install_cloud_api_resource with a no-op
    # and its tearDown never restores it (earthengine-api 1.7.50): a later ee.Initialize
    # against the emulator would then fail with "Earth Engine client library not
    # initialized". Keep the real one and put it back, then reset the generated classes.
    install = ee.data._install_cloud_api_resource  # noqa: SLF001
    case = ee.apitestcase.ApiTestCase()
    case.setUp()
    try:
        yield
    finally:
        case.tearDown()
        ee.data._install_cloud_api_resource = install  # noqa: SLF001
        ee.Reset()


def invocations(expr: dict) -> list[tuple[str, dict]]:
    """Every distinct ``functionInvocationValue`` of a serialized expression as
    (name, arguments), value references resolved (a shared node counts once)."""
    values = expr["values"]
    out: list[tuple[str, dict]] = []
    memo: dict[str, Any] = {}

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "valueReference" in node:
                ref = node["valueReference"]
                if ref not in memo:
                    memo[ref] = resolve(values[ref])
                return memo[ref]
            if "constantValue" in node:
                return node["constantValue"]
            if "arrayValue" in node:
                return [resolve(v) for v in node["arrayValue"]["values"]]
            if "dictionaryValue" in node:
                return {k: resolve(v) for k, v in node["dictionaryValue"]["values"].items()}
            if "functionInvocationValue" in node:
                inv = node["functionInvocationValue"]
                name = inv.get("functionName") or "<function reference>"
                args = {k: resolve(v) for k, v in inv.get("arguments", {}).items()}
                out.append((name, args))
                return {"__call__": name, **args}
            if "functionDefinitionValue" in node:
                return {"__def__": resolve({"valueReference":
                                            node["functionDefinitionValue"]["body"]})}
            if "argumentReference" in node:
                return {"__arg__": node["argumentReference"]}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolve({"valueReference": expr["result"]})
    return out


def calls(expr: dict, name: str) -> list[dict]:
    """Arguments of every invocation of ``name``."""
    return [args for n, args in invocations(expr) if n == name]


def _dicts(node: Any) -> Iterator[dict]:
    """Every dict of a serialized expression's tree, depth first (a node before the nodes
    inside it)."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _dicts(v)
    elif isinstance(node, list):
        for v in node:
            yield from _dicts(v)


def constants(expr: dict) -> list[Any]:
    """Every constant value of an expression, lists flattened one level as well."""
    out: list[Any] = []
    for node in _dicts(expr):
        if "constantValue" in node:
            v = node["constantValue"]
            out.append(v)
            if isinstance(v, list):
                out.extend(v)
    return out


# --- synthetic, position-dependent pixel values ------------------------------------------------

RES = 0.0001
S1_FILL = -9999.0


AUX_BANDS = ["source_index", "poor", "cloud", "shadow"]  # products.AUX_MASKS
LEGACY_AUX_BANDS = ["source_index", "poor"]  # products.AUX (exports of earlier versions)


def s2_band_count(expression: dict) -> int:
    """Bands of a Sentinel-2 request: 13 L1C bands plus the aux bands the graph selects
    (4, or 2 for a graph of an earlier version, or none)."""
    selects = [a["bandSelectors"] for a in calls(expression, "Image.select")]
    if AUX_BANDS in selects:
        return 13 + len(AUX_BANDS)
    return 13 + (len(LEGACY_AUX_BANDS) if LEGACY_AUX_BANDS in selects else 0)


def product_of(expression_text: str) -> tuple[str, int, str]:
    """(key, band count, dtype) of a request, recognised from its collection id."""
    if "COPERNICUS/S2" in expression_text:
        return "s2", s2_band_count(json.loads(expression_text)), "uint16"
    if "COPERNICUS/S1_GRD" in expression_text:
        return "s1", 2, "float32"
    if "MODIS/061/MCD12Q1" in expression_text:
        return "lc", 4, "uint16"
    if "ESA/WorldCover" in expression_text:  # the labels of sen12ms_build.labels
        return "wc", 1, "uint8"
    if "GOOGLE/DYNAMICWORLD" in expression_text:
        return "dw", 10, "uint8"
    raise ValueError("unknown product")


def values(key: str, count: int, dtype: str, transform: Affine, width: int, height: int
           ) -> np.ndarray:
    """Deterministic (count, height, width) pixels depending on the global 0.0001 degree
    position only, so that any chunking of a grid reassembles to the same array."""
    col0 = int(round(transform.c / RES))
    row0 = int(round(-transform.f / RES))
    rows = (row0 + np.arange(height))[:, None]
    cols = (col0 + np.arange(width))[None, :]
    out = np.zeros((count, height, width), dtype)
    for b in range(count):
        if key == "s1":
            v = -25.0 + ((rows * 3 + cols * 5 + b * 7) % 200) * 0.1
            v = np.where((rows + cols) % 97 == 0, S1_FILL, v)
        elif key == "s2" and b == 13:  # source index
            v = (rows // 64 + cols // 64) % 6
        elif key == "s2" and b == 14:  # poor
            v = np.where((rows // 32 + cols // 32) % 7 == 0, 255, (rows + cols) % 2)
        elif key == "s2" and b in (15, 16):  # cloud, shadow: a poor pixel is one or other
            poor = np.where((rows // 32 + cols // 32) % 7 == 0, 255, (rows + cols) % 2)
            cloud = (cols // 8) % 3 == 0
            v = np.where(poor == 255, 255, (poor == 1) & (cloud if b == 15 else ~cloud))
        else:
            v = (rows * 7 + cols * 3 + b * 11) % 250 + (1 if key == "s2" else 0)
        out[b] = np.broadcast_to(v, (height, width)).astype(dtype)
    return out


def geotiff(data: np.ndarray, transform: Affine) -> bytes:
    """An uncompressed GeoTIFF (EPSG:4326) in memory, as Earth Engine returns."""
    count, height, width = data.shape
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", count=count, height=height, width=width,
                      dtype=data.dtype.name, crs="EPSG:4326", transform=transform) as dst:
            dst.write(data)
        return bytes(mem.read())


def grid_transform(grid: dict) -> Affine:
    t = grid["affineTransform"]
    return Affine(t.get("scaleX", 0), t.get("shearX", 0), t.get("translateX", 0),
                  t.get("shearY", 0), t.get("scaleY", 0), t.get("translateY", 0))


# --- the loopback server -----------------------------------------------------------------------

Fault = str  # "429", "500", "503", "400", "slow", "truncate", "corrupt", "reset"


#: Error answers of Earth Engine (status, message, google.rpc status), quoted from public
#: reports (see tests/fixtures/earthengine/README.md for each source).
ERROR_BODIES: dict[str, tuple[int, str, str]] = {
    "timeout": (400, "Computation timed out.", "INVALID_ARGUMENT"),
    "memory": (400, "User memory limit exceeded.", "INVALID_ARGUMENT"),
    "asset": (400, "Image.load: Image asset 'COPERNICUS/S2_HARMONIZED/20170601T000000_x' "
              "not found (does not exist or caller does not have access).",
              "INVALID_ARGUMENT"),
    "permission": (403, "Caller does not have required permission to use project "
                   "test-project. Grant the caller the roles/serviceusage.serviceUsageConsumer"
                   " role, or a custom role with the serviceusage.services.use permission.",
                   "PERMISSION_DENIED"),
    "quota": (429, "Quota exceeded for quota metric 'EECU time' and limit 'EECU seconds per "
              "month' of service 'earthengine.googleapis.com' for consumer "
              "'project_number:599401802498'.", "RESOURCE_EXHAUSTED"),
}


class FakeEarthEngine:
    """Loopback emulator of the Earth Engine REST API (and Cloud Storage) for tests.

    Attributes:
        requests: every request as ``{"method", "path", "body"}`` (bodies as JSON).
        fault: ``f(body, attempt) -> Fault | None`` for computePixels, ``attempt`` counting
            the requests of the same grid (0 for the first).
        value: ``f(body) -> result`` for value:compute.
        slow_seconds: delay of a "slow" response.
        delay: seconds every computePixels response waits (to observe concurrency).
        export_files: ``f(key, transform, width, height) -> list of (suffix, transform,
            width, height)`` splitting a batch export into files.
        advance: operation state sequence a task goes through, one step per status read.
        cost_limit: compute a single computePixels request may cost (pixels x images x
            operations, see :meth:`cost`); above it Earth Engine's 400 "Computation timed
            out." answers (None: no limit).
        budget: total compute of all successful computePixels requests; once spent every
            request gets the 429 quota-exhausted answer (None: unlimited). ``spent`` counts.
        images: Sentinel-2 images a scene's mosaic scores (the cost's image factor).
        legacy_aux: answer Sentinel-2 requests with the 2 aux bands of earlier versions
            (source index, poor), as exports finished before an upgrade are.
    """

    def __init__(self, project: str = PROJECT):
        import ee

        self.project = project
        root = Path(ee.__file__).parent / "tests"
        self._discovery = (root / "cloud_api_discovery_document.json").read_bytes()
        self._algorithms = (root / "algorithms.json").read_bytes()
        self.requests: list[dict[str, Any]] = []
        self.fault: Callable[[dict, int], Fault | None] = lambda body, attempt: None
        self.value: Callable[[dict], Any] = lambda body: None
        self.slow_seconds = 1.0
        self.delay = 0.0
        self.attempts: collections.Counter = collections.Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.operations: dict[str, dict[str, Any]] = {}
        self.op_requests: dict[str, str] = {}  # requestId -> operation name
        self.op_steps: dict[str, list[dict[str, Any]]] = {}
        self.objects: dict[tuple[str, str], bytes] = {}
        self.fail_exports: dict[str, str] = {}  # description substring -> error message
        self.export_split: int | None = None  # split exports wider than this into 2 files
        self.cost_limit: float | None = None
        self.budget: float | None = None
        self.spent = 0.0
        self.images = 4
        self.legacy_aux = False
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeEarthEngine":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def pixel_requests(self) -> list[dict]:
        with self.lock:
            return [r["body"] for r in self.requests if r["path"].endswith("image:computePixels")]

    def cost(self, body: dict) -> float:
        """Compute a computePixels request costs here: pixels x images x operations, with
        images = :attr:`images` for the Sentinel-2 mosaic (1 for S1 and land cover) and
        operations = the distinct function invocations of its expression."""
        grid = body["grid"]["dimensions"]
        text = json.dumps(body["expression"])
        key = "s2" if "COPERNICUS/S2" in text else product_of(text)[0]
        ops = len(invocations(body["expression"]))
        return grid["width"] * grid["height"] * (self.images if key == "s2" else 1) * ops

    def _product(self, text: str) -> tuple[str, int, str]:
        key, count, dtype = product_of(text)
        if key == "s2" and self.legacy_aux and count > 13:
            count = 13 + len(LEGACY_AUX_BANDS)
        return key, count, dtype

    def count(self, suffix: str) -> int:
        with self.lock:
            return sum(r["path"].endswith(suffix) for r in self.requests)

    # -- batch ------------------------------------------------------------------------------

    def _export(self, body: dict) -> dict[str, Any]:
        rid = body.get("requestId") or uuid.uuid4().hex
        with self.lock:
            if rid in self.op_requests:  # de-duplicated like Earth Engine
                return self.operations[self.op_requests[rid]]
            name = f"projects/{self.project}/operations/{uuid.uuid4().hex[:24].upper()}"
            self.op_requests[rid] = name
        desc = body.get("description", "")
        meta = {"@type": "type.googleapis.com/google.earthengine.v1.OperationMetadata",
                "state": "PENDING", "description": desc, "type": "EXPORT_IMAGE",
                "priority": 100, "createTime": "2024-05-02T10:00:00.000Z",
                "updateTime": "2024-05-02T10:00:00.000Z"}
        op = {"name": name, "metadata": meta}
        failure = next((m for k, m in self.fail_exports.items() if k in desc), None)
        final: dict[str, Any]
        if failure:
            final = {"name": name, "done": True, "error": {"code": 3, "message": failure},
                     "metadata": {**meta, "state": "FAILED"}}
        else:
            final = {"name": name, "done": True,
                     "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
                     "metadata": {**meta, "state": "SUCCEEDED", "progress": 1,
                                  "destinationUris": []}}
        running = {"name": name, "metadata": {**meta, "state": "RUNNING", "progress": 0.4,
                                              "startTime": "2024-05-02T10:00:05.000Z"}}
        with self.lock:
            self.operations[name] = op
            self.op_steps[name] = [running, final]
            self._pending_files = getattr(self, "_pending_files", {})
            self._pending_files[name] = body
        return op

    def _advance(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            op = self.operations.get(name)
            steps = self.op_steps.get(name)
            if op is None:
                return None
            if steps:
                op = steps.pop(0)
                self.operations[name] = op
                if op["metadata"]["state"] == "SUCCEEDED":
                    self._write_export(self._pending_files.pop(name))
            return op

    def _write_export(self, body: dict) -> None:
        text = json.dumps(body["expression"])
        key, count, dtype = self._product(text)
        vals = {}
        for name, args in invocations(body["expression"]):
            if name == "Image.reproject" and "crsTransform" in args:
                vals["t"] = Affine(*args["crsTransform"])
            if name == "GeometryConstructors.Rectangle" and args.get("coordinates", [None])[0] == 0:
                vals["wh"] = args["coordinates"][2:4]
        t, (w, h) = vals["t"], vals["wh"]
        dest = body["fileExportOptions"]
        if "cloudStorageDestination" in dest:
            gcs = dest["cloudStorageDestination"]
            bucket, prefix = gcs["bucket"], gcs["filenamePrefix"]
        else:  # Drive: kept under the pseudo-bucket "drive:<folder>"
            drive = dest["driveDestination"]
            bucket, prefix = f"drive:{drive['folder']}", drive["filenamePrefix"]
        if self.export_split and w > self.export_split:
            cut = self.export_split
            parts = [("-0000000000-0000000000", t, cut, h),
                     (f"-0000000000-{cut:010d}", t @ Affine.translation(cut, 0), w - cut, h)]
        else:
            parts = [("", t, w, h)]
        for suffix, pt, pw, ph in parts:
            data = geotiff(values(key, count, dtype, pt, pw, ph), pt)
            self.objects[(bucket, f"{prefix}{suffix}.tif")] = data

    # -- HTTP -----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None
                      ) -> None:
                self._send(status, json.dumps(obj).encode(), headers=headers)

            def _error(self, status: int, message: str, reason: str,
                       headers: dict[str, str] | None = None) -> None:
                self._json(status, {"error": {"code": status, "message": message,
                                              "status": reason}}, headers)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                with fake.lock:
                    fake.requests.append({"method": "GET", "path": url.path, "body": None})
                if url.path.endswith("/$discovery/rest"):
                    return self._send(200, fake._discovery)
                if re.fullmatch(r"/v1(alpha)?/projects/[^/]+/algorithms", url.path):
                    return self._send(200, fake._algorithms)
                m = re.fullmatch(r"/v1(alpha)?/(projects/[^/]+/operations/[^/]+)", url.path)
                if m:
                    op = fake._advance(m.group(2))
                    if op is None:
                        return self._error(404, "Operation not found.", "NOT_FOUND")
                    return self._json(200, op)
                if re.fullmatch(r"/v1(alpha)?/projects/[^/]+/operations", url.path):
                    ops = [fake._advance(n) for n in list(fake.operations)]
                    return self._json(200, {"operations": ops})
                m = re.fullmatch(r"/storage/v1/b/([^/]+)/o", url.path)
                if m:
                    prefix = parse_qs(url.query).get("prefix", [""])[0]
                    items = [{"kind": "storage#object", "bucket": b, "name": n,
                              "size": str(len(d)), "contentType": "image/tiff"}
                             for (b, n), d in sorted(fake.objects.items())
                             if b == m.group(1) and n.startswith(prefix)]
                    return self._json(200, {"kind": "storage#objects", "items": items})
                m = re.fullmatch(r"/download/storage/v1/b/([^/]+)/o/(.+)", url.path)
                if m:
                    data = fake.objects.get((m.group(1), unquote(m.group(2))))
                    if data is None:
                        return self._error(404, "No such object", "NOT_FOUND")
                    return self._send(200, data, "image/tiff")
                return self._error(404, f"unknown path {url.path}", "NOT_FOUND")

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("latin-1")
                with fake.lock:
                    fake.requests.append({"method": "POST", "path": url.path, "body": body,
                                          "headers": dict(self.headers)})
                if url.path == "/token":
                    return self._json(400, {"error": "invalid_grant",
                                            "error_description": "Invalid JWT Signature."})
                if url.path.endswith("/value:compute"):
                    return self._json(200, {"result": fake.value(body)})
                if url.path.endswith("/image:export"):
                    return self._json(200, fake._export(body))
                if url.path.endswith("/image:computePixels"):
                    return self._pixels(body)
                return self._error(404, f"unknown path {url.path}", "NOT_FOUND")

            def _pixels(self, body: dict) -> None:
                grid = body["grid"]
                t = grid_transform(grid)
                w, h = grid["dimensions"]["width"], grid["dimensions"]["height"]
                text = json.dumps(body["expression"])
                key, count, dtype = fake._product(text)
                ident = (key, t.c, t.f, w, h)
                with fake.lock:
                    attempt = fake.attempts[ident]
                    fake.attempts[ident] += 1
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                counted = True
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    # leave the in-flight count before answering: once the client has the
                    # answer it may start its next request, possibly before `finally` ran
                    with fake.lock:
                        fake.in_flight -= 1
                        counted = False
                    fault = fake.fault(body, attempt)
                    cost = fake.cost(body)
                    if fault is None and fake.budget is not None and fake.spent >= fake.budget:
                        fault = "quota"
                    if fault is None and fake.cost_limit is not None \
                            and cost > fake.cost_limit:
                        fault = "timeout"
                    if fault is not None and fault in ERROR_BODIES:
                        status, message, reason = ERROR_BODIES[fault]
                        return self._error(status, message, reason)
                    if fault == "429":
                        return self._error(429, "Too many concurrent aggregations.",
                                           "RESOURCE_EXHAUSTED", {"Retry-After": "0"})
                    if fault in ("500", "503"):
                        return self._error(int(fault), "An internal error has occurred "
                                           "(request id 7f3c).", "INTERNAL" if fault == "500"
                                           else "UNAVAILABLE")
                    if fault == "400":
                        size = w * h * count * np.dtype(dtype).itemsize
                        return self._error(400, f"Total request size ({size} bytes) must be "
                                           "less than or equal to 50331648 bytes.",
                                           "INVALID_ARGUMENT")
                    data = geotiff(values(key, count, dtype, t, w, h), t)
                    if fault == "slow":
                        time.sleep(fake.slow_seconds)
                    if fault == "truncate":  # announced length, half the bytes, then close
                        self.send_response(200)
                        self.send_header("Content-Type", "image/tiff")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return None
                    if fault == "corrupt":  # consistent length, but the TIFF is cut short
                        return self._send(200, data[: len(data) * 2 // 3], "image/tiff")
                    with fake.lock:
                        fake.spent += cost
                    return self._send(200, data, "image/tiff")
                finally:
                    if counted:
                        with fake.lock:
                            fake.in_flight -= 1

        return Handler


def expected(key: str, transform: Affine, width: int, height: int, aux: bool = True
             ) -> np.ndarray:
    """What the emulator's pixels of a product look like on a whole grid."""
    count = {"s2": 13 + len(AUX_BANDS) if aux else 13, "s1": 2, "lc": 4, "wc": 1,
             "dw": 10}[key]
    dtype = {"s2": "uint16", "s1": "float32", "lc": "uint16", "wc": "uint8",
             "dw": "uint8"}[key]
    return values(key, count, dtype, transform, width, height)


def read(path: Path) -> tuple[np.ndarray, Any]:
    with rasterio.open(path) as src:
        return src.read(), src.profile | {"descriptions": src.descriptions,
                                          "tags": src.tags()}


def clean_env(monkeypatch: Any, home: Path) -> None:
    """No Earth Engine / Google credentials or project from the environment."""
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "EARTHENGINE_SERVICE_ACCOUNT_KEY",
                "EARTHENGINE_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CONFIG",
                "CLOUDSDK_CORE_PROJECT", "GCLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "gcloud"))
    # a closed loopback port: the GCE metadata probe fails at once instead of timing out
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")


# --- a small evaluator of a serialized graph's ee.Number arithmetic ---------------------------

_NUMBER_OPS: dict[str, Callable[..., Any]] = {
    "Number.add": lambda a: a["left"] + a["right"],
    "Number.subtract": lambda a: a["left"] - a["right"],
    "Number.multiply": lambda a: a["left"] * a["right"],
    "Number.divide": lambda a: a["left"] / a["right"],
    "Number.sin": lambda a: math.sin(a["input"]),
    "Number.cos": lambda a: math.cos(a["input"]),
    "Number.tan": lambda a: math.tan(a["input"]),
    "Number.sqrt": lambda a: math.sqrt(a["input"]),
    "Number.abs": lambda a: abs(a["input"]),
    "Number.max": lambda a: max(a["left"], a["right"]),
    "Image.constant": lambda a: [a["value"]],
    "Image.addBands": lambda a: a["dstImg"] + a["srcImg"],
}


def function_nodes(expr: dict, name: str) -> list[dict]:
    """The raw ``functionInvocationValue`` nodes (arguments unresolved) of ``name``."""
    return [node["functionInvocationValue"] for node in _dicts(expr["values"])
            if (node.get("functionInvocationValue") or {}).get("functionName") == name]


def evaluate(expr: dict, node: Any, properties: dict[str, float],
             arguments: dict[str, Any] | None = None) -> Any:
    """Evaluate the ``ee.Number`` arithmetic under ``node`` (a serialized argument) with
    Python floats: ``Element.get`` / ``Image.get`` of an image property reads
    ``properties``, an argument reference of a mapped function reads ``arguments`` (or the
    only value in it), ``Image.constant`` / ``Image.addBands`` give band value lists.
    Anything else raises ``KeyError`` naming the function, so a graph that computes the
    value another way fails loudly."""
    def invoke(name: str, args: dict, ev: Callable[[Any], Any]) -> Any:
        if name in ("Element.get", "Image.get"):
            return float(properties[ev(args["property"])])
        if name == "Number":  # ee.Number(x) of a computed object
            return ev(args["number"]) if "number" in args else ev(args["input"])
        return _NUMBER_OPS[name]({k: ev(v) for k, v in args.items()})

    return _walk(expr, node, invoke, arguments or {})


def _walk(expr: dict, node: Any, invoke: Callable[[str, dict, Callable[[Any], Any]], Any],
          arguments: dict[str, Any] | None = None) -> Any:
    """The walk both evaluators share: value references, constants and arrays resolved;
    an argument reference of a mapped function reads ``arguments`` (or the only value in
    it; left as is when ``arguments`` is None); a function invocation is
    ``invoke(name, raw arguments, ev)``, which evaluates the arguments it needs with
    ``ev``."""
    values = expr["values"]

    def ev(n: Any) -> Any:
        if isinstance(n, dict):
            if "valueReference" in n:
                return ev(values[n["valueReference"]])
            if "constantValue" in n:
                return n["constantValue"]
            if "argumentReference" in n and arguments is not None:
                ref = n["argumentReference"]
                if ref in arguments:
                    return arguments[ref]
                (only,) = arguments.values()
                return only
            if "functionInvocationValue" in n:
                inv = n["functionInvocationValue"]
                return invoke(inv.get("functionName"), inv.get("arguments", {}), ev)
            if "arrayValue" in n:
                return [ev(v) for v in n["arrayValue"]["values"]]
        return n

    return ev(node)


# --- a small evaluator of a serialized graph's pixel-wise image algebra -----------------------

def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
            ) -> Callable[[dict], dict[str, np.ndarray]]:
    """An ``Image.<op>(image1, image2)``: band by band, a one-band side broadcast to the
    other, band names of ``image1`` (Earth Engine's rule)."""
    def op(a: dict) -> dict[str, np.ndarray]:
        left, right = a["image1"], a["image2"]
        lv, rv = list(left.values()), list(right.values())
        if len(lv) == 1 and len(rv) > 1:
            lv = lv * len(rv)
        if len(rv) == 1 and len(lv) > 1:
            rv = rv * len(lv)
        names = list(left) if len(left) == len(lv) else list(right)
        return {n: fn(x, y) for n, x, y in zip(names, lv, rv)}
    return op


_IMAGE_OPS: dict[str, Callable[[dict], dict[str, np.ndarray]]] = {
    "Image.constant": lambda a: {"constant": np.asarray(a["value"], np.float64)},
    "Image.gt": _binary(lambda x, y: (x > y).astype(np.uint8)),
    "Image.lt": _binary(lambda x, y: (x < y).astype(np.uint8)),
    "Image.and": _binary(lambda x, y: ((x != 0) & (y != 0)).astype(np.uint8)),
    "Image.or": _binary(lambda x, y: ((x != 0) | (y != 0)).astype(np.uint8)),
    "Image.not": lambda a: {n: (v == 0).astype(np.uint8) for n, v in a["value"].items()},
    "Image.rename": lambda a: dict(zip(a["names"], a["input"].values())),
    "Image.addBands": lambda a: {**a["dstImg"], **a["srcImg"]},
    "Image.select": lambda a: {n: a["input"][n] for n in a["bandSelectors"]},
    "Image.divide": _binary(lambda x, y: np.asarray(x, np.float64) / y),
    "Image.normalizedDifference": lambda a: {"nd": _nd(*(np.asarray(a["input"][n], np.float64)
                                                        for n in a["bandNames"]))},
    "Image.reduce": lambda a: {a["reducer"]: _REDUCERS[a["reducer"]](
        np.stack([np.asarray(v, np.float64) for v in a["image"].values()]))},
    "Reducer.sum": lambda a: "sum",
}

_REDUCERS = {"sum": lambda x: x.sum(axis=0)}


def _nd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Earth Engine's normalizedDifference: (p - q) / (p + q), 0 where both are 0."""
    s = p + q
    return np.divide(p - q, s, out=np.zeros_like(s), where=s != 0)


def evaluate_image(expr: dict, images: dict[str, np.ndarray], node: Any = None
                   ) -> dict[str, np.ndarray]:
    """Evaluate the pixel-wise image algebra of a serialized expression (its result, or
    ``node``) on numpy arrays: ``Image.load`` of an id reads ``images[id]`` (one band named
    by the id); constants, comparisons, ``And`` / ``Or`` / ``Not``, ``rename``,
    ``addBands``, ``select``, ``divide``, ``normalizedDifference`` and ``reduce`` (sum)
    follow Earth Engine's band rules (arithmetic in float64). Returns band name ->
    array. Anything else (a kernel, a reprojection...) raises ``KeyError`` naming the
    function, so a graph that computes the value another way fails loudly."""
    def invoke(name: str, raw: dict, ev: Callable[[Any], Any]) -> Any:
        args = {k: ev(v) for k, v in raw.items()}
        if name == "Image.load":
            return {args["id"]: np.asarray(images[args["id"]])}
        if name not in _IMAGE_OPS:
            raise KeyError(f"evaluate_image: {name} is not pixel-wise algebra")
        return _IMAGE_OPS[name](args)

    return _walk(expr, {"valueReference": expr["result"]} if node is None else node, invoke)
