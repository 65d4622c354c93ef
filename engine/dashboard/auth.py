"""Who may see the dashboard: a bearer token or HTTP basic credentials, checked on every route.

The page shows the faces, maps and clips of the people recorded, so anything but a loopback bind
needs a credential (`engine.dashboard.__main__` refuses to start without one):

* a bearer token (``--token-file FILE`` or the ``MELLM_DASHBOARD_TOKEN`` environment variable):
  ``Authorization: Bearer TOKEN`` for Prometheus and scripts; a browser logs in with basic auth,
  any user name and the token as password;
* a user and password (``--basic-auth-file FILE`` holding one ``user:password`` line).

`AuthMiddleware` wraps the whole app (page, ``/events``, ``/api/state``, ``/metrics``, maps, clips,
static files) and answers 401 with a ``WWW-Authenticate: Basic`` challenge, so a browser asks once
and sends the credential with every request, the server-sent event stream included. Secrets are
compared in constant time.

>>> creds = Credentials(token="0123456789abcdef0123")
>>> creds.allows("Bearer 0123456789abcdef0123"), creds.allows("Bearer guess"), creds.allows(None)
(True, False, False)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UserError

if TYPE_CHECKING:  # the CLI reads TOKEN_ENV before it checks that Starlette is installed
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

TOKEN_ENV = "MELLM_DASHBOARD_TOKEN"
MIN_SECRET = 16  # characters; python -c "import secrets; print(secrets.token_urlsafe(32))" makes 43
_MAKE_ONE = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
_REALM = 'Basic realm="mellm-stream dashboard", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class Credentials:
    """A bearer ``token`` and/or a basic ``user``/``password``; at least one must be set to check anything."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def __bool__(self) -> bool:
        return bool(self.token or self.password)

    def allows(self, authorization: str | None) -> bool:
        """Does the ``Authorization`` header value carry a valid credential?"""
        scheme, _, value = (authorization or "").strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self.token:
            return _same(value, self.token)
        if scheme != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        ok_basic = bool(self.password) and _same(user, self.user or "") & _same(password, self.password or "")
        ok_token = bool(self.token) and _same(password, self.token or "")  # any user name with the token
        return ok_basic or ok_token


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class AuthMiddleware:
    """Pure ASGI: every HTTP request without a valid credential gets 401 before reaching a route."""

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        if not credentials:
            raise ValueError("expected a token or a user and password")
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
            if not self.credentials.allows(header.decode("latin-1")):
                from starlette.responses import PlainTextResponse

                response = PlainTextResponse(
                    "authentication required\n", status_code=401, headers={"WWW-Authenticate": _REALM}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _read_secret(path: Path, flag: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UserError(f"cannot read {flag} {path}: {reason}; {_MAKE_ONE} > FILE") from None
    if "\n" in text:
        raise UserError(f"{flag} {path} must hold one line")
    return text


def _warn_if_shared(path: Path | None, flag: str) -> None:
    if path is not None and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s can be read by other users of this machine: chmod 600 it", flag, path)


def load_credentials(
    token_file: Path | None, basic_auth_file: Path | None, environ: dict[str, str] | None = None
) -> Credentials:
    """The credentials given by flags or the environment (a `UserError` names a bad one)."""
    env = os.environ if environ is None else environ
    token = _read_secret(token_file, "--token-file") if token_file else env.get(TOKEN_ENV, "").strip() or None
    where = "--token-file" if token_file else TOKEN_ENV
    if token is not None and len(token) < MIN_SECRET:
        raise UserError(f"the token of {where} is shorter than {MIN_SECRET} characters; {_MAKE_ONE}")
    user = password = None
    if basic_auth_file:
        user, sep, password = _read_secret(basic_auth_file, "--basic-auth-file").partition(":")
        if not sep or not user:
            raise UserError(f"--basic-auth-file {basic_auth_file} must hold one line USER:PASSWORD")
        if len(password) < MIN_SECRET:
            short = f"shorter than {MIN_SECRET} characters"
            raise UserError(f"the password of --basic-auth-file is {short}; {_MAKE_ONE}")
    _warn_if_shared(token_file, "--token-file")
    _warn_if_shared(basic_auth_file, "--basic-auth-file")
    return Credentials(token, user, password)


__all__ = ["TOKEN_ENV", "AuthMiddleware", "Credentials", "load_credentials"]
