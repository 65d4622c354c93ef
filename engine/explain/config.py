"""Configuration of the explainer and its asynchronous worker.

``[explain]`` chooses the explainer and sets the worker queue; each explainer's own options live in
its section (``[explain.rules]``, ``[explain.vlm]``, ``[explain.llm]``, ``[explain.openai]``), named
like the explainer, with exactly the keyword parameters it takes, so a misspelt or misplaced option
is a one-line error instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RulesConfig(_Section):
    """``rules``: FACS rules on region statistics (no model)."""

    floor_px: float = Field(0.25, gt=0, description="smallest motion that counts, pixels of the aligned crop")
    rel_to_peak: float = Field(
        0.25, ge=0, lt=1, description="share of the strongest region's motion a motion must reach"
    )
    noise_k: float = Field(
        1.5, ge=0, description="multiple of the background level (25th percentile of region motion) to reach"
    )
    max_regions: int = Field(6, ge=1, description="how many moving regions the explanation text lists")
    remove_median: bool = Field(
        True, description="subtract the median region motion first (face-wide motion)"
    )


class GenerationConfig(_Section):
    """What every model explainer (vlm, llm, openai) takes: the model and how it answers."""

    model: str = Field(
        "", description="the model: a local folder (vlm, llm) or the served model name (openai)"
    )
    max_new_tokens: int = Field(256, ge=1, description="longest generated answer, in tokens")
    language: Literal["en", "zh"] = Field("en", description="built-in prompt language: English or Chinese")
    prompt_file: str = Field(
        "",
        description="text file replacing the built-in prompt ({regions} marks the region lines of llm); "
        "empty = built-in",
    )
    system_prompt: str = Field("", description="system message sent before the prompt; empty = none")
    do_sample: bool = Field(False, description="sample the answer; false = greedy (same input, same answer)")
    temperature: float = Field(
        0.0, ge=0, description="sampling temperature, used only with do_sample (then it must be > 0)"
    )


class LocalModelConfig(GenerationConfig):
    """``vlm`` (fused map → image-text model) and ``llm`` (region statistics → causal LM), run locally."""

    adapter: str = Field("", description="LoRA adapter folder (peft), empty = none")
    device: str = Field("auto", description="auto (cuda when present), cpu, cuda, cuda:1")
    dtype: str = Field("auto", description="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    threads: int = Field(0, ge=0, description="torch CPU threads (0 = torch's default)")


class LLMConfig(LocalModelConfig):
    """``llm``: region statistics as text → local causal LM; ``region_format`` picks the text."""

    region_format: Literal["table", "mellm-v3"] = Field(
        "table",
        description="table: our region table (30-degree directions); mellm-v3: the 29 patches and line "
        "format MELLM v3's LLM was trained on",
    )


class OpenAIConfig(GenerationConfig):
    """``openai``: an OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, Ollama)."""

    endpoint: str = Field("", description="base URL of the server, e.g. http://127.0.0.1:8000/v1")
    timeout_s: float = Field(60.0, gt=0, description="timeout of one HTTP request")
    retries: int = Field(2, ge=0, description="retries after a 5xx, a timeout or a refusal")
    backoff_s: float = Field(0.5, ge=0, description="wait before the first retry, doubled for each next one")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    concurrency: int = Field(4, ge=1, description="requests in flight for one batch")


class ExplainConfig(BaseModel):
    """Which explainer, how the worker queue behaves, and each explainer's own section."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("rules", description="explainer: rules, vlm, llm, openai")
    queue_size: int = Field(16, ge=1, description="candidates waiting for explanation")
    policy: Literal["drop_newest", "drop_oldest"] = Field(
        "drop_oldest", description="full queue policy of live sources (files, folders, the demo wait)"
    )
    deadline_s: float = Field(
        30.0, gt=0, description="live sources: a job older than this is dropped (timeout)"
    )
    offline_deadline_s: float = Field(
        0.0,
        ge=0,
        description="files, folders, the demo: a job older than this is dropped (timeout); 0 = never, "
        "the default: analysed offline, every candidate waits its turn",
    )
    batch_size: int = Field(1, ge=1, description="explain up to this many waiting jobs at once")
    drain_s: float = Field(30.0, ge=0, description="at shutdown, finish waiting jobs for at most this long")
    stop_grace_s: float = Field(
        10.0, ge=0, description="after the drain time, wait at most this long for the job in progress"
    )
    mode: Literal["thread", "process"] = Field(
        "thread", description="explainer in the worker thread, or in a child process (killed on timeout)"
    )
    timeout_s: float = Field(
        120.0, gt=0, description="process mode: a batch slower than this kills the child (dropped: timeout)"
    )
    latency_window: int = Field(512, ge=1, description="recent explanations behind the latency p50/p95")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="the rules explainer's options")
    vlm: LocalModelConfig = Field(default_factory=LocalModelConfig, description="the vlm explainer's options")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="the llm explainer's options")
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig, description="the openai explainer's options")

    def section(self, name: str | None = None) -> BaseModel | None:
        """The options section of explainer ``name`` (default: the chosen one); None when it has none."""
        key = name or self.name
        value = getattr(self, key) if key in type(self).model_fields else None
        return value if isinstance(value, BaseModel) else None

    def explainer_params(self) -> dict[str, Any]:
        """The chosen explainer's keyword parameters: its section, as the explainer's signature names them."""
        section = self.section()
        return section.model_dump() if section is not None else {}
