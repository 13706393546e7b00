"""The generated documents stay true: schema.graphql, the settings table, the error codes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from strawberry.printer import print_schema

from api import errors
from api.cli import main
from api.settings import Settings, load_settings
from api.settings_doc import BEGIN, DOCS, END, INTERNAL, settings_table
from schema.build import build_schema
from schema.sdl import schema_sdl

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "API.md"


def test_schema_graphql_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == schema_sdl() + "\n", (
        "schema.graphql differs from the schema the code builds; "
        "regenerate it with: python -m api schema > schema.graphql"
    )


def test_no_setting_changes_the_schema() -> None:
    production = Settings(
        app_env="production",
        graphiql=False,
        introspection=False,
        field_suggestions=False,
        get_queries=False,
        refresh_cookie=True,
    )
    assert print_schema(build_schema(production)) == schema_sdl()


def test_schema_command_prints_the_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_sdl() + "\n"


def test_every_setting_has_a_meaning() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - INTERNAL
    assert sorted(fields - DOCS.keys()) == [], "describe these settings in api/settings_doc.py"
    assert sorted(DOCS.keys() - fields) == [], "these descriptions name no Settings field"


def test_the_table_shows_the_defaults_loading_applies(tmp_path: Path) -> None:
    """A default shown from the dataclass is the value an empty development environment gets."""
    loaded = load_settings({"DATA_DIR": str(tmp_path / "data")}, env_file=None)
    differ = [
        name
        for name, doc in DOCS.items()
        if doc.default is None
        and name != "data_dir"
        and getattr(loaded, name) != getattr(Settings(), name)
    ]
    assert differ == [], "Settings and load_settings disagree on these defaults"


def test_contract_settings_table_matches_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.DOTALL)
    assert match, f"no generated settings table in {CONTRACT.name}"
    assert match.group(1) == settings_table(), (
        "docs/API.md's settings table differs from Settings; "
        "regenerate it with: python -m api settings-table --write docs/API.md"
    )
    assert main(["settings-table"]) == 0
    assert capsys.readouterr().out == settings_table() + "\n"


def test_contract_lists_every_error_code() -> None:
    codes = {errors.AppError.code}
    pending = [errors.AppError]
    while pending:
        for sub in pending.pop().__subclasses__():
            codes.add(sub.code)
            pending.append(sub)
    section = CONTRACT.read_text(encoding="utf-8").split("## Errors", 1)[1]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE))
    assert documented == codes


# Built from pieces so that this file does not match itself.
_OUTSIDE = re.compile(
    "|".join(
        [
            r"\.\./shared/",
            r"\bshared/" + "API\\.md",
            "/wo" + "rk/",
            "/ro" + "ot/",
            r"\bissues? " + r"#?\d+",
        ]
    ),
    re.IGNORECASE,
)
_THIRD_PARTY = ("api/web/static/graphiql/vendor/", "package-lock.json")


def test_no_committed_file_points_outside_the_repository() -> None:
    """No link to files beside the checkout, no machine path, no tracker number."""
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    found = []
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if name.endswith(_THIRD_PARTY) or name.startswith(_THIRD_PARTY) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert found == []


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces become hyphens."""
    anchors = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _links(markdown: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_links_between_the_docs_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in _links(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            name, _, anchor = target.partition("#")
            path = (page.parent / name).resolve() if name else page
            if not path.exists():
                broken.append(f"{page.name}: {target}")
            elif (
                anchor
                and path.suffix == ".md"
                and anchor not in _anchors(path.read_text(encoding="utf-8"))
            ):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_extending_guide_shows_the_guards_the_code_has() -> None:
    from schema.sdl import guard_table

    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    shown = page.split("## The guards table", 1)[1].split("```", 2)[1].strip("\n")
    assert shown == guard_table(Settings()), (
        "docs/extending.md's guards table differs from the schema; paste `python -m api guards`"
    )
