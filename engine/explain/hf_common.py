"""What the local transformers explainers (``vlm``, ``llm``) share: option and folder checks, device
and dtype resolution, adapter loading, and `LocalExplainer`, their common lazy load / batched
generation / release.

Nothing here imports torch or transformers at module level: paths are checked when an explainer
is built (a missing folder is a `UserError` at start-up), the model loads on ``warmup`` or on the
first batch.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.explain.parser import parse_answer
from engine.explain.prompts import check_language, read_prompt_file
from engine.types import Evidence, Explanation

log = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32", "bf16", "fp16", "fp32")


def check_model_folder(path: str, explainer: str, need: Sequence[str] = ()) -> Path:
    """The local model folder ``path``, checked: exists, has a config.json naming a model type.

    ``need``: groups of file names (``"a|b"``) of which one must exist (tokenizer, processor).
    """
    if not path:
        raise UserError(f"the {explainer} explainer needs a local model folder: pass --model PATH")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(
            f"{explainer} model folder {str(folder)!r} does not exist; pass --model with a local model folder"
        )
    cfg = folder / "config.json"
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if not model_type:
        raise UserError(
            f"{explainer} model folder {str(folder)!r} is not a transformers model "
            "(no config.json with model_type); "
            "pass the folder that save_pretrained wrote"
        )
    for group in need:
        names = group.split("|")
        if not any((folder / n).is_file() for n in names):
            raise UserError(
                f"{explainer} model folder {str(folder)!r} lacks {' or '.join(names)}; "
                "copy the tokenizer/processor files beside the weights"
            )
    return folder


def check_adapter_folder(path: str, explainer: str) -> Path | None:
    """The LoRA adapter folder (with adapter_config.json), or None when no adapter is asked for."""
    if not path:
        return None
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise UserError(
            f"{explainer} adapter folder {str(folder)!r} has no adapter_config.json; "
            "pass a folder written by peft (save_pretrained)"
        )
    return folder


def explainer_name(kind: str, model: Path, adapter: Path | None) -> str:
    """``vlm:<model dir>`` or ``vlm:<model dir>+<adapter dir>``: what events report as ``explainer``."""
    return f"{kind}:{model.name}" + (f"+{adapter.name}" if adapter else "")


def resolve_device(device: str) -> Any:
    """``auto`` → cuda when available, else cpu; anything else as torch names it."""
    import torch

    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(
            f"explainer device {device!r} is not a torch device ({exc}); use auto, cpu or cuda"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"explainer device {device!r} asked for but CUDA is not available; "
            "use --set explain.vlm.device=cpu (explain.llm.device for llm)"
        )
    return dev


def set_cpu_threads(threads: int, device: Any) -> None:
    """Set torch's intra-op CPU threads when asked (``threads`` > 0) and running on CPU.

    Tiny and mid-size models on a shared CPU often run faster on 1-2 threads than on all cores:
    OpenMP threads spin and wait on each other when other processes hold the cores.
    """
    if threads > 0 and device.type == "cpu":
        import torch

        torch.set_num_threads(threads)


def resolve_dtype(dtype: str, device: Any) -> Any:
    """``auto`` → bfloat16 on CUDA, float32 on CPU (CPU half precision is slow and lossy)."""
    import torch

    name = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(dtype, dtype)
    if name in ("", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in ("bfloat16", "float16", "float32"):
        raise UserError(f"explainer dtype {dtype!r} is not supported; use one of: {', '.join(DTYPES)}")
    return getattr(torch, name)


def load_adapter(model: Any, adapter: Path | None, explainer: str) -> Any:
    """``model`` with the LoRA adapter in ``adapter`` applied (peft), or ``model`` itself."""
    if adapter is None:
        return model
    try:
        from peft import PeftModel
    except ImportError:
        raise UserError(
            'a LoRA adapter needs the peft package: pip install -e ".[mllm]" in the project folder'
        ) from None
    try:
        return PeftModel.from_pretrained(model, str(adapter)).eval()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{explainer} adapter {str(adapter)!r} does not fit the model: {first}") from None


def load_failure(explainer: str, folder: Path, exc: BaseException) -> UserError:
    """A one-line `UserError` for a model folder transformers cannot load."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"{explainer} model folder {str(folder)!r} cannot be loaded: {first[:300]}")


def check_sampling(explainer: str, do_sample: bool, temperature: float) -> tuple[bool, float]:
    """(do_sample, temperature) checked: sampling needs a temperature above 0."""
    if temperature < 0 or (do_sample and temperature == 0):
        raise UserError(
            f"explain.{explainer}.temperature must be > 0 with do_sample = true (got {temperature}); "
            "set it (e.g. 0.7) or set do_sample = false for greedy answers"
        )
    return bool(do_sample), float(temperature)


def system_message(text: str) -> list[dict[str, Any]]:
    """The chat message list's system message for ``text``, or nothing when it is empty."""
    return [{"role": "system", "content": text}] if text else []


