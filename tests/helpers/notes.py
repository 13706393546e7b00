"""Notes operations, shared by the tests of notes, events and account lifecycle."""

from __future__ import annotations

from tests.helpers.api import Api

NOTE = "id title body createdAt updatedAt owner { id email }"
CREATE = f"mutation($t: String!, $b: String!) {{ createNote(title: $t, body: $b) {{ {NOTE} }} }}"
UPDATE = f"""mutation($id: ID!, $t: String, $b: String) {{
  updateNote(id: $id, title: $t, body: $b) {{ {NOTE} }} }}"""
DELETE = "mutation($id: ID!) { deleteNote(id: $id) }"


async def create_note(api: Api, token: str, title: str = "groceries", body: str = "eggs") -> str:
    """A note that must be created; its id."""
    result = await api.gql(CREATE, {"t": title, "b": body}, token=token)
    assert "errors" not in result, result
    return result["data"]["createNote"]["id"]  # type: ignore[no-any-return]
