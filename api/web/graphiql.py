"""The development GraphiQL page with its sign-in panel, served from files in this package.

Nothing comes from a CDN: the page works with no internet, and its Content-Security-Policy
allows scripts, styles and connections to this origin only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "graphiql.html"  # outside ASSETS: served only with its CSP, by the view
ASSETS = STATIC / "graphiql"
ASSETS_PATH = "/graphiql-assets"

# Only this origin's files run; data: covers the fonts GraphiQL's CSS inlines. No inline
# script or style is allowed, so an injected <script> in a response preview cannot run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


def graphiql_response(request: web.Request) -> web.Response:
    """The GraphiQL page, with a policy that lets it load only what this server serves."""
    response = web.Response(text=_page(), content_type="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def add_graphiql_assets(app: web.Application) -> None:
    """Serve the page's scripts and styles under /graphiql-assets/ (development only)."""
    app.router.add_static(ASSETS_PATH, ASSETS, follow_symlinks=False, show_index=False)
