"""Prompts as data: ``prompt_file``, ``system_prompt`` and sampling settings of the model explainers."""

# Fixtures are imported from tests.tiny_models, and pytest injects them by parameter name.
# ruff: noqa: F811
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UserError
from engine.explain import create
from engine.explain.mellm_v3 import region_lines
from engine.explain.openai_client import OpenAIExplainer
from engine.explain.prompts import read_prompt_file, vlm_prompt
from tests.tiny_models import make_evidence, tiny_llm, tiny_vlm  # noqa: F401

TEXT_PROMPT = "Regions of the face:\n{regions}\nName the AUs and the class (Negative, Positive, Surprise)."


def write(folder: Path, text: str, name: str = "prompt.txt") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "text_model", "message"),
    [
        (None, True, "cannot be read"),
        ("", True, "is empty"),
        ("Describe the regions.", True, "has no {regions} placeholder"),
        ("Read the map. {regions}", False, "sends the map image"),
        ("Read the map.\n<image>", False, "after its start"),
    ],
    ids=["missing", "empty", "no-placeholder", "placeholder-for-image", "image-marker-inside"],
)
def test_read_prompt_file_when_unusable_raises_one_line_user_error(
    tmp_path: Path, text: str | None, text_model: bool, message: str
) -> None:
    path = str(tmp_path / "absent.txt") if text is None else write(tmp_path, text)
    with pytest.raises(UserError, match="prompt_file") as err:
        read_prompt_file(path, "llm" if text_model else "vlm", text_model=text_model)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_read_prompt_file_when_image_prompt_starts_with_marker_drops_it(tmp_path: Path) -> None:
    path = write(tmp_path, "<image>这是一个人脸图像。\n请分析。")
    assert read_prompt_file(path, "vlm", text_model=False) == "这是一个人脸图像。\n请分析。"
    assert read_prompt_file("", "vlm", text_model=False) == ""


def test_openai_payload_when_configured_sends_system_prompt_file_and_greedy(tmp_path: Path) -> None:
    path = write(tmp_path, "<image>Read the colour map.")
    ex = OpenAIExplainer(endpoint="http://127.0.0.1:9/v1", prompt_file=path, system_prompt="Be brief.")
    body = ex.payload(make_evidence(0))
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][1] == {"type": "text", "text": "Read the colour map."}
    assert body["temperature"] == 0.0
    sampled = OpenAIExplainer(endpoint="http://127.0.0.1:9/v1", do_sample=True, temperature=0.7)
    assert sampled.payload(make_evidence(0))["temperature"] == 0.7
    assert [m["role"] for m in sampled.payload(make_evidence(0))["messages"]] == ["user"]
    ex.close()
    sampled.close()


def test_openai_when_sampling_without_temperature_raises_user_error() -> None:
    with pytest.raises(UserError, match="temperature must be > 0 with do_sample"):
        OpenAIExplainer(endpoint="http://127.0.0.1:9/v1", do_sample=True)


@pytest.mark.slow
def test_llm_when_prompt_file_and_v3_format_builds_that_prompt(tiny_llm: Path, tmp_path: Path) -> None:
    path = write(tmp_path, TEXT_PROMPT)
    ex = create(
        "llm",
        model=str(tiny_llm),
        prompt_file=path,
        system_prompt="You are a FACS coder.",
        region_format="mellm-v3",
        max_new_tokens=4,
    )
    items = [make_evidence(1, size=160), make_evidence(2, size=160)]
    ev = items[0]
    lines = region_lines(ev.flow, ev.candidate.onset_face.crop_landmarks)
    assert ex.region_text(ev) == lines and lines.count('{"region":"') >= 20
    expected = (
        "<|im_start|>system\nYou are a FACS coder.<|im_end|>\n"
        f"<|im_start|>user\n{TEXT_PROMPT.replace('{regions}', lines)}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert ex.prompt(lines) == expected
    assert len(ex.explain_batch(items)) == 2  # the tiny model reads it end to end


@pytest.mark.slow
def test_llm_when_v3_format_without_file_uses_built_in_v3_prompt(tiny_llm: Path) -> None:
    ex = create("llm", model=str(tiny_llm), region_format="mellm-v3", language="zh")
    ev = make_evidence(3, size=160)
    prompt = ex.prompt(ex.region_text(ev))
    assert ex.region_text(ev) in prompt and "Negative、Positive 或 Surprise" in prompt
    assert "system" not in prompt


@pytest.mark.slow
def test_llm_when_region_format_unknown_raises_user_error(tiny_llm: Path) -> None:
    with pytest.raises(UserError, match="region_format 'v2' is unknown; use one of: table, mellm-v3"):
        create("llm", model=str(tiny_llm), region_format="v2")


@pytest.mark.slow
def test_vlm_when_prompt_file_sends_its_text_after_the_image(tiny_vlm: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "<image>Read the colour map of the face.")
    ex = create("vlm", model=str(tiny_vlm), prompt_file=path, system_prompt="You are a helpful assistant.")
    assert ex.prompt == "Read the colour map of the face."
    messages = ex._messages()
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    text = {"type": "text", "text": "Read the colour map of the face."}
    assert messages[1]["content"] == [{"type": "image"}, text]
    assert create("vlm", model=str(tiny_vlm)).prompt == vlm_prompt("en")


@pytest.mark.slow
def test_vlm_when_sampling_is_asked_samples_and_greedy_repeats(tiny_vlm: Path) -> None:
    item = make_evidence(4).fused_map
    greedy = create("vlm", model=str(tiny_vlm), max_new_tokens=8)
    assert greedy.generate([item]) == greedy.generate([item])
    sampled = create("vlm", model=str(tiny_vlm), max_new_tokens=8, do_sample=True, temperature=5.0)
    answers = {sampled.generate([item])[0] for _ in range(4)}
    assert len(answers) > 1  # a very hot sampler on random weights does not repeat itself four times
    with pytest.raises(UserError, match="temperature must be > 0"):
        create("vlm", model=str(tiny_vlm), do_sample=True, temperature=0.0)
