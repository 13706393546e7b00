"""The schema as SDL: what `python -m api schema` prints and `schema.graphql` holds."""

from __future__ import annotations

from strawberry.printer import print_schema

from api.settings import Settings
from schema.build import build_schema


def schema_sdl() -> str:
    """The SDL of the schema the code builds; no setting changes the types, so defaults do."""
    return print_schema(build_schema(Settings()))
