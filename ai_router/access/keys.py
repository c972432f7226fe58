"""Router keys: who is calling, and which models they may use.

A presented key is hashed and compared with every configured hash in constant time, so neither
the answer's timing nor any log line says anything about a key. Keys are never logged: only
their names.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac

from ai_router.access.settings import AuthSettings, KeySettings
from ai_router.errors import PermissionDenied, Unauthenticated

BEARER = "bearer "


class Keyring:
    def __init__(self, settings: AuthSettings) -> None:
        self._keys = [(key, _digest_of(key)) for key in settings.keys]
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        self._admin = hashlib.sha256(admin.encode()).digest() if admin else None

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key (some are configured)."""
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> KeySettings | None:
        """The caller's key settings; None when no keys are configured. Raises Unauthenticated."""
        if not self._keys:
            return None
        if not presented:
            raise Unauthenticated(
                "a router key is required: send `Authorization: Bearer <key>` (or `x-api-key`; "
                "gRPC: `authorization` metadata)"
            )
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for key, expected in self._keys:  # every key, always: the time does not depend on which
            if hmac.compare_digest(digest, expected):
                found = key
        if found is None:
            raise Unauthenticated("the router key is not valid")
        return found

    def is_admin(self, presented: str | None) -> bool:
        if self._admin is None or not presented:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._admin)

    @staticmethod
    def allows(key: KeySettings | None, model: str) -> bool:
        """Whether the key's patterns cover `model` (provider/model, or an alias)."""
        return key is None or any(fnmatch.fnmatchcase(model, p) for p in key.models)

    @classmethod
    def authorize(cls, key: KeySettings | None, model: str) -> None:
        """Refuse a model that the key's patterns do not cover."""
        if key is not None and not cls.allows(key, model):
            raise PermissionDenied(
                f"key {key.name!r} may not use model {model!r}; it may use: {', '.join(key.models)}"
            )


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `x-api-key: <key>`."""
    if authorization and authorization.lower().startswith(BEARER):
        return authorization[len(BEARER) :].strip() or None
    return api_key.strip() if api_key else None


def _digest_of(key: KeySettings) -> bytes:
    if key.key is not None:
        return hashlib.sha256(key.key.get_secret_value().encode()).digest()
    assert key.key_sha256 is not None  # one of the two is set (KeySettings checks it)
    return bytes.fromhex(key.key_sha256)
