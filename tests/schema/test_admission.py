"""Admission lanes: decided from the root fields of the operation that would execute, so a
client cannot buy a better lane by naming one, and classifying costs a stated budget."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import strawberry

from api.settings import Settings
from schema.admission import (
    LANES,
    MAX_SOURCE_CHARS,
    MAX_TOKENS,
    Lane,
    LaneClassifier,
    UnknownLaneFieldError,
    check_lanes,
    lane_of,
)
from schema.build import build_schema
from tests.helpers.graphql import LOGIN, REFRESH, REGISTER

LOGIN_DOC = LOGIN  # what the tests' frontend sends


@pytest.mark.parametrize(
    ("query", "lane"),
    [
        (LOGIN_DOC, Lane.SIGN_IN),
        (REGISTER, Lane.SIGN_IN),
        (REFRESH, Lane.REFRESH),
        ('mutation { verifyMfa(mfaToken: "t", code: "1") { accessToken } }', Lane.SIGN_IN),
        ("mutation { logout }", Lane.SIGN_OUT),
        ("mutation { logoutAll }", Lane.SIGN_OUT),
        ('mutation { revokeSession(id: "1") }', Lane.SIGN_OUT),
        ("mutation { a: logout b: logoutAll }", Lane.SIGN_OUT),  # one lane, two fields
        # An alias does not change which field runs.
        ('mutation { me: login(email: "a", password: "b") { accessToken } }', Lane.SIGN_IN),
        ("mutation { logout @include(if: true) }", Lane.SIGN_OUT),
        ("{ me { id roles } }", Lane.OTHER),
        ('mutation { createNote(title: "a", body: "b") { id } }', Lane.OTHER),
    ],
)
def test_the_lane_is_the_root_fields_lane(query: str, lane: Lane) -> None:
    assert lane_of(query) is lane
    assert LaneClassifier().classify(query) is lane


@pytest.mark.parametrize(
    ("query", "operation_name"),
    [
        # Naming a sign-in anywhere but in the root fields buys nothing.
        ("# mutation login\n{ me { id email } }", None),
        ("# mutation login\n{ me { id email } }", "login"),
        ("query login { me { id } }", "login"),
        ('mutation login { createNote(title: "login", body: "") { id } }', "login"),
        ("{ login: me { id } } # mutation", None),
        ('{ me { id } } mutation M { login(email: "a", password: "b") { accessToken } }', None),
        # A sign-in next to anything else: the other field runs too, so the whole is OTHER.
        ('mutation { login(email: "a", password: "b") { accessToken } deleteAccount }', None),
        ('mutation { login(email: "a", password: "b") { accessToken } logout }', None),
        ('mutation { __typename login(email: "a", password: "b") { accessToken } }', None),
        # Fragments at the root are not looked into.
        (
            "mutation { ...F } fragment F on Mutation { logout }",
            None,
        ),
        ("mutation { ... on Mutation { logout } }", None),
        # The operation that runs is the one operationName picks.
        (
            "mutation A { logout } mutation B { deleteAccount }",
            "B",
        ),
        ("mutation A { logout } mutation B { deleteAccount }", None),  # ambiguous: no run
        ("mutation A { logout }", "Nope"),
        # Does not parse, or not within the budget: OTHER.
        ("mutation { logout", None),
        (
            'mutation { login(email: "a", password: "b") { ' + "accessToken " * MAX_TOKENS + "} }",
            None,
        ),
        ("mutation { logout }" + " " * MAX_SOURCE_CHARS, None),
    ],
)
def test_a_document_that_only_claims_a_lane_is_other(
    query: str, operation_name: str | None
) -> None:
    assert lane_of(query, operation_name) is Lane.OTHER or len(query) > MAX_SOURCE_CHARS
    assert LaneClassifier().classify(query, operation_name) is Lane.OTHER


def test_operation_name_picks_the_operation_that_runs() -> None:
    document = "query Q { me { id } } mutation Out { logout }"
    assert lane_of(document, "Out") is Lane.SIGN_OUT
    assert lane_of(document, "Q") is Lane.OTHER


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unseen_documents_are_parsed_within_a_budget_per_second() -> None:
    """Past the parse budget an unseen document is OTHER without a parse; documents seen
    before keep their lane; the budget comes back with time."""
    clock = FakeClock()
    classifier = LaneClassifier(parses_per_second=3, clock=clock)
    assert classifier.classify(LOGIN_DOC) is Lane.SIGN_IN  # parsed once, remembered
    for n in range(2):  # spend the rest of the budget on documents that only claim a lane
        assert classifier.classify(f"# mutation login {n}\n{{ me {{ id }} }}") is Lane.OTHER
    assert classifier.classify("mutation { logout }") is Lane.OTHER  # budget spent: not parsed
    assert classifier.classify(LOGIN_DOC) is Lane.SIGN_IN  # remembered: no parse needed
    clock.now += 1
    assert classifier.classify("mutation { logout }") is Lane.SIGN_OUT


def test_only_priority_documents_are_remembered_and_the_cache_is_bounded() -> None:
    classifier = LaneClassifier(cache_size=2, parses_per_second=1000)
    for n in range(5):
        classifier.classify(f"# mutation login {n}\n{{ me {{ id }} }}")
    assert len(classifier._cache) == 0  # OTHER documents cannot push sign-ins out
    for alias in "abc":
        classifier.classify(f"mutation {{ {alias}: logout }}")
    assert len(classifier._cache) == 2


def test_queries_are_never_parsed_to_be_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(*args: object, **kwargs: object) -> Lane:
        raise AssertionError("parsed")

    monkeypatch.setattr("schema.admission.lane_of", no_parse)
    classifier = LaneClassifier()
    assert classifier.classify("{ me { id email displayName } }") is Lane.OTHER
    assert classifier.classify('mutation { createNote(title: "a", body: "b") { id } }') is (
        Lane.OTHER
    )


def test_every_lane_names_a_mutation_of_the_schema(
    make_settings: Callable[..., Settings],
) -> None:
    check_lanes(build_schema(make_settings()))  # build_schema runs it at start too

    @strawberry.type
    class Query:
        ok: bool = True

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        def login(self) -> bool:
            return True

    with pytest.raises(UnknownLaneFieldError, match="logout"):
        check_lanes(strawberry.Schema(query=Query, mutation=Mutation))
    assert set(LANES) >= {"login", "register", "refresh", "logout"}
