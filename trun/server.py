"""The HTTP face of ``trund``: a single-threaded Tornado app serving the scheduler's RPC methods.

Wire protocol (Luigi's, renamed): ``GET`` or ``POST /api/<method>`` with the
keyword arguments as one JSON object in the form or query field ``data`` (a
``Content-Type: application/json`` body holding the object is accepted too).
The answer is ``{"response": <result>}``. Every mistake of the caller gets a
4xx answer with a JSON body ``{"error": "..."}`` naming what was wrong —
unknown method (404, with "Did you mean ...?"), malformed JSON, ``data`` not
an object, unknown or missing arguments, arguments of the wrong basic type
(400), a body over ``[scheduler] max_body_size`` (413). An exception inside
the scheduler answers 500 with a JSON body and is logged; the server keeps
serving. ``HEAD /`` answers 204 (health check); ``GET /`` shows the visualiser
when it is installed, else a small status page.

Methods are dispatched through ``trun.scheduler.RPC_METHODS`` (name →
``inspect.Signature``): the signature both validates the arguments and bounds
what can be called — nothing else on the scheduler is reachable.

After every request the scheduler's changes (``drain_changes()``) are appended
to the journal of :class:`trun.state_store.StateStore` *before* the answer is
sent, so an acknowledged ``add_step(status=DONE)`` survives ``kill -9``.

Hazards: everything — handlers, the 60 s prune, journaling — runs on the one
IOLoop thread; the scheduler is not thread-safe and must never be touched from
another thread. A slow scheduler call blocks every other client meanwhile.
Periodic snapshots are written by a forked child (see
:mod:`trun.state_store`); the only other threads (the history pages' pool) must
never touch the scheduler.
"""
from __future__ import annotations

import asyncio
import difflib
import gc
import gzip
import html
import inspect
import json
import logging
import os
import signal
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.netutil
import tornado.web

from trun.state_store import BadStateError, LoadedState, StateStore, drain_all_changes

__all__ = ["BadStateError", "DEFAULT_MAX_BODY_SIZE", "DEFAULT_STATE_PATH", "CorsSettings", "TrundServer", "app", "run"]

logger = logging.getLogger("trun.server")

DEFAULT_STATE_PATH = "/var/lib/trun-server/state"
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
#: A connection with no request started for this long is closed (``[scheduler] idle_connection_timeout``).
DEFAULT_IDLE_CONNECTION_SECONDS = 3600.0
PRUNE_INTERVAL_SECONDS = 60.0
#: How often the IOLoop checks whether a snapshot is due or a background one has finished.
HOUSEKEEPING_INTERVAL_SECONDS = 1.0
#: In ``serve_forever``, the objects alive are frozen out of the cyclic garbage
#: collector every this many RPCs: the scheduler state only grows, and without
#: this each full collection walks all of it (pauses growing with the state).
GC_FREEZE_EVERY_CALLS = 1000
#: ... and every this many seconds everything is unfrozen and collected once,
#: so that cyclic garbage frozen by mistake is not kept for ever.
GC_REFRESH_INTERVAL_SECONDS = 600.0

_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_VISUALISER_INDEX = os.path.join(_STATIC_DIR, "visualiser", "index.html")

_STATUSES_ON_STATUS_PAGE = ("PENDING", "RUNNING", "BATCH_RUNNING", "DONE", "FAILED", "DISABLED", "UNKNOWN")


