"""Subscribe to an engine's events and print them: ``python -m engine.subscribe ENDPOINT``.

    python -m engine.subscribe tcp://127.0.0.1:5556                  # readable lines
    python -m engine.subscribe tcp://127.0.0.1:5556 --json           # the raw JSON, one per line
    python -m engine.subscribe tcp://127.0.0.1:5556 --save-maps maps # fused maps as maps/<id>.png
    python -m engine.subscribe tcp://127.0.0.1:5556 --save-maps maps --max-age-days 7 --max-bytes 500MiB
    python -m engine.subscribe tcp://127.0.0.1:5556 --topic mellm.candidate --count 5 --timeout 30
    python -m engine.subscribe --replay events.jsonl --from 1200 --json   # what was missed, then exit
    python -m engine.subscribe tcp://127.0.0.1:5556 --replay events.jsonl --from 1200  # ... then live
    python -m engine.subscribe tcp://edge:5556 --curve-server-key server.key --curve-client-key me.key_secret

Messages follow event contract v2 (DESIGN.md): ``[topic, json]`` or ``[topic, json, png]``. The
``seq`` of consecutive messages from one publisher grows by 1, so a jump means lost messages and is
reported as ``gap: missed N events (seq a..b)``. Gaps are tracked per ``stream`` (one engine = one
stream), so several engines behind one `engine.proxy` each keep their own sequence; give every
engine its own ``--stream`` name. With ``--topic`` only part of the sequence is subscribed to, so
gap detection is off. Exit 0 at ``--count``, at ``--timeout`` of silence, or on Ctrl-C; 2 on a bad
endpoint or argument.

Gap-free consumption (``--replay JOURNAL --from SEQ``): the engine's journal (``--journal``, all
rotated segments in order) holds every event with its ``seq``. Replay prints the events of the
journal's latest run (the lines after the last ``seq`` restart, i.e. since the engine last started)
whose ``seq`` >= SEQ, exactly as they were sent (``--json`` prints the identical line). With an
ENDPOINT as well, the subscriber connects *before* reading the journal and then goes live: events
already replayed are skipped (same ``event_id``), and a live jump in ``seq`` is filled from the
journal first (the publisher journals each event before it sends it), so nothing is missed or
printed twice. Replay must run where the journal is (the engine's machine or a shared disk).

CURVE (``--curve-server-key SERVER.key --curve-client-key CLIENT.key_secret``): see
`engine.publish.curve`. A refused or failed handshake logs one warning line and receives nothing.

Saved maps show faces and their names come from events: ``--save-maps`` writes only plain
``<candidate_id>.png`` names inside its folder (`save_map`); ``--max-age-days``/``--max-bytes``
delete the oldest (`engine.retention`).

Library use (tests, dashboards)::

    for topic, event, png in iter_events("tcp://127.0.0.1:5556", timeout_s=5):
        print(topic, event["seq"], event["type"])
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import zmq
from zmq.utils.monitor import recv_monitor_message

from engine.errors import UserError
from engine.events import topic as event_topic
from engine.paths import confined_path
from engine.publish.curve import make_client
from engine.publish.journal import read_lines
from engine.retention import Sweeper

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_DEDUP_WINDOW = 100_000  # replayed event ids remembered to skip their live copies
# Waits are sliced so Python runs its signal handlers between them: a Ctrl-C that lands just before
# an unbounded zmq poll starts would otherwise wait for the next message, maybe forever.
_POLL_SLICE_MS = 250
_RECONNECT_S = 1.0  # pause before connecting again after a handshake libzmq gives up on


@dataclass(frozen=True, slots=True)
class Message:
    """One received message: ``raw`` is the JSON text exactly as sent (and as journaled)."""

    topic: str
    event: dict[str, Any]
    raw: str
    png: bytes | None


_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_HANDSHAKE_HINTS = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the server refused this client's key (not in its allowlist)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the server dropped the handshake (wrong --curve-server-key?)",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "security mismatch (the server uses CURVE and this client not, "
    "or the other way round)",
}


class Subscriber:
    """A SUB socket connected to ``endpoint`` and subscribed to ``topic`` (a prefix; "" = all).

    Malformed messages (not 2 or 3 frames, not a JSON object) are logged and skipped, counted in
    ``malformed``. With ``curve_server_key`` (the server's ``NAME.key``) and ``curve_client_key``
    (this client's ``NAME.key_secret``) the connection is CURVE-encrypted. Failed handshakes are
    counted in ``handshake_failures`` and logged once per cause; such a subscriber receives nothing
    (fail closed) and keeps retrying. Use as a context manager or call `close`.
    """

    def __init__(
        self,
        endpoint: str,
        topic: str = "",
        context: zmq.Context | None = None,
        *,
        curve_server_key: str | Path | None = None,
        curve_client_key: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.malformed = 0
        self.handshakes = 0
        self.handshake_failures = 0
        self._warned: set[int] = set()
        self._reconnect_at: float | None = None
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._monitor: zmq.Socket | None = None
        try:
            if bool(curve_server_key) != bool(curve_client_key):
                raise UserError(
                    "CURVE needs both --curve-server-key SERVER.key and --curve-client-key CLIENT.key_secret"
                )
            if curve_server_key and curve_client_key:
                make_client(self._socket, curve_server_key, curve_client_key)
            self._monitor = self._socket.get_monitor_socket(_HANDSHAKE_EVENTS)
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise UserError(
                f"cannot connect to {endpoint}: {zmq.strerror(exc.errno)}; give an endpoint like tcp://127.0.0.1:5556"
            ) from None
        except BaseException:
            self.close()
            raise
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def recv(self, timeout_s: float | None = None) -> Message | None:
        """The next well-formed message, or None when nothing arrived within ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = _POLL_SLICE_MS
            if deadline is not None:
                wait_ms = min(wait_ms, max(0, int((deadline - time.monotonic()) * 1000)))
            ready = dict(self._poller.poll(wait_ms))
            if self._monitor is not None and self._monitor in ready:
                self._read_monitor()
            if self._reconnect_at is not None and time.monotonic() >= self._reconnect_at:
                self._reconnect()
            if self._socket not in ready:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            frames = self._socket.recv_multipart()
            msg = self._parse(frames)
            if msg is not None:
                return msg

    def _read_monitor(self) -> None:
        assert self._monitor is not None
        while self._monitor.poll(0):
            event = int(recv_monitor_message(self._monitor)["event"])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshakes += 1
                continue
            self.handshake_failures += 1
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and self._reconnect_at is None:
                # libzmq ends a connection that failed on a protocol error (e.g. a publisher without
                # CURVE where CURVE is expected) and never retries it: whoever bound the port first
                # would keep this subscriber deaf after the real engine is up. Retry ourselves.
                self._reconnect_at = time.monotonic() + _RECONNECT_S
            if event not in self._warned:
                self._warned.add(event)
                log.warning(
                    "no events from %s: %s",
                    self.endpoint, _HANDSHAKE_HINTS.get(event, f"handshake failed (event {event})"),
                )

    def _reconnect(self) -> None:
        self._reconnect_at = None
        with contextlib.suppress(zmq.ZMQError):  # the failed connection may already be gone
            self._socket.disconnect(self.endpoint)
        self._socket.connect(self.endpoint)

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
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._socket.close(linger=0)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_events(
    endpoint: str,
    topic: str = "",
    timeout_s: float | None = None,
    *,
    curve_server_key: str | Path | None = None,
    curve_client_key: str | Path | None = None,
) -> Iterator[tuple[str, dict[str, Any], bytes | None]]:
    """Yield ``(topic, event, png_or_None)`` until nothing arrives for ``timeout_s`` (None = forever).

    The socket is closed when the iterator ends or is closed (``break`` out of a for loop closes it).
    """
    with Subscriber(
        endpoint, topic, curve_server_key=curve_server_key, curve_client_key=curve_client_key
    ) as sub:
        while (msg := sub.recv(timeout_s)) is not None:
            yield msg.topic, msg.event, msg.png


class SeqTracker:
    """Detects lost messages from the per-publisher ``seq`` counter, per ``stream``.

    One engine publishes one stream, so the stream name stands for the publisher; behind an
    `engine.proxy` the streams of several engines interleave and each keeps its own sequence.
    Warning lines name the stream once more than one stream has been seen.

    >>> t = SeqTracker()
    >>> [t.update(s) for s in (0, 1, 4)]
    [None, None, 'gap: missed 2 events (seq 2..3)']
    >>> t.update(0, "cam2"), t.update(6, "cam2")
    (None, 'gap: missed 5 events (seq 1..5) on stream cam2')
    """

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.missed = 0
        self.missed_by_stream: dict[str, int] = {}

    def update(self, seq: Any, stream: str = "") -> str | None:
        """Record ``seq`` of ``stream``; a warning line when it is not the successor of the previous one."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return f"warning: event without an integer seq ({seq!r})"
        last = self.last.get(stream)
        self.last[stream] = seq
        where = f" on stream {stream}" if len(self.last) > 1 else ""
        if last is None or seq == last + 1:
            return None
        if seq > last + 1:
            n = seq - last - 1
            self.missed += n
            self.missed_by_stream[stream] = self.missed_by_stream.get(stream, 0) + n
            return f"gap: missed {n} event{'s' if n != 1 else ''} (seq {last + 1}..{seq - 1}){where}"
        return f"seq restarted at {seq} after {last}{where} (publisher restarted?)"


def _journal_message(line: str) -> Message | None:
    """A journal line as a `Message` (no PNG: maps are not journaled); None when malformed."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
        return None
    try:
        name = event_topic(event).decode("utf-8")
    except (KeyError, UnicodeError):
        name = ""
    return Message(name, event, line, None)


def _journal_lines(path: Path) -> Iterator[str]:
    """`read_lines`, with a folder, an unreadable or a binary file as one clear `UserError`."""
    fix = "give the JSON-lines file the engine writes with --journal"
    if path.is_dir():
        raise UserError(f"journal {path} is a folder; {fix}")
    try:
        yield from read_lines(path)
    except UnicodeDecodeError:
        raise UserError(f"journal {path} is not a text file; {fix}") from None
    except OSError as exc:
        raise UserError(f"cannot read journal {path}: {exc.strerror or exc}; {fix}") from None


def latest_run(journal: str | Path) -> tuple[int, int | None]:
    """(first line, last seq) of the journal's latest run; last seq None when it holds no event.

    A run starts where ``seq`` does not grow (the engine restarted and appended to the same journal).
    """
    path = Path(journal)
    if not path.exists() and not path.with_name(path.name + ".1").exists():
        raise UserError(f"journal {path} not found; give the file the engine writes with --journal")
    start = 0
    prev: int | None = None
    bad = 0
    for i, line in enumerate(_journal_lines(path)):
        msg = _journal_message(line)
        if msg is None:
            bad += 1
            continue
        seq = msg.event["seq"]
        if prev is not None and seq <= prev:
            start = i
        prev = seq
    if bad:
        log.warning("journal %s: skipped %d malformed line(s)", path, bad)
    return start, prev


def replay(
    journal: str | Path, from_seq: int = 0, *, below_seq: int | None = None, topic: str = ""
) -> Iterator[Message]:
    """The journaled events of the latest run with ``from_seq <= seq < below_seq``, in journal order.

    A run starts where ``seq`` does not grow (the engine restarted and appended to the same
    journal). Rotated segments are read oldest first (`engine.publish.journal.read_lines`).
    ``topic``: keep only events whose topic starts with it. Malformed lines are logged and skipped.
    """
    path = Path(journal)
    start, _ = latest_run(path)
    # pass 2: the run's lines in range (the journal may have grown: still a prefix, still in order)
    prev = None
    for i, line in enumerate(_journal_lines(path)):
        if i < start:
            continue
        msg = _journal_message(line)
        if msg is None:
            continue
        seq = msg.event["seq"]
        if prev is not None and seq <= prev:
            return  # a newer run began while we read: the caller's run ended here
        prev = seq
        if seq < from_seq or (below_seq is not None and seq >= below_seq):
            continue
        if msg.topic.startswith(topic):
            yield msg


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
    if kind == "map":
        return [f"{head} {cid} fused map"]
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


def save_map(directory: Path, event: dict[str, Any], png: bytes) -> Path | None:
    """Write ``png`` as ``directory/<candidate_id>.png`` (``seq<N>.png`` without a usable id).

    The name comes from the event, so whoever can publish chooses it: it must be a plain file name
    that stays inside ``directory`` once symbolic links are followed (`engine.paths.confined_path`),
    else nothing is written and None is returned (with a warning). The bytes go to a fresh private
    temporary file (created exclusively: never through a planted link) renamed into place, so a
    reader never sees half a PNG.
    """
    cid, seq = event.get("candidate_id"), event.get("seq")
    if isinstance(cid, str) and _SAFE_ID.fullmatch(cid):
        name = f"{cid}.png"
    elif type(seq) is int:
        name = f"seq{seq}.png"
    else:
        name = ""
    path = confined_path(directory, name)
    if path is None:
        log.warning("map not saved: %r is no plain file name inside %s", name or cid, directory)
        return None
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".png.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def run(
    endpoint: str | None,
    *,
    as_json: bool = False,
    save_maps: Path | None = None,
    topic: str = "",
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO = sys.stdout,
    replay_journal: Path | None = None,
    from_seq: int = 0,
    curve_server_key: Path | None = None,
    curve_client_key: Path | None = None,
    max_age_days: float = 0.0,
    max_bytes: int = 0,
) -> int:
    """The CLI's loop: replay the journal (if given), then live events (if ``endpoint``); returns how many.

    ``max_age_days``/``max_bytes``: retention of the saved maps (`engine.retention`; 0 = off).
    """
    tracker = SeqTracker() if not topic else None
    sweeper: Sweeper | None = None
    received = 0

    def show(msg: Message) -> None:
        nonlocal received
        received += 1
        stream = str(msg.event.get("stream", ""))
        if tracker is not None and (warning := tracker.update(msg.event.get("seq"), stream)):
            print(warning, file=out, flush=True)
        lines = [msg.raw] if as_json else format_event(msg.event)
        if save_maps is not None and msg.png is not None:
            path = save_map(save_maps, msg.event, msg.png)
            if sweeper is not None:
                sweeper.poke()
            if not as_json and path is not None:
                lines[0] += f"  map: {path}"
        print("\n".join(lines), file=out, flush=True)

    def done() -> bool:
        return count is not None and received >= count

    sub = None
    if endpoint is not None:  # connect before reading the journal, so nothing falls in between
        sub = Subscriber(
            endpoint, topic, curve_server_key=curve_server_key, curve_client_key=curve_client_key
        )
    try:
        if save_maps is not None:
            sweeper = Sweeper(save_maps, "*.png", max_age_days=max_age_days, max_bytes=max_bytes)
        last: int | None = None  # seq of the last replayed/printed event of the journal's publisher
        replayed: OrderedDict[str, None] = OrderedDict()  # recent replayed event_ids (duplicate check)
        if replay_journal is not None:
            _, last_seq = latest_run(replay_journal)
            if last_seq is None or from_seq > last_seq:
                ends = "holds no event" if last_seq is None else f"ends at seq {last_seq}"
                if sub is None:
                    raise UserError(
                        f"--from {from_seq}: journal {replay_journal} (latest run) {ends}, so there is "
                        "nothing to replay; give a smaller --from, or an ENDPOINT to wait for live events"
                    )
                print(
                    f"note: journal {replay_journal} (latest run) {ends}; nothing to replay from "
                    f"--from {from_seq}, waiting for live events",
                    file=sys.stderr,
                    flush=True,
                )
            for msg in replay(replay_journal, from_seq, topic=topic):
                if done():
                    return received
                show(msg)
                last = msg.event["seq"]
                replayed[str(msg.event.get("event_id"))] = None
                if len(replayed) > _DEDUP_WINDOW:
                    replayed.popitem(last=False)
        if sub is None:
            return received
        while not done():
            msg = sub.recv(timeout_s)
            if msg is None:
                break
            seq = msg.event.get("seq")
            if replay_journal is not None and isinstance(seq, int) and last is not None:
                if str(msg.event.get("event_id")) in replayed:
                    continue  # already printed from the journal
                if seq > last + 1 and not topic:  # journaled before it was sent: fill from the journal
                    for missed in replay(replay_journal, last + 1, below_seq=seq):
                        if done():
                            return received
                        show(missed)
                last = seq
            show(msg)
    finally:
        if sub is not None:
            sub.close()
        if sweeper is not None:
            sweeper.close()
    return received


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.subscribe", description="Print the events an engine publishes (contract v2)."
    )
    p.add_argument(
        "endpoint", nargs="?", help="the engine's --pub address, e.g. tcp://127.0.0.1:5556 (or only --replay)"
    )
    p.add_argument("--json", action="store_true", help="print each event's raw JSON line")
    p.add_argument("--save-maps", metavar="DIR", type=Path, help="write fused maps as DIR/<candidate_id>.png")
    p.add_argument(
        "--max-age-days", type=float, default=0.0, metavar="D",
        help="with --save-maps: delete saved maps older than D days (they show faces; 0 = keep)",
    )
    p.add_argument(
        "--max-bytes", default="0", metavar="SIZE",
        help="with --save-maps: delete the oldest maps while DIR holds more, e.g. 500MiB (0 = no limit)",
    )
    p.add_argument(
        "--topic", default="", metavar="PREFIX", help="topic prefix, e.g. mellm.candidate (no gap check)"
    )
    p.add_argument("--count", type=int, metavar="N", help="exit after N events")
    p.add_argument("--timeout", type=float, metavar="S", help="exit when nothing arrives for S seconds")
    p.add_argument(
        "--replay", metavar="JOURNAL", type=Path,
        help="first print the journal's events (latest run) from --from on; then live if ENDPOINT is given",
    )
    p.add_argument("--from", dest="from_seq", type=int, metavar="SEQ", help="first seq to replay (default 0)")
    p.add_argument(
        "--curve-server-key", metavar="SERVER.key", type=Path, help="CURVE: the server's public key file"
    )
    p.add_argument(
        "--curve-client-key", metavar="CLIENT.key_secret", type=Path, help="CURVE: this client's key pair"
    )
    return p
