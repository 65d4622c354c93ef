"""Fuzzing with hypothesis: no input crashes the config loader (only `UserError` comes out) or the
explanation parser (it always returns), and the subscriber's journal reader skips any garbage."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import EngineConfig, config_keys, load_config, parse_override, read_toml
from engine.errors import UserError
from engine.explain.parser import ParsedAnswer, parse_answer
from engine.subscribe import format_event, replay

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Every dotted key the config knows, and every section, so the fuzzer reaches validation, not only
# "unknown key".
LEAVES = config_keys()
SECTIONS = sorted({key.rsplit(".", 1)[0] for key in LEAVES if "." in key})
KEYS = [*SECTIONS, *LEAVES]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e309", "nan", "rules", "demo", "tcp://*:0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=25), st.sampled_from(KEYS).map(lambda k: k + ".x"))


def toml_value(v: Any) -> str:
    """A TOML literal for ``v`` when there is one (json is close enough for strings, numbers, lists)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if v is None:
        return '""'
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return json.dumps(v, ensure_ascii=False)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """Mostly well-formed TOML over the real sections and keys, with random values and junk lines."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append(draw(st.text(max_size=40)))
        elif kind <= 2:
            lines.append(f"[{draw(st.sampled_from([*SECTIONS, 'nope', 'source.x']))}]")
        else:
            key = draw(st.sampled_from(KEYS)).split(".")[-1]
            lines.append(f"{key} = {toml_value(draw(values))}")
    return "\n".join(lines)


def _only_known_keys(tree: dict[str, Any], prefix: str = "") -> None:
    """Every key of an accepted ``tree`` is a config key or section (a dict-valued key such as
    ``flow.params`` holds anything): a load that succeeds swallowed no key."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        assert dotted in KEYS, f"accepted an unknown key {dotted!r}"
        if dotted in SECTIONS and isinstance(value, dict):
            _only_known_keys(value, dotted + ".")


def _accepted(cfg: EngineConfig, tree: dict[str, Any]) -> None:
    """What a successful load must hold: no unknown key passed, and the result is a fixed point
    (validating its own dump gives it back, so no check depends on the order of keys)."""
    _only_known_keys(tree)
    assert EngineConfig.model_validate(cfg.model_dump()) == cfg


def only_user_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except UserError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg.strip(), f"a UserError must be one line: {msg!r}"
        return None


@FUZZ
@given(
    st.one_of(
        toml_documents(), st.text(max_size=200), st.binary(max_size=100).map(lambda b: b.decode("latin-1"))
    )
)
def test_config_loader_when_any_toml_text_then_config_or_usererror(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.toml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        tree = only_user_errors(read_toml, p)
        cfg = only_user_errors(load_config, p)
        if cfg is not None:
            _accepted(cfg, tree)


@FUZZ
@given(st.binary(max_size=200))
def test_config_loader_when_file_is_not_utf8_then_usererror(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.toml"
        p.write_bytes(data)
        only_user_errors(load_config, p)


@FUZZ
@given(st.dictionaries(keys, values, max_size=6))
def test_config_loader_when_any_overrides_then_config_or_usererror(overrides: dict[str, Any]) -> None:
    cfg = only_user_errors(load_config, None, overrides)
    if cfg is not None:
        tree: dict[str, Any] = {}
        for key, value in overrides.items():
            node = tree
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        _accepted(cfg, tree)


@FUZZ
@given(st.text(max_size=60), st.text(max_size=60))
def test_parse_override_when_any_text_then_pair_or_usererror(key: str, raw: str) -> None:
    for text in (raw, f"{key}={raw}"):
        pair = only_user_errors(parse_override, text)
        if pair is not None:
            k, v = pair
            assert isinstance(k, str) and k
            only_user_errors(load_config, None, {k: v})


@FUZZ
@given(
    st.text(max_size=300),
    st.text(alphabet="AUaulLrR0123456789 +,:;()左右没有可能不情绪厌恶惊讶", max_size=120),
)
def test_parser_when_any_text_then_returns(text: str, au_soup: str) -> None:
    for t in (text, au_soup, text + au_soup, f"Step 2: {au_soup}. Emotion: {text}"):
        answer = parse_answer(t)
        assert isinstance(answer, ParsedAnswer)
        assert all(0.0 <= u.confidence <= 1.0 and u.side in ("L", "R", "B") for u in answer.aus)
        assert answer.emotion in ("positive", "negative", "surprise", "others")


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80).filter(lambda s: "\n" not in s and "\r" not in s),
            st.dictionaries(
                st.sampled_from(["seq", "type", "stream", "time", "onset"]), values, max_size=5
            ).map(json.dumps),
        ),
        max_size=12,
    )
)
def test_replay_and_format_when_journal_is_garbage_then_no_crash(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "j.jsonl"
        p.write_text("".join(x + "\n" for x in lines), encoding="utf-8", errors="surrogatepass")
        for msg in replay(p):
            assert isinstance(msg.event["seq"], int)
            format_event(msg.event)
