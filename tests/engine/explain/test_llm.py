"""The ``llm`` explainer (region-statistics prompt) on tiny random Qwen2 causal LMs built in the session."""

# Fixtures are imported from tests.tiny_models, and pytest injects them by parameter name.
# ruff: noqa: F811
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UserError
from engine.explain import create
from engine.explain.prompts import region_line
from engine.types import ActionUnit
from tests.tiny_models import SCRIPTED_ANSWER, make_evidence, scripted_llm, tiny_llm  # noqa: F401

pytestmark = pytest.mark.slow


def test_llm_when_model_answers_parses_aus_and_emotion(scripted_llm: Path) -> None:
    ex = create("llm", model=str(scripted_llm), max_new_tokens=32)
    ex.warmup()
    out = ex.explain_batch([make_evidence(0), make_evidence(1), make_evidence(2)])
    assert [e.explainer for e in out] == ["llm:scripted-qwen2"] * 3
    for e in out:
        assert e.text == SCRIPTED_ANSWER
        assert e.aus == (ActionUnit(4, "Brow Lowerer", "B", 1.0),)
        assert (e.emotion, e.emotion_detail) == ("negative", "disgust")


def test_llm_when_batched_equals_single_generations(tiny_llm: Path) -> None:
    ex = create("llm", model=str(tiny_llm), max_new_tokens=12)
    items = [make_evidence(i) for i in range(3)]
    batched = ex.explain_batch(items)
    single = [ex.explain_batch([e])[0] for e in items]
    assert [e.text for e in batched] == [e.text for e in single]
    assert len({e.text for e in batched}) == 3  # the statistics reach the model


def test_llm_prompt_when_built_lists_every_region_line(tiny_llm: Path) -> None:
    ex = create("llm", model=str(tiny_llm))
    ev = make_evidence(5)
    prompt = ex.prompt(ev.regions)
    assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_start|>assistant\n")
    for r in ev.regions:
        assert region_line(r) in prompt


def test_llm_when_folder_is_not_a_model_raises_user_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not a transformers model"):
        create("llm", model=str(tmp_path))
