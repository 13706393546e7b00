"""The admission lane of a GraphQL request, read before the view does any work.

Only a small JSON POST can be in a priority lane: its body (at most MAX_CLASSIFIED_BYTES, which
aiohttp keeps for the view) is decoded and its operation classified by schema/admission.py.
Anything else - a GET, another content type, a bigger or chunked body, a batch, a body that is
not JSON - is in the `other` lane without being read here, so classifying costs a shed request
at most one small JSON decode and one bounded parse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from schema.admission import MAX_SOURCE_CHARS, Lane, LaneClassifier

# The query text plus variables (a password, a device name) and the JSON around them.
MAX_CLASSIFIED_BYTES = MAX_SOURCE_CHARS + 2048


def request_lane(classifier: LaneClassifier) -> Callable[[web.Request], Awaitable[Lane]]:
    """request -> its lane, for overload.in_flight_limit."""

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
        if type(query) is not str or not (name is None or type(name) is str):
            return Lane.OTHER
        return classifier.classify(query, name)

    return lane_of
