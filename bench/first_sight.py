"""Worst first-sight cost: parse + validate of the costliest documents we could build.

Every document here is sent once, as an anonymous client would: no cache helps (each run
adds a random comment). Under the default limits each is either refused early
(QUERY_TOO_COMPLEX) or validated in full; the figure is the CPU time of parse + both
validation passes, the best of --repeat runs and the median.

    python bench/first_sight.py            # default settings
    MAX_FIELDS=2000 python bench/first_sight.py   # see what a looser limit costs
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Callable

from graphql import DocumentNode, GraphQLError, parse, specified_rules

from api.settings import load_settings
from schema.build import build_schema
from schema.limits import TOO_COMPLEX, limits_for


def _spread(items: list[str], groups: int) -> str:
    per = max(1, len(items) // groups)
    parts = [items[i : i + per] for i in range(0, len(items), per)]
    return "{ " + " ".join("... on Query { " + " ".join(p) + " }" for p in parts) + " }"


def attacks(repeats: int, aliases: int, fields: int) -> dict[str, str]:
    """name -> document, each built to sit just under (or on) the default limits."""
    r = repeats
    me_copies = ["me { id }"] * r
    doc: dict[str, str] = {
        "12 inline fragments x 29 me{id}": _spread(["me { id }"] * 348, 12),
        f"{r} me{{id}} in {r} inline fragments": _spread(me_copies, r),
        f"{r} me{{...}} each {r} leaves": "{ " + " ".join(["me { " + "id " * r + "}"] * r) + " }",
        "nested repeats, 4 levels": "{ "
        + " ".join(["notes { " + " ".join(["edges { " + "node { id } " * 5 + "}"] * 5) + " }"] * 5)
        + " }",
        "every root key repeated": "{ "
        + " ".join(
            [
                "me { id email displayName roles isActive emailVerified createdAt }",
                "mySessions { id device ip }",
                "notes { edges { cursor node { id title owner { id } } } }",
            ]
            * (r // 3)
        )
        + " }",
        "250 named fragments spread once": " ".join(
            f"fragment F{i} on Query {{ me {{ id }} }}" for i in range(250)
        )
        + " { "
        + " ".join(f"...F{i}" for i in range(250))
        + " }",
        f"{r} distinct fragments, each {r} me{{id}}": " ".join(
            f"fragment F{i} on Query {{ {'me { id } ' * r}}}" for i in range(r)
        )
        + " { "
        + " ".join(f"...F{i}" for i in range(r))
        + " }",
        "fragment chain, each spreading the next twice": " ".join(
            f"fragment F{i} on Query {{ ...F{i + 1} ... on Query {{ ...F{i + 1} }} }}"
            for i in range(60)
        )
        + " fragment F60 on Query { me { id } } { ...F0 }",
        "fragment tree, two fields per level": " ".join(
            f"fragment F{i} on User {{ a: id ...F{i + 1} b: id ...F{i + 1} }}" for i in range(40)
        )
        + " fragment F40 on User { id } { me { ...F0 } }",
        f"{aliases} aliases x nested": "{ "
        + " ".join(
            f"a{i}: notes {{ edges {{ node {{ id title body }} }} }}" for i in range(aliases)
        )
        + " }",
        "300 operations": " ".join(f"query Q{i} {{ me {{ id }} }}" for i in range(300)),
        "400 unused variables": "query("
        + ", ".join(f"$v{i}: Int" for i in range(400))
        + ") { __typename }",
        "5 directives, each with a 300-item list": "{ "
        + " ".join(
            "__typename @include(if: true) @skip(if: [" + "true " * 300 + "])" for _ in range(2)
        )
        + " }",
        "deep list in an argument (900 levels)": "{ note(id: "
        + "[" * 900
        + "1"
        + "]" * 900
        + ") { id } }",
        "deep object in an argument (600 levels)": "{ note(id: "
        + "{a: " * 600
        + "1"
        + "}" * 600
        + ") { id } }",
        "long string argument (fills MAX_QUERY_BYTES)": '{ note(id: "'
        + "x" * (fields - 80)
        + '") { id } }',
        "long block string": '{ note(id: """' + "x" * (fields - 80) + '""") { id } }',
        "comment filling MAX_QUERY_BYTES": "#" + "x" * (fields - 80) + "\n{ __typename }",
        "1990 leaves": "{ me { " + "id " * 1990 + "} }",
        "deep selection (600 levels)": "{ " + "me { " * 600 + "id" + " }" * 600 + " }",
        f"{fields // 10} distinct keys via aliases in fragments": " ".join(
            f"fragment G{i} on User {{ id email displayName roles isActive }}" for i in range(30)
        )
        + " { me { "
        + " ".join(f"...G{i}" for i in range(30))
        + " } }",
    }
    # "Did you mean": each unknown name is compared with every type name (edit distance).
    doc["100 inline fragments on unknown types like Subscription"] = (
        "{ "
        + " ".join(
            f"... on {('Subscription' * 2)[: 16 - len(f'{i:x}')]}{i:x} {{ f{i} }}"
            for i in range(100)
        )
        + " }"
    )
    # Literal values: every list item is a node each validation rule visits (~45 ms for 2,000
    # before they counted against MAX_FIELDS).
    roles = "[" + ", ".join(['"r"'] * 63) + "]"
    doc["25 fields, each with a 63-item list literal"] = (
        "mutation { "
        + " ".join(f'a{n}: setUserRoles(userId: "1", roles: {roles}) {{ id }}' for n in range(25))
        + " }"
    )
    user = "id email displayName roles isActive emailVerified createdAt lastLoginAt"
    doc["fields budget spent through one fragment"] = (
        f"fragment U on User {{ {user} }} {{ "
        + "me { ...U } " * r
        + "notes { edges { node { owner { ...U } } } } " * (r - 6)
        + "}"
    )
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {
        "JWT_SECRET": "bench-access-secret-0123456789-abcdefghij",
        "JWT_REFRESH_SECRET": "bench-refresh-secret-0123456789-abcdefghi",
        **os.environ,
    }
    settings = load_settings(env, env_file=None)
    schema = build_schema(settings)._schema
    limits = limits_for(settings)
    rules = tuple(specified_rules)
    worst = 0.0
    print(
        f"limits: tokens {settings.max_tokens}, bytes {settings.max_query_bytes}, "
        f"depth {settings.max_query_depth}, aliases/repeats {settings.max_aliases}, "
        f"fields {settings.max_fields}, directives {settings.max_directives}"
    )
    documents = attacks(settings.max_aliases, settings.max_aliases, settings.max_query_bytes)
    for name, text in documents.items():
        runs: list[float] = []
        parsed: list[float] = []
        outcome = ""
        for _ in range(args.repeat):
            query = f"# {secrets.token_hex(8)}\n{text}"
            timed: list[float] = []

            def validate(
                document: DocumentNode, timed: list[float] = timed
            ) -> tuple[GraphQLError, ...]:
                timed.append(time.process_time())
                return limits.validate(schema, document, rules)

            started = time.process_time()
            outcome = first_sight(query, settings.max_query_bytes, settings.max_tokens, validate)
            ended = time.process_time()
            runs.append(ended - started)
            parsed.append((timed[0] if timed else ended) - started)
        median = statistics.median(runs)
        worst = max(worst, median)
        print(
            f"{median * 1e3:7.2f} ms (parse {statistics.median(parsed) * 1e3:6.2f})"
            f"  {outcome[:30]:<30} {name} ({len(text)} B)"
        )
    print(f"worst median: {worst * 1e3:.1f} ms")


def first_sight(
    query: str,
    max_bytes: int,
    max_tokens: int,
    validate: Callable[..., tuple[GraphQLError, ...]],
) -> str:
    if len(query.encode()) > max_bytes:
        return f"{TOO_COMPLEX} (bytes)"
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLError as error:
        return "refused at parse: " + error.message[:40]
    except RecursionError:
        return "RecursionError at parse"
    errors = validate(document)
    if not errors:
        return "valid"
    codes = {(e.extensions or {}).get("code") for e in errors}
    return f"{TOO_COMPLEX}" if TOO_COMPLEX in codes else f"invalid ({len(errors)} errors)"


if __name__ == "__main__":
    main()
