"""One address for many engines: an XSUB/XPUB forwarder, ``python -m engine.proxy``.

    python -m engine.proxy --xsub tcp://127.0.0.1:5557 --xpub tcp://127.0.0.1:5556
    python run_stream.py --source 0 --stream cam0 --pub tcp://127.0.0.1:5557 --set publish.connect=true
    python run_stream.py --source 1 --stream cam1 --pub tcp://127.0.0.1:5557 --set publish.connect=true
    python -m engine.subscribe tcp://127.0.0.1:5556        # both streams, one connection

High-availability pattern: engines *connect* their publisher (``publish.connect = true``) to the
proxy's XSUB side; subscribers connect to its XPUB side, so cameras and engines come and go without
subscribers changing address. Messages pass through byte for byte: each engine keeps its own
``seq``, and subscribers track gaps per stream (`engine.subscribe.SeqTracker`), so give every engine
its own ``--stream``. Subscriptions flow back to the engines (each engine's
``wait_for_subscribers`` sees them). Each engine still writes its own journal for replay.

A subscriber stuck at its high-water mark does not stall the others or the engines: the XPUB
side refuses (``XPUB_NODROP``), the proxy counts the message as refused and moves on, and the
subscriber sees the gap in ``seq`` (fill it with ``engine.subscribe --replay``).

Security: ``--curve-secret-key`` and ``--curve-allow-dir`` make the XPUB side a CURVE server
(`engine.publish.curve`); keep the XSUB side on loopback or a trusted network (it is not encrypted;
a warning line says so otherwise). SIGINT/SIGTERM stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import zmq

from engine.errors import UserError
from engine.publish.curve import check_server_config, make_server, start_authenticator, warn_if_exposed
from engine.publish.zmq_publisher import is_loopback

log = logging.getLogger(__name__)

_POLL_MS = 100


@dataclass(frozen=True, slots=True)
class ProxyStats:
    forwarded: int  # messages from engines delivered to the XPUB side
    refused: int  # messages the XPUB side refused (a subscriber at its high-water mark)
    subscriptions: int  # subscribe messages passed upstream to the engines

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class Proxy:
    """XSUB (engines connect) → XPUB (subscribers connect); run `run` on one thread, `stop` from any.

    >>> p = Proxy("tcp://127.0.0.1:5591", "tcp://127.0.0.1:5592")
    >>> t = threading.Thread(target=p.run); t.start(); p.stop(); t.join(); p.close()
    >>> p.stats().forwarded
    0
    """

    def __init__(
        self,
        xsub: str,
        xpub: str,
        *,
        curve_secret_key: str = "",
        curve_allow_dir: str = "",
        sndhwm: int = 10000,
        linger_ms: int = 1000,
        context: zmq.Context | None = None,
    ) -> None:
        check_server_config(curve_secret_key, curve_allow_dir)
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._auth: Any = None
        self._stop = threading.Event()
        self._forwarded = self._refused = self._subscriptions = 0
        self._congested = False
        self._front: zmq.Socket | None = None
        self._back: zmq.Socket | None = None
        try:
            if curve_secret_key:
                self._auth = start_authenticator(self._context, curve_allow_dir)
            self._back = self._context.socket(zmq.XSUB)
            self._back.setsockopt(zmq.LINGER, linger_ms)
            self._bind(self._back, xsub, "--xsub")
            self._front = self._context.socket(zmq.XPUB)
            self._front.setsockopt(zmq.LINGER, linger_ms)
            self._front.setsockopt(zmq.SNDHWM, sndhwm)
            self._front.setsockopt(zmq.XPUB_NODROP, 1)
            self._front.setsockopt(zmq.XPUB_VERBOSE, 1)
            if curve_secret_key:
                make_server(self._front, curve_secret_key)
            self._bind(self._front, xpub, "--xpub")
        except BaseException:
            self.close()
            raise
        warn_if_exposed(xsub, False, is_loopback(xsub))
        warn_if_exposed(xpub, bool(curve_secret_key), is_loopback(xpub))
        self.xsub, self.xpub = xsub, xpub

    @staticmethod
    def _bind(sock: zmq.Socket, endpoint: str, flag: str) -> None:
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise UserError(
                f"cannot bind {flag} {endpoint}: {zmq.strerror(exc.errno)}; give a free address like "
                "tcp://127.0.0.1:5557"
            ) from None

    def run(self) -> None:
        """Forward until `stop`: data engines → subscribers, subscriptions subscribers → engines."""
        assert self._front is not None and self._back is not None
        poller = zmq.Poller()
        poller.register(self._back, zmq.POLLIN)
        poller.register(self._front, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(_POLL_MS))
            if self._front in ready:
                while self._front.poll(0):
                    msg = self._front.recv_multipart()
                    self._back.send_multipart(msg)
                    if msg and msg[0][:1] == b"\x01":
                        self._subscriptions += 1
            if self._back in ready:
                while self._back.poll(0):
                    self._forward(self._back.recv_multipart())

    def _forward(self, frames: list[bytes]) -> None:
        assert self._front is not None
        try:
            self._front.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self._refused += 1
            if not self._congested:
                log.warning("a subscriber is at its high-water mark: refusing messages (seq gaps follow)")
                self._congested = True
            return
        self._forwarded += 1
        self._congested = False

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> ProxyStats:
        return ProxyStats(self._forwarded, self._refused, self._subscriptions)

    def close(self) -> None:
        """Close both sockets (call after `run` returned), stop the authenticator, end our context."""
        for sock in (self._front, self._back):
            if sock is not None:
                sock.close()
        self._front = self._back = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_context:
            self._context.term()
            self._own_context = False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--xsub", default="tcp://127.0.0.1:5557", help="where engines connect (publish.connect)")
    p.add_argument("--xpub", default="tcp://127.0.0.1:5556", help="where subscribers connect")
    p.add_argument("--curve-secret-key", default="", metavar="SERVER.key_secret", help="CURVE on --xpub")
    p.add_argument("--curve-allow-dir", default="", metavar="DIR", help="allowed subscribers' NAME.key files")
    p.add_argument("--sndhwm", type=int, default=10000, help="messages queued per subscriber before refusing")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.sndhwm < 1:
            raise UserError(f"--sndhwm must be at least 1, got {args.sndhwm}")
        proxy = Proxy(
            args.xsub,
            args.xpub,
            curve_secret_key=args.curve_secret_key,
            curve_allow_dir=args.curve_allow_dir,
            sndhwm=args.sndhwm,
        )
    except UserError as exc:
        print(f"python -m engine.proxy: error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        proxy.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("proxy: engines → %s, subscribers → %s", args.xsub, args.xpub)
    started = time.monotonic()
    try:
        proxy.run()
    finally:
        proxy.close()
    log.info("proxy stopped after %.1f s: %s", time.monotonic() - started, proxy.stats().to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
