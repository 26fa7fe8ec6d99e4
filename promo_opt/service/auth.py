"""API keys: ``po_<id>_<secret>``, shown once, stored as sha256(salt + secret); scopes read/write."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from promo_opt.errors import PromoOptError
from promo_opt.service.store import Store

SCOPES = ("read", "write")


def parse_scopes(scopes: str) -> str:
    given = [s.strip() for s in scopes.split(",") if s.strip()]
    bad = [s for s in given if s not in SCOPES]
    if bad or not given:
        raise PromoOptError(f"--scopes: unknown scope(s) {bad or given!r}; expected a comma-separated subset of "
                            f"{', '.join(SCOPES)}")
    return ",".join(s for s in SCOPES if s in given)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def create_key(store: Store, scopes: str = "read,write") -> str:
    """A new key with ``scopes``; the returned text is the only copy of the secret."""
    scopes = parse_scopes(scopes)
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(24), secrets.token_hex(16)
    store.add_key(key_id, salt, _digest(salt, secret), scopes)
    return f"po_{key_id}_{secret}"


def verify_key(store: Store, presented: str) -> set[str] | None:
    """The key's scopes, or None when the key is malformed, unknown or wrong (constant-time compare)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != "po" or len(parts[1]) != 12:
        return None
    row = store.get_key(parts[1])
    if row is None:
        return None
    if not hmac.compare_digest(_digest(row.salt, parts[2]), row.digest):
        return None
    return set(row.scopes.split(","))
