"""The dashboard web app: Starlette routes over a `DashboardState` fed by ZeroMQ subscriber threads.

One `SubscriberThread` per endpoint receives contract-v1 messages with `engine.subscribe.Subscriber`
and records them in the state; the resulting updates go to every open page by server-sent events.

Routes:

* ``/``: the page (static/index.html, app.js, style.css; no build step, no CDN).
* ``/events``: server-sent events, one ``data:`` JSON update per change (``kind`` = ``stream``,
  ``candidate``, ``evict``, ``endpoint``; ``resync`` when a slow page fell behind and must refetch).
* ``/api/state``: everything the dashboard holds, as JSON.
* ``/maps/{candidate_id}.png``: the fused map exactly as it arrived with the candidate event.
* ``/clips/{candidate_id}.mp4``: the candidate's event clip, ``CLIPS_DIR/<candidate_id>.mp4``, served
  only when its explanation event named that clip and the file, links followed, is a regular file
  inside the dashboard's own clip folder (``clips_dir``); anything else is 404. The folder of the
  event's path is never used: whoever can publish an event must not choose what this server reads.
* ``/clips/{candidate_id}.webm``: the same clip re-encoded as VP8 WebM for the page's player,
  because browsers do not decode the MPEG-4 Part 2 (``mp4v``) video that OpenCV writes quickly
  here (OpenCV's FFmpeg has no H.264 encoder, and VP9 costs about 200 ms a frame on this CPU).
  Done once per clip when a person presses play, cached in a bounded LRU.
* ``/metrics``: Prometheus text format 0.0.4.

With ``credentials`` (`engine.dashboard.auth`) every route, ``/events`` and ``/metrics`` included,
answers 401 without a valid bearer token or basic credential.

>>> app = create_app(Dashboard(["tcp://127.0.0.1:5556"]))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from engine.dashboard.auth import AuthMiddleware, Credentials
from engine.dashboard.state import DashboardState, safe_id
from engine.paths import confined_path
from engine.subscribe import Subscriber

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_POLL_S = 0.2  # how often a subscriber thread looks at its stop flag
_HEARTBEAT_S = 10.0  # SSE comment line so proxies and browsers keep the connection
_CLIENT_QUEUE = 2000  # updates buffered per page before it is told to resync
_CLIP_WAIT_S = 10.0  # the clip file may still be being written when the page asks for it


class SubscriberThread(threading.Thread):
    """Receives from one endpoint and feeds ``state``; ``on_updates`` gets what changed.

    The `Subscriber` is made in the constructor (so a bad endpoint is a `UserError` at start-up, in
    the caller's thread) and used only by this thread from then on; ZeroMQ allows handing a socket
    to another thread across the memory barrier of ``Thread.start``.
    """

    def __init__(
        self,
        endpoint: str,
        state: DashboardState,
        on_updates: Callable[[list[dict[str, Any]]], None],
        context: zmq.Context,
        curve: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=f"sub {endpoint}", daemon=True)
        self.endpoint = endpoint
        self.state = state
        self.on_updates = on_updates
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._sub = Subscriber(endpoint, context=context, **(curve or {}))
        state.add_endpoint(endpoint)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                msg = self._sub.recv(_POLL_S)
                if counted := self.state.set_counts(
                    self.endpoint, self._sub.malformed, self._sub.handshake_failures
                ):
                    self.on_updates(counted)
                if msg is None:
                    continue
                updates = self.state.ingest(self.endpoint, msg.event, msg.png)
                if updates:
                    self.on_updates(updates)
        except BaseException as exc:  # kept for the dashboard's log; the page shows the endpoint silent
            self.error = exc
            log.exception("subscriber of %s failed", self.endpoint)
        finally:
            self._sub.close()

    def stop(self) -> None:
        self._stop_event.set()


class Broadcaster:
    """Fans state updates out to the open pages (one asyncio.Queue each) from any thread."""

    def __init__(self, max_queue: int = _CLIENT_QUEUE) -> None:
        self.max_queue = max_queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, updates: list[dict[str, Any]]) -> None:
        """Thread-safe: hand ``updates`` to the event loop (dropped when no loop runs)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(self._fanout, updates)

    def _fanout(self, updates: list[dict[str, Any]]) -> None:
        for q in self._clients:
            for u in updates:
                try:
                    q.put_nowait(u)
                except asyncio.QueueFull:
                    # The page fell behind: empty its queue and make it refetch /api/state.
                    while not q.empty():
                        q.get_nowait()
                    q.put_nowait({"kind": "resync"})
                    break

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.max_queue)
        self._clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._clients.discard(q)

    def close(self) -> None:
        """End every open event stream."""
        for q in self._clients:
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)

    @property
    def clients(self) -> int:
        return len(self._clients)


