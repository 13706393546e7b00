"""Logging: JSON lines (production default) or plain text, each line with its request's context.

Every line written while a request is handled carries that request's `request_id`, and,
once known, its GraphQL `operation`, the `document_id` of a persisted document it named, and
the `user_id` of a verified token. Lines never carry
tokens, passwords, headers or query strings: nothing here logs them, and the access line
names the route, not the URL.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
from contextvars import ContextVar
from dataclasses import dataclass

from pythonjsonlogger.orjson import OrjsonFormatter

LOG_FORMATS = ("json", "text")
CONTEXT_FIELDS = ("request_id", "operation", "operation_type", "document_id", "user_id")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class RequestScope:
    """What is known about the request being handled; filled in as it is learnt."""

    request_id: str
    operation: str | None = None
    operation_type: str | None = None
    document_id: str | None = None  # `sha256:<hex>` of a persisted document the request named
    user_id: str | None = None
    graphql_ok: bool | None = None  # set once a GraphQL operation was answered


_CURRENT: ContextVar[RequestScope | None] = ContextVar("graphgate_request", default=None)


def current_scope() -> RequestScope | None:
    """The scope of the request this code runs for, if any."""
    return _CURRENT.get()


def enter_scope(scope: RequestScope) -> object:
    """Make `scope` current; pass the result to `leave_scope`."""
    return _CURRENT.set(scope)


def leave_scope(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one (no log injection)."""
    if header and _REQUEST_ID.match(header):
        return header
    return secrets.token_hex(16)  # 128 random bits, as a uuid4 has, for a fifth of its cost


class ContextFilter(logging.Filter):
    """Copies the current request's context onto each record (explicit `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _CURRENT.get()
        if scope is not None:
            for name in CONTEXT_FIELDS:
                value = getattr(scope, name)
                if value is not None and not hasattr(record, name):
                    setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The classic line, then the context as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [
            f"{name}={getattr(record, name)}"
            for name in (*CONTEXT_FIELDS, "status", "duration_ms")
            if getattr(record, name, None) is not None
        ]
        if not pairs:
            return line
        head, sep, rest = line.partition("\n")  # keep a traceback below the first line
        return f"{head} {' '.join(pairs)}{sep}{rest}"


def json_formatter() -> logging.Formatter:
    return OrjsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """One handler on the root logger, to stderr, in the chosen format (idempotent)."""
    # What no format here prints is not gathered for every line either (the logging HOWTO's
    # "Optimization"): the caller's frame, thread and process. Halves an access-log line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class ModeLog:
    """A Redis-backed part's mode (Redis answers, or a local fallback), each change logged
    once: INFO when Redis is back, WARNING when it is lost; no line per failed attempt."""

    def __init__(
        self, logger: logging.Logger, up: str, down: str, *, last: bool | None = None
    ) -> None:
        self._logger, self._up, self._down = logger, up, down
        self._last = last  # None: the first mode seen is logged too

    def note(self, up: bool) -> None:
        """Record the current mode; log it when it differs from the last one logged."""
        if up == self._last:
            return
        self._last = up
        if up:
            self._logger.info(self._up)
        else:
            self._logger.warning(self._down)
