"""LoRA fine-tuning of the tiny random Qwen2-VL on the rendered CASME II dataset, through the real CLI.

Proves: answer-only labels, loss goes down, checkpoints resume, the adapter loads into the engine's
`vlm` explainer and produces explanations, and the evaluation command prints its table with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny_models import tiny_vlm  # noqa: F401  (fixture)
from tests.training.test_training_dataset import casme2_dataset, run_module  # noqa: F401  (fixture)
from training.build_dataset import load_evidence, read_dataset

pytest.importorskip("peft")


@pytest.mark.slow
def test_chat_collator_when_batch_labels_only_the_answer(casme2_dataset: Path, tiny_vlm: Path) -> None:  # noqa: F811
    from transformers import AutoProcessor

    from training.finetune import IGNORE_INDEX, ChatCollator

    proc = AutoProcessor.from_pretrained(tiny_vlm)
    items = read_dataset(casme2_dataset)[:2]
    batch = ChatCollator(proc, casme2_dataset)(items)
    image_id = proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for i, it in enumerate(items):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        kept = labels != IGNORE_INDEX
        assert not bool((ids[kept] == image_id).any())  # image tokens never carry loss
        answer = it["messages"][1]["content"][0]["text"]
        assert proc.tokenizer.decode(ids[kept]).strip() == answer + "<|im_end|>"
        assert batch["attention_mask"][i][kept].all()  # no padding in the loss


@pytest.mark.slow
def test_finetune_when_tiny_vlm_loss_drops_resumes_and_adapter_explains(
    casme2_dataset: Path,  # noqa: F811
    tiny_vlm: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    split = casme2_dataset / "splits" / "casme2_01.json"
    common = [
        "--data",
        str(casme2_dataset),
        "--split",
        str(split),
        "--model",
        str(tiny_vlm),
        "--out",
        str(out),
        "--lr",
        "5e-3",
        "--lora-r",
        "8",
        "--tune-merger",
        "lora",
        "--save-every",
        "3",
        "--quiet",
    ]
    proc = run_module("training.finetune", *common, "--max-steps", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    losses = summary["losses"]
    assert len(losses) == 6 and summary["examples"] == 4 and summary["dtype"] == "float32"
    assert sum(losses[-2:]) / 2 < losses[0] - 0.2, losses
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    targets = cfg["target_modules"]
    assert any("merger" in t for t in targets) and any(t.endswith("q_proj") for t in targets)
    assert not any("visual.blocks" in t for t in targets)
    assert (out / "checkpoint-3").is_dir() and (out / "checkpoint-6").is_dir()

    # Resume from the newest checkpoint and go on to step 8: the log grows by two steps only.
    # (In-process: each subprocess pays seconds of torch import on this shared machine.)
    from training.finetune import main as finetune_main

    assert finetune_main([*common, "--max-steps", "8", "--resume"]) == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["steps"] == 8 and resumed["losses"][:6] == losses
    assert len((out / "log.jsonl").read_text().splitlines()) == 8

    # The adapter loads straight into the engine's vlm explainer.
    import engine.explain

    ex = engine.explain.create("vlm", model=str(tiny_vlm), adapter=str(out / "adapter"), max_new_tokens=8)
    try:
        evs = [load_evidence(it, casme2_dataset) for it in read_dataset(casme2_dataset, split, "test")]
        explanations = ex.explain_batch(evs)
    finally:
        ex.close()
    assert len(explanations) == 2
    assert all(e.explainer == "vlm:tiny-qwen2vl+adapter" and e.text for e in explanations)

    # ... and the evaluation command runs it over the fold and prints its table (the CLI as a real
    # subprocess is exercised with the rules explainer in test_training_evaluate.py).
    from training.evaluate import main as evaluate_main

    res = tmp_path / "res.json"
    assert (
        evaluate_main(
            [
                "--data",
                str(casme2_dataset),
                "--split",
                str(split),
                "--explainer",
                "vlm",
                "--model",
                str(tiny_vlm),
                "--adapter",
                str(out / "adapter"),
                "--max-new-tokens",
                "8",
                "--out",
                str(res),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "explainer vlm:tiny-qwen2vl+adapter" in printed and "pooled" in printed
    result = json.loads(res.read_text())
    assert result["pooled"]["n"] == 2 and len(result["predictions"]) == 2


def test_finetune_when_no_model_folder_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.jsonl").write_text(json.dumps({"id": "a", "record": {}, "messages": []}) + "\n")
    proc = run_module(
        "training.finetune",
        "--data",
        str(data),
        "--model",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "o"),
    )
    assert proc.returncode == 2 and "has no config.json" in proc.stderr
