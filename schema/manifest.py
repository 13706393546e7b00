"""Trusted-documents manifests: read in the formats client tools write, and checked at start.

Two formats are read:
- Apollo's persisted query manifest (`@apollo/generate-persisted-query-manifest`):
  `{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "name",
  "type", "body"}]}`;
- GraphQL Code Generator's client preset `persisted-documents.json`: `{"<id>": "<document>"}`
  (with `hashAlgorithm: 'sha256'`).

Every id must be the SHA-256 (hex) of its document's text: Apollo Client's persisted-queries
link and the `sha256:` document ids name documents that way, so a request can be checked
against its text. Every document is parsed and validated against the schema and the MAX_*
limits once (`check_documents`); the first one that fails stops the server from starting,
named by its operation name and id.

Budgets: the file at most MAX_MANIFEST_BYTES (checked before it is read), at most
MAX_MANIFEST_DOCUMENTS documents, each within MAX_QUERY_BYTES and MAX_TOKENS.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode

from api.settings import Settings
from schema.documents import ValidationResults, parse_unlinked
from schema.limits import all_rules, limits_for

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_MANIFEST_DOCUMENTS = 5_000
APOLLO_FORMAT = "apollo-persisted-query-manifest"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SHA1_HEX = re.compile(r"^[0-9a-f]{40}$")


class ManifestError(Exception):
    """The manifest cannot be used; the message names the file or the document at fault."""


@dataclass(frozen=True, slots=True)
class TrustedDocument:
    id: str  # SHA-256 of `text`, lowercase hex
    name: str | None  # the operation name, as the manifest states it
    text: str

    @property
    def label(self) -> str:
        """How messages name the document: its operation name and the start of its id."""
        name = f"operation {self.name!r}" if self.name else "an unnamed document"
        return f"{name} (sha256:{self.id[:16]}…)"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _entries(data: Any) -> Iterable[tuple[Any, Any, Any]]:
    """(id, name, text) of each document, whatever the format."""
    if isinstance(data, dict) and data.get("format") == APOLLO_FORMAT:
        if data.get("version") != 1:
            raise ManifestError(f"{APOLLO_FORMAT} version {data.get('version')!r} is not 1")
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ManifestError("an Apollo manifest needs an 'operations' list")
        for operation in operations:
            if not isinstance(operation, dict):
                raise ManifestError("each of 'operations' must be an object")
            yield operation.get("id"), operation.get("name"), operation.get("body")
        return
    if isinstance(data, dict):  # GraphQL Code Generator: id -> document
        for key, text in data.items():
            yield key, None, text
        return
    raise ManifestError(
        f"not a manifest: expected an Apollo persisted query manifest ({APOLLO_FORMAT}) or a "
        "GraphQL Code Generator persisted-documents.json object"
    )


def parse_manifest(raw: bytes) -> tuple[TrustedDocument, ...]:
    """The documents of a manifest's bytes, their ids checked against their texts."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest is over {MAX_MANIFEST_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"not JSON: {exc}") from None
    documents: dict[str, TrustedDocument] = {}
    for count, (key, name, text) in enumerate(_entries(data), start=1):
        if count > MAX_MANIFEST_DOCUMENTS:
            raise ManifestError(f"more than {MAX_MANIFEST_DOCUMENTS} documents")
        if not isinstance(key, str) or not isinstance(text, str):
            raise ManifestError(f"document #{count}: its id and its text must be strings")
        if name is not None and not isinstance(name, str):
            raise ManifestError(f"document #{count}: its name must be a string")
        document = TrustedDocument(key.lower(), name, text)
        if not _SHA256_HEX.match(document.id):
            hint = (
                " (a SHA-1: set hashAlgorithm: 'sha256' in the client preset's persistedDocuments)"
                if _SHA1_HEX.match(document.id)
                else ""
            )
            raise ManifestError(f"{document.label}: its id is not a SHA-256 hex digest{hint}")
        if sha256_hex(text) != document.id:
            raise ManifestError(f"{document.label}: its id is not the SHA-256 of its text")
        documents[document.id] = document
    if not documents:
        raise ManifestError("the manifest holds no document")
    return tuple(documents.values())


def read_manifest(path: str | Path) -> tuple[TrustedDocument, ...]:
    """The documents of the manifest file at `path` (its size checked before reading)."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{file}: over {MAX_MANIFEST_BYTES} bytes ({size})")
        raw = file.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{file}: {exc.strerror or exc}") from None
    try:
        return parse_manifest(raw)
    except ManifestError as exc:
        raise ManifestError(f"{file}: {exc}") from None


def _first_problem(errors: Iterable[GraphQLError]) -> str:
    return "; ".join(error.message for error in list(errors)[:3])


def check_documents(
    documents: Iterable[TrustedDocument],
    schema: GraphQLSchema,
    settings: Settings,
    results: ValidationResults,
) -> None:
    """Parse and validate each document as a request's would be (limits first, then every
    rule); keep each in `results` for the prepared path. ManifestError names the first one
    that fails."""
    limits = limits_for(settings)
    rules = all_rules(settings)
    for document in documents:
        size = len(document.text.encode("utf-8", "surrogatepass"))
        if size > settings.max_query_bytes:
            raise ManifestError(
                f"{document.label}: {size} bytes, over MAX_QUERY_BYTES={settings.max_query_bytes}"
            )
        try:
            parsed, weight = parse_unlinked(document.text, {"max_tokens": settings.max_tokens})
        except GraphQLError as exc:
            raise ManifestError(f"{document.label} does not parse: {exc.message}") from None
        operations = [
            node for node in parsed.definitions if isinstance(node, OperationDefinitionNode)
        ]
        if not operations:
            raise ManifestError(f"{document.label} holds no operation")
        if document.name is None and operations[0].name is not None:  # named in messages
            document = replace(document, name=operations[0].name.value)
        errors = limits.validate(schema, parsed, rules)
        if errors:
            raise ManifestError(f"{document.label} is invalid: {_first_problem(errors)}")
        results.pin(document.text, parsed, weight)
