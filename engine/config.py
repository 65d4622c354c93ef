"""The engine's configuration: TOML file + command-line overrides, validated by pydantic.

One typed section per stage; each section lives beside its stage. An unknown key or a bad value
becomes a `UserError` whose one line names the key and what is allowed.

>>> cfg = load_config(None, {"explain.name": "rules", "source.fps": "25"})
>>> cfg.source.fps
25.0
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import UserError
from engine.explain.config import ExplainConfig
from engine.face.config import FaceConfig
from engine.flow.config import FlowConfig
from engine.fusion.config import FusionConfig
from engine.publish.config import ClipsConfig, PublishConfig
from engine.sources.config import DemoConfig, SourceConfig
from spotting.config import SpottingConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class EngineConfig(BaseModel):
    """The whole engine: one section per stage."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: SourceConfig = Field(default_factory=SourceConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    face: FaceConfig = Field(default_factory=FaceConfig)
    spotting: SpottingConfig = Field(default_factory=SpottingConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


# Keys that moved into a backend's own section (issue #17), or left with a removed backend: an old
# config file or --set gets one line naming the new place instead of "unknown key".
_BUMP_KEYS = ("lag_s", "threshold_k", "pair_gain", "release_k", "frac", "extend_onset", "extend_offset")
_EXPLAINER_KEYS = ("model", "max_new_tokens", "language", "temperature", "adapter", "device", "dtype")
_EXPLAINER_KEYS += ("threads", "endpoint", "retries", "api_key_env", "concurrency")


def _explainers_taking(option: str) -> list[str]:
    """The explainers whose section of `ExplainConfig` has ``option``."""
    return [
        name
        for name, field in ExplainConfig.model_fields.items()
        if option in getattr(_nested_model(field.annotation), "model_fields", {})
    ]


MOVED_KEYS: dict[str, str] = {
    **{f"spotting.bump_{k}": f"spotting.bump.{k}" for k in _BUMP_KEYS},
    **{
        f"explain.{k}": " or ".join(f"explain.{e}.{k}" for e in _explainers_taking(k))
        for k in _EXPLAINER_KEYS
    },
    "explain.request_timeout_s": "explain.openai.timeout_s",
    "fusion.nose_window": "fusion.mellm.nose_window",
    "fusion.px_full_scale": "fusion.calibrated.px_full_scale",
    "fusion.legend": "fusion.calibrated.legend",
}
REMOVED_KEYS: dict[str, str] = {
    "spotting.threshold_k": "the region-bump threshold is spotting.bump.threshold_k",
    "spotting.release_k": "the region-bump hysteresis is spotting.bump.release_k",
    "spotting.window_s": "the region-bump spotter compares frames spotting.bump.lag_s apart",
    "spotting.long_window_s": "the region-bump spotter compares frames spotting.bump.lag_s apart",
}


_ZH = "explain.vlm.language, explain.llm.language or explain.openai.language = \"zh\" with that explainer"
# keys a user may expect that no section has, with what to do instead
UNSUPPORTED_KEYS: dict[str, str] = {
    "explain.rules.language": f"the rules explainer writes English only; Chinese text comes from a model "
    f"explainer: {_ZH}",
}


def key_moved(key: str) -> str | None:
    """One line for a dotted ``key`` that moved, was removed or never existed (`MOVED_KEYS`,
    `REMOVED_KEYS`, `UNSUPPORTED_KEYS`), else None."""
    if key in UNSUPPORTED_KEYS:
        return f"no config key {key!r}: {UNSUPPORTED_KEYS[key]}"
    if key == "explain.language":
        return f"config key {key!r} is now {MOVED_KEYS[key]} (the rules explainer writes English only)"
    if key in MOVED_KEYS:
        return f"config key {key!r} is now {MOVED_KEYS[key]}"
    if key in REMOVED_KEYS:
        return f"config key {key!r} was read only by the removed region-motion spotter; {REMOVED_KEYS[key]}"
    return None


def config_keys(model: type[BaseModel] = EngineConfig, prefix: str = "") -> list[str]:
    """Every dotted key of ``model``'s leaves (``spotting.bump.threshold_k``), in declaration order."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        sub = _nested_model(field.annotation)
        keys += config_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return keys


def _section_model(path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the dotted ``path`` (for listing allowed keys)."""
    model: type[BaseModel] | None = EngineConfig
    for part in path:
        if model is None:
            return None
        field = model.model_fields.get(str(part))
        model = _nested_model(field.annotation if field else None)
    return model


def _describe(err: dict[str, Any]) -> str:
    """One line for the first pydantic error: the key, what was given, what is allowed."""
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        moved = key_moved(key)
        if moved:
            return moved
        owner = _section_model(loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner else ""
        return f"unknown config key {key!r}; allowed keys here: {allowed}"
    given = err.get("input")
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        allowed = str(ctx["expected"])
    else:
        allowed = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    section = _section_model(loc) if isinstance(given, dict) else None
    if section is not None:  # a check across a section's keys: name the keys it mentions, not the dict
        named = [f"{key}.{f}" for f in section.model_fields if re.search(rf"\b{re.escape(f)}\b", allowed)]
        if named:
            return f"bad value for config key{'s' if len(named) > 1 else ''} {', '.join(named)}: {allowed}"
        return f"bad config section {key!r}: {allowed}"
    if err["type"] == "value_error":  # a validator's own sentence
        return f"bad value {given!r} for config key {key!r}: {allowed}"
    return f"bad value {given!r} for config key {key!r}: expected {allowed}"


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise UserError(f"config key {key!r}: {part!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def resolve_config_path(path: str | Path) -> Path:
    """A config path as given, or the name of a bundled config (``default``, ``highspeed-200fps``)."""
    p = Path(path)
    if p.is_file():
        return p
    bundled = CONFIG_DIR / (p.name if p.suffix == ".toml" else f"{p.name}.toml")
    if bundled.is_file():
        return bundled
    names = ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.toml")))
    raise UserError(f"config file {str(path)!r} not found; give a TOML path or a bundled name: {names}")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file into a dict; a syntax error is a `UserError` naming file and line."""
    p = resolve_config_path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {p}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {p} cannot be read: {exc}") from None


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> EngineConfig:
    """Load ``path`` (or the defaults) and apply dotted-key ``overrides`` such as ``{"source.fps": 25}``."""
    tree: dict[str, Any] = read_toml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
    try:
        return EngineConfig.model_validate(tree)
    except ValidationError as exc:
        raise UserError(_describe(exc.errors()[0])) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` → (key, value); the value is read as TOML, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected section.key=value, e.g. --set spotting.bump.threshold_k=5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def explainer_option_key(explainer: str, option: str, flag: str) -> str:
    """The dotted key of ``option`` in ``explainer``'s own section (``explain.vlm.model`` for ``--model``
    with the vlm explainer); a `UserError` naming ``flag`` when that explainer takes no such option."""
    from engine.explain import EXPLAINERS

    EXPLAINERS.resolve_name(explainer)
    section = _section_model(("explain", explainer))
    if section is None or option not in section.model_fields:
        takers = ", ".join(_explainers_taking(option))
        raise UserError(
            f"{flag} does not apply to the {explainer} explainer; it is for {takers} (--explainer)"
        )
    return f"explain.{explainer}.{option}"
