"""Tiny random models built on the spot, so model explainers are tested without any download.

Each builder trains a small byte-level BPE tokenizer with `tokenizers` on the prompt vocabulary,
adds the Qwen2-VL special tokens and a chat template, and saves a few-layer random model (plus its
processor) to a folder that ``AutoProcessor`` / ``AutoModelForImageTextToText`` /
``AutoModelForCausalLM`` load exactly as they load a real checkpoint. The weights are random, so
the text they generate is gibberish; tests check the plumbing (batching, adapters, naming, parsing
of what comes out), not the wording.

The pytest fixtures are session-scoped and build into pytest's temporary folders. Use as plugin:
``pytest_plugins = ["tests.tiny_models"]`` or import the fixtures by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL's chat template, reduced to what the explainers send (system/user/assistant, image + text).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# A fixed larger-than-default init spreads the random logits, so greedy decoding is not decided by
# float noise (batched and single generation must agree token for token).
INIT_RANGE = 0.2


def _corpus() -> list[str]:
    """Prompt vocabulary in both languages plus typical answers, so the BPE merges are realistic."""
    from engine.explain.prompts import region_prompt, vlm_prompt
    from engine.types import RegionStat

    stats = [
        RegionStat("brow_inner_L", 0.8, 1.9, 80.0, 0.9, 0.1, 0.8),
        RegionStat("mouth_corner_R", 0.4, 1.1, 300.0, 0.7, 0.2, -0.3),
    ]
    answers = [
        "Step 1: the inner brows move down. Step 2: AU4 (brow lowerer), AU7 (lid tightener). "
        "Step 3: negative, disgust. AUs: AU4+AU7; Emotion: negative (disgust)",
        "第一步：眉头向下运动。第二步：AU4（皱眉）。第三步：消极，厌恶。AU：AU4；情绪：负性（厌恶）",
        "system user assistant You are a helpful assistant.",
        *[SCRIPTED_ANSWER] * 8,
    ]
    return [
        vlm_prompt("en"),
        vlm_prompt("zh"),
        region_prompt(stats, "en"),
        region_prompt(stats, "zh"),
        *answers,
    ] * 4


def build_tokenizer(vocab_size: int = 800) -> Any:
    """A Qwen2-style fast tokenizer (byte-level BPE, Qwen2-VL special tokens, chat template)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
    )


def _text_params(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "initializer_range": INIT_RANGE,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.pad_token_id,
    }