def to_explanation(text: str, name: str) -> Explanation:
    """Parse a generated answer into an `Explanation` that keeps the text."""
    parsed = parse_answer(text)
    return Explanation(parsed.aus, parsed.emotion, parsed.emotion_detail, text.strip(), name)


class LocalExplainer:
    """Base of the local transformers explainers: checks options at build time, loads lazily, runs
    greedy (or sampled) batched generation with left padding, parses answers, releases the model.

    A subclass sets ``kind`` (``vlm`` / ``llm``: the explainer name's prefix and the word in its
    messages) and ``need`` (file groups its model folder must hold, as `check_model_folder`), and
    provides `_from_pretrained`, `_pad_left`, `_tokenizer`, `_inputs` (one batch of its own items →
    model inputs), `_item` (an `Evidence` → one item) and ``warmup_item``. ``_processor`` holds what
    `_from_pretrained` loaded beside the model: an ``AutoProcessor`` (vlm) or tokenizer (llm).
    """

    kind = ""
    need: tuple[str, ...] = ()
    warmup_item: Any = None

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
        prompt_file: str = "",
        system_prompt: str = "",
        do_sample: bool = False,
    ) -> None:
        self.folder = check_model_folder(model, self.kind, need=self.need)
        self.adapter = check_adapter_folder(adapter, self.kind)
        if max_new_tokens < 1:
            raise UserError(f"explainer max_new_tokens must be >= 1, got {max_new_tokens}")
        self.name = explainer_name(self.kind, self.folder, self.adapter)
        self.language = check_language(language)
        self.max_new_tokens = int(max_new_tokens)
        self.do_sample, self.temperature = check_sampling(self.kind, do_sample, temperature)
        self.template = read_prompt_file(prompt_file, self.kind, text_model=self.kind == "llm")
        self.system_prompt = system_prompt
        self._device_name = device
        self.threads = int(threads)
        self._dtype_name = dtype
        self._model: Any = None
        self._processor: Any = None
        self._device: Any = None

    def _from_pretrained(self, dtype: Any) -> tuple[Any, Any]:
        """(processor or tokenizer, model) loaded from ``self.folder`` in ``dtype``."""
        raise NotImplementedError

    def _pad_left(self, processor: Any) -> None:
        """Make ``processor`` pad on the left: batched generation appends after the prompt."""
        raise NotImplementedError

    def _tokenizer(self) -> Any:
        """The loaded tokenizer (its ``pad_token_id`` goes to ``generate``)."""
        raise NotImplementedError

    def _inputs(self, batch: Sequence[Any]) -> Any:
        """The encoded model inputs (a transformers ``BatchEncoding``) for ``batch``, on the CPU."""
        raise NotImplementedError

    def _item(self, evidence: Evidence) -> Any:
        """What the model reads of ``evidence`` (one element of a `generate` batch)."""
        raise NotImplementedError

    def _load(self) -> None:
        if self._model is not None:
            return
        self._device = resolve_device(self._device_name)
        set_cpu_threads(self.threads, self._device)
        dtype = resolve_dtype(self._dtype_name, self._device)
        t0 = time.perf_counter()
        try:
            processor, model = self._from_pretrained(dtype)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise load_failure(self.kind, self.folder, exc) from None
        if getattr(processor, "chat_template", None) is None:
            raise UserError(
                f"{self.kind} model folder {str(self.folder)!r} has no chat template; add chat_template.jinja"
            )
        self._pad_left(processor)
        model = load_adapter(model, self.adapter, self.kind).to(self._device).eval()
        self._processor, self._model = processor, model
        log.info(
            "%s model %s loaded on %s (%s) in %.1f s",
            self.kind,
            self.name,
            self._device,
            dtype,
            time.perf_counter() - t0,
        )

    def _generate(self, batch: Sequence[Any]) -> list[str]:
        """The model's answers for ``batch`` (items as `_inputs` takes them), one generation, in order."""
        import torch

        self._load()
        processor, model = self._processor, self._model
        inputs = self._inputs(batch).to(self._device)
        tok = self._tokenizer()
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if self.do_sample:
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]

    def warmup(self) -> None:
        """Load the model and run a one-token generation, so the first real job pays no set-up cost."""
        self._load()
        saved, self.max_new_tokens = self.max_new_tokens, 1
        try:
            self._generate([self.warmup_item])
        finally:
            self.max_new_tokens = saved

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        """One explanation per evidence, in order, from one batched generation."""
        if not items:
            return []
        answers = self._generate([self._item(e) for e in items])
        return [to_explanation(a, self.name) for a in answers]

    def close(self) -> None:
        """Release the model (and CUDA memory)."""
        cuda = self._device is not None and self._device.type == "cuda"
        self._model = self._processor = None
        gc.collect()
        if cuda:
            import torch

            torch.cuda.empty_cache()
