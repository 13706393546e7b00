"""Prometheus metrics: one registry per app (tests build many apps; nothing is global).

With several worker processes (`serve --workers N`), `serve` points PROMETHEUS_MULTIPROC_DIR
at a fresh folder before the workers start; each worker then writes its samples there and
`/metrics`, whichever worker answers, reports the sum over all of them.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TypeGuard

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATION_NAMES = 200  # distinct operation names kept as labels; the rest are "other"
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")  # fullmatch: `$` allows a "\n"


def is_operation_name(name: object) -> TypeGuard[str]:
    """A GraphQL Name of at most 64 characters: safe to log and to use as a label. Anything
    else a client sends as `operationName` (a number, a list) is not one."""
    return isinstance(name, str) and _OPERATION_NAME.fullmatch(name) is not None


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every counter and histogram graphgate exports; services increment them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.graphql_requests = Counter(
            "graphgate_graphql_requests",
            "GraphQL operations answered, by operation name, type and outcome (ok or error).",
            ["operation", "type", "outcome"],
            registry=r,
        )
        self.graphql_duration = Histogram(
            "graphgate_graphql_request_duration_seconds",
            "Time to answer a GraphQL request, by operation name and type.",
            ["operation", "type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "graphgate_http_requests",
            "HTTP requests answered, by route and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.logins = Counter(
            "graphgate_logins", "Sign-in attempts by outcome.", ["outcome"], registry=r
        )
        self.refreshes = Counter(
            "graphgate_token_refreshes",
            "Refresh-token rotations that issued a new pair.",
            registry=r,
        )
        self.refresh_reuse = Counter(
            "graphgate_refresh_reuse_detected",
            "Spent refresh tokens presented again (the session was ended).",
            registry=r,
        )
        self.revocations = Counter(
            "graphgate_sessions_revoked",
            "Sessions ended, by reason (logout, revoked, reuse, password_changed, ...).",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "graphgate_rate_limit_hits",
            "GraphQL answers that carried a RATE_LIMITED error.",
            registry=r,
        )
        self.persisted = Counter(
            "graphgate_persisted_documents",
            "Requests that named a persisted document, by source (manifest or apq), document "
            "(a manifest's sha256 id; every APQ document is 'apq'), operation and outcome "
            "(ran, or the refusal's code).",
            ["source", "document", "operation", "outcome"],
            registry=r,
        )
        self._operation_names: set[str] = set()

    def operation_label(self, name: object) -> str:
        """A bounded label for a client-chosen operation name (labels must not grow forever)."""
        if not name:
            return "anonymous"
        if not is_operation_name(name):
            return "invalid"
        if name in self._operation_names:
            return name
        if len(self._operation_names) >= MAX_OPERATION_NAMES:
            return "other"
        self._operation_names.add(name)
        return name

    def observe_graphql(self, name: str | None, kind: str, *, ok: bool, seconds: float) -> None:
        """Count one answered GraphQL operation and its latency."""
        label = self.operation_label(name)
        outcome = "ok" if ok else "error"
        # Positional labels (in declaration order): a third cheaper than keywords.
        self.graphql_requests.labels(label, kind, outcome).inc()
        self.graphql_duration.labels(label, kind).observe(seconds)

    def exposition_registry(self) -> CollectorRegistry:
        """What /metrics reports: this process, or every worker when they share a folder."""
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
        return merged


def share_metrics_between_workers() -> str:
    """Before starting worker processes: one folder where each worker writes its samples.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used (emptied first, as the client
    library requires); otherwise a temporary folder is made and removed at exit.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
        return folder
    folder = tempfile.mkdtemp(prefix="graphgate-metrics-")
    os.environ[MULTIPROC_ENV] = folder  # inherited by the spawned workers
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
