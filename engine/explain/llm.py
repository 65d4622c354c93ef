"""``llm`` explainer: the region-statistics prompt to a local text-only causal LM.

The later MELLM version feeds the model a text table of the facial regions' motion (one line per
region: name, mean and max magnitude in px, direction; `engine.explain.prompts.region_prompt`)
instead of the image, so any chat LLM can explain. transformers ``AutoTokenizer`` (with its chat
template) + ``AutoModelForCausalLM``, optional LoRA adapter, greedy batched generation (left
padding); the answer is parsed like the ``vlm`` one.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

from engine.errors import UserError
from engine.explain.prompts import check_language, region_prompt
from engine.explain.vlm import (
    check_adapter_folder,
    check_model_folder,
    check_unused,
    explainer_name,
    load_adapter,
    load_failure,
    resolve_device,
    resolve_dtype,
    set_cpu_threads,
    to_explanation,
)
from engine.types import Evidence, Explanation, RegionStat

log = logging.getLogger(__name__)


class LLMExplainer:
    """Region statistics → local causal LM → parsed explanation.

    Parameters as `engine.explain.vlm.VLMExplainer`: ``model`` (local folder with tokenizer and chat
    template), ``adapter``, ``device``, ``dtype``, ``max_new_tokens``, ``language``, ``temperature``,
    ``threads``.
    The explainer name is ``llm:<model dir>``.
    """

    def __init__(
        self,
        model: str = "",
        adapter: str = "",
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 256,
        language: str = "en",
        temperature: float = 0.0,
        threads: int = 0,
        **unused: Any,
    ) -> None:
        check_unused("llm", unused)
        self.folder = check_model_folder(model, "llm", need=("tokenizer.json|tokenizer_config.json",))
        self.adapter = check_adapter_folder(adapter, "llm")
        if max_new_tokens < 1:
            raise UserError(f"explainer max_new_tokens must be >= 1, got {max_new_tokens}")
        self.name = explainer_name("llm", self.folder, self.adapter)
        self.language = check_language(language)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self._device_name = device
        self.threads = int(threads)
        self._dtype_name = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._device = resolve_device(self._device_name)
        set_cpu_threads(self.threads, self._device)
        dtype = resolve_dtype(self._dtype_name, self._device)
        t0 = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.folder)
            model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise load_failure("llm", self.folder, exc) from None
        if getattr(tokenizer, "chat_template", None) is None:
            raise UserError(
                f"llm model folder {str(self.folder)!r} has no chat template; add chat_template.jinja"
            )
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = load_adapter(model, self.adapter, "llm").to(self._device).eval()
        self._tokenizer, self._model = tokenizer, model
        log.info(
            "llm model %s loaded on %s (%s) in %.1f s",
            self.name,
            self._device,
            dtype,
            time.perf_counter() - t0,
        )

    def prompt(self, regions: Sequence[RegionStat]) -> str:
        """The chat-formatted region-statistics prompt for one candidate."""
        self._load()
        messages = [{"role": "user", "content": region_prompt(regions, self.language)}]
        return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(self, tables: Sequence[Sequence[RegionStat]]) -> list[str]:
        """The model's answers for the region tables ``tables``, one batch, in order."""
        import torch

        self._load()
        tok, model = self._tokenizer, self._model
        texts = [self.prompt(t) for t in tables]
        inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self._device)
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def warmup(self) -> None:
        """Load the model and run a one-token generation."""
        self._load()
        saved, self.max_new_tokens = self.max_new_tokens, 1
        try:
            self.generate([()])
        finally:
            self.max_new_tokens = saved

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        """One explanation per evidence, in order, from one batched generation over the region tables."""
        if not items:
            return []
        answers = self.generate([e.regions for e in items])
        return [to_explanation(a, self.name) for a in answers]

    def close(self) -> None:
        cuda = self._device is not None and self._device.type == "cuda"
        self._model = self._tokenizer = None
        gc.collect()
        if cuda:
            import torch

            torch.cuda.empty_cache()
