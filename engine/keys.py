"""Generate CURVE key pairs for the publisher, the proxy and subscribers: ``python -m engine.keys``.

    python -m engine.keys generate keys --name server   # keys/server.key, keys/server.key_secret
    python -m engine.keys generate keys --name alice    # a subscriber's pair

``NAME.key`` holds the public key (give it away: the server's to subscribers, a subscriber's into the
server's allowlist folder); ``NAME.key_secret`` holds both halves and is written readable by its
owner only. Existing files are never overwritten. Exit 2 with one line on a user mistake.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import zmq
import zmq.auth

from engine.errors import UserError

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def generate(directory: str | Path, name: str = "server") -> tuple[Path, Path]:
    """Write ``directory/name.key`` and ``directory/name.key_secret`` (mode 0600); returns both paths."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise UserError(f"key name {name!r} must be a plain file name (letters, digits, _ . -)")
    if not zmq.has("curve"):
        raise UserError("this libzmq has no CURVE support; install pyzmq's wheel (it bundles libsodium)")
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for p in (public, secret):
        if p.exists():
            raise UserError(f"{p} already exists; choose another --name or folder (never overwritten)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)  # the secret file is never readable by others, not even briefly
        try:
            made_public, made_secret = zmq.auth.create_certificates(folder, name)
        finally:
            os.umask(old)
        os.chmod(made_secret, 0o600)
        os.chmod(made_public, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write keys in {folder}: {exc.strerror or exc}; choose another") from None
    return Path(made_public), Path(made_secret)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.keys", description="CURVE key pairs for ZeroMQ.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (keep private) in DIR")
    gen.add_argument("directory", metavar="DIR")
    gen.add_argument("--name", default="server", help="file name stem (default: server)")
    args = parser.parse_args(argv)
    try:
        public, secret = generate(args.directory, args.name)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"public key: {public}")
    print(f"secret key: {secret}  (keep private)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