class ClipTranscoder:
    """mp4v MP4 → VP8 WebM bytes for the page's player, cached (LRU bounded by ``max_bytes``)."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._cache: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def webm(self, clip: ClipFile) -> bytes:
        """``clip`` as WebM (VP8); raises ``ValueError`` when OpenCV cannot read it."""
        key = (clip.name, clip.mtime_ns, len(clip.data))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = transcode_webm(clip.data)
        with self._lock:
            self._cache[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._size -= len(old)
        return data


def transcode_webm(mp4: bytes) -> bytes:
    """Decode the MP4 bytes ``mp4`` with OpenCV and encode them as VP8 WebM (same size and frame rate).

    OpenCV reads files only: the bytes go to a private temporary folder first, so what is decoded
    is exactly what was checked and read (`read_clip`), never a file swapped in meanwhile.
    """
    import cv2

    with tempfile.TemporaryDirectory(prefix="mellm-clip-") as tmp:
        src = Path(tmp) / "clip.mp4"
        src.write_bytes(mp4)
        cap = cv2.VideoCapture(str(src))
        try:
            return _transcode(cap, Path(tmp) / "clip.webm")
        finally:
            cap.release()


def _transcode(cap: Any, out: Path) -> bytes:
    import cv2

    if not cap.isOpened():
        raise ValueError("OpenCV cannot open the clip")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"VP80"), fps, (w, h))
                if not writer.isOpened():
                    raise ValueError("OpenCV cannot write VP8 WebM here")
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if n == 0:
        raise ValueError("the clip has no frames OpenCV can decode")
    return out.read_bytes()


@dataclass(frozen=True, slots=True)
class ClipFile:
    """A clip as read from the clip folder: its file name, modification time and bytes."""

    name: str
    mtime_ns: int
    data: bytes


def read_clip(clips_dir: Path, name: str) -> ClipFile | None:
    """The regular file ``clips_dir/name``, or None when it is missing or anything but that.

    `confined_path` rejects names with a folder part and links that lead out of ``clips_dir``;
    the file is then opened without following a link (``O_NOFOLLOW``) and checked to be a regular
    file on the open descriptor, so a link planted after the check is refused, not followed.
    """
    path = confined_path(clips_dir, name)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return ClipFile(name, st.st_mtime_ns, f.read())


class Dashboard:
    """The subscriber threads, the state they feed and the broadcaster of its updates.

    Constructing it connects one SUB socket per endpoint (a bad endpoint raises `UserError`);
    `start` runs the threads, `stop` ends them (bounded by the poll interval). ``curve_server_key``
    and ``curve_client_key`` (see `engine.publish.curve`) encrypt every connection with CURVE and
    accept events only from the publisher holding that server key. ``clips_dir``: the only folder
    clips are served from (None: no clips are served).
    """

    def __init__(
        self,
        endpoints: list[str],
        state: DashboardState | None = None,
        *,
        curve_server_key: str | None = None,
        curve_client_key: str | None = None,
        clips_dir: str | Path | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("expected at least one endpoint to subscribe to")
        self.endpoints = list(dict.fromkeys(endpoints))
        self.state = state if state is not None else DashboardState()
        self.broadcaster = Broadcaster()
        self.transcoder = ClipTranscoder()
        self.clips_dir = None if clips_dir is None else Path(clips_dir).resolve()
        self.started = time.time()
        self._context = zmq.Context()
        self._running = False
        self._threads: list[SubscriberThread] = []
        curve = None
        if curve_server_key or curve_client_key:
            curve = {"curve_server_key": curve_server_key, "curve_client_key": curve_client_key}
        try:
            for ep in self.endpoints:
                thread = SubscriberThread(ep, self.state, self.broadcaster.publish, self._context, curve)
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            self.broadcaster.attach(loop)
        if not self._running:
            self._running = True
            for t in self._threads:
                t.start()

    def stop(self) -> None:
        """Stop the threads (each closes its socket), then end the ZeroMQ context. Idempotent."""
        for t in self._threads:
            t.stop()
        for t in self._threads:
            if t.is_alive():
                t.join(5.0)
        if not self._running:  # threads never started: their sockets are still ours to close
            for t in self._threads:
                t._sub.close()
            self._threads.clear()
        if not any(t.is_alive() for t in self._threads) and not self._context.closed:
            self._context.term()
        self._running = False


#: Sent with every response: the page loads only its own files and cannot be framed by another site.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
     b"base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Pure ASGI: adds `SECURITY_HEADERS` to every HTTP response (401s included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _sse(update: dict[str, Any]) -> str:
    return "data: " + json.dumps(update, separators=(",", ":"), allow_nan=False) + "\n\n"


def create_app(
    dashboard: Dashboard, static_dir: Path = STATIC_DIR, credentials: Credentials | None = None
) -> Starlette:
    """The Starlette app; its lifespan starts and stops ``dashboard``'s subscriber threads.

    With ``credentials`` every request must carry them (`engine.dashboard.auth`).
    """
    state = dashboard.state

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dashboard.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            dashboard.broadcaster.close()
            await run_in_threadpool(dashboard.stop)

    async def index(request: Request) -> Response:
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_state(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def events(request: Request) -> Response:
        q = dashboard.broadcaster.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n" + _sse({"kind": "hello", "rev": state.snapshot()["rev"]})
                while True:
                    try:
                        update = await asyncio.wait_for(q.get(), _HEARTBEAT_S)
                    except TimeoutError:
                        yield ": ping\n\n"
                        continue
                    if update is None:
                        return
                    yield _sse(update)
            finally:
                dashboard.broadcaster.unsubscribe(q)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def map_png(request: Request) -> Response:
        cid = safe_id(request.path_params["candidate_id"])
        png = state.map_png(cid) if cid else None
        if png is None:
            return PlainTextResponse("no map for this candidate\n", status_code=404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def _clip_file(request: Request) -> ClipFile | Response:
        cid = safe_id(request.path_params["candidate_id"])
        name = state.clip_name(cid) if cid else None
        folder = dashboard.clips_dir
        if name is None or folder is None:
            return PlainTextResponse("no clip for this candidate\n", status_code=404)
        deadline = time.monotonic() + _CLIP_WAIT_S
        while (clip := await run_in_threadpool(read_clip, folder, name)) is None:
            # Wait only while nothing is there: the recorder renames the finished file into place,
            # maybe a moment after the event. Something there but refused (a link) is 404 at once.
            if os.path.lexists(folder / name) or time.monotonic() >= deadline:
                return PlainTextResponse(f"clip {name} is not in the clip folder\n", status_code=404)
            await asyncio.sleep(0.2)
        return clip

    async def clip_mp4(request: Request) -> Response:
        clip = await _clip_file(request)
        if isinstance(clip, Response):
            return clip
        return Response(clip.data, media_type="video/mp4")

    async def clip_webm(request: Request) -> Response:
        clip = await _clip_file(request)
        if isinstance(clip, Response):
            return clip
        try:
            data = await run_in_threadpool(dashboard.transcoder.webm, clip)
        except (ValueError, OSError) as exc:
            return PlainTextResponse(f"{exc}\n", status_code=500)
        return Response(data, media_type="video/webm", headers={"Cache-Control": "max-age=3600"})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(state.metrics_text(), media_type=METRICS_CONTENT_TYPE)

    routes = [
        Route("/", index),
        Route("/api/state", api_state),
        Route("/events", events),
        Route("/maps/{candidate_id}.png", map_png),
        Route("/clips/{candidate_id}.mp4", clip_mp4),
        Route("/clips/{candidate_id}.webm", clip_webm),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=static_dir), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if credentials:
        middleware.append(Middleware(AuthMiddleware, credentials=credentials))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
