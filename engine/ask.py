"""Ask questions of a recording the way ME-LVQA does, answered from the events the engine published.

    python -m engine.ask JOURNAL "how many micro-expressions between 5 s and 12 s?"
    python -m engine.ask --endpoint tcp://127.0.0.1:5556 --listen-s 30 "which AUs recurred?"
    python -m engine.ask JOURNAL "when did the first negative micro-expression happen?" --json

Each spotted movement is its ``candidate`` event (onset / apex / offset in stream seconds, micro or
macro) joined with its ``explanation`` (AUs, emotion); a candidate that was dropped keeps its
timing and has no AUs or emotion. Answers are worked out deterministically from those events
(`answer`), so the same journal always gives the same answer. Question types:

- ``count``: how many (micro- / macro-) expressions [of an emotion] [between A and B | before B |
  after A | in the first N s];
- ``first`` / ``last``: when the first (last) [negative / happiness / ...] (micro-)expression happened;
- ``recurring``: which action units recurred (appeared in more than one expression) [in a span];
- ``around``: what happened around / at / near T (expressions overlapping T ± 1 s, or ``within N s``);
- ``aus`` / ``emotions``: which action units / emotions were seen [in a span].

Times are seconds since the stream started (``12``, ``12.5 s``, ``1:02.5``). With ``--endpoint``
the command listens to a live engine for ``--listen-s`` seconds (after replaying JOURNAL when one
is given as well; ``--idle-s`` ends it early once the engine falls silent) and answers on what it
has. ``--llm-endpoint URL --model NAME`` hands the question and the expressions (one line each) to
an OpenAI-compatible chat server instead; its answer is the model's, not checked. Unknown questions
exit 2 naming the types above.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import UserError

COARSE = ("positive", "negative", "surprise", "others")
# words a question may use for an emotion → (field, value)
_EMOTION_WORDS: dict[str, tuple[str, str]] = {
    "positive": ("emotion", "positive"),
    "negative": ("emotion", "negative"),
    "surprise": ("emotion", "surprise"),
    "surprised": ("emotion", "surprise"),
    "happiness": ("detail", "happiness"),
    "happy": ("detail", "happiness"),
    "disgust": ("detail", "disgust"),
    "disgusted": ("detail", "disgust"),
    "anger": ("detail", "anger"),
    "angry": ("detail", "anger"),
    "fear": ("detail", "fear"),
    "afraid": ("detail", "fear"),
    "sadness": ("detail", "sadness"),
    "sad": ("detail", "sadness"),
    "contempt": ("detail", "contempt"),
    "repression": ("detail", "repression"),
}
AROUND_S = 1.0  # "around T" looks this far either side unless the question says "within N s"
_NUM = r"(\d+(?::\d+)*(?:\.\d+)?)"
_T = _NUM + r"\s*(?:s|sec|secs|seconds?)?\b"


@dataclass(frozen=True, slots=True)
class Expression:
    """One spotted movement: timing from its candidate event, the rest from its explanation."""

    candidate_id: str
    onset: float
    apex: float
    offset: float
    onset_frame: int
    kind: str
    aus: tuple[int, ...] = ()
    au_names: tuple[str, ...] = ()
    emotion: str = ""
    detail: str = ""
    explained: bool = False

    def describe(self) -> str:
        what = ", ".join(f"AU{a} {n}" for a, n in zip(self.aus, self.au_names, strict=True)) or "no AUs"
        emo = f"{self.emotion} ({self.detail})" if self.explained else "not explained"
        return f"{self.kind} {self.onset:.2f}-{self.offset:.2f} s (apex {self.apex:.2f} s): {what}; {emo}"


@dataclass(frozen=True, slots=True)
class Answer:
    """``kind``: the question type; ``text``: the answer in words; ``value``: the answer as data."""

    kind: str
    text: str
    value: Any = None
    span: tuple[float | None, float | None] = (None, None)
    evidence: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def expressions(events: Iterable[dict[str, Any]]) -> list[Expression]:
    """Candidates joined with their explanations, in onset order (other event types ignored)."""
    cands: dict[str, dict[str, Any]] = {}
    expl: dict[str, dict[str, Any]] = {}
    for e in events:
        cid = e.get("candidate_id")
        if not isinstance(cid, str):
            continue
        if e.get("type") == "candidate":
            cands[cid] = e
        elif e.get("type") == "explanation":
            expl[cid] = e
    out: list[Expression] = []
    for cid, c in cands.items():
        try:
            on, ap, off = (float(c[k]["t"]) for k in ("onset", "apex", "offset"))
            frame = int(c["onset"]["frame"])
        except (KeyError, TypeError, ValueError):
            continue
        x = expl.get(cid)
        aus = tuple((int(a["au"]), str(a.get("name", ""))) for a in (x or {}).get("aus", []) if "au" in a)
        got = x or {}
        out.append(
            Expression(
                cid,
                on,
                ap,
                off,
                frame,
                str(c.get("kind", "")),
                tuple(a for a, _ in aus),
                tuple(n for _, n in aus),
                str(got.get("emotion", "")),
                str(got.get("emotion_detail", "")),
                x is not None,
            )
        )
    return sorted(out, key=lambda e: (e.onset, e.candidate_id))


def parse_time(text: str) -> float:
    """Seconds from ``12``, ``12.5``, ``1:02.5`` or ``1:00:02``."""
    parts = [float(p) for p in text.split(":")]
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def _span(q: str) -> tuple[float | None, float | None]:
    if m := re.search(rf"(?:between|from)\s+{_T}\s*(?:and|to|-)\s*{_T}", q):
        a, b = parse_time(m.group(1)), parse_time(m.group(2))
        return min(a, b), max(a, b)
    if m := re.search(rf"(?:in|during|within) the first\s+{_T}", q):
        return 0.0, parse_time(m.group(1))
    lo = hi = None
    if m := re.search(rf"\b(?:after|since)\s+{_T}", q):
        lo = parse_time(m.group(1))
    if m := re.search(rf"\b(?:before|until|up to)\s+{_T}", q):
        hi = parse_time(m.group(1))
    return lo, hi


def _filters(q: str) -> tuple[str | None, tuple[str, str] | None]:
    kind = "micro" if re.search(r"\bmicro", q) else "macro" if re.search(r"\bmacro", q) else None
    emo = next((v for w, v in _EMOTION_WORDS.items() if re.search(rf"\b{w}\b", q)), None)
    return kind, emo


def _noun(kind: str | None, emo: tuple[str, str] | None, n: int) -> str:
    base = f"{kind}-expression" if kind else "expression"
    return f"{emo[1] + ' ' if emo else ''}{base}{'' if n == 1 else 's'}"


def _in(e: Expression, lo: float | None, hi: float | None) -> bool:
    return (lo is None or e.onset >= lo) and (hi is None or e.onset <= hi)


def _span_words(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" between {lo:g} s and {hi:g} s"
    if lo is not None:
        return f" after {lo:g} s"
    return f" before {hi:g} s" if hi is not None else ""


def answer(question: str, events: Sequence[Expression]) -> Answer:
    """The answer to ``question`` from ``events`` (`expressions`); `UserError` for an unknown question."""
    q = " ".join(question.lower().replace("micro expression", "micro-expression").split())
    kind, emo = _filters(q)
    lo, hi = _span(q)

    def keep(e: Expression) -> bool:
        if kind and e.kind != kind:
            return False
        return emo is None or (e.emotion if emo[0] == "emotion" else e.detail) == emo[1]

    chosen = [e for e in events if keep(e) and _in(e, lo, hi)]
    ev = tuple(e.describe() for e in chosen)
    where = _span_words(lo, hi)
    if re.search(r"\bhow many\b|\bnumber of\b|\bcount\b", q):
        n = len(chosen)
        return Answer("count", f"{n} {_noun(kind, emo, n)}{where}.", n, (lo, hi), ev)
    if m := re.search(rf"\b(?:around|near|at)\s+{_T}", q):
        t = parse_time(m.group(1))
        w = parse_time(w_m.group(1)) if (w_m := re.search(rf"within\s+{_T}", q)) else AROUND_S
        near = [e for e in events if keep(e) and e.onset <= t + w and e.offset >= t - w]
        text = (
            (f"around {t:g} s (±{w:g} s): " + "; ".join(e.describe() for e in near))
            if near
            else (f"nothing was spotted around {t:g} s (±{w:g} s).")
        )
        return Answer(
            "around", text, [e.candidate_id for e in near], (t - w, t + w), tuple(e.describe() for e in near)
        )
    if re.search(r"\b(when|what time|at what time)\b", q) or re.search(r"\b(first|last)\b(?!\s+\d)", q):
        last = bool(re.search(r"\blast\b", q))
        if not chosen:
            return Answer(
                "last" if last else "first", f"no {_noun(kind, emo, 2)}{where} were spotted.", None, (lo, hi)
            )
        e = chosen[-1] if last else chosen[0]
        text = (
            f"the {'last' if last else 'first'} {_noun(kind, emo, 1)}{where} started at "
            f"{e.onset:.2f} s (frame {e.onset_frame}, apex {e.apex:.2f} s): {e.describe()}."
        )
        return Answer("last" if last else "first", text, e.onset, (lo, hi), (e.describe(),))
    names = {a: n for e in events for a, n in zip(e.aus, e.au_names, strict=True)}
    if re.search(r"recur|more than once|repeat|again|most (?:often|frequent|common)", q):
        counts = Counter(a for e in chosen for a in set(e.aus))
        rec = sorted((a for a, c in counts.items() if c > 1), key=lambda a: (-counts[a], a))
        text = (
            (
                "AUs that recurred"
                + where
                + ": "
                + ", ".join(f"AU{a} {names.get(a, '')} ({counts[a]} times)" for a in rec)
            )
            if rec
            else (f"no action unit appeared in more than one expression{where}.")
        )
        return Answer("recurring", text, {a: counts[a] for a in rec}, (lo, hi), ev)
    if re.search(r"\b(action units?|aus?)\b", q):
        counts = Counter(a for e in chosen for a in set(e.aus))
        text = (
            "AUs"
            + where
            + ": "
            + (", ".join(f"AU{a} {names.get(a, '')} ({c})" for a, c in sorted(counts.items())) or "none")
        )
        return Answer("aus", text, dict(sorted(counts.items())), (lo, hi), ev)
    if re.search(r"\bemotions?\b", q):
        counts = Counter(e.emotion for e in chosen if e.explained)
        listed = ", ".join(f"{k} ({v})" for k, v in counts.most_common()) or "none"
        text = f"emotions{where}: {listed}"
        return Answer("emotions", text, dict(counts), (lo, hi), ev)
    raise UserError(
        f"cannot tell what {question!r} asks; ask how many (micro-)expressions [between A and B], when "
        "the first/last [negative] one happened, which AUs recurred, what happened around T, or which "
        "AUs / emotions were seen"
    )


def context_lines(events: Sequence[Expression]) -> list[str]:
    """The events as numbered lines, the context a language model is given."""
    return [f"{k}. {e.describe()}" for k, e in enumerate(events, 1)]


def ask_model(
    question: str, events: Sequence[Expression], endpoint: str, model: str, timeout_s: float = 60.0
) -> str:
    """The question answered by a served chat model (OpenAI-compatible ``/v1/chat/completions``) given
    the recording's expressions as context; the key, if any, from ``OPENAI_API_KEY``."""
    import os
    import urllib.error
    import urllib.request

    from engine.explain.openai_client import OpenAIProtocolError, base_url, message_text

    system = (
        "You answer questions about micro-expressions spotted in a video recording. Times are seconds "
        "since the recording started. Use only the list below; say so when it cannot answer.\n"
        + ("\n".join(context_lines(events)) or "(no expression was spotted)")
    )
    body = json.dumps(
        {
            "model": model,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        }
    ).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("OPENAI_API_KEY", ""):
        headers["Authorization"] = f"Bearer {key}"
    url = base_url(endpoint) + "/v1/chat/completions"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # base_url allows http(s) only
            reply = json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise UserError(f"cannot reach the model server at {url}: {exc}; check --llm-endpoint") from None
    except ValueError:
        raise UserError(f"the model server at {url} did not answer JSON; is it OpenAI-compatible?") from None
    try:
        return message_text(reply).strip()
    except OpenAIProtocolError as exc:
        raise UserError(f"the model server at {url} answered without a message: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Where the events come from


def journal_events(path: str) -> list[dict[str, Any]]:
    """The events of the latest run in a journal (`engine.subscribe.replay`)."""
    from engine.subscribe import replay

    return [m.event for m in replay(path)]


def live_events(endpoint: str, listen_s: float, idle_s: float = 0.0, **curve: Any) -> list[dict[str, Any]]:
    """The events a live engine publishes during ``listen_s`` seconds; with ``idle_s`` > 0 listening
    also ends once that long passed without a message after the first one (the engine stopped)."""
    from engine.subscribe import Subscriber

    out: list[dict[str, Any]] = []
    end = time.monotonic() + listen_s
    with Subscriber(endpoint, "", **curve) as sub:
        while (left := end - time.monotonic()) > 0:
            msg = sub.recv(min(left, idle_s) if idle_s > 0 and out else left)
            if msg is None:
                if idle_s > 0 and out:
                    break
                continue
            out.append(msg.event)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.ask", description=__doc__.split("\n")[0])
    ap.add_argument(
        "journal", nargs="?", default="", help="the engine's journal (--journal); optional with --endpoint"
    )
    ap.add_argument("question", help="the question, in quotes")
    ap.add_argument("--endpoint", default="", help="also listen to a live engine, e.g. tcp://127.0.0.1:5556")
    ap.add_argument("--listen-s", type=float, default=10.0, help="how long to listen with --endpoint")
    ap.add_argument(
        "--idle-s",
        type=float,
        default=0.0,
        help="with --endpoint: stop listening early once "
        "nothing arrived for this long (0 = listen the whole --listen-s)",
    )
    ap.add_argument("--curve-server-key", default="", help="the server's NAME.key (CURVE)")
    ap.add_argument("--curve-client-key", default="", help="this client's NAME.key_secret (CURVE)")
    ap.add_argument("--json", action="store_true", help="print the answer as JSON")
    ap.add_argument(
        "--llm-endpoint",
        default="",
        help="answer through an OpenAI-compatible chat server "
        "(e.g. http://127.0.0.1:8000/v1) given the events as context, instead of the rules",
    )
    ap.add_argument("--model", default="", help="model name on --llm-endpoint")
    args = ap.parse_args(argv)
    try:
        if not args.journal and not args.endpoint:
            raise UserError("give a JOURNAL file or --endpoint tcp://HOST:PORT of a running engine")
        if args.listen_s <= 0:
            raise UserError(f"--listen-s must be > 0, got {args.listen_s:g}")
        raw = journal_events(args.journal) if args.journal else []
        if args.endpoint:
            seen = {e.get("event_id") for e in raw}
            curve = {
                "curve_server_key": args.curve_server_key or None,
                "curve_client_key": args.curve_client_key or None,
            }
            live = live_events(args.endpoint, args.listen_s, args.idle_s, **curve)
            raw += [e for e in live if e.get("event_id") not in seen]
        found = expressions(raw)
        if args.llm_endpoint:
            text = ask_model(args.question, found, args.llm_endpoint, args.model or "default")
            print(json.dumps({"kind": "model", "text": text}) if args.json else text)
            return 0
        result = answer(args.question, found)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result.to_json()) if args.json else result.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
