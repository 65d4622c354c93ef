"""The ``vlm`` explainer on tiny random Qwen2-VL models built in the test session (no downloads)."""

# Fixtures are imported from tests.tiny_models, and pytest injects them by parameter name.
# ruff: noqa: F811
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.explain import create
from engine.types import ActionUnit, Explanation
from tests.helpers import ROOT
from tests.tiny_models import SCRIPTED_ANSWER, make_evidence, scripted_vlm, tiny_lora, tiny_vlm  # noqa: F401

pytestmark = pytest.mark.slow


def test_vlm_when_model_answers_parses_aus_and_emotion(scripted_vlm: Path) -> None:
    ex = create("vlm", model=str(scripted_vlm), max_new_tokens=32)
    ex.warmup()
    out = ex.explain_batch([make_evidence(0), make_evidence(1)])
    assert len(out) == 2
    for e in out:
        assert isinstance(e, Explanation)
        assert e.explainer == "vlm:scripted-qwen2vl"
        assert e.text == SCRIPTED_ANSWER
        assert e.aus == (ActionUnit(4, "Brow Lowerer", "B", 1.0),)
        assert (e.emotion, e.emotion_detail) == ("negative", "disgust")
    ex.close()


def test_vlm_when_batched_equals_single_generations(tiny_vlm: Path) -> None:
    ex = create("vlm", model=str(tiny_vlm), max_new_tokens=12)
    items = [make_evidence(i, size=64 + 16 * i) for i in range(3)]  # different sizes: padding differs
    batched = ex.explain_batch(items)
    single = [ex.explain_batch([e])[0] for e in items]
    assert [e.explainer for e in batched] == ["vlm:tiny-qwen2vl"] * 3
    assert [e.text for e in batched] == [e.text for e in single]
    assert len({e.text for e in batched}) == 3  # the image reaches the model: different maps, different text
    assert ex.explain_batch([]) == []


def test_vlm_when_lora_adapter_given_loads_and_changes_output(tiny_vlm: Path, tiny_lora: Path) -> None:
    item = [make_evidence(7)]
    base = create("vlm", model=str(tiny_vlm), max_new_tokens=12).explain_batch(item)[0]
    tuned_ex = create("vlm", model=str(tiny_vlm), adapter=str(tiny_lora), max_new_tokens=12)
    tuned = tuned_ex.explain_batch(item)[0]
    assert tuned.explainer == "vlm:tiny-qwen2vl+tiny-lora"
    assert tuned.text != base.text
    from peft import PeftModel

    assert isinstance(tuned_ex._model, PeftModel)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "/no/such/folder"}, "does not exist"),
        ({"model": ""}, "needs a local model folder"),
        ({"model": "{empty}"}, "not a transformers model"),
        ({"model": "{tiny}", "adapter": "{empty}"}, "adapter_config.json"),
        ({"model": "{tiny}", "language": "fr"}, "language"),
        ({"model": "{tiny}", "max_new_tokens": -1}, "max_new_tokens"),
    ],
)
def test_vlm_when_user_input_is_wrong_raises_one_line_user_error(
    params: dict[str, object], message: str, tiny_vlm: Path, tmp_path: Path
) -> None:
    subs = {"{empty}": str(tmp_path), "{tiny}": str(tiny_vlm)}
    params = {k: subs.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(UserError) as info:
        create("vlm", **params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_vlm_when_created_does_not_import_torch_before_warmup(tiny_vlm: Path) -> None:
    """Checking paths costs no torch import: a wrong folder fails fast at start-up."""
    code = (
        "import sys\nfrom engine.explain import create\n"
        f"ex = create('vlm', model={str(tiny_vlm)!r})\nprint('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_vlm_when_run_from_a_subprocess_explains(scripted_vlm: Path) -> None:
    """What run_stream.py does: build by name in a fresh interpreter, warm up, explain, report the name."""
    code = (
        "import json\nfrom engine.explain import create\nfrom tests.tiny_models import make_evidence\n"
        f"ex = create('vlm', model={str(scripted_vlm)!r}, max_new_tokens=32)\nex.warmup()\n"
        "e = ex.explain_batch([make_evidence(3)])[0]\n"
        "print(json.dumps({'explainer': e.explainer, 'aus': [a.au for a in e.aus], 'emotion': e.emotion}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"explainer": "vlm:scripted-qwen2vl", "aus": [4], "emotion": "negative"}


class _ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []

    def emit(self, event: dict[str, object], png: bytes | None = None) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_vlm_when_run_by_the_worker_publishes_named_explanations(scripted_vlm: Path, mode: str) -> None:
    """The stream's path: worker (thread, or child process) batches jobs into the vlm explainer."""
    from engine.explain.config import ExplainConfig, LocalModelConfig
    from engine.explain.worker import ExplainWorker, build_explainer

    vlm = LocalModelConfig(model=str(scripted_vlm))
    cfg = ExplainConfig(name="vlm", vlm=vlm, batch_size=4, mode=mode, timeout_s=300)
    items = {f"c{i}": make_evidence(i, candidate_id=f"c{i}") for i in range(4)}
    sink = _ListSink()
    worker = ExplainWorker(build_explainer(cfg), lambda c: items[c.candidate_id], sink, cfg)
    for ev in items.values():  # queued before start: one batch of 4 after warm-up
        worker.submit(ev.candidate)
    worker.start()
    worker.stop(drain_s=240)
    explained = [e for e in sink.events if e["type"] == "explanation"]
    assert sorted(e["candidate_id"] for e in explained) == sorted(items)
    assert {e["explainer"] for e in explained} == {"vlm:scripted-qwen2vl"}
    assert all(
        e["aus"] == [{"au": 4, "name": "Brow Lowerer", "side": "B", "confidence": 1.0}] for e in explained
    )
    assert worker.stats()["mean_batch"] == 4.0