def build_tiny_vlm(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2-VL (2 text layers, 1 vision block) and its processor to ``folder``."""
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    # 56..112 px images → 4..16 merged patches: the image costs a handful of tokens.
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    text = _text_params(tokenizer)
    # head_dim 16 → 8 rotary frequencies split over (time, height, width).
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "initializer_range": INIT_RANGE,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_llm(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2 causal LM (2 layers) and its tokenizer (with chat template) to ``folder``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen2Config(
        **_text_params(tokenizer), rope_parameters={"rope_type": "default", "rope_theta": 10000.0}
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_lora_adapter(base: Path, folder: Path, seed: int = 1) -> Path:
    """A LoRA adapter (q_proj/v_proj of the text layers) on the model in ``base``, with non-zero weights.

    peft initialises LoRA's B matrix to zero, which would make the adapter a no-op; random init makes
    loading it visibly change the output.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(base)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Qwen2-VL (``tiny-qwen2vl``) with processor and chat template."""
    pytest.importorskip("transformers")
    return build_tiny_vlm(tmp_path_factory.mktemp("models") / "tiny-qwen2vl")


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Qwen2 causal LM (``tiny-qwen2``) with tokenizer and chat template."""
    pytest.importorskip("transformers")
    return build_tiny_llm(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(scope="session")
def tiny_lora(tiny_vlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a LoRA adapter trained-shaped (random) on `tiny_vlm`."""
    pytest.importorskip("peft")
    return build_lora_adapter(tiny_vlm, tmp_path_factory.mktemp("adapters") / "tiny-lora")


def make_evidence(seed: int = 0, size: int = 96, candidate_id: str = "") -> Any:
    """An `Evidence` with a random fused map (size×size×3 BGR), its PNG and a few region statistics.

    The candidate carries real-shaped face observations (landmarks 478×2, grey crop) so stages that
    read them work; the content is random because model explainers only read the map and the stats.
    """
    import cv2
    import numpy as np

    from engine.types import Candidate, Evidence, FaceObservation, RegionStat, TimePoint

    rng = np.random.default_rng(seed)
    fused = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", fused)
    assert ok
    face = FaceObservation(
        index=0,
        t=0.0,
        landmarks=rng.uniform(0, size, (478, 2)).astype(np.float32),
        crop=rng.integers(0, 256, (size, size), dtype=np.uint8),
        transform=np.eye(2, 3, dtype=np.float32),
        crop_landmarks=rng.uniform(0, size, (478, 2)).astype(np.float32),
    )
    cand = Candidate(
        candidate_id=candidate_id or f"cand-{seed}",
        stream="test",
        onset=TimePoint(0, 0.0),
        apex=TimePoint(5, 0.2),
        offset=TimePoint(10, 0.4),
        kind="micro",
        score=1.0,
        regions=("brow_inner_L",),
        onset_face=face,
        apex_face=face,
    )
    regions = tuple(
        RegionStat(name, float(m), float(m) * 2.5, float(d), 0.8, 0.0, float(m))
        for name, m, d in (
            ("brow_inner_L", rng.uniform(0.2, 1.5), rng.uniform(0, 360)),
            ("brow_inner_R", rng.uniform(0.2, 1.5), rng.uniform(0, 360)),
            ("mouth_corner_L", rng.uniform(0.1, 1.0), rng.uniform(0, 360)),
        )
    )
    flow = rng.normal(0, 0.5, (size, size, 2)).astype(np.float32)
    return Evidence(candidate=cand, flow=flow, fused_map=fused, png=png.tobytes(), regions=regions)


SCRIPTED_ANSWER = "AU4 brow lowerer; Emotion: negative, disgust"


def script_answer(model: Any, tokenizer: Any, answer: str, start_token: str = "\n") -> None:
    """Rewire ``model`` in place: greedy decoding after ``start_token`` then says ``answer``.

    Attention and MLP outputs are zeroed (o_proj, down_proj), so each position's logits depend only
    on its own token; the embeddings of the answer's tokens become orthogonal unit vectors and the LM
    head maps each one to the next token, the last one to the end-of-turn token. The answer's tokens
    must be distinct (a bigram chain), which `build_*` check.
    """
    import torch

    chain = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(start_token))[-1]]
    chain += tokenizer.encode(answer, add_special_tokens=False)
    chain.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    if len(set(chain[:-1])) != len(chain) - 1:
        raise ValueError(f"scripted answer {answer!r} repeats a token; choose words that tokenize uniquely")
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    if len(chain) > emb.shape[1]:
        raise ValueError(f"scripted answer needs {len(chain)} tokens, hidden size is only {emb.shape[1]}")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("o_proj" in name or "down_proj" in name) and "visual" not in name:
                p.zero_()
        head.zero_()
        for k, tok_id in enumerate(chain[:-1]):
            emb[tok_id].zero_()
            emb[tok_id, k] = 1.0
            head[chain[k + 1], k] = 10.0


def build_scripted_vlm(folder: Path, answer: str = SCRIPTED_ANSWER) -> Path:
    """A tiny Qwen2-VL whose greedy answer to any prompt is ``answer`` (for end-to-end parsing tests)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    build_tiny_vlm(folder)
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    script_answer(model, processor.tokenizer, answer)
    model.save_pretrained(folder)
    return folder


def build_scripted_llm(folder: Path, answer: str = SCRIPTED_ANSWER) -> Path:
    """A tiny Qwen2 causal LM whose greedy answer to any prompt is ``answer``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny_llm(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    script_answer(model, tokenizer, answer)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def scripted_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Qwen2-VL (``scripted-qwen2vl``) that always answers `SCRIPTED_ANSWER`."""
    pytest.importorskip("transformers")
    return build_scripted_vlm(tmp_path_factory.mktemp("models") / "scripted-qwen2vl")


@pytest.fixture(scope="session")
def scripted_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Qwen2 causal LM (``scripted-qwen2``) that always answers `SCRIPTED_ANSWER`."""
    pytest.importorskip("transformers")
    return build_scripted_llm(tmp_path_factory.mktemp("models") / "scripted-qwen2")
