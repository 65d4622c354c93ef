"""MELLM training path: annotation readers, instruction-description dataset, LoRA fine-tuning, evaluation.

Three commands, for users who hold the databases (CASME II, SAMM, CAS(ME)^3, DFME, MMEW, SMIC):

- ``python -m training.build_dataset``: annotation sheet + frame folders → fused maps (the engine's own
  face alignment, flow and fusion) + chat-format JSONL + leave-one-subject-out split files;
- ``python -m training.finetune``: LoRA supervised fine-tuning of a Qwen-VL family model on it;
- ``python -m training.evaluate``: any explainer over a split → AU F1, 3-class UF1 / UAR / accuracy.

Importing this package is cheap: torch and transformers load only inside the fine-tuning and model
evaluation paths.
"""

from __future__ import annotations

from training.records import AUCode, MERecord, SheetIssue, parse_au_string

__all__ = ["AUCode", "MERecord", "SheetIssue", "parse_au_string"]
