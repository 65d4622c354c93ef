"""ZeroMQ CURVE security: key files, the server side (publisher, proxy) and the client side (subscriber).

CURVE encrypts every message and authenticates both ends with Curve25519 key pairs. The server
(the engine's XPUB, or the proxy's XPUB) holds a key pair; a client must know the server's public
key and present a key pair whose public half is in the server's allowlist folder. Keys are the
certificate files of `zmq.auth.create_certificates` (``python -m engine.keys generate DIR``):
``NAME.key`` holds the public key, ``NAME.key_secret`` both halves.

    python -m engine.keys generate keys --name server
    python -m engine.keys generate keys --name alice
    mkdir allowed && cp keys/alice.key allowed/
    python run_stream.py --source 0 --pub tcp://0.0.0.0:5556 \\
        --set publish.curve_secret_key=keys/server.key_secret --set publish.curve_allow_dir=allowed
    python -m engine.subscribe tcp://edge-box:5556 \\
        --curve-server-key keys/server.key --curve-client-key keys/alice.key_secret

Fail closed: a client with no key, a key that is not allowed, or the wrong server key completes no
handshake and receives nothing. The allowlist is read once at start (restart to add a client).
"""

from __future__ import annotations

import logging
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from engine.errors import UserError

log = logging.getLogger(__name__)

KEYS_HINT = "make one with: python -m engine.keys generate DIR --name NAME"


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise UserError("this libzmq has no CURVE support; install pyzmq's wheel (it bundles libsodium)")


def load_key_pair(path: str | Path, what: str) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``NAME.key_secret`` file; a missing or bad file is a `UserError`."""
    _require_curve()
    public, secret = _load(path, what)
    if secret is None:
        raise UserError(f"{what} {path} holds no secret key; give the NAME.key_secret file, not NAME.key")
    return public, secret


def load_public_key(path: str | Path, what: str) -> bytes:
    """The Z85 public key of a ``NAME.key`` (or ``NAME.key_secret``) file; errors are a `UserError`."""
    _require_curve()
    return _load(path, what)[0]


def _load(path: str | Path, what: str) -> tuple[bytes, bytes | None]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {p} not found; {KEYS_HINT}")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (OSError, ValueError, IndexError) as exc:
        raise UserError(f"{what} {p} is not a ZeroMQ certificate ({exc}); {KEYS_HINT}") from None
    for key in (public, secret):
        if key is not None and len(key) != 40:
            raise UserError(f"{what} {p} holds a malformed key (expected 40 Z85 characters); {KEYS_HINT}")
    return public, secret


def check_server_config(secret_key: str, allow_dir: str, connect: bool = False) -> None:
    """Both CURVE settings or neither; CURVE needs a bound (server) socket."""
    if bool(secret_key) != bool(allow_dir):
        given, missing = (
            ("curve_secret_key", "curve_allow_dir") if secret_key else ("curve_allow_dir", "curve_secret_key")
        )
        raise UserError(
            f"publish.{given} is set but publish.{missing} is not; CURVE needs the server's key_secret "
            "file and a folder of allowed client public keys"
        )
    if secret_key and connect:
        raise UserError(
            "CURVE works on a bound endpoint; with publish.connect secure the proxy's --xpub side "
            "instead (python -m engine.proxy --curve-secret-key ... --curve-allow-dir ...)"
        )


def start_authenticator(context: zmq.Context, allow_dir: str | Path) -> ThreadAuthenticator:
    """A ZAP handler on ``context`` that admits only the public keys in ``allow_dir`` (``*.key``).

    One per context: call ``stop()`` on it before the context is terminated.
    """
    _require_curve()
    folder = Path(allow_dir)
    if not folder.is_dir():
        raise UserError(f"CURVE allowlist folder {folder} not found; create it and copy client NAME.key in")
    allowed = zmq.auth.load_certificates(folder)
    if not allowed:
        log.warning("CURVE allowlist %s has no NAME.key files: every subscriber will be refused", folder)
    auth = ThreadAuthenticator(context, log=logging.getLogger("engine.publish.zap"))
    try:
        auth.start()
        auth.configure_curve(domain="*", location=str(folder))
    except zmq.ZMQError as exc:
        auth.stop()
        raise UserError(
            f"cannot start the CURVE authenticator ({zmq.strerror(exc.errno)}): one CURVE server per "
            "ZeroMQ context"
        ) from None
    log.info("CURVE on: %d allowed client key(s) from %s", len(allowed), folder)
    return auth


def make_server(sock: zmq.Socket, secret_key_path: str | Path) -> None:
    """Make ``sock`` a CURVE server with the key pair in ``secret_key_path`` (before bind)."""
    public, secret = load_key_pair(secret_key_path, "CURVE server key")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True


def make_client(sock: zmq.Socket, server_key_path: str | Path, client_secret_path: str | Path) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is in ``server_key_path``."""
    server_public = load_public_key(server_key_path, "CURVE server key")
    public, secret = load_key_pair(client_secret_path, "CURVE client key")
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def warn_if_exposed(endpoint: str, secure: bool, is_loopback: bool) -> None:
    """One clear line on stderr (logging) when events leave this machine unencrypted."""
    if not is_loopback and not secure:
        log.warning(
            "UNENCRYPTED: %s is reachable from other machines and anyone who reaches it reads every "
            "event; set publish.curve_secret_key and publish.curve_allow_dir (python -m engine.keys)",
            endpoint,
        )
