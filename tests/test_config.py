"""Configuration: bundled files load, flags override keys, mistakes are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import CONFIG_DIR, load_config, parse_override
from engine.errors import UserError
from run_stream import build_parser, overrides_from_args


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_bundled_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.spotting.window_s > 0


def test_bundled_configs_exist() -> None:
    assert {p.stem for p in CONFIG_DIR.glob("*.toml")} >= {"default", "highspeed-200fps", "rtsp-edge"}


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
            "spotting.threshold_k=6.5",
        ]
    )
    cfg = load_config(args.config, overrides_from_args(args))
    assert cfg.source.spec == "clip.mp4"
    assert cfg.source.fps == 25.0
    assert cfg.explain.name == "rules"
    assert cfg.explain.endpoint == "http://127.0.0.1:8000/v1"  # untouched key keeps the file's value
    assert cfg.publish.endpoint == "tcp://127.0.0.1:7000"
    assert cfg.source.max_frames == 10
    assert cfg.spotting.threshold_k == 6.5


@pytest.mark.parametrize(
    ("overrides", "must_contain"),
    [
        ({"spotting.nonsense": 1}, ["unknown config key 'spotting.nonsense'", "threshold_k"]),
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
        parse_override("spotting.threshold_k")


def test_default_toml_documents_the_real_defaults() -> None:
    """configs/default.toml is what runs without --config: every value it names is the built-in default."""
    assert load_config("default") == load_config(None)
