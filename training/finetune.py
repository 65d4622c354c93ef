"""LoRA supervised fine-tuning of a Qwen-VL family model on the instruction-description dataset.

transformers ``AutoModelForImageTextToText`` + ``AutoProcessor`` from a local folder, peft LoRA on
the language model's attention projections (optionally the MLP too), and optionally the vision
merger (``--tune-merger lora`` puts LoRA on its linear layers, ``full`` trains it whole through
peft's ``modules_to_save``). The loss covers the answer tokens only: the prompt, the image tokens
and the padding are labelled -100. A plain torch loop (AdamW, linear warm-up and decay, gradient
accumulation), gradient checkpointing on request, bf16 on CUDA where supported else fp32, a
checkpoint every ``--save-every`` steps that ``--resume`` continues from, and a tqdm bar.

The result, ``OUT/adapter``, loads straight into the engine:
``engine.explain.create("vlm", model=MODEL, adapter="OUT/adapter")`` (or ``run_stream.py
--explainer vlm --model MODEL --adapter OUT/adapter``). The conversation is rendered exactly as
the `vlm` explainer renders it (same chat template, same MELLM v1 prompt, the fused map PNG read
as RGB), so what is trained is what runs.

    python -m training.finetune --data data/casme2 --split data/casme2/splits/casme2_01.json \\
        --model models/Qwen2.5-VL-7B-Instruct --out runs/casme2_01 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
STATE_FILE = "trainer_state.pt"


@dataclass(frozen=True, slots=True)
class FinetuneConfig:
    """Everything that decides a run (saved to ``OUT/finetune.json``)."""

    data: str
    model: str
    out: str
    split: str | None = None
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 1
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 0
    weight_decay: float = 0.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_mlp: bool = False
    tune_merger: str = "none"
    gradient_checkpointing: bool = False
    dtype: str = "auto"
    device: str = "auto"
    save_every: int = 0
    seed: int = 0
    progress: bool = True


def target_modules(model: Any, cfg: FinetuneConfig) -> list[str]:
    """Names of the linear layers LoRA goes on: the language model's projections (never the vision
    tower's), plus the vision merger's linear layers with ``tune_merger == "lora"``."""
    import re

    import torch

    names = ATTENTION + (MLP if cfg.lora_mlp else ())
    lang = re.compile(rf"^(?!.*visual).*\.(?:{'|'.join(names)})$")
    merger = re.compile(r"(?:^|\.)visual\.merger\.")
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if lang.match(name) or (cfg.tune_merger == "lora" and merger.search(name)):
            found.append(name)
    if not found:
        raise UserError(f"no {', '.join(names)} linear layers in the model; is it a Qwen-VL family model?")
    if cfg.tune_merger == "lora" and not any(merger.search(n) for n in found):
        raise UserError("--tune-merger lora: the model has no visual.merger linear layers")
    return found


def resolve_dtype(name: str, device: Any) -> Any:
    """bf16 on a CUDA device that supports it, else fp32 (``auto``); or the named dtype."""
    import torch

    table = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
    }
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in table:
        raise UserError(f"--dtype {name!r} is not one of: auto, {', '.join(table)}")
    return table[name]


class ChatCollator:
    """Dataset lines → a padded batch with answer-only labels.

    Each line is rendered by the processor's chat template twice: the user turn with the generation
    prompt (what the `vlm` explainer sends) and the whole conversation. The first is a prefix of
    the second; its tokens (prompt text and image tokens) and the padding get ``IGNORE_INDEX``.
    """

    def __init__(self, processor: Any, folder: Path) -> None:
        self.processor = processor
        self.folder = folder
        processor.tokenizer.padding_side = "right"

    def image(self, item: dict[str, Any]) -> Any:
        from PIL import Image

        path = self.folder / item["image"]
        if not path.is_file():
            raise UserError(f"dataset image {path} is missing; rebuild the dataset")
        with Image.open(path) as im:
            return im.convert("RGB")

    @staticmethod
    def _strip_paths(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Image entries as the explainer sends them (``{"type": "image"}``, the pixels go apart)."""
        return [
            {**m, "content": [{"type": "image"} if c.get("type") == "image" else c for c in m["content"]]}
            for m in messages
        ]

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        proc = self.processor
        images = [self.image(it) for it in items]
        msgs = [self._strip_paths(it["messages"]) for it in items]
        if any(m[-1]["role"] != "assistant" for m in msgs):
            raise UserError("a dataset line has no assistant answer to train on; rebuild the dataset")
        prompts = [proc.apply_chat_template(m[:-1], add_generation_prompt=True, tokenize=False) for m in msgs]
        fulls = [proc.apply_chat_template(m, tokenize=False) for m in msgs]
        batch = proc(text=fulls, images=images, return_tensors="pt", padding=True)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        for i, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
            ids = proc(text=[prompt], images=[image], return_tensors="pt")["input_ids"][0]
            n = ids.shape[0]
            if not bool((batch["input_ids"][i, :n] == ids).all()):
                raise ValueError(
                    f"dataset line {items[i]['id']}: the rendered prompt is not a prefix of the rendered "
                    "conversation; the processor's chat template splits them differently"
                )
            labels[i, :n] = IGNORE_INDEX
        batch["labels"] = labels
        return dict(batch)


