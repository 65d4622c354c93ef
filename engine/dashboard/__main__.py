"""``python -m engine.dashboard --sub ENDPOINT [--sub ENDPOINT2 ...] [--bind 127.0.0.1:8080]``.

Subscribes to each engine's ``--pub`` endpoint and serves the live page at http://BIND/ (plus
``/metrics`` for Prometheus). Binds loopback by default; another interface is an explicit choice
(the page has no authentication). Exit 0 on Ctrl-C or SIGTERM, 2 on a bad argument or a busy port.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys

from engine.errors import UserError

log = logging.getLogger("engine.dashboard")


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:8080``) → (host, port); a bad value is a `UserError`."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--bind expects HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host, int(port)


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
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        import uvicorn

        from engine.dashboard.app import Dashboard, create_app
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
        sock = bind_socket(host, port)
        state = DashboardState(history=args.history, max_candidates=args.max_candidates)
        try:
            keys = {"curve_server_key": args.curve_server_key, "curve_client_key": args.curve_client_key}
            dashboard = Dashboard(args.sub, state, **keys)
        except BaseException:
            sock.close()
            raise
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        log.warning("serving on %s: reachable from other machines, without authentication", args.bind)
    config = uvicorn.Config(
        create_app(dashboard),
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard: http://{shown}:{port}/  subscribed to {', '.join(dashboard.endpoints)}", flush=True)
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
