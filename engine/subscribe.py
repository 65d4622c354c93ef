"""Subscribe to an engine's events and print them: ``python -m engine.subscribe ENDPOINT``.

    python -m engine.subscribe tcp://127.0.0.1:5556                  # readable lines
    python -m engine.subscribe tcp://127.0.0.1:5556 --json           # the raw JSON, one per line
    python -m engine.subscribe tcp://127.0.0.1:5556 --save-maps maps # fused maps as maps/<id>.png
    python -m engine.subscribe tcp://127.0.0.1:5556 --topic mellm.candidate --count 5 --timeout 30

Messages follow event contract v1 (DESIGN.md): ``[topic, json]`` or ``[topic, json, png]``. The
``seq`` of consecutive messages from one publisher grows by 1, so a jump means lost messages and is
reported as ``gap: missed N events (seq a..b)``. With ``--topic`` only part of the sequence is
subscribed to, so gap detection is off. Exit 0 at ``--count``, at ``--timeout`` of silence, or on
Ctrl-C; 2 on a bad endpoint or argument.

Library use (tests, dashboards)::

    for topic, event, png in iter_events("tcp://127.0.0.1:5556", timeout_s=5):
        print(topic, event["seq"], event["type"])
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import zmq

from engine.errors import UserError

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Message:
    """One received message: ``raw`` is the JSON text exactly as sent (and as journaled)."""

    topic: str
    event: dict[str, Any]
    raw: str
    png: bytes | None


class Subscriber:
    """A SUB socket connected to ``endpoint`` and subscribed to ``topic`` (a prefix; "" = all).

    Malformed messages (not 2 or 3 frames, not a JSON object) are logged and skipped, counted in
    ``malformed``. Use as a context manager or call `close`.
    """

    def __init__(self, endpoint: str, topic: str = "", context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.malformed = 0
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise UserError(
                f"cannot connect to {endpoint}: {zmq.strerror(exc.errno)}; give an endpoint like tcp://127.0.0.1:5556"
            ) from None

    def recv(self, timeout_s: float | None = None) -> Message | None:
        """The next well-formed message, or None when nothing arrived within ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            frames = self._socket.recv_multipart()
            msg = self._parse(frames)
            if msg is not None:
                return msg

    def _parse(self, frames: list[bytes]) -> Message | None:
        try:
            if len(frames) not in (2, 3):
                raise ValueError(f"{len(frames)} frames, expected 2 or 3")
            raw = frames[1].decode("utf-8")
            event = json.loads(raw)
            if not isinstance(event, dict):
                raise ValueError("JSON is not an object")
            return Message(frames[0].decode("utf-8"), event, raw, frames[2] if len(frames) == 3 else None)
        except (ValueError, UnicodeDecodeError) as exc:
            self.malformed += 1
            log.warning("skipped a malformed message on %r: %s", frames[0][:80], exc)
            return None

    def close(self) -> None:
        self._socket.close(linger=0)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_events(
    endpoint: str, topic: str = "", timeout_s: float | None = None
) -> Iterator[tuple[str, dict[str, Any], bytes | None]]:
    """Yield ``(topic, event, png_or_None)`` until nothing arrives for ``timeout_s`` (None = forever).

    The socket is closed when the iterator ends or is closed (``break`` out of a for loop closes it).
    """
    with Subscriber(endpoint, topic) as sub:
        while (msg := sub.recv(timeout_s)) is not None:
            yield msg.topic, msg.event, msg.png


