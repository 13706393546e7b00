"""Documents seen before: one cache of parsed documents and their validation errors, keyed
on a digest of the text and bounded in bytes, and the parse step that fills it.

A text over MAX_QUERY_BYTES is refused with QUERY_TOO_COMPLEX before it is hashed or parsed.
An entry is charged the memory its text and its tokens' own text take (sys.getsizeof: one
astral character makes CPython store a whole text at 4 bytes per character, and a comment's
token keeps its own copy) plus a fixed cost per token: a parsed document keeps every token
(comments included, ~600 bytes each here), so 2,000 tokens hold ~1.2 MB whatever the text's
length; the cache drops its least recently used entries past its byte budget.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, Token
from graphql.language.parser import Parser, nested_too_deeply_error
from strawberry.extensions import SchemaExtension

from api.errors import QueryTooComplexError

TOO_COMPLEX = QueryTooComplexError.code
BYTES_PER_TOKEN = 600  # measured with tracemalloc: AST node + token objects per token


def document_weight(query: str, document: DocumentNode) -> int:
    """What keeping `document` costs in memory, roughly: its text and its tokens."""
    weight = sys.getsizeof(query)
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        weight += BYTES_PER_TOKEN
        if token.value:  # its own string (a comment's text, a name, a number)
            weight += sys.getsizeof(token.value)
        token = token.next
    return weight


def parse_unlinked(query: str, options: Mapping[str, Any]) -> tuple[DocumentNode, int]:
    """graphql-core's `parse`, then the lexer's token chain broken up; with the document's
    weight, measured before.

    Tokens form a doubly linked list: a reference cycle, freed only when the cyclic garbage
    collector runs. A document full of large comments (an astral character makes a 64 KB
    text take 256 KB) left that much per request waiting for it: RSS rose by hundreds of MiB
    between collections. Unlinked, a comment token (no node refers to it) is freed at once,
    and the rest when the document leaves the cache; a text that fails to parse leaves
    nothing behind either. Locations in errors come from the nodes, which keep their
    start and end tokens."""
    parser = Parser(query, **options)
    try:
        try:
            document = parser.parse_document()
        except RecursionError:  # as `parse` does: a syntax error, not a crash
            raise nested_too_deeply_error(parser) from None
        return document, document_weight(query, document)
    finally:
        _unlink(parser._lexer.token)  # graphql-core's own lexer: its last token


def _unlink(token: Token | None) -> None:
    ahead = token.next if token is not None else None
    while token is not None:
        token.next, token.prev, token = None, None, token.prev
    while ahead is not None:
        ahead.prev, ahead.next, ahead = None, None, ahead.next


@dataclass(slots=True)
class _Entry:
    document: DocumentNode
    weight: int
    errors: tuple[GraphQLError, ...] | None = None  # None: not validated yet


class ValidationResults:
    """digest of a query text -> its parsed document and, once validated, its errors; least
    recently used out first, past `max_entries` or `max_bytes` (see document_weight).

    The schema and the rules never change, so the text decides the outcome; strawberry's
    ValidationCache keys on the parsed document instead, and hashes every node of it on each
    request. A text over `max_query_bytes` is never hashed nor kept.

    A text is kept the second time it is seen: the first time only its digest is noted.
    Clients send the same operations again and again; a flood of texts made distinct by a
    random comment never fills the cache, whose objects every full garbage collection
    walks (a full cache of large documents made each one a 50-60 ms pause)."""

    def __init__(self, max_entries: int, max_bytes: int, max_query_bytes: int) -> None:
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Trusted documents (a manifest), checked at start: never dropped, never counted.
        self._pinned: dict[bytes, _Entry] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()  # digests seen once
        self._max_seen = 4 * max_entries
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self.max_query_bytes = max_query_bytes
        self.bytes = 0
        self._last: tuple[str, bytes] | None = None  # parse, validate and execute ask in turn

    def _key(self, query: str) -> bytes | None:
        last = self._last
        if last is not None and last[0] is query:
            return last[1]
        if len(query) > self.max_query_bytes:  # never hash what is refused anyway
            return None
        data = query.encode("utf-8", "surrogatepass")
        if len(data) > self.max_query_bytes:
            return None
        key = hashlib.blake2b(data, digest_size=16).digest()
        self._last = (query, key)
        return key

    def _entry(self, query: str) -> _Entry | None:
        key = self._key(query)
        if key is None:
            return None
        pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def document(self, query: str) -> DocumentNode | None:
        """The parsed document of a text seen before."""
        entry = self._entry(query)
        return None if entry is None else entry.document

    def get(self, query: str) -> tuple[GraphQLError, ...] | None:
        """The validation errors of a text validated before (empty: valid)."""
        entry = self._entry(query)
        return None if entry is None else entry.errors

    def valid_document(self, query: str) -> DocumentNode | None:
        """The document of a text that parsed and validated without errors, if known."""
        entry = self._entry(query)
        return entry.document if entry is not None and entry.errors == () else None

    def put_document(self, query: str, document: DocumentNode, weight: int | None = None) -> None:
        """Keep a freshly parsed document (its errors come with `put`)."""
        key = self._key(query)
        if key is None or key in self._entries:
            return
        if self._seen.pop(key, False) is False:  # first sight: remember the digest only
            self._seen[key] = None
            if len(self._seen) > self._max_seen:
                self._seen.popitem(last=False)
            return
        entry = _Entry(document, document_weight(query, document) if weight is None else weight)
        self._entries[key] = entry
        self.bytes += entry.weight
        while self._entries and (
            len(self._entries) > self._max_entries or self.bytes > self._max_bytes
        ):
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.weight

    def pin(self, query: str, document: DocumentNode, weight: int) -> None:
        """Keep a document that parsed and validated without errors at start (a trusted
        document) for the server's lifetime: its requests always take the prepared path."""
        key = self._key(query)
        if key is not None:
            self._pinned[key] = _Entry(document, weight, ())

    def put(self, query: str, errors: tuple[GraphQLError, ...], document: DocumentNode) -> None:
        """Remember how a text validated (when the text is kept: see `put_document`)."""
        entry = self._entry(query)
        if entry is not None:
            entry.errors = errors


class ParseOnce(SchemaExtension):
    """Parse a text once: a text over MAX_QUERY_BYTES is refused before parsing, a text seen
    before reuses its document (replaces strawberry's ParserCache, which keys on the text)."""

    def __init__(self, cache: ValidationResults) -> None:
        super().__init__()
        self._cache = cache

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query
        if query is not None:
            limit = self._cache.max_query_bytes
            if len(query) > limit or len(query.encode("utf-8", "surrogatepass")) > limit:
                raise GraphQLError(
                    f"The query text is longer than {limit} bytes.",
                    extensions={"code": TOO_COMPLEX},
                )
            document = self._cache.document(query)
            if document is None:
                document, weight = parse_unlinked(query, ctx.parse_options)
                self._cache.put_document(query, document, weight)
            ctx.graphql_document = document
        yield
