"""Reading trusted-documents manifests: both formats, and every way one can be wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from schema import manifest
from schema.manifest import ManifestError, parse_manifest, read_manifest

TEXT = "query Health { __typename }"
DIGEST = hashlib.sha256(TEXT.encode()).hexdigest()


def apollo(*operations: dict[str, object]) -> bytes:
    body = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
    return json.dumps(body).encode()


def test_both_formats_read_the_same_document() -> None:
    from_apollo = parse_manifest(
        apollo({"id": DIGEST, "name": "Health", "type": "query", "body": TEXT})
    )
    from_codegen = parse_manifest(json.dumps({DIGEST: TEXT}).encode())
    assert [(d.id, d.text) for d in from_apollo] == [(d.id, d.text) for d in from_codegen]
    assert from_apollo[0].name == "Health"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a manifest"),
        (b"{}", "holds no document"),
        (json.dumps({DIGEST: 42}).encode(), "must be strings"),
        (json.dumps({"0" * 64: TEXT}).encode(), "is not the SHA-256 of its text"),
        (json.dumps({"a" * 40: TEXT}).encode(), "hashAlgorithm: 'sha256'"),
        (json.dumps({"x": TEXT}).encode(), "is not a SHA-256 hex digest"),
        (
            json.dumps({"format": "apollo-persisted-query-manifest", "version": 2}).encode(),
            "version 2",
        ),
        (apollo({"id": DIGEST, "name": 3, "body": TEXT}), "name must be a string"),
    ],
)
def test_a_wrong_manifest_is_refused_with_the_reason(raw: bytes, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(raw)


def test_the_manifest_size_is_checked_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({DIGEST: TEXT}))
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 10)
    with pytest.raises(ManifestError, match="over 10 bytes"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="over 10 bytes"):
        parse_manifest(path.read_bytes())


def test_the_number_of_documents_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "MAX_MANIFEST_DOCUMENTS", 2)
    texts = [f"query Q{n} {{ __typename }}" for n in range(3)]
    raw = json.dumps({hashlib.sha256(t.encode()).hexdigest(): t for t in texts}).encode()
    with pytest.raises(ManifestError, match="more than 2 documents"):
        parse_manifest(raw)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing\.json"):
        read_manifest(tmp_path / "missing.json")