class RequestError(Exception):
    """A caller's mistake: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- configuration
def _config() -> Any:
    from trun.configuration import get_config
    return get_config()


@dataclass(frozen=True)
class CorsSettings:
    """The ``[cors]`` section (Luigi's keys and defaults)."""

    enabled: bool = False
    allowed_origins: tuple[str, ...] = ()
    allow_any_origin: bool = False
    allow_null_origin: bool = False
    max_age: int = 86400
    allowed_methods: str = "GET, OPTIONS"
    allowed_headers: str = "Accept, Content-Type, Origin"
    exposed_headers: str = ""
    allow_credentials: bool = False

    @classmethod
    def from_config(cls) -> CorsSettings:
        """Read ``[cors]``; ``allowed_origins`` is a JSON list (a comma-separated list is accepted too)."""
        config = _config()
        raw_origins = config.get("cors", "allowed_origins", "")
        origins: list[str]
        if isinstance(raw_origins, (list, tuple)):
            origins = [str(o) for o in raw_origins]
        elif str(raw_origins).strip():
            try:
                parsed = json.loads(raw_origins)
                origins = [str(o) for o in parsed] if isinstance(parsed, list) else [str(parsed)]
            except ValueError:
                origins = [o.strip() for o in str(raw_origins).split(",")]
        else:
            origins = []
        # Wildcards only count through the explicit allow_* switches, as in Luigi.
        origins = [o for o in origins if o and o not in ("*", "null")]
        return cls(
            enabled=config.getboolean("cors", "enabled", False),
            allowed_origins=tuple(origins),
            allow_any_origin=config.getboolean("cors", "allow_any_origin", False),
            allow_null_origin=config.getboolean("cors", "allow_null_origin", False),
            max_age=config.getint("cors", "max_age", 86400),
            allowed_methods=config.get("cors", "allowed_methods", "GET, OPTIONS"),
            allowed_headers=config.get("cors", "allowed_headers", "Accept, Content-Type, Origin"),
            exposed_headers=config.get("cors", "exposed_headers", ""),
            allow_credentials=config.getboolean("cors", "allow_credentials", False),
        )


# ---------------------------------------------------------------- argument checks
def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


_JSON_KINDS: dict[str, tuple[type, ...] | None] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
    "list": (list,), "List": (list,), "tuple": (list,), "Tuple": (list,), "set": (list,), "Set": (list,),
    "frozenset": (list,), "Sequence": (list,), "Iterable": (list,), "Collection": (list,),
    "dict": (dict,), "Dict": (dict,), "Mapping": (dict,), "MutableMapping": (dict,),
    "None": (type(None),), "NoneType": (type(None),),
    "StepStatus": (str,),
}
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "an object", type(None): "null"}


def _annotation_kinds(annotation: Any) -> tuple[type, ...] | None:
    """JSON value types an annotation admits, or None when it admits anything (or we cannot tell)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if not isinstance(annotation, str):
        origin = typing.get_origin(annotation)
        if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
            kinds: list[type] = []
            for arg in typing.get_args(annotation):
                sub = _annotation_kinds(arg)
                if sub is None:
                    return None
                kinds.extend(sub)
            return tuple(kinds)
        target = origin or annotation
        name = "None" if target is None else getattr(target, "__name__", str(target))
        return _JSON_KINDS.get(name)
    text = annotation.strip()
    alternatives = _split_top_level(text, "|")
    if len(alternatives) > 1:
        kinds = []
        for alternative in alternatives:
            sub = _annotation_kinds(alternative)
            if sub is None:
                return None
            kinds.extend(sub)
        return tuple(kinds)
    base, _, rest = text.partition("[")
    base = base.rsplit(".", 1)[-1].strip()
    if base in ("Optional", "Union"):
        inner = rest[:-1] if rest.endswith("]") else rest
        kinds = [type(None)] if base == "Optional" else []
        for alternative in _split_top_level(inner, ","):
            sub = _annotation_kinds(alternative)
            if sub is None:
                return None
            kinds.extend(sub)
        return tuple(kinds)
    return _JSON_KINDS.get(base)


# annotation -> _annotation_kinds(annotation): the RPC signatures are fixed, and
# parsing their (string) annotations on every request cost more than the call.
_ANNOTATION_KINDS_CACHE: dict[Any, tuple[type, ...] | None] = {}


def _type_problem(annotation: Any, value: Any) -> str | None:
    """Describe the expected form when ``value`` (decoded JSON) does not fit ``annotation``."""
    try:
        kinds = _ANNOTATION_KINDS_CACHE[annotation]
    except KeyError:
        kinds = _ANNOTATION_KINDS_CACHE[annotation] = _annotation_kinds(annotation)
    except TypeError:  # an unhashable annotation object
        kinds = _annotation_kinds(annotation)
    if kinds is None:
        return None
    # JSON true/false are Python bools, which are ints: an int parameter must not take them.
    if isinstance(value, bool):
        fits = bool in kinds
    else:
        fits = isinstance(value, kinds)
    if fits:
        return None
    expected = " or ".join(dict.fromkeys(_KIND_NAMES.get(k, k.__name__) for k in kinds))
    return f"expected {expected}, got {_describe_json(value)}"


def _describe_json(value: Any) -> str:
    for kind, name in _KIND_NAMES.items():
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return f"{name} ({json.dumps(value)[:40]})"
    return type(value).__name__


def _luigi_rename(name: str) -> str:
    return name.replace("tasks", "steps").replace("task", "step").replace("Task", "Step")


def _did_you_mean(name: str, candidates: typing.Iterable[str]) -> str:
    candidates = list(candidates)
    renamed = _luigi_rename(name)
    if renamed != name and renamed in candidates:
        return f"; did you mean {renamed!r}? (trund renames Luigi's task to step)"
    close = difflib.get_close_matches(name, candidates, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _rpc_parameters(signature: inspect.Signature) -> list[inspect.Parameter]:
    params = list(signature.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


@dataclass(frozen=True)
class _Binding:
    """What checking a call's arguments needs from an RPC method's signature (made once per method)."""

    signature: inspect.Signature
    named: Mapping[str, inspect.Parameter]
    takes_any: bool
    required: tuple[str, ...]


# By method name (hashing a Signature costs more than binding it): checked against the signature given.
_BINDINGS: dict[str, _Binding] = {}


def _binding(method: str, signature: inspect.Signature) -> _Binding:
    binding = _BINDINGS.get(method)
    if binding is None or binding.signature is not signature:
        params = _rpc_parameters(signature)
        named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        binding = _BINDINGS[method] = _Binding(
            signature, named, any(p.kind is p.VAR_KEYWORD for p in params),
            tuple(name for name, p in named.items() if p.default is p.empty))
    return binding


def bind_rpc_arguments(method: str, signature: inspect.Signature, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Check decoded ``arguments`` against the RPC method's signature; return the keyword arguments.

    Raises :class:`RequestError` (400) naming the unknown, missing or mistyped argument.
    """
    binding = _binding(method, signature)
    named = binding.named
    if not binding.takes_any:
        unknown = [name for name in arguments if name not in named]
        if unknown:
            first = unknown[0]
            raise RequestError(400, f"unknown argument {first!r} for {method}"
                                    f"{_did_you_mean(first, named)}; {method} takes: {', '.join(named) or 'nothing'}")
    missing = [name for name in binding.required if name not in arguments]
    if missing:
        raise RequestError(400, f"missing required argument{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)} for {method}")
    for name, value in arguments.items():
        param = named.get(name)
        if param is None:
            continue
        problem = _type_problem(param.annotation, value)
        if problem:
            raise RequestError(400, f"argument {name!r} of {method}: {problem}")
    return dict(arguments)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def _rpc_methods() -> Mapping[str, inspect.Signature]:
    from trun.scheduler import RPC_METHODS
    return RPC_METHODS


