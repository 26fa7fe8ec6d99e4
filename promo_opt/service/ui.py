"""The planners' web app: static files shipped inside the package, served with a strict CSP.

``GET /`` is the app's page; ``GET /app/{name}`` its scripts and style sheet. Everything the page
shows comes from the JSON API with the key the planner typed (kept in the page's memory only), so
this module computes nothing: it is a door to a door. No inline script, no third-party origin:
the Content-Security-Policy allows only this server's own files and API.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

STATIC = resources.files("promo_opt.service") / "web"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> Response:
    suffix = name[name.rfind("."):] if "." in name else ""
    f = STATIC / name
    if suffix not in MEDIA_TYPES or not f.is_file():
        raise HTTPException(404, f"no app file {name!r}")
    return Response(f.read_bytes(), media_type=MEDIA_TYPES[suffix], headers=SECURITY_HEADERS)


@router.get("/")
def index() -> Response:
    """The planners' app (HTML; scripts from /app/, data from the API)."""
    return _asset("index.html")


@router.get("/app/{name}")
def asset(name: str = Path(pattern=r"^[a-z][a-z0-9_-]*\.(js|css|svg)$")) -> Response:
    return _asset(name)


def report_response(html: bytes) -> Response:
    """A report.html the core wrote (``effect``, ``ltv``, ``drivers``), under the app's policy: no script runs;
    its images are data: URIs; its one inline style sheet is allowed by its SHA-256 hash, nothing else inline."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
                      for m in re.findall(rb"<style>(.*?)</style>", html, flags=re.S))
    csp = CSP.replace("style-src 'self'", f"style-src 'self' {hashes}" if hashes else "style-src 'self'")
    return Response(html, media_type=MEDIA_TYPES[".html"], headers={**SECURITY_HEADERS, "Content-Security-Policy": csp})
