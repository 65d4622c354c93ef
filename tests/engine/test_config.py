"""Configuration: bundled files load, flags override keys, mistakes are one clear line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.config import CONFIG_DIR, MOVED_KEYS, config_keys, load_config, parse_override, read_toml
from engine.errors import UserError
from run_stream import build_parser, overrides_from_args


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The dotted keys and values of a parsed TOML tree; a table under a dict-valued field
    (``flow.params``) is one value, not a section."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in config_keys()):
            out |= _leaves(value, dotted + ".")
        else:
            out[dotted] = value
    return out


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_bundled_config_when_loaded_then_holds_every_value_the_file_gives(path: Path) -> None:
    cfg = load_config(path)
    given = _leaves(read_toml(path))
    assert given
    for key, value in given.items():
        assert _get(cfg, key) == value, key


def test_default_toml_when_read_then_names_every_config_key_once() -> None:
    """configs/default.toml documents every section and key (the model walked, nested sections too)."""
    assert sorted(_leaves(read_toml("default"))) == sorted(config_keys())


def test_readme_when_it_shows_set_then_every_key_exists() -> None:
    """Every ``--set KEY=VALUE`` of the README names a real key (an example that changes nothing lies)."""
    readme = (CONFIG_DIR.parent / "README.md").read_text(encoding="utf-8")
    shown = [k for k in re.findall(r"--set\s+'?([A-Za-z_][\w.]*)=", readme) if k != "section.key"]
    assert len(shown) >= 5
    known = set(config_keys())
    assert [key for key in shown if key not in known] == []


@pytest.mark.parametrize(
    ("key", "new_place"),
    [
        ("spotting.bump_threshold_k", "spotting.bump.threshold_k"),
        ("spotting.bump_lag_s", "spotting.bump.lag_s"),
        ("spotting.threshold_k", "spotting.bump.threshold_k"),
        ("spotting.window_s", "spotting.bump.lag_s"),
        ("explain.endpoint", "explain.openai.endpoint"),
        ("explain.request_timeout_s", "explain.openai.timeout_s"),
        ("explain.threads", "explain.vlm.threads or explain.llm.threads"),
        ("fusion.nose_window", "fusion.mellm.nose_window"),
        ("fusion.legend", "fusion.calibrated.legend"),
    ],
)
def test_old_flat_key_when_given_then_one_line_names_its_new_place(key: str, new_place: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(None, {key: 1})
    msg = str(info.value)
    assert "\n" not in msg and key in msg and new_place in msg
    assert new_place.split(" or ")[0] in config_keys()


def test_moved_keys_when_listed_then_each_new_place_exists() -> None:
    known = set(config_keys())
    for old, new in MOVED_KEYS.items():
        assert old not in known
        assert all(place in known for place in new.split(" or ")), new


def test_config_by_bundled_name() -> None:
    assert load_config("highspeed-200fps").source.fps == 200


def test_flags_override_config_keys() -> None:
    args = build_parser().parse_args(
        [
            "--config",
            "rtsp-edge",
            "--source",
            "clip.mp4",
            "--fps",
            "25",
            "--explainer",
            "rules",
            "--pub",
            "tcp://127.0.0.1:7000",
            "--max-frames",
            "10",
            "--set",
            "spotting.bump.threshold_k=6.5",
        ]
    )
    cfg = load_config(args.config, overrides_from_args(args))
    assert cfg.source.spec == "clip.mp4"
    assert cfg.source.fps == 25.0
    assert cfg.explain.name == "rules"
    assert cfg.explain.openai.endpoint == "http://127.0.0.1:8000/v1"  # untouched key keeps the file's value
    assert cfg.publish.endpoint == "tcp://127.0.0.1:7000"
    assert cfg.source.max_frames == 10
    assert cfg.spotting.bump.threshold_k == 6.5


@pytest.mark.parametrize(
    ("overrides", "must_contain"),
    [
        ({"spotting.nonsense": 1}, ["unknown config key 'spotting.nonsense'", "signal_size", "bump"]),
        ({"spotting.bump.treshold_k": 1}, ["'spotting.bump.treshold_k'", "lag_s, threshold_k, pair_gain"]),
        ({"spotting.bump.threshold_k": "x"}, ["'spotting.bump.threshold_k'", "number"]),
        (
            {"spotting.bump.threshold_k": 2},
            ["keys spotting.bump.threshold_k, spotting.bump.release_k", "release_k (3.0) must be below"],
        ),
        ({"explain.openai.endpont": "x"}, ["'explain.openai.endpont'", "endpoint"]),
        ({"explain.rules.model": "x"}, ["'explain.rules.model'", "floor_px"]),
        ({"fusion.recipe": "nope"}, ["fusion.recipe", "unknown fusion recipe 'nope'", "calibrated, mellm"]),
        ({"fusion.calibrated.px_full_scale": 0}, ["fusion.calibrated.px_full_scale", "greater than 0"]),
        ({"nosuchsection.key": 1}, ["unknown config key 'nosuchsection'", "spotting"]),
        ({"explain.policy": "sometimes"}, ["explain.policy", "'drop_newest' or 'drop_oldest'"]),
        ({"source.policy": "x"}, ["source.policy", "'auto'", "'drop_oldest'", "'block'"]),
        ({"source.fps": -3}, ["source.fps", "greater than or equal to 0"]),
        ({"face.crop_size": "big"}, ["face.crop_size", "integer"]),
    ],
)
def test_config_error_is_one_line_naming_key(overrides: dict, must_contain: list[str]) -> None:
    with pytest.raises(UserError) as info:
        load_config(None, overrides)
    msg = str(info.value)
    assert "\n" not in msg
    for part in must_contain:
        assert part in msg


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[source\nspec = 1\n")
    with pytest.raises(UserError, match=r"bad\.toml"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[publish]\nendpint = 'tcp://127.0.0.1:1'\n")
    with pytest.raises(UserError, match=r"publish\.endpint"):
        load_config(unknown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.b=3", ("a.b", 3)),
        ("a.b=2.5", ("a.b", 2.5)),
        ("a.b=true", ("a.b", True)),
        ("a.b=dis", ("a.b", "dis")),
        ("a.b='x y'", ("a.b", "x y")),
    ],
)
def test_parse_override(text: str, expected: tuple) -> None:
    assert parse_override(text) == expected


def test_parse_override_rejects_missing_equals() -> None:
    with pytest.raises(UserError, match=r"section\.key=value"):
        parse_override("spotting.bump.threshold_k")


def test_default_toml_documents_the_real_defaults() -> None:
    """configs/default.toml is what runs without --config: every value it names is the built-in default."""
    assert load_config("default") == load_config(None)


def test_section_check_when_it_fails_then_the_line_holds_no_section_dump() -> None:
    with pytest.raises(UserError) as info:
        load_config(None, {"spotting.bump.threshold_k": 2, "spotting.bump.frac": 0.25})
    assert "{" not in str(info.value) and "frac" not in str(info.value)


@pytest.mark.parametrize(
    ("argv", "key", "value"),
    [
        (["--explainer", "vlm", "--model", "m"], "explain.vlm.model", "m"),
        (["--explainer", "llm", "--adapter", "a"], "explain.llm.adapter", "a"),
        (["--config", "rtsp-edge", "--model", "served"], "explain.openai.model", "served"),
        (
            ["--set", "explain.name=openai", "--endpoint", "http://h:1/v1"],
            "explain.openai.endpoint",
            "http://h:1/v1",
        ),
    ],
)
def test_explainer_flags_when_given_then_set_the_chosen_explainers_section(
    argv: list[str], key: str, value: str
) -> None:
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, overrides_from_args(args))
    assert _get(cfg, key) == value
    assert cfg.explain.explainer_params()[key.rsplit(".", 1)[1]] == value


def test_explainer_flag_when_the_explainer_takes_no_such_option_then_one_line() -> None:
    args = build_parser().parse_args(["--model", "m"])  # the default explainer, rules, has no model
    expected = "--model does not apply to the rules explainer; it is for vlm, llm, openai"
    with pytest.raises(UserError, match=expected):
        overrides_from_args(args)
