"""The admission lane of a GraphQL request, read before the view does any work.

Only a small JSON POST can be in a priority lane: its body (at most MAX_CLASSIFIED_BYTES, which
aiohttp keeps for the view) is decoded and its operation classified by schema/admission.py.
Anything else - a GET, another content type, a bigger or chunked body, a batch, a body that is
not JSON - is in the `other` lane without being read here, so classifying costs a shed request
at most one small JSON decode and one bounded parse. A request that names a document of the
trusted-documents manifest (by `documentId` or APQ hash, without its text) is classified by
that document's text: an app that ships its login as a persisted document keeps its lane.
APQ documents registered at run time are not looked up here (that may need Redis): without
their text they are in the `other` lane.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from api.errors import BadUserInputError
from schema.admission import MAX_SOURCE_CHARS, Lane, LaneClassifier
from schema.persisted import apq_hash_of, document_id_of

# The query text plus variables (a password, a device name) and the JSON around them.
MAX_CLASSIFIED_BYTES = MAX_SOURCE_CHARS + 2048


def _manifest_text(data: dict[str, object], manifest: Mapping[str, str]) -> str | None:
    """The manifest text a request names without sending it, if any."""
    if not manifest:
        return None
    try:
        if "documentId" in data:
            return manifest.get(document_id_of(data["documentId"]))
        extensions = data.get("extensions")
        if type(extensions) is dict and "persistedQuery" in extensions:
            return manifest.get(apq_hash_of(extensions["persistedQuery"]))
    except BadUserInputError:  # the view answers it
        return None
    return None


def request_lane(
    classifier: LaneClassifier, manifest: Mapping[str, str] | None = None
) -> Callable[[web.Request], Awaitable[Lane]]:
    """request -> its lane, for overload.in_flight_limit. `manifest`: trusted text by id."""
    known = manifest or {}

    async def lane_of(request: web.Request) -> Lane:
        if request.method != "POST" or request.content_type != "application/json":
            return Lane.OTHER
        length = request.content_length
        if length is None or length > MAX_CLASSIFIED_BYTES:
            return Lane.OTHER
        try:
            data = orjson.loads(await request.read())
        except ValueError:  # the view answers it (400), counted as `other`
            return Lane.OTHER
        if type(data) is not dict:
            return Lane.OTHER
        query, name = data.get("query"), data.get("operationName")
        if query is None:
            query = _manifest_text(data, known)
        if type(query) is not str or not (name is None or type(name) is str):
            return Lane.OTHER
        return classifier.classify(query, name)

    return lane_of
