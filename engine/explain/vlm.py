"""``vlm`` explainer: a local image-text model (Qwen2-VL, Qwen2.5-VL, ...) reads the fused map.

transformers ``AutoProcessor`` + ``AutoModelForImageTextToText`` from a local folder, an optional
LoRA adapter via peft, greedy batched generation (left padding) over the jobs the worker hands in,
and the MELLM v1 prompt (`engine.explain.prompts.vlm_prompt`). The answer is parsed into AUs and
emotion by `engine.explain.parser`; the text is kept as the explanation.

Paths are checked when the explainer is built (a missing folder is a `UserError` at start-up,
before torch is imported); the model loads on `warmup` or on the first batch.

>>> VLMExplainer(model="/no/such/folder")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
engine.errors.UserError: vlm model folder '/no/such/folder' does not exist; ...
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from engine.explain.hf_common import (
    DTYPES,
    LocalExplainer,
    check_adapter_folder,
    check_model_folder,
    explainer_name,
    load_adapter,
    load_failure,
    resolve_device,
    resolve_dtype,
    set_cpu_threads,
    system_message,
    to_explanation,
)
from engine.explain.prompts import vlm_prompt
from engine.types import Evidence

# The shared helpers moved to engine.explain.hf_common; re-exported here for existing importers.
__all__ = [
    "DTYPES",
    "VLMExplainer",
    "bgr_to_pil",
    "check_adapter_folder",
    "check_model_folder",
    "explainer_name",
    "load_adapter",
    "load_failure",
    "resolve_device",
    "resolve_dtype",
    "set_cpu_threads",
    "to_explanation",
]


def bgr_to_pil(image: np.ndarray) -> Any:
    """H×W×3 uint8 BGR (OpenCV order) → RGB PIL image for the processor."""
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"fused map must be H×W×3 uint8 BGR, got shape {image.shape} dtype {image.dtype}")
    return Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))


class VLMExplainer(LocalExplainer):
    """Fused map + MELLM v1 prompt → local image-text model → parsed explanation.

    ``model``: local folder (config.json, weights, processor with a chat template).
    ``adapter``: optional LoRA folder (peft). ``device``: auto | cpu | cuda[:n]. ``dtype``: auto
    (bf16 on CUDA, fp32 on CPU) | bfloat16 | float16 | float32. ``max_new_tokens``: answer length
    cap. ``language``: en | zh built-in prompt. ``prompt_file``: a text file sent with the map instead
    of the built-in prompt. ``system_prompt``: system message ("" = none). ``do_sample``: sample with
    ``temperature`` (> 0) instead of greedy decoding (default).
    ``threads``: torch CPU threads (0 = torch's default; process-wide, CPU only).

    >>> ex = VLMExplainer(model="models/MELLM-7B")                    # doctest: +SKIP
    >>> ex.explain_batch([evidence])[0].emotion                      # doctest: +SKIP
    'negative'
    """

    kind = "vlm"
    need = ("preprocessor_config.json|processor_config.json", "tokenizer.json|tokenizer_config.json")
    warmup_item = np.zeros((64, 64, 3), np.uint8)

    @cached_property
    def prompt(self) -> str:
        """The text sent with every fused map: the ``prompt_file``'s, else our v1 prompt in ``language``."""
        return self.template or vlm_prompt(self.language)

    def _from_pretrained(self, dtype: Any) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(self.folder)
        return processor, AutoModelForImageTextToText.from_pretrained(self.folder, dtype=dtype)

    def _pad_left(self, processor: Any) -> None:
        processor.tokenizer.padding_side = "left"  # batched generation appends after the prompt

    def _tokenizer(self) -> Any:
        return self._processor.tokenizer

    def _messages(self) -> list[dict[str, Any]]:
        user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}
        return [*system_message(self.system_prompt), user]

    def _inputs(self, batch: Sequence[np.ndarray]) -> Any:
        proc = self._processor
        text = proc.apply_chat_template(self._messages(), add_generation_prompt=True, tokenize=False)
        return proc(
            text=[text] * len(batch),
            images=[bgr_to_pil(im) for im in batch],
            return_tensors="pt",
            padding=True,
        )

    def _item(self, evidence: Evidence) -> np.ndarray:
        return evidence.fused_map

    def generate(self, images: Sequence[np.ndarray]) -> list[str]:
        """The model's answers for fused maps ``images`` (H×W×3 uint8 BGR), one batch, in order."""
        return self._generate(images)
