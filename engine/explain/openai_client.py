"""``openai`` explainer: chat-completions on an OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama).

Each candidate becomes one ``POST {endpoint}/v1/chat/completions`` with the fused map as a base64
PNG data URL (an ``image_url`` content part) and the MELLM v1 prompt; the requests of a batch run
concurrently (the server batches them). Standard library only (urllib), so the explainer adds no
dependency.

Failure handling: each request has a timeout; 5xx/408/429 answers, timeouts and connection errors
are retried ``retries`` times with exponential backoff; other 4xx fail at once. A reply that is not
JSON or lacks ``choices[0].message.content`` raises `OpenAIProtocolError`. The API key comes from
the environment variable ``api_key_env`` (default ``OPENAI_API_KEY``), read once at construction;
it is sent only in the Authorization header and is scrubbed from every message this module makes.

>>> OpenAIExplainer(endpoint="ftp://x")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
engine.errors.UserError: openai endpoint 'ftp://x' must be an http(s) URL ...
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from engine.errors import UserError
from engine.explain.hf_common import check_sampling, system_message, to_explanation
from engine.explain.prompts import check_language, read_prompt_file, vlm_prompt
from engine.types import Evidence, Explanation

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 8.0


class OpenAIRequestError(RuntimeError):
    """The server could not be reached or kept failing (after the retries), or refused the request."""


class OpenAIProtocolError(ValueError):
    """The server answered, but not with a chat-completions reply (bad JSON, no choices, no content)."""


def base_url(endpoint: str) -> str:
    """``http://host:8000``, ``.../v1``, ``.../v1/`` or ``.../v1/chat/completions`` → ``http://host:8000``."""
    url = endpoint.strip().rstrip("/")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(
            f"openai endpoint {endpoint!r} must be an http(s) URL such as http://127.0.0.1:8000/v1"
        )
    for suffix in ("/chat/completions", "/v1"):
        url = url.removesuffix(suffix)
    return url


