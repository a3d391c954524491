"""The web console at ``/`` and the offline API docs at ``/docs`` and ``/redoc``
(docs/console.md).

The console is static files (``videogate/web``): HTML, JS modules and CSS shipped in the
package, no build step, no CDN. It talks to the public HTTP API only, with the key or admin
token the user typed, kept in the tab's ``sessionStorage``.

The one thing served here that is not static is the *local sign-in*: on the machine that
runs ``videogate serve``, the console may fetch the local key (the one ``make run`` prints)
with one click. See :func:`local_sign_in_refusal` for who gets it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from videogate.api.responses import json_response
from videogate.api.state import api_state
from videogate.errors import PermissionDenied
from videogate.signing import hash_api_key

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Headers a reverse proxy adds: a request that carries one came from elsewhere.
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
_LOOPBACK_NAMES = ("localhost",)


def _docs_assets_dir() -> Path:
    """Swagger UI and ReDoc files as the ``fastapi-offline`` package ships them."""
    return Path(fastapi_offline.__file__).resolve().parent / "static"


def content_security_policy(public_url: str) -> str:
    """Only our own origin (and the public URL that signed media links point at)."""
    media = "'self'"
    origin = urlsplit(public_url)
    if origin.scheme and origin.netloc:
        media += f" {origin.scheme}://{origin.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob: {media}; media-src 'self' blob: {media}; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if name.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def local_sign_in_refusal(request: Request) -> str | None:
    """Why this request may not have the local key, or None if it may.

    The local key is handed out only to a page of this very server opened on this very
    machine: the TCP peer is loopback and no proxy header is present (a reverse proxy on
    the same machine would make remote callers look local); the ``Host`` is a loopback
    name or address (a DNS-rebinding page has its own host name there); the ``Origin`` is
    exactly ``http://<Host>`` and, when the browser sends it, ``Sec-Fetch-Site`` is
    ``same-origin`` (another site's page cannot ask — and the custom header the console
    sends makes a cross-origin request preflight, which we never answer).
    """
    if not api_state(request).ctx.settings.console_local_sign_in:
        return "local sign-in is turned off (VIDEOGATE_CONSOLE_LOCAL_SIGN_IN=false)"
    peer = request.client.host if request.client else None
    if not _is_loopback_host(peer):
        return "local sign-in works only in a browser on the machine that runs videogate"
    if any(h in request.headers for h in _PROXY_HEADERS):
        return "local sign-in does not work through a proxy"
    host = request.headers.get("host")
    if not _is_loopback_host(host):
        return "local sign-in needs the page opened as http://127.0.0.1 or http://localhost"
    if request.headers.get("origin") != f"http://{host}":
        return "local sign-in must come from this server's own page"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return "local sign-in must come from this server's own page"
    if request.headers.get("x-videogate-console") != "1":
        return "local sign-in must come from the console"
    return None


def install_console(app: FastAPI) -> None:
    """Mount the console, its assets, the offline docs and the local sign-in."""
    csp_cache: dict[str, str] = {}

    def csp(request: Request) -> str:
        public = api_state(request).ctx.settings.effective_public_url
        if public not in csp_cache:
            csp_cache[public] = content_security_policy(public)
        return csp_cache[public]

    @app.get("/", include_in_schema=False)
    async def console_index(request: Request) -> Response:
        return FileResponse(
            WEB_DIR / "index.html",
            media_type="text/html",
            headers={
                "Content-Security-Policy": csp(request),
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    @app.get("/console", include_in_schema=False)
    async def console_redirect() -> Response:
        return RedirectResponse("/", status_code=308)

    @app.post("/console/local-sign-in", include_in_schema=False)
    async def local_sign_in(request: Request) -> Response:
        refusal = local_sign_in_refusal(request)
        if refusal is not None:
            raise PermissionDenied(refusal)
        state = api_state(request)
        path = state.ctx.settings.local_key_path
        secret = path.read_text().strip() if path.is_file() else ""
        row = await state.ctx.store.keys.by_hash(hash_api_key(secret)) if secret else None
        if row is None or row.revoked_at is not None:
            raise PermissionDenied(
                "there is no local key (it was revoked, or the database had keys before): "
                "sign in with an API key"
            )
        return json_response({"key": secret}, headers={"Cache-Control": "no-store"})

    app.mount("/console/assets", StaticFiles(directory=WEB_DIR), name="console-assets")
    app.mount("/docs-assets", StaticFiles(directory=_docs_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API reference",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )
