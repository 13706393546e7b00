"""Texts generated from the built schema: its SDL (`python -m api schema`, `schema.graphql`)
and the guards table (`python -m api guards`)."""

from __future__ import annotations

from strawberry.printer import print_schema

from api.settings import Settings
from schema.build import build_schema
from schema.guards import root_guards


def schema_sdl() -> str:
    """The SDL of the schema the code builds; no setting changes the types, so defaults do."""
    return print_schema(build_schema(Settings()))


def guard_table(settings: Settings) -> str:
    """Each root field and its guards: what `python -m api guards` prints and docs/ show."""
    rows = root_guards(build_schema(settings))
    width = max(len(f"{root}.{field}") for root, field, _ in rows)
    return "\n".join(
        f"{f'{root}.{field}':<{width}}  {guards or 'NONE'}" for root, field, guards in rows
    )