def png_data_url(item: Evidence) -> str:
    """The fused map as ``data:image/png;base64,...`` (the evidence's PNG, or encoded here)."""
    png = item.png
    if not png:
        import cv2

        ok, buf = cv2.imencode(".png", np.ascontiguousarray(item.fused_map))
        if not ok:
            raise ValueError("the fused map could not be encoded as PNG")
        png = buf.tobytes()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def message_text(reply: Any) -> str:
    """``choices[0].message.content`` of a chat-completions reply (string or list of text parts)."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise OpenAIProtocolError(f"reply has no choices[0].message.content: {_snippet(reply)}") from None
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise OpenAIProtocolError(f"reply content is not text: {_snippet(reply)}")
    return content


def _snippet(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:limit] + ("..." if len(text) > limit else "")


class OpenAIExplainer:
    """Fused map + MELLM v1 prompt → OpenAI-compatible chat-completions server → parsed explanation.

    ``endpoint``: server base URL (with or without ``/v1``). ``model``: the served model name; empty
    asks the server (``GET /v1/models``, first id) on warm-up. ``timeout_s``: per request.
    ``retries``: extra attempts after a retryable failure. ``backoff_s``: first wait, doubled each
    retry. ``api_key_env``: environment variable holding the key (none → no Authorization header).
    ``concurrency``: requests in flight per batch. ``prompt_file``, ``system_prompt``, ``do_sample``,
    ``temperature``: as the ``vlm`` explainer. The explainer name is ``openai:<model>``.

    >>> ex = OpenAIExplainer(endpoint="http://127.0.0.1:8000/v1", model="MELLM-7B")  # doctest: +SKIP
    >>> ex.explain_batch(items)                                                       # doctest: +SKIP
    """

    def __init__(
        self,
        endpoint: str = "",
        model: str = "",
        max_new_tokens: int = 512,
        language: str = "en",
        temperature: float = 0.0,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        prompt_file: str = "",
        system_prompt: str = "",
        do_sample: bool = False,
    ) -> None:
        if not endpoint:
            raise UserError("the openai explainer needs the server URL: pass --endpoint http://HOST:PORT/v1")
        if timeout_s <= 0 or retries < 0 or max_new_tokens < 1 or concurrency < 1:
            raise UserError(
                "openai explainer: timeout_s must be > 0, retries >= 0, max_new_tokens >= 1, concurrency >= 1"
            )
        self.base = base_url(endpoint)
        self.url = self.base + "/v1/chat/completions"
        self.model = model
        self.language = check_language(language)
        self.prompt = read_prompt_file(prompt_file, "openai", text_model=False) or vlm_prompt(self.language)
        self.system_prompt = system_prompt
        self.max_new_tokens = int(max_new_tokens)
        self.do_sample, self.temperature = check_sampling("openai", do_sample, temperature)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self._pool = ThreadPoolExecutor(max_workers=int(concurrency), thread_name_prefix="openai-explain")
        self.name = f"openai:{model}" if model else "openai"

    # ------------------------------------------------------------------ HTTP
    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _request_once(self, url: str, body: bytes | None) -> bytes:
        req = urllib.request.Request(
            url, data=body, headers=self._headers(), method="POST" if body else "GET"
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return resp.read()

    def _request(self, url: str, body: bytes | None) -> Any:
        """The decoded JSON reply of ``url``, retrying what may pass on a second try."""
        attempts = 1 + self.retries
        last = ""
        for attempt in range(attempts):
            if attempt:
                wait = min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
                log.warning(
                    "openai request to %s failed (%s); retry %d/%d in %.1f s",
                    url,
                    last,
                    attempt,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
            try:
                raw = self._request_once(url, body)
            except urllib.error.HTTPError as exc:
                detail = self._redact(exc.read(300).decode("utf-8", "replace").strip())
                last = f"HTTP {exc.code} {self._redact(str(exc.reason))}: {detail}".rstrip(": ")
                if exc.code in RETRY_STATUS:
                    continue
                hint = f" (check the API key in ${self.api_key_env})" if exc.code in (401, 403) else ""
                raise OpenAIRequestError(f"openai server {url} refused the request: {last}{hint}") from None
            except TimeoutError as exc:
                last = f"timed out after {self.timeout_s:g} s ({type(exc).__name__})"
                continue
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError):
                    last = f"timed out after {self.timeout_s:g} s"
                else:
                    last = self._redact(f"connection failed: {reason}")
                continue
            try:
                return json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                text = self._redact(raw[:200].decode("utf-8", "replace"))
                raise OpenAIProtocolError(f"openai server {url} sent malformed JSON: {text!r}") from None
        raise OpenAIRequestError(f"openai server {url} failed {attempts} time(s); last: {last}")

    # ------------------------------------------------------------------ explainer
    def payload(self, item: Evidence) -> dict[str, Any]:
        """The chat-completions request body for one evidence."""
        return {
            "model": self.model,
            "messages": [
                *system_message(self.system_prompt),
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": png_data_url(item)}},
                        {"type": "text", "text": self.prompt},
                    ],
                },
            ],
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature if self.do_sample else 0.0,
        }

    def _resolve_model(self) -> None:
        """Ask the server for its model when none was named (vLLM and co. serve one per port)."""
        if self.model:
            return
        reply = self._request(self.base + "/v1/models", None)
        try:
            self.model = str(reply["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise OpenAIProtocolError(
                f"openai server {self.base}/v1/models lists no model: {_snippet(reply)}"
            ) from None
        self.name = f"openai:{self.model}"
        log.info("openai explainer uses model %s served at %s", self.model, self.base)

    def explain_one(self, item: Evidence) -> Explanation:
        body = json.dumps(self.payload(item)).encode("utf-8")
        reply = self._request(self.url, body)
        try:
            text = message_text(reply)
        except OpenAIProtocolError as exc:
            raise OpenAIProtocolError(f"openai server {self.url}: {self._redact(str(exc))}") from None
        return to_explanation(text, self.name)

    def warmup(self) -> None:
        """Resolve the model name (one cheap request that also proves the server is reachable)."""
        self._resolve_model()

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        """One explanation per evidence, in order; requests run concurrently; any failure raises."""
        if not items:
            return []
        self._resolve_model()
        if len(items) == 1:
            return [self.explain_one(items[0])]
        return list(self._pool.map(self.explain_one, items))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