# ---------------------------------------------------------------- handlers
class _JsonErrorsMixin(tornado.web.RequestHandler):
    """Errors raised by Tornado itself (405, 404 ...) answer JSON like ours."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(_dumps({"error": self._reason or tornado.httputil.responses.get(status_code, "error")}))


class NotFoundHandler(_JsonErrorsMixin):
    """Any path that is not served: 404 with a JSON body."""

    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(_dumps({"error": f"no such page {self.request.path!r}; the RPC API lives under /api/<method>"}))


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"arguments are not UTF-8 text ({exc})") from exc


def _parse_json_object(text: str, where: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RequestError(400, f"{where} is not valid JSON ({exc}); send the arguments as one JSON object, "
                                'e.g. data={"worker": "w1"}') from exc
    if not isinstance(value, dict):
        raise RequestError(400, f"{where} must be a JSON object of arguments, got {_describe_json(value)}")
    return value


def _decode_arguments(body: bytes, query: str, headers: tornado.httputil.HTTPHeaders) -> dict[str, Any]:
    """The RPC arguments of a request: a ``data`` form field, a JSON body, or ``data`` in the query string."""
    content_type = headers.get("Content-Type", "")
    payload: str | None = None
    if body.strip():
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form: dict[str, list[bytes]] = {}
            try:
                tornado.httputil.parse_body_arguments(content_type, body, form, {}, headers)
            except Exception as exc:  # Tornado >= 6.5 raises on malformed forms
                raise RequestError(400, f"malformed form body ({exc}); send data=<JSON object>") from exc
            if "data" in form:
                payload = _text(form["data"][-1])
        else:
            # A JSON body is the arguments object itself.
            return _parse_json_object(_text(body), "request body")
    if payload is None:
        values = tornado.httputil.parse_qs_bytes(query, keep_blank_values=True).get("data") if query else None
        payload = _text(values[-1]) if values else "{}"
    return _parse_json_object(payload, "'data'")


# CORS, following Luigi's [cors] semantics.
def _allowed_origin(cors: CorsSettings, headers: tornado.httputil.HTTPHeaders) -> str | None:
    origin = headers.get("Origin")
    if not origin:
        return None
    if origin == "null":
        return "null" if cors.allow_null_origin else None
    if cors.allow_any_origin:
        return "*"
    return origin if origin in cors.allowed_origins else None


def _cors_headers(cors: CorsSettings, request_headers: tornado.httputil.HTTPHeaders,
                  answer: tornado.httputil.HTTPHeaders) -> None:
    allowed = _allowed_origin(cors, request_headers)
    if allowed is None:
        return
    answer["Access-Control-Allow-Origin"] = allowed
    if allowed not in ("*", "null"):
        answer["Vary"] = "Origin"
    if cors.allow_credentials:
        answer["Access-Control-Allow-Credentials"] = "true"
    if cors.exposed_headers:
        answer["Access-Control-Expose-Headers"] = cors.exposed_headers


def _cors_preflight(cors: CorsSettings, request_headers: tornado.httputil.HTTPHeaders,
                    answer: tornado.httputil.HTTPHeaders) -> None:
    if _allowed_origin(cors, request_headers) is None:
        return
    _cors_headers(cors, request_headers, answer)
    answer["Access-Control-Allow-Methods"] = cors.allowed_methods
    answer["Access-Control-Allow-Headers"] = cors.allowed_headers
    answer["Access-Control-Max-Age"] = str(cors.max_age)


#: Answers at least this long are gzipped for clients that accept it (as Tornado's ``compress_response``).
_GZIP_MIN_LENGTH = 1024


class _Routes(tornado.httputil.HTTPServerConnectionDelegate):
    """Every request: ``/api/...`` answered by :class:`_ApiRequest`, anything else by the web application.

    Tornado's ``RuleRouter`` would build a full ``HTTPServerRequest`` (query
    arguments parsed and all) for every request just to match its path, and
    put a forwarding delegate in front of the one that answers: a few per
    cent of ``trund``'s CPU per RPC. Here the RPC delegate looks at the
    request line itself and hands any other request to the application.
    """

    def __init__(self, server: TrundServer, pages: tornado.web.Application) -> None:
        self._server = server
        self._pages = pages

    def start_request(self, server_conn: object,
                      request_conn: tornado.httputil.HTTPConnection) -> tornado.httputil.HTTPMessageDelegate:
        return _ApiRequest(self._server, request_conn, server_conn, self._pages)


_NO_HEADERS = tornado.httputil.HTTPHeaders()


class _ApiRequest(tornado.httputil.HTTPMessageDelegate):
    """One ``/api/<method>`` request: read the body, call the scheduler, journal, answer.

    Every worker makes one of these per step, so it talks to Tornado's
    connection directly: a ``RequestHandler`` (with its routing, header
    objects, output transforms and flush machinery) costs more CPU than the
    scheduler call it wraps. ``GET``/``POST`` call the method; ``OPTIONS``
    answers a CORS preflight; other verbs get 405. Errors answer JSON, as
    everywhere on ``/api/``. A request for any other path is passed on, as
    it arrives, to the web application's delegate (see :class:`_Routes`).
    """

    def __init__(self, server: TrundServer, connection: tornado.httputil.HTTPConnection,
                 server_connection: object = None, pages: tornado.web.Application | None = None) -> None:
        self._server = server
        self._connection = connection
        self._server_connection = server_connection
        self._pages = pages
        #: The application's delegate, for a request that is not an RPC (then all is passed on to it).
        self._page: tornado.httputil.HTTPMessageDelegate | None = None
        self._chunks: list[bytes] = []
        self._received = 0
        self._too_large = False
        self._start_line: tornado.httputil.RequestStartLine | None = None
        self._headers: tornado.httputil.HTTPHeaders = _NO_HEADERS  # until headers_received()
        self._started = 0.0

    def headers_received(self, start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
                         headers: tornado.httputil.HTTPHeaders) -> Awaitable[None] | None:
        assert isinstance(start_line, tornado.httputil.RequestStartLine)
        if self._pages is not None and not start_line.path.startswith("/api/"):
            self._page = self._pages.start_request(self._server_connection, self._connection)
            return self._page.headers_received(start_line, headers)
        self._started = time.monotonic()
        self._start_line = start_line
        self._headers = headers
        limit = self._server.max_body_size
        declared_header = headers.get("Content-Length", "")
        declared = int(declared_header) if declared_header.isdigit() else 0
        if declared > limit:
            # Read and discard the body so the client sees our JSON answer
            # instead of a reset connection in the middle of its upload.
            self._too_large = True
        # Tornado's own cap (a bare 400 and a closed connection) only for absurd sizes.
        self._connection.set_max_body_size(max(limit, min(declared, 8 * limit)) + 1)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._page is not None:
            return self._page.data_received(chunk)
        self._received += len(chunk)
        if self._received > self._server.max_body_size:
            self._too_large = True
        if not self._too_large:
            self._chunks.append(chunk)
        else:
            self._chunks.clear()
        return None

    def finish(self) -> None:
        if self._page is not None:
            self._page.finish()
            return
        assert self._start_line is not None
        verb = self._start_line.method
        path, _, query = self._start_line.path.partition("?")
        method = path[len("/api/"):]
        answer = tornado.httputil.HTTPHeaders()
        cors = self._server.cors
        if "/" in method:
            self._answer(404, {"error": f"no such page {path!r}; the RPC API lives under /api/<method>"}, answer)
        elif verb == "OPTIONS":
            if cors.enabled:
                _cors_preflight(cors, self._headers, answer)
            self._send(204, b"", answer)
        elif verb not in ("GET", "POST"):
            answer["Allow"] = "GET, POST, OPTIONS"
            self._answer(405, {"error": "Method Not Allowed"}, answer)
        else:
            try:
                if self._too_large:
                    raise RequestError(413, f"request body is larger than {self._server.max_body_size} bytes "
                                            "([scheduler] max_body_size)")
                arguments = _decode_arguments(b"".join(self._chunks), query, self._headers)
                result: Any = self._server.call(method, arguments)
            except RequestError as exc:
                self._answer(exc.status, {"error": exc.message}, answer)
                return
            self._answer(200, result, answer)

    def on_connection_close(self) -> None:
        if self._page is not None:
            self._page.on_connection_close()
        self._chunks.clear()

    def _answer(self, status: int, body: Any, answer: tornado.httputil.HTTPHeaders) -> None:
        cors = self._server.cors
        if cors.enabled:
            _cors_headers(cors, self._headers, answer)
        answer["Content-Type"] = "application/json; charset=UTF-8"
        data = (body if isinstance(body, str) else _dumps(body)).encode("utf-8")
        if len(data) >= _GZIP_MIN_LENGTH and "gzip" in self._headers.get("Accept-Encoding", ""):
            data = gzip.compress(data, compresslevel=6)
            answer["Content-Encoding"] = "gzip"
            answer.add("Vary", "Accept-Encoding")
        self._send(status, data, answer)

    def _send(self, status: int, data: bytes, answer: tornado.httputil.HTTPHeaders) -> None:
        if status != 204:
            answer["Content-Length"] = str(len(data))
        reason = tornado.httputil.responses.get(status, "Unknown")
        self._connection.write_headers(tornado.httputil.ResponseStartLine("HTTP/1.1", status, reason), answer, data)
        self._connection.finish()
        _log_api_request(status, self._start_line, time.monotonic() - self._started)


class RootPathHandler(_JsonErrorsMixin):
    """``HEAD /`` → 204 (health); ``GET /`` → the visualiser, or a status page until it is installed."""

    def initialize(self, server: TrundServer) -> None:
        self._server = server

    def head(self) -> None:
        self.set_status(204)
        self.finish()

    def get(self) -> None:
        if os.path.exists(_VISUALISER_INDEX):
            # Relative, so it also works behind a reverse proxy that adds a path prefix.
            self.redirect("static/visualiser/index.html")
            return
        rows = "".join(f"<tr><td>{html.escape(status)}</td><td>{count}</td></tr>"
                       for status, count in self._server.status_counts().items())
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            "<!doctype html><html><head><title>trund</title></head><body>"
            "<h1>trund</h1><table><tr><th>status</th><th>steps</th></tr>"
            f"{rows}</table><p>API: <code>/api/&lt;method&gt;</code></p></body></html>")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    _log_status(handler.get_status(), handler._request_summary, handler.request.request_time())


def _log_api_request(status: int, start_line: tornado.httputil.RequestStartLine | None, seconds: float) -> None:
    def summary() -> str:
        if start_line is None:
            return "?"
        return f"{start_line.method} {start_line.path}"
    _log_status(status, summary, seconds)


_ACCESS_LOG = logging.getLogger("tornado.access")  # Tornado's own access log


def _log_status(status: int, summary: Callable[[], str], seconds: float) -> None:
    # Successful RPCs are the steady heartbeat of every worker: keep them at DEBUG.
    access = _ACCESS_LOG
    if status < 400:
        if not access.isEnabledFor(logging.DEBUG):
            return  # the summary below costs more than the request's own logging
        log = access.debug
    elif status < 500:
        log = access.warning
    else:
        log = access.error
    log("%d %s %.2fms", status, summary(), 1000.0 * seconds)


def app(server: TrundServer) -> tornado.httputil.HTTPServerConnectionDelegate:
    """What ``trund``'s HTTP server serves for ``server``.

    Routes: ``/api/<method>`` (:class:`_ApiRequest`, straight on Tornado's
    connection), then a Tornado application with the web UI of
    :mod:`trun.visualiser` (``/``, ``/static/...``, ``/metrics``,
    ``/history...``); without that module, a status page at ``/``.
    """
    handlers: list[Any] = []
    try:
        from trun.visualiser import ui_routes
    except ImportError:
        handlers.append((r"/", RootPathHandler, {"server": server}))
        if os.path.isdir(_STATIC_DIR):
            handlers.append((r"/static/(.*)", tornado.web.StaticFileHandler, {"path": _STATIC_DIR}))
    else:
        handlers.extend(ui_routes(server.scheduler))
    pages = tornado.web.Application(handlers, default_handler_class=NotFoundHandler,
                                    log_function=_log_request, compress_response=True)
    return _Routes(server, pages)


class _HTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server, whose idle connections are closed by a periodic sweep.

    Tornado closes an idle keep-alive connection with a timeout around the
    reading of each request's headers: a timer made and cancelled for every
    request, about 7% of ``trund``'s CPU per RPC. Here the server notes
    when each connection starts waiting for its next request, and
    :meth:`close_idle_connections` (run periodically) closes those that have
    waited longer than ``idle_seconds``, half-sent headers included.
    """

    def initialize(self, *args: Any, idle_seconds: float = DEFAULT_IDLE_CONNECTION_SECONDS,
                   **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self.conn_params.header_timeout = None
        self.idle_seconds = idle_seconds
        self.waiting_since: dict[Any, float] = {}  # IOStream -> when it began waiting for a request

    def start_request(self, server_conn: object,
                      request_conn: tornado.httputil.HTTPConnection) -> tornado.httputil.HTTPMessageDelegate:
        # Called as a connection starts reading its next request.
        self.waiting_since[server_conn.stream] = time.monotonic()  # type: ignore[attr-defined]
        return super().start_request(server_conn, request_conn)

    def close_idle_connections(self, now: float | None = None) -> int:
        """Close the connections idle for more than ``idle_seconds``; returns how many."""
        now = time.monotonic() if now is None else now
        closed = 0
        for stream, since in list(self.waiting_since.items()):
            if stream.closed():
                del self.waiting_since[stream]
            elif now - since > self.idle_seconds:
                del self.waiting_since[stream]
                stream.close()
                closed += 1
        return closed


# ---------------------------------------------------------------- the server
class TrundServer:
    """One scheduler, its durable state and its HTTP listeners.

    ``trund`` (``trun.process``) uses it in three steps so that every start-up
    problem is reported on the terminal before ``--background`` detaches::

        server = TrundServer(state_path=..., ignore_bad_state=...)
        server.load_state()          # BadStateError: refuse to start
        server.bind(8082, "0.0.0.0")  # OSError: port taken
        server.serve_forever()       # until SIGTERM/SIGINT/SIGQUIT; final snapshot

    ``state_path=None`` reads ``[scheduler] state_path``; ``state_path=""``
    keeps no state at all (tests, throw-away schedulers).
    """

    def __init__(
        self,
        scheduler: Any = None,
        *,
        state_path: str | os.PathLike[str] | None = None,
        ignore_bad_state: bool = False,
        journal: bool | None = None,
        max_body_size: int | None = None,
    ) -> None:
        config = _config()
        if scheduler is None:
            from trun.scheduler import Scheduler
            scheduler = Scheduler()
        self.scheduler = scheduler
        if state_path is None:
            state_path = config.get("scheduler", "state_path", DEFAULT_STATE_PATH)
        if journal is None:
            journal = config.getboolean("scheduler", "state_journal", True)
        self.store: StateStore | None = None
        if os.fspath(state_path):
            self.store = StateStore(
                state_path,
                journal=journal,
                snapshot_every_records=config.getint("scheduler", "state_snapshot_records", 20000),
                snapshot_every_seconds=config.getfloat("scheduler", "state_snapshot_interval", 300.0),
                ignore_bad_state=ignore_bad_state,
            )
        self.max_body_size = int(max_body_size if max_body_size is not None
                                 else config.getint("scheduler", "max_body_size", DEFAULT_MAX_BODY_SIZE))
        self.idle_connection_seconds = config.getfloat("scheduler", "idle_connection_timeout",
                                                       DEFAULT_IDLE_CONNECTION_SECONDS)
        if not self.idle_connection_seconds > 0:
            raise ValueError(f"[scheduler] idle_connection_timeout = {self.idle_connection_seconds:g}: "
                             "it must be a number of seconds above 0")
        self.cors = CorsSettings.from_config()
        self.rpc_methods: Mapping[str, inspect.Signature] = _rpc_methods()
        self.sockets: list[socket.socket] = []
        self.unix_socket_path: str | None = None
        self.loaded: LoadedState | None = None
        self._http: _HTTPServer | None = None
        self._periodic: list[tornado.ioloop.PeriodicCallback] = []
        self._stopping: asyncio.Event | None = None
        # Only serve_forever (the trund process) manages the collector: gc.freeze is process-wide.
        self._gc_managed = False
        self._calls_until_freeze = GC_FREEZE_EVERY_CALLS

    # -- start-up, before the IOLoop exists
    def load_state(self) -> LoadedState | None:
        """Lock the state directory and restore the scheduler from it. Raises :class:`BadStateError`."""
        if self.store is None:
            return None
        self.store.lock()
        self.loaded = self.store.restore(self.scheduler)
        return self.loaded

    def bind(self, port: int = 8082, address: str | None = None, unix_socket: str | None = None) -> list[socket.socket]:
        """Open the listening sockets (TCP ``address:port``, or the UNIX socket path). Raises ``OSError``."""
        if unix_socket:
            sock = tornado.netutil.bind_unix_socket(unix_socket)
            self.unix_socket_path = unix_socket
            self.sockets.append(sock)
        else:
            self.sockets.extend(tornado.netutil.bind_sockets(port, address=address))
        return self.sockets

    def file_descriptors(self) -> list[int]:
        """Open descriptors that must survive daemonization (sockets, state lock)."""
        fds = [s.fileno() for s in self.sockets]
        if self.store is not None:
            fds.extend(self.store.open_file_descriptors())
        return fds

    # -- request handling (IOLoop thread only)
    def call(self, method: str, arguments: Mapping[str, Any]) -> str:
        """Validate and run one RPC; return the JSON text of ``{"response": ...}``. Raises :class:`RequestError`."""
        signature = self.rpc_methods.get(method)
        if signature is None:
            raise RequestError(404, f"unknown RPC method {method!r}{_did_you_mean(method, self.rpc_methods)}")
        kwargs = bind_rpc_arguments(method, signature, arguments)
        try:
            result = getattr(self.scheduler, method)(**kwargs)
            body = _dumps({"response": result})
        except Exception as exc:
            logger.exception("scheduler error in %s(%s)", method, ", ".join(sorted(kwargs)))
            self._journal_changes()
            raise RequestError(500, f"scheduler error in {method}: {type(exc).__name__}: {exc}") from exc
        if self._gc_managed:
            self._calls_until_freeze -= 1
            if self._calls_until_freeze <= 0:
                self._calls_until_freeze = GC_FREEZE_EVERY_CALLS
                # Collect first: cyclic garbage of the last requests would
                # otherwise be frozen with the live objects and kept until the
                # next refresh. Cheap: frozen objects are not looked at.
                gc.collect()
                gc.freeze()
        if not self._journal_changes():
            raise RequestError(503, "the scheduler state could not be saved (see the trund log); "
                                    "the change is applied in memory, retry later")
        return body

    def _journal_changes(self) -> bool:
        """Append the scheduler's pending changes to the journal; False if that failed."""
        if self.store is None:
            drain_all_changes(self.scheduler)
            return True
        try:
            self.store.record(self.scheduler)
        except OSError as exc:
            logger.error("could not append to the state journal %s: %s", self.store.journal_path, exc)
            return False
        if self.store.background_compaction_running:
            self._finish_background_snapshot()
        elif self.store.compaction_due():
            self.snapshot(background=True)
        return True

    def _finish_background_snapshot(self) -> None:
        try:
            self.store.poll_background_compaction()
        except OSError as exc:
            logger.error("could not switch to a new state journal in %s: %s", self.store.path, exc)

    def snapshot(self, background: bool = False) -> bool:
        """Write a snapshot now, or start writing one from a forked child (IOLoop thread).

        False, logged, when it could not be written (or started).
        """
        if self.store is None:
            return True
        try:
            if background:
                self.store.start_background_compaction(self.scheduler)
            else:
                drain_all_changes(self.scheduler)
                self.store.compact(self.scheduler.dump_state())
        except (OSError, TypeError, ValueError) as exc:
            logger.error("could not write the state snapshot to %s: %s", self.store.path, exc)
            return False
        return True

    def prune(self) -> None:
        """The periodic prune (every 60 s), journaled like a request."""
        try:
            self.scheduler.prune()
        except Exception:
            logger.exception("scheduler error in prune")
        self._journal_changes()

    def _housekeeping(self) -> None:
        if self.store is None:
            return
        self._finish_background_snapshot()
        if self.store.compaction_due():
            self.snapshot(background=True)

    def status_counts(self) -> dict[str, int]:
        """Number of steps per status, for the status page."""
        counts: dict[str, int] = {}
        for status in _STATUSES_ON_STATUS_PAGE:
            try:
                # max_shown_steps=1: above one step only the count comes back, not the steps.
                listed = self.scheduler.step_list(status, "", True, None, 1)
            except Exception:
                logger.exception("step_list(%s) failed while drawing the status page", status)
                continue
            if isinstance(listed, dict) and set(listed) == {"num_steps"}:
                counts[status] = int(listed["num_steps"])
            else:
                counts[status] = len(listed)
        # step_list may prune, and every change must reach the journal.
        self._journal_changes()
        return counts

    # -- running
    async def start(self) -> None:
        """Start serving on the bound sockets from the running IOLoop (see :meth:`bind`)."""
        if self.loaded is not None:
            for warning in self.loaded.warnings:
                logger.warning("state: %s", warning)
        if self.store is not None:
            self.store.refresh_lock_owner()
            self.store.open_journal(self.scheduler)
        self._http = _HTTPServer(app(self), max_body_size=self.max_body_size + 1,
                                 idle_seconds=self.idle_connection_seconds)
        self._http.add_sockets(self.sockets)
        self._periodic = [
            tornado.ioloop.PeriodicCallback(self.prune, PRUNE_INTERVAL_SECONDS * 1000),
            tornado.ioloop.PeriodicCallback(self._housekeeping, HOUSEKEEPING_INTERVAL_SECONDS * 1000),
            tornado.ioloop.PeriodicCallback(self._http.close_idle_connections,
                                            min(60.0, self.idle_connection_seconds / 2) * 1000),
        ]
        if self._gc_managed:
            self._periodic.append(tornado.ioloop.PeriodicCallback(
                self._refresh_gc, GC_REFRESH_INTERVAL_SECONDS * 1000))
        for callback in self._periodic:
            callback.start()
        logger.info("trund serving on %s (state: %s)", self.describe_listeners(),
                    self.store.path if self.store is not None else "not kept")

    async def stop(self) -> None:
        """Stop listening, write the final snapshot and release the state directory."""
        for callback in self._periodic:
            callback.stop()
        self._periodic = []
        if self._http is not None:
            self._http.stop()
            await asyncio.wait_for(self._http.close_all_connections(), timeout=5)
            self._http = None
        if self.store is not None:
            try:
                self.store.close(self.scheduler)
            except (OSError, TypeError, ValueError) as exc:
                logger.error("could not write the final state snapshot to %s: %s", self.store.path, exc)
        if self.unix_socket_path:
            try:
                os.unlink(self.unix_socket_path)
            except OSError:
                pass
        logger.info("trund stopped")

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to shut down cleanly (safe from a signal handler on the loop)."""
        if self._stopping is not None:
            self._stopping.set()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def _on_signal(self, sig: int) -> None:
        logger.info("received %s, shutting down", signal.Signals(sig).name)
        self.request_stop()

    def _refresh_gc(self) -> None:
        """Collect everything once (frozen objects included), then freeze what survived."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def serve_forever(self) -> None:
        """Run the IOLoop until SIGINT/SIGTERM/SIGQUIT, then stop cleanly (final snapshot).

        While serving, long-lived objects (the loaded state first of all) are
        kept out of the cyclic garbage collector with ``gc.freeze()``.
        """
        self._gc_managed = gc.isenabled() and gc.get_freeze_count() == 0
        if self._gc_managed:
            gc.collect()
            gc.freeze()
        try:
            asyncio.run(self._serve())
        finally:
            if self._gc_managed:
                self._gc_managed = False
                gc.unfreeze()

    def describe_listeners(self) -> str:
        """Human-readable list of what the server listens on."""
        if self.unix_socket_path:
            return f"unix socket {self.unix_socket_path}"
        names = []
        for sock in self.sockets:
            host, port = sock.getsockname()[:2]
            names.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return ", ".join(names)


def run(api_port: int = 8082, address: str | None = None, unix_socket: str | None = None,
        scheduler: Any = None, state_path: str | None = None, ignore_bad_state: bool = False,
        on_ready: Callable[[TrundServer], None] | None = None) -> None:
    """Run a scheduler server in the foreground until a stop signal (Luigi's ``server.run``).

    Raises :class:`trun.state_store.BadStateError` for untrusted state and
    ``OSError`` when the address cannot be bound.
    """
    server = TrundServer(scheduler, state_path=state_path, ignore_bad_state=ignore_bad_state)
    server.load_state()
    server.bind(api_port, address, unix_socket)
    if on_ready is not None:
        on_ready(server)
    server.serve_forever()
