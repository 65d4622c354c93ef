"""The model explainers through the real command line: run_stream --explainer vlm / llm on the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import check_accounting, free_port, read_journal, run_cli
from tests.tiny_models import scripted_llm, scripted_vlm, tiny_lora, tiny_vlm  # noqa: F401 (fixtures)

DEMO = ["--source", "demo", "--set", "demo.duration_s=8", "--set", "demo.events=2", "--set", "demo.seed=5"]


def _run(tmp_path: Path, *args: str) -> list[dict]:
    journal = tmp_path / "events.jsonl"
    proc = run_cli(*DEMO, *args, "--pub", f"tcp://127.0.0.1:{free_port()}", "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_journal(journal)
    outcome = check_accounting(events)
    assert outcome, "the demo produced no candidate"
    return events


@pytest.mark.slow
def test_run_stream_with_the_vlm_explainer(tmp_path: Path, scripted_vlm: Path) -> None:  # noqa: F811
    events = _run(
        tmp_path, "--explainer", "vlm", "--model", str(scripted_vlm), "--set", "explain.vlm.threads=1"
    )
    expl = [e for e in events if e["type"] == "explanation"]
    assert expl, [e for e in events if e["type"] in ("dropped", "error")]
    for e in expl:
        assert e["explainer"] == "vlm:scripted-qwen2vl"
        assert [a["au"] for a in e["aus"]] == [4]
        assert e["aus"][0]["name"] == "Brow Lowerer"
        assert (e["emotion"], e["emotion_detail"]) == ("negative", "disgust")


@pytest.mark.slow
def test_run_stream_with_the_llm_explainer(tmp_path: Path, scripted_llm: Path) -> None:  # noqa: F811
    events = _run(
        tmp_path, "--explainer", "llm", "--model", str(scripted_llm), "--set", "explain.llm.threads=1"
    )
    expl = [e for e in events if e["type"] == "explanation"]
    assert expl
    assert all(e["explainer"].startswith("llm:") and e["emotion"] == "negative" for e in expl)


@pytest.mark.slow
def test_run_stream_with_a_lora_adapter(tmp_path: Path, tiny_vlm: Path, tiny_lora: Path) -> None:  # noqa: F811
    events = _run(
        tmp_path,
        "--explainer",
        "vlm",
        "--model",
        str(tiny_vlm),
        "--adapter",
        str(tiny_lora),
        "--set",
        "explain.vlm.max_new_tokens=8",
        "--set",
        "explain.vlm.threads=1",
    )
    expl = [e for e in events if e["type"] == "explanation"]
    assert expl
    assert all(e["explainer"] == f"vlm:{tiny_vlm.name}+{tiny_lora.name}" for e in expl)


def test_run_stream_with_a_missing_model_folder(tmp_path: Path) -> None:
    proc = run_cli("--source", "demo", "--explainer", "vlm", "--model", str(tmp_path / "no-model"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no-model" in next(ln for ln in proc.stderr.splitlines() if "error:" in ln)
