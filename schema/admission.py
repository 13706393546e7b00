"""Admission lanes: which budget a request waits on when a worker is short of CPU.

A worker under a flood sheds ordinary operations first; signing in, refreshing and signing
out each have a budget of their own (api/web/overload.py). The lane is decided before any
expensive work, from the operation's root fields as graphql-core itself parses them, so a
client cannot buy a better lane by naming one: a request is in a priority lane only if the
operation that would execute is a mutation whose every root field belongs to that lane.
Anything else (queries, other mutations, fragments at the root, a mix of lanes, a document
that does not parse within the budget below) is `OTHER`, the lane shed first.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable

import strawberry
from graphql import FieldNode, GraphQLError, OperationType, get_operation_ast, parse
from strawberry.types.base import StrawberryObjectDefinition


class Lane(enum.StrEnum):
    SIGN_IN = "sign-in"
    REFRESH = "refresh"
    SIGN_OUT = "sign-out"
    OTHER = "other"


# Root mutation fields by lane. A sign-in is anything that ends with a new session's tokens
# for someone who had none: `login`, its second step `verifyMfa`, `register`, which signs
# the new account in, and the two steps of a sign-in with a passkey.
LANES: dict[str, Lane] = {
    "login": Lane.SIGN_IN,
    "verifyMfa": Lane.SIGN_IN,
    "register": Lane.SIGN_IN,
    "startPasskeySignIn": Lane.SIGN_IN,
    "finishPasskeySignIn": Lane.SIGN_IN,
    "refresh": Lane.REFRESH,
    "logout": Lane.SIGN_OUT,
    "logoutAll": Lane.SIGN_OUT,
    "revokeSession": Lane.SIGN_OUT,
}

# The cost budget of classifying one request: a priority operation is small, so a document
# over these bounds is OTHER without being parsed further. Only documents that contain the
# word `mutation` and a lane's field name are parsed at all; a query never is.
MAX_SOURCE_CHARS = 2048
MAX_TOKENS = 160
# Parses per second per worker, for documents not seen before. Past it, an unseen document is
# OTHER: a flood of documents that merely name `mutation login` costs what a shed request
# costs (two substring checks), not a parse each.
PARSES_PER_SECOND = 20
CACHE_SIZE = 256  # priority documents remembered, least recently used out


class UnknownLaneFieldError(Exception):
    """LANES names a field the schema's Mutation type does not have: the app refuses to start."""


class LaneClassifier:
    """query text and operation name -> Lane.

    The documents an app sends for its sign-ins are few and sent again and again: each is
    parsed once, then found in a small cache. Only priority documents are kept, so documents
    that turn out to be OTHER cannot push them out."""

    def __init__(
        self,
        cache_size: int = CACHE_SIZE,
        parses_per_second: float = PARSES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: OrderedDict[tuple[str, str | None], Lane] = OrderedDict()
        self._cache_size = cache_size
        self._rate = parses_per_second
        self._clock = clock
        self._allowance = parses_per_second  # a token bucket holding one second of parses
        self._checked = clock()

    def classify(self, query: str, operation_name: str | None = None) -> Lane:
        if "mutation" not in query or len(query) > MAX_SOURCE_CHARS:
            return Lane.OTHER  # every priority lane is a mutation; a query is never parsed here
        if not any(name in query for name in LANES):
            return Lane.OTHER
        key = (query, operation_name)
        lane = self._cache.get(key)
        if lane is not None:
            self._cache.move_to_end(key)
            return lane
        if not self._may_parse():
            return Lane.OTHER
        lane = lane_of(query, operation_name)
        if lane is not Lane.OTHER:
            self._cache[key] = lane
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return lane

    def _may_parse(self) -> bool:
        now = self._clock()
        self._allowance = min(self._rate, self._allowance + (now - self._checked) * self._rate)
        self._checked = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True


def lane_of(query: str, operation_name: str | None = None) -> Lane:
    """The lane of the operation graphql-core would execute (uncached, bounded by MAX_TOKENS)."""
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError:  # a syntax error or over the token budget: no priority
        return Lane.OTHER
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return Lane.OTHER
    lanes = set()
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):  # a fragment at the root: not looked into
            return Lane.OTHER
        lanes.add(LANES.get(selection.name.value, Lane.OTHER))
    return lanes.pop() if len(lanes) == 1 else Lane.OTHER


def check_lanes(schema: strawberry.Schema) -> None:
    """Raise when LANES names a root mutation field the schema does not have (a rename)."""
    fields: set[str] = set()
    if schema.mutation is not None:
        definition: StrawberryObjectDefinition = schema.mutation.__strawberry_definition__  # type: ignore[attr-defined]
        fields = {schema.config.name_converter.get_graphql_name(f) for f in definition.fields}
    missing = sorted(set(LANES) - fields)
    if missing:
        raise UnknownLaneFieldError(f"admission lanes name unknown mutations: {missing}")
