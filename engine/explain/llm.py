"""``llm`` explainer: facial regions' motion as text to a local text-only causal LM.

The later MELLM version feeds the model text about the regions' motion instead of the image, so
any chat LLM can explain. ``region_format`` chooses the text: ``table`` (our regions, one line
each: name, mean and max magnitude in px, direction in 30° steps; `engine.explain.prompts`) or
``mellm-v3`` (the 29 patches and line format MELLM v3's LLM was trained on;
`engine.explain.mellm_v3`). The lines go into the built-in prompt, or into the user's
``prompt_file`` at its ``{regions}`` placeholder. transformers ``AutoTokenizer`` (with its chat
template) + ``AutoModelForCausalLM``, optional LoRA adapter, batched generation (left padding); the
answer is parsed like the ``vlm`` one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import UserError
from engine.explain.hf_common import LocalExplainer, system_message
from engine.explain.mellm_v3 import region_lines
from engine.explain.prompts import fill_prompt, region_table, table_prompt, v3_prompt
from engine.types import Evidence, RegionStat

REGION_FORMATS = ("table", "mellm-v3")


class LLMExplainer(LocalExplainer):
    """Region text → local causal LM → parsed explanation.

    Parameters as `engine.explain.vlm.VLMExplainer` (``model``: local folder with tokenizer and
    chat template), plus ``region_format``: ``table`` | ``mellm-v3``. A ``prompt_file`` must hold
    ``{regions}``. The explainer name is ``llm:<model dir>``.
    """

    kind = "llm"
    need = ("tokenizer.json|tokenizer_config.json",)
    warmup_item = ""

    def __init__(self, *args: Any, region_format: str = "table", **kwargs: Any) -> None:
        if region_format not in REGION_FORMATS:
            raise UserError(
                f"explain.llm.region_format {region_format!r} is unknown; "
                f"use one of: {', '.join(REGION_FORMATS)}"
            )
        super().__init__(*args, **kwargs)
        self.region_format = region_format

    def _from_pretrained(self, dtype: Any) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.folder)
        return tokenizer, AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype)

    def _pad_left(self, processor: Any) -> None:
        processor.padding_side = "left"
        if processor.pad_token_id is None:
            processor.pad_token = processor.eos_token

    def _tokenizer(self) -> Any:
        return self._processor

    def region_text(self, evidence: Evidence) -> str:
        """The region lines of ``evidence`` in ``region_format``."""
        if self.region_format == "mellm-v3":
            return region_lines(evidence.flow, evidence.candidate.onset_face.crop_landmarks)
        return region_table(evidence.regions, self.language)

    def user_text(self, lines: str) -> str:
        """The user message around region ``lines``: the prompt file's, else the built-in one."""
        if self.template:
            return fill_prompt(self.template, lines)
        if self.region_format == "mellm-v3":
            return v3_prompt(lines, self.language)
        return table_prompt(lines, self.language)

    def prompt(self, regions: Sequence[RegionStat] | str) -> str:
        """The chat-formatted prompt for region lines (a str) or for a table of `RegionStat`."""
        self._load()
        lines = regions if isinstance(regions, str) else region_table(regions, self.language)
        messages = [*system_message(self.system_prompt), {"role": "user", "content": self.user_text(lines)}]
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _inputs(self, batch: Sequence[Sequence[RegionStat] | str]) -> Any:
        texts = [self.prompt(t) for t in batch]
        return self._processor(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def _item(self, evidence: Evidence) -> str:
        return self.region_text(evidence)

    def generate(self, tables: Sequence[Sequence[RegionStat] | str]) -> list[str]:
        """The model's answers for region tables or region-line texts ``tables``, one batch, in order."""
        return self._generate(tables)
