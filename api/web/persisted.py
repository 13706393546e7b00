"""The web side of persisted and trusted documents: the manifest and the APQ store built for
one app, and what a request that named a document leaves in the access log and the metrics
(schema/persisted.py decides which document a request runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from api.errors import AppError
from api.infra.docstore import PersistedQueryStore
from api.infra.logs import current_scope
from api.infra.metrics import Metrics
from api.settings import Settings
from schema.manifest import TrustedDocument
from schema.persisted import PersistedDocuments, Resolved


def persisted_documents(
    settings: Settings, documents: tuple[TrustedDocument, ...]
) -> PersistedDocuments:
    """The app's documents: the checked manifest, and an APQ store unless APQ is off."""
    store = (
        PersistedQueryStore(settings.redis_url, max_text_bytes=settings.max_query_bytes)
        if settings.persisted_queries
        else None
    )
    return PersistedDocuments(
        documents,
        only=settings.trusted_documents_mode == "only",
        apq=settings.persisted_queries,
        store=store,
        max_query_bytes=settings.max_query_bytes,
    )


def store_ctx(
    documents: PersistedDocuments,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context closing the APQ store's Redis connections at shutdown."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await documents.close()

    return ctx


def refused_error(error: AppError) -> GraphQLError:
    """The GraphQL error of a request refused before execution (a request error)."""
    return GraphQLError(error.message, extensions=error.extensions)


def ran(result: ExecutionResult) -> bool:
    """The operation executed: it parsed and validated (an error with a path is a field's)."""
    return result.data is not None or any(error.path for error in result.errors or ())


def note_document(
    metrics: Metrics, resolved: Resolved | None, operation: str | None, outcome: str
) -> None:
    """The document id on the request's log lines, and one count in the metrics; a refused
    request (`resolved` None, `outcome` its code) is counted under source `refused`."""
    if resolved is None:
        metrics.persisted.labels("refused", "", metrics.operation_label(operation), outcome).inc()
        return
    if resolved.document_id is None:
        return  # an ad-hoc text: nothing more to say than the access line does
    scope = current_scope()
    if scope is not None:
        scope.document_id = resolved.label
    document = resolved.label if resolved.source == "manifest" else resolved.source
    metrics.persisted.labels(
        resolved.source, document, metrics.operation_label(operation), outcome
    ).inc()