class SeqTracker:
    """Detects lost messages from the per-publisher ``seq`` counter.

    >>> t = SeqTracker()
    >>> [t.update(s) for s in (0, 1, 4)]
    [None, None, 'gap: missed 2 events (seq 2..3)']
    """

    def __init__(self) -> None:
        self.last: int | None = None
        self.missed = 0

    def update(self, seq: Any) -> str | None:
        """Record ``seq``; returns a warning line when it is not the successor of the previous one."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return f"warning: event without an integer seq ({seq!r})"
        last, self.last = self.last, seq
        if last is None or seq == last + 1:
            return None
        if seq > last + 1:
            n = seq - last - 1
            self.missed += n
            return f"gap: missed {n} event{'s' if n != 1 else ''} (seq {last + 1}..{seq - 1})"
        return f"seq restarted at {seq} after {last} (publisher restarted?)"


def _clock(t: Any) -> str:
    try:
        lt = time.localtime(float(t))
    except (TypeError, ValueError, OverflowError, OSError):
        return "--:--:--.---"
    return time.strftime("%H:%M:%S", lt) + f".{int((float(t) % 1) * 1000):03d}"


def _point(p: Any) -> str:
    if isinstance(p, dict) and "t" in p:
        try:
            return f"{float(p['t']):.3f}s (frame {p.get('frame', '?')})"
        except (TypeError, ValueError):
            pass
    return "?"


def _num(x: Any, fmt: str = ".1f") -> str:
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return str(x)


def format_event(event: dict[str, Any]) -> list[str]:
    """One or two readable lines for ``event`` (header, then the essentials of its type)."""
    kind = str(event.get("type", "?"))
    head = f"{_clock(event.get('time'))} {kind:<11} {event.get('stream', '?')} #{event.get('seq', '?')}"
    cid = str(event.get("candidate_id", ""))
    if kind == "candidate":
        regions = ", ".join(str(r) for r in event.get("regions", [])) or "-"
        return [
            f"{head} {cid} {event.get('kind', '?')} score {_num(event.get('score'), '.3f')}",
            f"    onset {_point(event.get('onset'))}  apex {_point(event.get('apex'))}  "
            f"offset {_point(event.get('offset'))}  regions: {regions}",
        ]
    if kind == "explanation":
        aus = ", ".join(
            f"AU{a.get('au', '?')} {a.get('name', '')} ({a.get('side', '?')})".replace("  ", " ")
            for a in event.get("aus", [])
            if isinstance(a, dict)
        )
        detail = event.get("emotion_detail")
        emotion = str(event.get("emotion", "?"))
        if detail and detail != emotion:
            emotion += f"/{detail}"
        return [
            f"{head} {cid} {emotion} [{event.get('explainer', '?')}, {_num(event.get('latency_ms'))} ms]"
            f"  {aus or 'no AUs'}",
            f"    {' '.join(str(event.get('text', '')).split())}",
        ]
    if kind == "dropped":
        detail = event.get("detail") or ""
        return [f"{head} {cid} reason {event.get('reason', '?')}" + (f": {detail}" if detail else "")]
    if kind == "status":
        return [
            f"{head} fps in {_num(event.get('fps_in'))} processed {_num(event.get('fps_processed'))}"
            f"  dropped {event.get('frames_dropped', '?')}  faces lost {event.get('faces_lost', '?')}"
            f"  queue {event.get('queue_depth', '?')}  reconnects {event.get('reconnects', '?')}"
            f"  uptime {_num(event.get('uptime_s'))} s"
        ]
    if kind == "error":
        return [f"{head} error in {event.get('where', '?')}: {event.get('message', '')}"]
    return [f"{head} {json.dumps(event, ensure_ascii=False)}"]


def save_map(directory: Path, event: dict[str, Any], png: bytes) -> Path:
    """Write ``png`` as ``directory/<candidate_id>.png`` (the id is checked to be a plain file name)."""
    cid = str(event.get("candidate_id", ""))
    if not _SAFE_ID.fullmatch(cid) or cid in (".", ".."):
        cid = f"seq{event.get('seq', 'unknown')}"
    path = directory / f"{cid}.png"
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(png)
    os.replace(tmp, path)  # a reader never sees half a PNG
    return path


def run(
    endpoint: str,
    *,
    as_json: bool = False,
    save_maps: Path | None = None,
    topic: str = "",
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """The CLI's loop; returns the number of events received."""
    tracker = SeqTracker() if not topic else None
    received = 0
    with Subscriber(endpoint, topic) as sub:
        while count is None or received < count:
            msg = sub.recv(timeout_s)
            if msg is None:
                break
            received += 1
            if tracker is not None and (warning := tracker.update(msg.event.get("seq"))):
                print(warning, file=out, flush=True)
            lines = [msg.raw] if as_json else format_event(msg.event)
            if save_maps is not None and msg.png is not None:
                path = save_map(save_maps, msg.event, msg.png)
                if not as_json:
                    lines[0] += f"  map: {path}"
            print("\n".join(lines), file=out, flush=True)
    return received


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.subscribe", description="Print the events an engine publishes (contract v1)."
    )
    p.add_argument("endpoint", help="the engine's --pub address, e.g. tcp://127.0.0.1:5556")
    p.add_argument("--json", action="store_true", help="print each event's raw JSON line")
    p.add_argument("--save-maps", metavar="DIR", type=Path, help="write fused maps as DIR/<candidate_id>.png")
    p.add_argument(
        "--topic", default="", metavar="PREFIX", help="topic prefix, e.g. mellm.candidate (no gap check)"
    )
    p.add_argument("--count", type=int, metavar="N", help="exit after N events")
    p.add_argument("--timeout", type=float, metavar="S", help="exit when nothing arrives for S seconds")
    return p


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.count is not None and args.count < 1:
            raise UserError(f"--count must be at least 1, got {args.count}")
        if args.timeout is not None and args.timeout <= 0:
            raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        if args.save_maps is not None:
            try:
                args.save_maps.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create --save-maps folder {args.save_maps}: {exc.strerror}") from exc
        signal.signal(signal.SIGTERM, _sigterm)
        run(
            args.endpoint,
            as_json=args.json,
            save_maps=args.save_maps,
            topic=args.topic,
            count=args.count,
            timeout_s=args.timeout,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
