"""Every document an outsider sends has a bounded first-sight cost.

The limits count fields *collected* through inline and named fragments; a document over a
limit is refused with QUERY_TOO_COMPLEX before graphql-core's quadratic overlap check runs
(asserted by counting that rule's calls, not by timing). bench/first_sight.py measures the
worst first-sight CPU time of documents like these.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schema.documents import ValidationResults, parse_unlinked
from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import code
from tests.helpers.live import live_server

ISSUE_13 = "{ " + " ".join("... on Query { " + "me { id } " * 29 + "}" for _ in range(12)) + " }"
TRICKS = {
    "inline-fragments-of-repeats": ISSUE_13,
    "named-fragments-of-repeats": " ".join(
        f"fragment F{i} on Query {{ {'me { id } ' * 10}}}" for i in range(4)
    )
    + " { "
    + " ".join(f"...F{i}" for i in range(4))
    + " }",
    "nested-repeats": "{ " + "me { " + "id " * 30 + "} " * 1 + "me { id } " * 29 + "}",
    "fragment-chain-doubling": " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ... on Query {{ ...F{i + 1} }} }}"
        for i in range(60)
    )
    + " fragment F60 on Query { me { id } } { ...F0 }",
    "fragment-tree-doubling": " ".join(
        f"fragment F{i} on User {{ a: id ...F{i + 1} b: id ...F{i + 1} }}" for i in range(40)
    )
    + " fragment F40 on User { id } { me { ...F0 } }",
    "aliases-in-a-fragment-spread-twice": "fragment A on User { "
    + " ".join(f"a{i}: id" for i in range(20))
    + " } { me { ...A } x: me { ...A } }",
    "depth-through-fragments": "fragment D on Note { owner { id } } "
    "{ notes { edges { node { ...D } } } }",
    "fields-budget-through-one-fragment": "fragment U on User { id email displayName roles "
    "isActive emailVerified createdAt lastLoginAt } { "
    + "me { ...U } " * 30
    + "notes { edges { node { owner { ...U } } } } " * 30
    + "}",
}


@pytest.fixture
async def prod(start_api: StartApi) -> Api:
    return await start_api(APP_ENV="production", MAX_QUERY_DEPTH="3")


@pytest.fixture
def overlap_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each selection set graphql-core's quadratic overlap check is run on."""
    from graphql.validation.rules.overlapping_fields_can_be_merged import (
        OverlappingFieldsCanBeMergedRule,
    )

    calls: list[object] = []
    original = OverlappingFieldsCanBeMergedRule.enter_selection_set

    def counting(self: Any, *args: Any) -> Any:
        calls.append(args[0])
        return original(self, *args)

    monkeypatch.setattr(OverlappingFieldsCanBeMergedRule, "enter_selection_set", counting)
    return calls


@pytest.mark.parametrize("query", list(TRICKS.values()), ids=list(TRICKS))
async def test_fragment_tricks_are_refused_before_the_costly_rules(
    prod: Api, overlap_calls: list[object], query: str
) -> None:
    for comment in ("", f"# {secrets.token_hex(8)}\n"):  # a comment changes nothing
        _, body, _ = await prod.post(comment + query)
        assert code(body) == "QUERY_TOO_COMPLEX", body
        assert body.get("data") is None
        assert len(body["errors"]) == 1, body
    assert overlap_calls == []


async def test_fragments_within_the_limits_still_work(prod: Api) -> None:
    pair = await prod.register()
    query = (
        "fragment U on User { id email } "
        "{ me { ...U id } ... on Query { me { ...U } } x: me { ...U ...U } }"
    )
    body = await prod.gql(query, token=pair["accessToken"])
    assert "errors" not in body, body
    assert body["data"]["me"]["id"] == body["data"]["x"]["id"] == pair["user"]["id"]


async def test_healthz_answers_while_tricks_arrive(prod: Api, overlap_calls: list[object]) -> None:
    """The tricks never reach the costly rules, so the event loop stays free for /healthz."""
    tricks = [prod.post(f"# {n}\n{ISSUE_13}") for n in range(40)]
    health = prod.client.get("/healthz")
    *answers, resp = await asyncio.gather(*tricks, health)
    assert resp.status == 200
    assert all(code(body) == "QUERY_TOO_COMPLEX" for _, body, _ in answers)
    assert overlap_calls == []


# 100 inline fragments on unknown type names that look like one in the schema: graphql-core
# compares each with every type name for its "Did you mean" (the attack: ~170 ms, 3.2 KB).
UNKNOWN_TYPES = "{ " + " ".join(f"... on Subscriptio{i:x} {{ f{i} }}" for i in range(100)) + " }"


