"""Which document a request runs: its text, a trusted document it names, or an APQ hash.

Request forms (docs/persisted-documents.md):
- `{"documentId": "sha256:<hex>"}` (or the bare `<hex>`): a trusted document, or one the APQ
  store holds;
- Apollo's `{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}}`,
  without `query` (run the stored document, or PERSISTED_QUERY_NOT_FOUND) or with it
  (register it once it validates, after checking its hash);
- a plain `query`, which in `only` mode must be the text of a trusted document.

Budgets: an id or hash is checked by length and pattern before anything else (at most
`sha256:` + 64 hex digits); a text is measured against MAX_QUERY_BYTES before it is hashed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import (
    BadUserInputError,
    DocumentNotTrustedError,
    PersistedQueryNotFoundError,
    PersistedQueryNotSupportedError,
    QueryTooComplexError,
)
from api.infra.docstore import PersistedQueryStore
from schema.manifest import TrustedDocument, sha256_hex

PREFIX = "sha256:"
MAX_DOCUMENT_ID = len(PREFIX) + 64
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")  # fullmatch only: `$` lets a trailing newline through
APQ_VERSION = 1


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a request runs, and how it named it."""

    query: str | None
    document_id: str | None = None  # SHA-256 hex of a persisted document, when one was named
    source: str = "adhoc"  # "manifest", "apq" or "adhoc"
    register: bool = False  # an APQ text to store once it validated
    name: str | None = None  # the operation name a manifest gives the document

    @property
    def label(self) -> str:
        """The document id as logs show it (`sha256:<hex>`), if any."""
        return f"{PREFIX}{self.document_id}" if self.document_id else ""


def document_id_of(raw: object) -> str:
    """The lowercase hex of a `documentId` (`sha256:<hex>` or bare `<hex>`)."""
    if not isinstance(raw, str) or len(raw) > MAX_DOCUMENT_ID:
        raise BadUserInputError("documentId", "documentId must be 'sha256:' and 64 hex digits.")
    payload = raw[len(PREFIX) :] if raw.startswith(PREFIX) else raw
    if not _HEX64.fullmatch(payload):
        raise BadUserInputError("documentId", "documentId must be 'sha256:' and 64 hex digits.")
    return payload.lower()


def apq_hash_of(persisted: object) -> str:
    """The lowercase hex of Apollo's `persistedQuery` extension, checked."""
    field = "extensions.persistedQuery"
    if not isinstance(persisted, dict):
        raise BadUserInputError(field, "persistedQuery must be an object.")
    if persisted.get("version") != APQ_VERSION:
        raise BadUserInputError(field, "Only persistedQuery version 1 is supported.")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64 or not _HEX64.fullmatch(digest):
        raise BadUserInputError(f"{field}.sha256Hash", "sha256Hash must be 64 hex digits.")
    return digest.lower()


class PersistedDocuments:
    """The trusted documents, the mode, and the APQ store: resolves each request's document."""

    def __init__(
        self,
        documents: Iterable[TrustedDocument],
        *,
        only: bool,
        apq: bool,
        store: PersistedQueryStore | None,
        max_query_bytes: int,
    ) -> None:
        self._trusted: dict[str, TrustedDocument] = {doc.id: doc for doc in documents}
        self.only = only
        self._owned = store
        self._store = store if apq and not only else None  # only: nothing is registered
        self._lookup = store if apq else None  # only: APQ texts once stored stay unused
        self._max_query_bytes = max_query_bytes
        self._supported = apq or bool(self._trusted)

    def _digest(self, query: str) -> str:
        """A text's SHA-256, after its length (the hash's cost) is checked."""
        limit = self._max_query_bytes
        if len(query) > limit or len(query.encode("utf-8", "surrogatepass")) > limit:
            raise QueryTooComplexError(f"The query text is longer than {limit} bytes.")
        return sha256_hex(query)

    async def _stored(self, digest: str) -> Resolved:
        trusted = self._trusted.get(digest)
        if trusted is not None:
            return Resolved(trusted.text, digest, "manifest", name=trusted.name)
        if not self._supported:
            raise PersistedQueryNotSupportedError()
        if self._lookup is not None and not self.only:
            text = await self._lookup.get(digest)
            if text is not None:
                return Resolved(text, digest, "apq")
        raise PersistedQueryNotFoundError()

    async def resolve(
        self, query: object, document_id: object, extensions: Mapping[str, Any] | None
    ) -> Resolved:
        """The document this request runs; an AppError (a contract code) when it runs none."""
        persisted = extensions.get("persistedQuery") if extensions else None
        if document_id is not None:
            digest = document_id_of(document_id)
            if query is not None:
                raise BadUserInputError("documentId", "Send either documentId or query.")
            return await self._stored(digest)
        if persisted is not None:
            digest = apq_hash_of(persisted)
            if query is None:
                return await self._stored(digest)
            if not isinstance(query, str):
                return Resolved(None)  # strawberry answers an ill-typed query
            if self._digest(query) != digest:
                raise BadUserInputError(
                    "extensions.persistedQuery.sha256Hash",
                    "provided sha does not match query",
                )
            if digest in self._trusted:
                return Resolved(query, digest, "manifest", name=self._trusted[digest].name)
            if self.only:
                raise DocumentNotTrustedError()
            return Resolved(query, digest, "apq", register=self._store is not None)
        if self.only and isinstance(query, str):
            digest = self._digest(query)
            if digest not in self._trusted:
                raise DocumentNotTrustedError()
            return Resolved(query, digest, "manifest", name=self._trusted[digest].name)
        return Resolved(query if isinstance(query, str) else None)

    async def register(self, resolved: Resolved) -> None:
        """Store an APQ text that validated (see Resolved.register)."""
        if self._store is not None and resolved.document_id and resolved.query is not None:
            await self._store.put(resolved.document_id, resolved.query)

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.close()
