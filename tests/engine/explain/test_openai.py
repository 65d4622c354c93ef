"""The ``openai`` explainer against a local chat-completions server on loopback (http.server in a thread)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.errors import UserError
from engine.explain import create
from engine.explain.openai_client import OpenAIProtocolError, OpenAIRequestError, base_url
from tests.tiny_models import make_evidence

SECRET = "sk-test-ab12cd34ef56-do-not-leak"
ANSWER = "Step 2: AU4 (brow lowerer) and AU7 (lid tightener). Step 3: Emotion: negative (anger)"


class FakeServer:
    """A chat-completions server whose behaviour per request is a list of actions (last one repeats).

    Actions: ``"ok"`` (a valid reply with `ANSWER`), ``"slow"`` (sleeps past the client timeout),
    ``"500"``, ``"401"``, ``"garbage"`` (not JSON), ``"nochoices"`` (JSON without choices).
    """

    def __init__(self, actions: list[str]) -> None:
        self.actions = actions
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(200, json.dumps({"object": "list", "data": [{"id": "served-mellm"}]}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    n = len(server.requests)
                    server.requests.append({"path": self.path, "json": json.loads(body)})
                    server.headers.append(dict(self.headers))
                action = server.actions[min(n, len(server.actions) - 1)]
                if action == "slow":
                    time.sleep(1.5)
                    action = "ok"
                if action == "ok":
                    reply = {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": ANSWER},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                    self._reply(200, json.dumps(reply).encode())
                elif action in ("500", "401"):
                    self._reply(
                        int(action), json.dumps({"error": {"message": f"boom, you sent {SECRET}"}}).encode()
                    )
                elif action == "garbage":
                    self._reply(200, b"<html>not json</html>")
                elif action == "nochoices":
                    self._reply(200, json.dumps({"id": "x", "choices": []}).encode())

        lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[str]], FakeServer]]:
    monkeypatch.setenv("MELLM_TEST_KEY", SECRET)
    servers: list[FakeServer] = []

    def start(actions: list[str]) -> FakeServer:
        servers.append(FakeServer(actions))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _explainer(server: FakeServer, **kw: Any) -> Any:
    params = {
        "endpoint": server.url + "/v1",
        "model": "mellm-7b",
        "api_key_env": "MELLM_TEST_KEY",
        "timeout_s": 0.5,
        "retries": 2,
        "backoff_s": 0.01,
        **kw,
    }
    return create("openai", **params)


def test_openai_when_server_answers_parses_reply(serve: Callable[[list[str]], FakeServer]) -> None:
    server = serve(["ok"])
    ex = _explainer(server)
    items = [make_evidence(0), make_evidence(1), make_evidence(2)]
    out = ex.explain_batch(items)
    assert [e.explainer for e in out] == ["openai:mellm-7b"] * 3
    assert [[a.au for a in e.aus] for e in out] == [[4, 7]] * 3
    assert {(e.emotion, e.emotion_detail) for e in out} == {("negative", "anger")}
    assert out[0].text == ANSWER
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    content = req["json"]["messages"][0]["content"]
    image = next(p for p in content if p["type"] == "image_url")["image_url"]["url"]
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) in {it.png for it in items}
    assert any(p["type"] == "text" and "30" in p["text"] for p in content)
    assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"
    ex.close()


def test_openai_when_endpoint_lacks_v1_and_model_is_empty_asks_server(
    serve: Callable[[list[str]], FakeServer],
) -> None:
    server = serve(["ok"])
    ex = _explainer(server, endpoint=server.url, model="")
    ex.warmup()
    out = ex.explain_batch([make_evidence(0)])
    assert out[0].explainer == "openai:served-mellm"
    assert server.requests[0]["json"]["model"] == "served-mellm"


def test_openai_when_server_fails_once_retries_and_succeeds(serve: Callable[[list[str]], FakeServer]) -> None:
    server = serve(["500", "ok"])
    out = _explainer(server).explain_batch([make_evidence(0)])
    assert [a.au for a in out[0].aus] == [4, 7]
    assert len(server.requests) == 2


def test_openai_when_server_is_slow_raises_after_bounded_retries(
    serve: Callable[[list[str]], FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(["slow"])
    ex = _explainer(server, retries=1)
    t0 = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(OpenAIRequestError, match="timed out") as info:
        ex.explain_batch([make_evidence(0)])
    elapsed = time.monotonic() - t0
    assert len(server.requests) == 2  # one try + one retry, then it gives up
    assert elapsed < 0.5 * 2 + 0.5  # two timeouts and a short backoff, never the server's 1.5 s each
    assert SECRET not in str(info.value) and SECRET not in caplog.text


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (["garbage"], OpenAIProtocolError, "malformed JSON"),
        (["nochoices"], OpenAIProtocolError, "no choices"),
        (["500"], OpenAIRequestError, "HTTP 500"),
        (["401"], OpenAIRequestError, "MELLM_TEST_KEY"),
    ],
)
def test_openai_when_reply_is_bad_raises_clear_error_without_key(
    actions: list[str],
    error: type[Exception],
    message: str,
    serve: Callable[[list[str]], FakeServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = serve(actions)
    with caplog.at_level(logging.DEBUG), pytest.raises(error, match=message) as info:
        _explainer(server).explain_batch([make_evidence(0)])
    # The server echoes the key in its error body: it must be scrubbed from messages and logs.
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text
    expected_tries = 3 if actions == ["500"] else 1  # 5xx retried (1 + 2), the rest fail at once
    assert len(server.requests) == expected_tries


def test_openai_when_server_is_down_raises_connection_error() -> None:
    ex = create(
        "openai", endpoint="http://127.0.0.1:9/v1", model="m", retries=1, backoff_s=0.01, timeout_s=0.5
    )
    with pytest.raises(OpenAIRequestError, match="failed 2 time"):
        ex.explain_batch([make_evidence(0)])


@pytest.mark.parametrize(
    ("endpoint", "base"),
    [
        ("http://h:8000", "http://h:8000"),
        ("http://h:8000/", "http://h:8000"),
        ("http://h:8000/v1", "http://h:8000"),
        ("https://h/api/v1/", "https://h/api"),
        ("http://h:8000/v1/chat/completions", "http://h:8000"),
    ],
)
def test_base_url_when_given_endpoint_variants(endpoint: str, base: str) -> None:
    assert base_url(endpoint) == base


@pytest.mark.parametrize("endpoint", ["", "ftp://h", "localhost:8000"])
def test_openai_when_endpoint_is_wrong_raises_user_error(endpoint: str) -> None:
    with pytest.raises(UserError):
        create("openai", endpoint=endpoint)