def _byte_size(text: str) -> int:
    """``--max-bytes``: a number of bytes, or with a unit such as 500MiB or 2GB."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        hint = "a size such as 500MiB or 2GB (0 = no limit)"
        raise UserError(f"--max-bytes expects {hint}, got {text!r}") from None


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.endpoint is None and args.replay is None:
            raise UserError("give an ENDPOINT to subscribe to, or --replay JOURNAL (or both)")
        if args.from_seq is not None and args.replay is None:
            raise UserError("--from needs --replay JOURNAL (it selects where the replay starts)")
        if args.from_seq is not None and args.from_seq < 0:
            raise UserError(f"--from must be a seq >= 0, got {args.from_seq}")
        if args.count is not None and args.count < 1:
            raise UserError(f"--count must be at least 1, got {args.count}")
        if args.timeout is not None and not (0 < args.timeout < math.inf):
            raise UserError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
        max_bytes = _byte_size(args.max_bytes)
        if not (0 <= args.max_age_days < math.inf):
            raise UserError(f"--max-age-days must be a number of days >= 0, got {args.max_age_days}")
        if (args.max_age_days or max_bytes) and args.save_maps is None:
            raise UserError("--max-age-days and --max-bytes limit the maps of --save-maps DIR; give it")
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
            replay_journal=args.replay,
            from_seq=args.from_seq or 0,
            curve_server_key=args.curve_server_key,
            curve_client_key=args.curve_client_key,
            max_age_days=args.max_age_days,
            max_bytes=max_bytes,
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