def _latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted(
        out.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[1]) if p.name.split("-")[1].isdigit() else -1,
    )
    return ckpts[-1] if ckpts else None


def _save_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            **state,
            "torch_rng": torch.get_rng_state(),
        },
        folder / STATE_FILE,
    )


def _check_model_folder(model_dir: Path) -> None:
    """A folder with a transformers ``config.json`` naming its ``model_type`` (cheap: no torch)."""
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        raise UserError(f"model folder {model_dir} has no config.json; pass a local Qwen-VL model folder")
    try:
        model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError):
        model_type = None
    if not model_type:
        raise UserError(f"{cfg_file} names no model_type; pass the folder that save_pretrained wrote")


def check_numbers(a: argparse.Namespace) -> None:
    """The numeric flags in their ranges (floats finite), as a `UserError` naming the flag."""
    rules: list[tuple[str, bool, str]] = [
        ("epochs", 0 < a.epochs < math.inf, "a finite number > 0"),
        ("max_steps", a.max_steps is None or a.max_steps >= 1, ">= 1"),
        ("batch_size", a.batch_size >= 1, ">= 1"),
        ("grad_accum", a.grad_accum >= 1, ">= 1"),
        ("lr", 0 < a.lr < math.inf, "a finite number > 0"),
        ("warmup_steps", a.warmup_steps >= 0, ">= 0"),
        ("weight_decay", 0 <= a.weight_decay < math.inf, "a finite number >= 0"),
        ("lora_r", a.lora_r >= 1, ">= 1"),
        ("lora_alpha", a.lora_alpha >= 1, ">= 1"),
        ("lora_dropout", 0 <= a.lora_dropout < 1, "in [0, 1)"),
        ("save_every", a.save_every >= 0, ">= 0 (0 = only the end)"),
    ]
    for name, ok, allowed in rules:
        if not ok:
            raise UserError(f"--{name.replace('_', '-')} must be {allowed}, got {getattr(a, name)}")


