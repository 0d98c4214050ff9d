"""Client side of the ``trund`` wire protocol: :class:`RemoteScheduler` and :class:`RPCError`.

``RemoteScheduler(url)`` has one method per scheduler RPC method
(``trun.scheduler.RPC_METHODS``; generated from that table, so the two cannot
drift apart), each posting ``data=<JSON kwargs>`` to ``<url>/api/<method>``
and returning the ``response`` field of the answer.

Transport is the standard library's ``http.client``: ``http://``,
``https://``, basic auth from ``http://user:password@host/``, and
``http+unix://%2Fpath%2Fto%2Fsocket/`` for a ``trund --unix-socket``. A
connection is kept alive per thread and per process, so the client is safe to
use from several threads and after ``fork()`` (a child never reuses its
parent's socket).

Failures to reach the scheduler (refused, reset, timed out, HTTP 502/503/504)
are retried with exponential backoff (1 s, 2 s, 4 s ... capped at ``[core]
rpc_retry_wait``): at least ``rpc_retry_attempts`` attempts, and as long as
``(rpc_retry_attempts - 1) * rpc_retry_wait`` seconds have not passed — the
same patience as Luigi's fixed waits, but a restarted ``trund`` is noticed
within seconds. Then :class:`RPCError` says which scheduler URL could not be
reached and why. A 4xx answer (a bad request) or a 500 (the scheduler
raised) is not retried: the same call would fail the same way.

Hazards: a request whose answer was lost may be retried, so the scheduler may
see it twice; scheduler RPCs are designed to be idempotent. Neither importing
this module nor a successful call imports Tornado (tenacity, which imports
Tornado whenever it is installed, is loaded only once a retry is needed).
"""
from __future__ import annotations

import base64
import http.client
import inspect
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit, urlunsplit

__all__ = ["RPCError", "RemoteScheduler"]

logger = logging.getLogger("trun-interface")

# 500 is a scheduler exception: retrying the same call would fail the same way.
_RETRYABLE_STATUS = {502, 503, 504}


class RPCError(Exception):
    """The scheduler could not be reached, or refused the request; the message names the URL and why."""

    def __init__(self, message: str, sub_exception: BaseException | None = None) -> None:
        super().__init__(message)
        self.sub_exception = sub_exception


class _TransientError(Exception):
    """A failure worth retrying (network trouble, 5xx)."""


class _ResponseHeaders(dict):
    """Response headers by lower-case name (a repeated header keeps its last value).

    Enough of ``http.client.HTTPMessage`` for :class:`_LeanResponse` and for
    ``getheader``/``getheaders``; building it costs a fraction of the
    ``email`` parser ``http.client`` uses.
    """

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def get_all(self, name: str, failobj: Any = None) -> Any:
        value = dict.get(self, name.lower())
        return failobj if value is None else [value]


