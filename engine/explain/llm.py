"""``llm`` explainer: the region-statistics prompt to a local text-only causal LM.

The later MELLM version feeds the model a text table of the facial regions' motion (one line per
region: name, mean and max magnitude in px, direction; `engine.explain.prompts.region_prompt`)
instead of the image, so any chat LLM can explain. transformers ``AutoTokenizer`` (with its chat
template) + ``AutoModelForCausalLM``, optional LoRA adapter, greedy batched generation (left
padding); the answer is parsed like the ``vlm`` one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.explain.hf_common import LocalExplainer
from engine.explain.prompts import region_prompt
from engine.types import Evidence, RegionStat


class LLMExplainer(LocalExplainer):
    """Region statistics → local causal LM → parsed explanation.

    Parameters as `engine.explain.vlm.VLMExplainer`: ``model`` (local folder with tokenizer and chat
    template), ``adapter``, ``device``, ``dtype``, ``max_new_tokens``, ``language``, ``temperature``,
    ``threads``.
    The explainer name is ``llm:<model dir>``.
    """

    kind = "llm"
    need = ("tokenizer.json|tokenizer_config.json",)
    warmup_item: Sequence[RegionStat] = ()

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

    def prompt(self, regions: Sequence[RegionStat]) -> str:
        """The chat-formatted region-statistics prompt for one candidate."""
        self._load()
        messages = [{"role": "user", "content": region_prompt(regions, self.language)}]
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _inputs(self, batch: Sequence[Sequence[RegionStat]]) -> Any:
        texts = [self.prompt(t) for t in batch]
        return self._processor(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def _item(self, evidence: Evidence) -> Sequence[RegionStat]:
        return evidence.regions

    def generate(self, tables: Sequence[Sequence[RegionStat]]) -> list[str]:
        """The model's answers for the region tables ``tables``, one batch, in order."""
        return self._generate(tables)