@pytest.fixture
def suggestion_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each unknown type name graphql-core looked for suggestions for."""
    from graphql.validation.rules import known_type_names

    calls: list[str] = []
    original = known_type_names.suggestion_list

    def counting(value: str, options: Any) -> Any:
        calls.append(value)
        return original(value, options)

    monkeypatch.setattr(known_type_names, "suggestion_list", counting)
    return calls


@pytest.mark.parametrize("env", ["development", "production"])
async def test_validation_stops_after_a_few_errors(
    start_api: StartApi, suggestion_calls: list[str], env: str
) -> None:
    """Suggestions (development) are looked for at most MAX_VALIDATION_ERRORS times; with them
    off (production) never, rather than computed and then cut from the message."""
    from schema.limits import MAX_VALIDATION_ERRORS

    api = await start_api(APP_ENV=env)
    _, body, _ = await api.post(f"# {secrets.token_hex(8)}\n{UNKNOWN_TYPES}")
    assert body.get("data") is None
    errors = body["errors"]
    assert len(errors) == MAX_VALIDATION_ERRORS + 1, len(errors)
    assert "error limit reached" in errors[-1]["message"]
    if env == "production":
        assert suggestion_calls == []
        assert not any("Did you mean" in error["message"] for error in errors)
    else:
        assert 0 < len(suggestion_calls) <= MAX_VALIDATION_ERRORS + 1


async def test_query_text_over_max_query_bytes_is_refused_before_parsing(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schema.documents

    api = await start_api(APP_ENV="production", MAX_QUERY_BYTES="1000")
    parsed: list[str] = []
    original = schema.documents.parse_unlinked
    monkeypatch.setattr(
        schema.documents,
        "parse_unlinked",
        lambda text, options: parsed.append(text) or original(text, options),
    )
    within = "#" + "x" * 980 + "\n{ __typename }"
    assert (await api.gql(within))["data"] == {"__typename": "Query"}
    over = "#" + "é" * 495 + "\n{ __typename }"  # under 1000 characters, over 1000 bytes
    status, body, _ = await api.post(over)
    assert code(body) == "QUERY_TOO_COMPLEX", body
    assert body.get("data") is None
    assert parsed == [within]


def _many_tokens(n: int) -> str:
    return "".join(f"#{n:06d}{secrets.token_hex(12)}\n" for _ in range(1990)) + "{ __typename }"


def _astral(n: int) -> str:
    # One astral character: CPython stores the whole text at 4 bytes per character, and
    # the comment's token keeps its own copy (~0.5 MB for 65,000 characters).
    return f"#\U0001f600{n:06d}{secrets.token_hex(8)}" + "x" * 65_000 + "\n{ __typename }"


@pytest.mark.live
@pytest.mark.parametrize(
    ("document", "slack_mib"),
    [
        (_many_tokens, 40),
        # Before the token chain was unlinked after parsing, each of these left ~0.27 MiB in
        # reference cycles until the cyclic collector ran: RSS rose by 100+ MiB in between.
        (_astral, 40),
    ],
    ids=["many-tokens", "astral"],
)
async def test_many_large_documents_keep_memory_bounded(
    tmp_path: Path, document: Callable[[int], str], slack_mib: int
) -> None:
    """Distinct ~60 KB documents of 2,000 tokens (~0.5-1.2 MB each once parsed), or of one
    comment with an astral character (~0.5 MB): the cache keeps at most QUERY_CACHE_BYTES of
    them, so RSS grows by less than that plus a stated slack, and stops growing: the second
    hundred documents add (almost) nothing."""
    budget_mib = 16

    def rss_mib(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    env = {"QUERY_CACHE_BYTES": str(budget_mib << 20)}
    with live_server(tmp_path, **env) as server:
        async with aiohttp.ClientSession() as session:

            async def send(n: int) -> None:
                body = {"query": document(n)}
                async with session.post(server.graphql, json=body) as resp:
                    assert resp.status == 200, await resp.text()

            for n in range(10):
                await send(n)
            before = rss_mib(server.pid)
            for n in range(10, 210):
                await send(n)
            middle = rss_mib(server.pid)
            for n in range(210, 410):
                await send(n)
            after = rss_mib(server.pid)
    grown, late = after - before, after - middle
    assert grown < budget_mib + slack_mib, (
        f"RSS grew by {grown:.0f} MiB ({middle - before:.0f} by the middle)"
    )
    assert late < budget_mib / 2, f"RSS still grew by {late:.0f} MiB over the last 200"


def test_a_text_is_kept_from_its_second_sighting() -> None:
    """A flood of texts made distinct by a random comment never fills the document cache,
    whose objects every full garbage collection walks; a client's repeated operation is kept
    from its second sending on."""
    cache = ValidationResults(16, 1 << 20, 65536)
    for n in range(50):  # each seen once
        text = f"#{secrets.token_hex(8)} {n}\n{{ __typename }}"
        document, weight = parse_unlinked(text, {})
        cache.put_document(text, document, weight)
        assert cache.document(text) is None
    assert cache.bytes == 0
    text = "query Again { __typename }"
    for _ in range(2):
        document, weight = parse_unlinked(text, {})
        cache.put_document(text, document, weight)
    assert cache.document(text) is document
    assert cache.bytes == weight


async def test_literal_values_count_against_max_fields(api: Api) -> None:
    """Every list item and object field of a literal is a node each validation rule visits:
    2,000 of them cost ~45 ms to validate, so they count like fields (use variables)."""
    roles = "[" + ", ".join(['"r"'] * 63) + "]"
    fields = " ".join(
        f'a{n}: setUserRoles(userId: "1", roles: {roles}) {{ id }}' for n in range(25)
    )
    body = await api.gql(f"mutation {{ {fields} }}")
    assert code(body) == "QUERY_TOO_COMPLEX", body
    assert "values" in body["errors"][0]["message"]
    small = await api.gql('{ notes(first: 5) { totalCount } user(id: "x") { id } }')
    assert code(small) != "QUERY_TOO_COMPLEX", small