class _LeanResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` with a cheaper header parser (a worker reads one response per step).

    Hazard: relies on ``http.client``'s ``_read_status`` and ``_read_headers``
    (unchanged from Python 3.5 to 3.13); the body is read by the standard code.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return  # already begun
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]  # skip a 100-continue's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = _ResponseHeaders()
        for line in http.client._read_headers(self.fp):  # type: ignore[attr-defined]
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        self.headers = self.msg = headers  # type: ignore[assignment]
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.chunk_left = None
        connection = headers.get("connection", "").lower()
        self.will_close = ("close" in connection if self.version == 11
                           else "keep-alive" not in connection and "keep-alive" not in headers)
        self.length = None
        length = headers.get("content-length")
        if length is not None and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200
                or self._method == "HEAD"):  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _OneSendMixin:
    """Sends request line, headers and body in one ``send()``; reads answers with :class:`_LeanResponse`.

    ``http.client`` sends the headers and the body of a request separately:
    two system calls, and two wake-ups of ``trund``, which then reads the
    request in two rounds of its event loop. An RPC is small, so one send is
    cheaper on both sides. Hazard: overrides ``http.client``'s internal
    ``_send_output`` (unchanged from Python 3.5 to 3.13); anything but a
    plain ``bytes`` body goes the standard way.
    """

    _buffer: list[bytes]
    response_class = _LeanResponse

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        # No "Accept-Encoding: identity": without the header the answer is not
        # compressed either, and trund parses one header line less per request.
        super().putrequest(method, url, skip_host=skip_host, skip_accept_encoding=True)  # type: ignore[misc]

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes) and not encode_chunked:
            self._buffer.extend((b"", message_body))
            message = b"\r\n".join(self._buffer)
            del self._buffer[:]
            self.send(message)  # type: ignore[attr-defined]
            return
        super()._send_output(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]


class _HTTPConnection(_OneSendMixin, http.client.HTTPConnection):
    """``http.client.HTTPConnection`` sending each request in one piece."""


class _HTTPSConnection(_OneSendMixin, http.client.HTTPSConnection):
    """``http.client.HTTPSConnection`` sending each request in one piece."""


class _UnixHTTPConnection(_OneSendMixin, http.client.HTTPConnection):
    """``http.client`` over an AF_UNIX socket (``http+unix://`` URLs)."""

    def __init__(self, socket_path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _Endpoint:
    """Where and how to connect, parsed once from the scheduler URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("http", "https", "http+unix"):
            raise ValueError(f"unsupported scheduler URL {_redact_url(url)!r}: expected http://host:port/, "
                             "https://host:port/ or http+unix://%2Fpath%2Fto%2Fsocket/")
        self.path_prefix = parts.path.rstrip("/")
        self.authorization: str | None = None
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        netloc = parts.netloc.rpartition("@")[2]
        if self.scheme == "http+unix":
            self.socket_path = unquote(netloc)
            if not self.socket_path:
                raise ValueError(f"scheduler URL {url!r} names no socket; expected http+unix://%2Fpath%2Fto%2Fsocket/")
            self.host_header = "localhost"
        else:
            self.socket_path = ""
            self.hostname = parts.hostname or "localhost"
            self.port = parts.port
            self.host_header = netloc
        #: The headers of every RPC request (read-only: shared by all requests).
        # As few as HTTP/1.1 allows: Tornado parses header lines in Python, a
        # good part of what a small request costs trund.
        self.request_headers = {"Content-Type": "application/x-www-form-urlencoded", "Host": self.host_header}
        if self.authorization:
            self.request_headers["Authorization"] = self.authorization

    def connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.scheme == "http+unix":
            return _UnixHTTPConnection(self.socket_path, timeout=timeout)
        if self.scheme == "https":
            return _HTTPSConnection(self.hostname, self.port, timeout=timeout,
                                    context=ssl.create_default_context())
        return _HTTPConnection(self.hostname, self.port, timeout=timeout)


class RemoteScheduler:
    """Talks to a ``trund`` over HTTP; has every method of ``trun.scheduler.Scheduler`` that is an RPC.

    ``url`` is ``http://host:port/`` (a path prefix is kept, for a scheduler behind
    a reverse proxy), ``https://…``, ``http://user:password@host:port/`` or
    ``http+unix://%2Fpath%2Fto%2Fsocket/``. ``connect_timeout`` (seconds, per
    attempt) defaults to ``[core] rpc_connect_timeout`` (10).
    """

    def __init__(self, url: str = "http://localhost:8082/", connect_timeout: float | None = None) -> None:
        from trun.configuration import get_config

        self._url = url.rstrip("/")
        self._log_url = _redact_url(self._url)
        self._endpoint = _Endpoint(url)
        config = get_config()
        if connect_timeout is None:
            connect_timeout = config.getfloat("core", "rpc_connect_timeout", 10.0)
        self._connect_timeout = connect_timeout
        self._rpc_retry_attempts = max(1, config.getint("core", "rpc_retry_attempts", 3))
        self._rpc_retry_wait = max(0.0, config.getfloat("core", "rpc_retry_wait", 30.0))
        self._rpc_log_retries = config.getboolean("core", "rpc_log_retries", True)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"RemoteScheduler({self._log_url!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Connections stay with the process that opened them (spawned children pickle us).
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ---------------------------------------------------------------- transport
    def _connection(self) -> http.client.HTTPConnection:
        pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != pid:
            # After fork() the parent's socket is not ours to use: start afresh.
            conn = self._endpoint.connect(self._connect_timeout)
            self._local.conn = conn
            self._local.pid = pid
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    def close(self) -> None:
        """Close this thread's connection (a new one is opened on the next call)."""
        self._drop_connection()

    def _post_once(self, path: str, body: bytes) -> tuple[int, bytes]:
        headers = self._endpoint.request_headers
        # A kept-alive connection may have been closed by the server while idle;
        # that shows up on first use, so one fresh connection is tried at once.
        for fresh in (False, True):
            reused = getattr(self._local, "conn", None) is not None and not fresh
            conn = self._connection()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop_connection()
                if reused:
                    continue
                raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "no details"
                raise _TransientError(f"{type(exc).__name__}: {reason}") from exc
            if response.will_close:
                self._drop_connection()
            return response.status, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, url_suffix: str, body: Mapping[str, str]) -> str:
        """POST the form ``body`` to ``<url><url_suffix>`` with retries; return the answer text."""
        path = self._endpoint.path_prefix + (url_suffix if url_suffix.startswith("/") else "/" + url_suffix)
        encoded = "&".join(f"{quote_plus(key)}={_form_quote(value)}" for key, value in body.items()).encode("utf-8")

        def attempt() -> str:
            status, data = self._post_once(path, encoded)
            text = data.decode("utf-8", errors="replace")
            if status in _RETRYABLE_STATUS:
                raise _TransientError(f"HTTP {status}: {_error_text(text)}")
            if status >= 400:
                verb = "failed on" if status >= 500 else "refused"
                raise RPCError(f"remote scheduler {self._log_url!r} {verb} {url_suffix}: HTTP {status}: "
                               f"{_error_text(text)}")
            return text

        started = time.monotonic()
        try:
            return attempt()
        except _TransientError as exc:
            return self._retry(attempt, exc, started)

    def _retry(self, attempt: Callable[[], str], failure: _TransientError, started: float) -> str:
        """Keep trying ``attempt`` after its first ``failure``; :class:`RPCError` once patience runs out."""
        attempts = self._rpc_retry_attempts
        budget = (attempts - 1) * self._rpc_retry_wait
        if attempts <= 1:
            raise self._unreachable(failure, 1)
        # Imported only when the scheduler is unreachable: tenacity imports Tornado
        # when it is installed, which a worker with a healthy scheduler never needs.
        from tenacity import RetryCallState, Retrying, retry_if_exception_type

        def after_failure(attempt_number: int, exc: BaseException | None) -> float:
            delay = self._backoff(attempt_number)
            if self._rpc_log_retries:
                logger.warning("Failed connecting to remote scheduler %r (attempt %d): %s; retrying in %.1f s",
                               self._log_url, attempt_number, exc, delay)
            return delay

        time.sleep(after_failure(1, failure))

        # tenacity counts from the second attempt; ours count from the first.
        def stop(state: RetryCallState) -> bool:
            return state.attempt_number + 1 >= attempts and time.monotonic() - started >= budget

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return after_failure(state.attempt_number + 1, exc)

        retrying = Retrying(retry=retry_if_exception_type(_TransientError), stop=stop, wait=wait, reraise=True)
        try:
            return retrying(attempt)
        except _TransientError as exc:
            raise self._unreachable(exc, 1 + retrying.statistics.get("attempt_number", 1)) from exc

    def _unreachable(self, exc: _TransientError, attempts_made: int) -> RPCError:
        return RPCError(f"could not reach remote scheduler {self._log_url!r} after {attempts_made} attempt(s): {exc}",
                        exc.__cause__ or exc)

    def _backoff(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures: 1, 2, 4 ... capped at ``rpc_retry_wait``."""
        if self._rpc_retry_wait <= 0:
            return 0.0
        delay = min(self._rpc_retry_wait, 2.0 ** (failed_attempts - 1))
        # A little jitter so that many workers do not reconnect in lockstep after a restart.
        return delay * random.uniform(0.9, 1.1)

    def _request(self, url: str, data: Mapping[str, Any], attempts: int = 3, allow_null: bool = True) -> Any:
        """Call one RPC: ``url`` is ``/api/<method>``, ``data`` its keyword arguments."""
        body = {"data": json.dumps(data)}
        for _ in range(attempts):
            page = self._fetch(url, body)
            try:
                response = json.loads(page)["response"]
            except (ValueError, KeyError, TypeError) as exc:
                raise RPCError(f"remote scheduler {self._log_url!r} gave an answer that is not trund's "
                               f"{{\"response\": ...}} JSON: {page[:200]!r}", exc) from exc
            if allow_null or response is not None:
                return response
        raise RPCError(f"Received null response from remote scheduler {self._log_url!r}")


def _form_quote(value: str) -> str:
    """``value`` escaped for an ``application/x-www-form-urlencoded`` body.

    JSON with ``ensure_ascii`` is printable ASCII, where only ``%``, ``&``,
    ``+`` and space mean something to a form parser: escaping just those is
    much cheaper than ``quote_plus`` (which works byte by byte in Python) on
    a large ``add_steps`` request, and decodes to the same text.
    """
    if value.isascii() and value.isprintable():
        return value.replace("%", "%25").replace("&", "%26").replace("+", "%2B").replace(" ", "+")
    return quote_plus(value)


def _error_text(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty answer)"
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return text.strip()[:300]


# Per-method transport options when the scheduler does not list them in
# RPC_REQUEST_ARGS, as in Luigi: get_work insists on a non-null answer; ping is
# a heartbeat, so one failed round is simply the next one's job.
_DEFAULT_REQUEST_OPTIONS: dict[str, dict[str, Any]] = {
    "get_work": {"allow_null": False},
    "ping": {"attempts": 1},
}


def _client_parameters(signature: inspect.Signature) -> inspect.Signature:
    params = list(signature.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return signature.replace(parameters=params)


def _make_rpc_method(name: str, signature: inspect.Signature,
                     options: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    call_signature = _client_parameters(signature)
    options = dict(options if options is not None else _DEFAULT_REQUEST_OPTIONS.get(name, {}))
    var_keyword = next((p.name for p in call_signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    # Keyword arguments only, every one a known name, every required one there
    # (how the worker calls, once per step): the arguments as given, without
    # Signature.bind, which costs more than encoding them.
    by_keyword = frozenset(p.name for p in call_signature.parameters.values()
                           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    required = frozenset(p.name for p in call_signature.parameters.values()
                         if p.name in by_keyword and p.default is p.empty)
    simple = var_keyword is None

    def rpc_method(self: RemoteScheduler, *args: Any, **kwargs: Any) -> Any:
        if simple and not args and kwargs.keys() <= by_keyword and required <= kwargs.keys():
            return self._request(f"/api/{name}", kwargs, **options)
        try:
            bound = call_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        arguments = dict(bound.arguments)
        if var_keyword is not None:
            arguments.update(arguments.pop(var_keyword, {}))
        return self._request(f"/api/{name}", arguments, **options)

    rpc_method.__name__ = name
    rpc_method.__qualname__ = f"RemoteScheduler.{name}"
    rpc_method.__doc__ = f"Call ``{name}`` on the remote scheduler (see ``trun.scheduler.Scheduler.{name}``)."
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    rpc_method.__signature__ = call_signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *call_signature.parameters.values()])
    return rpc_method


def _install_rpc_methods() -> None:
    import trun.scheduler

    request_args: Mapping[str, Mapping[str, Any]] = getattr(trun.scheduler, "RPC_REQUEST_ARGS", {})
    for name, signature in trun.scheduler.RPC_METHODS.items():
        setattr(RemoteScheduler, name, _make_rpc_method(name, signature, request_args.get(name)))
    if "add_steps" not in trun.scheduler.RPC_METHODS:
        # trun's bulk add_step; kept callable even against a table that lacks it.
        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        bulk = inspect.Signature([inspect.Parameter(name, positional) for name in ("self", "worker", "steps")])
        RemoteScheduler.add_steps = _make_rpc_method("add_steps", bulk)  # type: ignore[attr-defined]


_install_rpc_methods()