def finetune(cfg: FinetuneConfig, resume: str | None = None) -> dict[str, Any]:
    """Train, save ``cfg.out/adapter``, and return the run summary (losses per step, timing).

    ``resume``: a checkpoint folder, or ``"auto"`` for the newest under ``cfg.out`` (none → start).
    """
    from training.build_dataset import read_dataset

    if cfg.tune_merger not in ("none", "lora", "full"):
        raise UserError(f"--tune-merger {cfg.tune_merger!r} is not one of: none, lora, full")
    folder = Path(cfg.data)
    items = read_dataset(folder, cfg.split, "train")
    if not items:
        raise UserError(f"no training lines in {folder} (split {cfg.split}); check the split file")
    model_dir = Path(cfg.model)
    _check_model_folder(model_dir)
    if resume not in (None, "auto") and not (Path(resume) / STATE_FILE).is_file():
        raise UserError(f"--resume {resume}: no {STATE_FILE} there; pass a checkpoint-<step> folder")
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "finetune.json").write_text(json.dumps(asdict(cfg), indent=1))
    except OSError as exc:
        raise UserError(f"cannot write the run folder --out {out}: {exc.strerror or exc}") from None
    # Checks above stay cheap (no torch import), so a user mistake exits at once.
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        device = torch.device(
            "cuda"
            if cfg.device == "auto" and torch.cuda.is_available()
            else ("cpu" if cfg.device == "auto" else cfg.device)
        )
    except RuntimeError:
        raise UserError(f"--device {cfg.device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {cfg.device}: no CUDA GPU is visible here; use --device cpu (or auto)")
    dtype = resolve_dtype(cfg.dtype, device)
    torch.manual_seed(cfg.seed)
    try:
        processor = AutoProcessor.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        first = str(exc).split(". ")[0]
        raise UserError(f"model folder {model_dir} cannot be loaded ({first}); pass a Qwen-VL one") from None
    if getattr(processor, "chat_template", None) is None:
        raise UserError(f"model folder {model_dir} has no chat template; add chat_template.jinja")
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target_modules(model, cfg),
        modules_to_save=["merger"] if cfg.tune_merger == "full" else None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model.to(device).train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.3f%%)", trainable, total, 100.0 * trainable / max(total, 1))

    collate = ChatCollator(processor, folder)
    per_epoch = math.ceil(len(items) / cfg.batch_size)
    updates_per_epoch = max(per_epoch // cfg.grad_accum, 1)
    total_steps = cfg.max_steps or max(math.ceil(cfg.epochs * updates_per_epoch), 1)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(total_steps - cfg.warmup_steps, 1))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step, losses = 0, []
    ckpt = _latest_checkpoint(out) if resume == "auto" else (Path(resume) if resume else None)
    if ckpt is not None:
        if not (ckpt / STATE_FILE).is_file():
            raise UserError(f"--resume {ckpt}: no {STATE_FILE} there; pass a checkpoint-<step> folder")
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, losses = int(state["step"]), list(state["losses"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", ckpt, step)

    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="finetune", unit="step", disable=not cfg.progress)
    micro = 0
    while step < total_steps:
        epoch, done_in_epoch = divmod(step, updates_per_epoch)
        order = list(range(len(items)))
        random.Random(cfg.seed + epoch).shuffle(order)
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        batches = batches[done_in_epoch * cfg.grad_accum : updates_per_epoch * cfg.grad_accum]
        acc_loss = 0.0
        for idx in batches:
            batch = collate([items[i] for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            if "pixel_values" in batch and batch["pixel_values"].is_floating_point():
                batch["pixel_values"] = batch["pixel_values"].to(dtype)
            loss = model(**batch).loss / cfg.grad_accum
            loss.backward()
            acc_loss += float(loss.detach())
            micro += 1
            if micro % cfg.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(acc_loss)
            with (out / "log.jsonl").open("a") as fh:
                fh.write(
                    json.dumps({"step": step, "loss": acc_loss, "lr": scheduler.get_last_lr()[0]}) + "\n"
                )
            bar.update(1)
            bar.set_postfix(loss=f"{acc_loss:.4f}")
            acc_loss = 0.0
            if cfg.save_every and step % cfg.save_every == 0:
                _save_checkpoint(
                    out / f"checkpoint-{step}", model, optimizer, scheduler, {"step": step, "losses": losses}
                )
            if step >= total_steps:
                break
    bar.close()
    model.save_pretrained(out / "adapter")
    summary = {
        "steps": step,
        "examples": len(items),
        "losses": losses,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds": round(time.perf_counter() - t0, 2),
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "trainable_parameters": trainable,
        "adapter": str(out / "adapter"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (python -m training.build_dataset)")
    ap.add_argument("--split", default=None, help="fold file (splits/<fold>.json): train on its train part")
    ap.add_argument("--model", required=True, help="local Qwen-VL family model folder")
    ap.add_argument("--out", required=True, help="run folder: adapter/, checkpoint-<step>/, log.jsonl")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--lora-mlp", action="store_true", help="LoRA on the MLP projections too")
    ap.add_argument(
        "--tune-merger",
        choices=("none", "lora", "full"),
        default="none",
        help="also tune the vision merger: LoRA on its linear layers, or the whole module",
    )
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument(
        "--dtype", default="auto", help="auto (bf16 on CUDA where supported, else fp32) | bf16 | fp32"
    )
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (0 = only the end)")
    ap.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="continue from a checkpoint folder (no value: the newest under --out)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_numbers(a)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = FinetuneConfig(
        data=a.data,
        model=a.model,
        out=a.out,
        split=a.split,
        epochs=a.epochs,
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        grad_accum=a.grad_accum,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        weight_decay=a.weight_decay,
        lora_r=a.lora_r,
        lora_alpha=a.lora_alpha,
        lora_dropout=a.lora_dropout,
        lora_mlp=a.lora_mlp,
        tune_merger=a.tune_merger,
        gradient_checkpointing=a.gradient_checkpointing,
        dtype=a.dtype,
        device=a.device,
        save_every=a.save_every,
        seed=a.seed,
        progress=not a.quiet,
    )
    try:
        summary = finetune(cfg, a.resume)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; continue with --resume (checkpoints in {a.out})", file=sys.stderr)
        return 130
    print(
        f"{summary['steps']} steps on {summary['examples']} examples in {summary['seconds']} s "
        f"({summary['device']}, {summary['dtype']}): loss {summary['first_loss']:.4f} -> "
        f"{summary['last_loss']:.4f}; adapter saved to {summary['adapter']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
