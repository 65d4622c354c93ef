"""``python -m engine.dashboard --sub ENDPOINT [--sub ENDPOINT2 ...] [--bind 127.0.0.1:8080]``.

Subscribes to each engine's ``--pub`` endpoint and serves the live page at http://BIND/ (plus
``/metrics`` for Prometheus). Binds loopback by default, where no login is asked. The page shows
faces: any other address needs a credential (``--token-file``, ``MELLM_DASHBOARD_TOKEN`` or
``--basic-auth-file``, see `engine.dashboard.auth`) or the dashboard refuses to start;
``--require-auth`` asks for it on loopback too (a machine shared with other users). ``--tls-cert``
and ``--tls-key`` serve HTTPS. Clips are served only from ``--clips-dir``. Exit 0 on Ctrl-C or
SIGTERM, 2 on a bad argument or a busy port.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import socket
import ssl
import sys
from pathlib import Path

from engine.dashboard.auth import TOKEN_ENV
from engine.errors import UserError
from engine.publish.config import ClipsConfig

log = logging.getLogger("engine.dashboard")


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:8080``) → (host, port); a bad value is a `UserError`."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--bind expects HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """Only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost); a name is not trusted."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tls(cert: Path | None, key: Path | None) -> None:
    """Both files or neither, and a pair that loads (a `UserError` otherwise, before anything binds)."""
    if cert is None and key is None:
        return
    if cert is None or key is None:
        raise UserError("HTTPS needs both --tls-cert CERT.pem and --tls-key KEY.pem")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise UserError(f"cannot load --tls-cert {cert} with --tls-key {key}: {reason}") from None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket, so a busy port is one clear line before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "choose another --bind port" if exc.errno == errno.EADDRINUSE else "check --bind"
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; {hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.dashboard",
        description="Live web dashboard of one or several mellm-stream engines (ZeroMQ subscriber).",
    )
    p.add_argument(
        "--sub", action="append", required=True, metavar="ENDPOINT",
        help="an engine's --pub address, e.g. tcp://127.0.0.1:5556 (repeat for several engines)",
    )
    p.add_argument("--bind", default="127.0.0.1:8080", metavar="HOST:PORT", help="where to serve the page")
    p.add_argument("--history", type=int, default=150, metavar="N", help="status samples kept per stream")
    p.add_argument("--max-candidates", type=int, default=200, metavar="N", help="candidates kept in memory")
    p.add_argument("--curve-server-key", metavar="FILE", help="the engines' CURVE public key (NAME.key)")
    p.add_argument("--curve-client-key", metavar="FILE", help="this client's secret key (NAME.key_secret)")
    p.add_argument(
        "--clips-dir", type=Path, metavar="DIR", default=Path(ClipsConfig().dir),
        help="the engine's clip folder (clips.dir); no clip is served from elsewhere (default: %(default)s)",
    )
    p.add_argument("--token-file", type=Path, metavar="FILE", help=f"bearer token (or set {TOKEN_ENV})")
    p.add_argument("--basic-auth-file", type=Path, metavar="FILE", help="one USER:PASSWORD line (basic auth)")
    p.add_argument(
        "--require-auth", action="store_true",
        help="ask for the credential on loopback too (always asked on any other address)",
    )
    p.add_argument("--tls-cert", type=Path, metavar="CERT.pem", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", type=Path, metavar="KEY.pem", help="the certificate's private key")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        import uvicorn

        from engine.dashboard.app import Dashboard, create_app
        from engine.dashboard.auth import load_credentials
        from engine.dashboard.state import DashboardState
    except ImportError as exc:
        hint = "pip install 'mellm-stream[dashboard]'"
        print(f"error: the dashboard needs {exc.name}: {hint}", file=sys.stderr)
        return 2
    try:
        if args.history < 2:
            raise UserError(f"--history must be at least 2, got {args.history}")
        if args.max_candidates < 1:
            raise UserError(f"--max-candidates must be at least 1, got {args.max_candidates}")
        host, port = parse_bind(args.bind)
        credentials = load_credentials(args.token_file, args.basic_auth_file)
        local = is_loopback_host(host)
        if not credentials and (args.require_auth or not local):
            why = "--require-auth is set" if local else f"--bind {args.bind} is reachable from other machines"
            raise UserError(
                f"{why}: give --token-file FILE (or set {TOKEN_ENV}) or --basic-auth-file FILE"
            )
        check_tls(args.tls_cert, args.tls_key)
        sock = bind_socket(host, port)
        state = DashboardState(history=args.history, max_candidates=args.max_candidates)
        try:
            keys = {"curve_server_key": args.curve_server_key, "curve_client_key": args.curve_client_key}
            dashboard = Dashboard(args.sub, state, clips_dir=args.clips_dir, **keys)
        except BaseException:
            sock.close()
            raise
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not local and args.tls_cert is None:
        log.warning(
            "serving on %s without TLS: the login and the faces cross the network readable by anyone on "
            "the way; give --tls-cert and --tls-key", args.bind,
        )
    config = uvicorn.Config(
        create_app(dashboard, credentials=credentials or None),
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if args.tls_cert else "http"
    print(
        f"dashboard: {scheme}://{shown}:{port}/  subscribed to {', '.join(dashboard.endpoints)}"
        f"  clips from {dashboard.clips_dir}" + ("  (login required)" if credentials else ""),
        flush=True,
    )
    try:
        server.run(sockets=[sock])  # uvicorn turns SIGINT/SIGTERM into a graceful shutdown
    except KeyboardInterrupt:  # uvicorn re-raises the signal after its graceful shutdown
        pass
    finally:
        sock.close()
        dashboard.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
