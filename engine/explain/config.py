"""Configuration of the explainer and its asynchronous worker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExplainConfig(BaseModel):
    """Which explainer, and how the worker queue behaves."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("rules", description="explainer: rules, vlm, llm, openai")
    model: str = Field("", description="local model folder (vlm, llm) or model name (openai)")
    adapter: str = Field("", description="LoRA adapter folder")
    endpoint: str = Field("", description="base URL of an OpenAI-compatible server")
    queue_size: int = Field(16, ge=1, description="candidates waiting for explanation")
    policy: Literal["drop_newest", "drop_oldest"] = Field("drop_oldest", description="full queue policy")
    deadline_s: float = Field(30.0, gt=0, description="a job older than this is dropped (reason timeout)")
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
    # -- model options (vlm, llm, openai); the rules explainer ignores them --
    device: str = Field("auto", description="vlm/llm: auto (cuda when present), cpu, cuda, cuda:1")
    dtype: str = Field(
        "auto", description="vlm/llm: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16"
    )
    max_new_tokens: int = Field(256, ge=1, description="longest generated answer, in tokens")
    language: Literal["en", "zh"] = Field("en", description="prompt language: English or Chinese")
    temperature: float = Field(0.0, ge=0, description="0 = greedy decoding")
    threads: int = Field(0, ge=0, description="vlm/llm on CPU: torch threads (0 = torch's default)")
    retries: int = Field(
        2, ge=0, description="openai: retries after a 5xx, a timeout or a refusal"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the API key")
    concurrency: int = Field(4, ge=1, description="openai: requests in flight for one batch")
    request_timeout_s: float = Field(60.0, gt=0, description="openai: timeout of one HTTP request")
