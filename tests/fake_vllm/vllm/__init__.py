"""A stand-in for vLLM's offline API (`LLM`, `SamplingParams`, `LLM.generate`) for rsi's tests.

It checks the contract rsi's adapter (`rsi.engine.vllm_sampler`) must keep, as vLLM documents it
(token-id prompts, one `SamplingParams` per prompt, results in prompt order, `n` outputs each,
stop tokens, a seed per request), records every call, and samples with the checkpoint's real
model (transformers, on the CPU) so the answers are the model's. `RSI_FAKE_VLLM_LOG` names a file
that gets one JSON line per call, for tests that run rsi in a subprocess.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM

CALLS: list[dict] = []
ENGINES: list[weakref.ref] = []
KEEP_STOP_TOKEN = True  # real vLLM keeps the stop token in `token_ids`; tests flip it to check rsi copes


def _record(call: dict) -> None:
    CALLS.append(call)
    if os.environ.get("RSI_FAKE_VLLM_LOG"):
        with open(os.environ["RSI_FAKE_VLLM_LOG"], "a") as f:
            f.write(json.dumps(call) + "\n")


class SamplingParams:
    def __init__(self, n: int = 1, temperature: float = 1.0, top_p: float = 1.0, max_tokens: int | None = 16,
                 seed: int | None = None, stop_token_ids: list[int] | None = None, detokenize: bool = True):
        assert n >= 1 and temperature >= 0 and 0 < top_p <= 1 and max_tokens and max_tokens > 0
        assert temperature > 0 or n == 1, "greedy with n > 1 asks for n identical answers"
        self.n, self.temperature, self.top_p, self.max_tokens = n, temperature, top_p, max_tokens
        self.seed, self.stop_token_ids, self.detokenize = seed, list(stop_token_ids or []), detokenize


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None  # "stop" | "length"
    stop_reason: int | str | None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


class LLM:
    def __init__(self, model: str, skip_tokenizer_init: bool = False, seed: int = 0, dtype: str = "auto"):
        assert os.path.isfile(os.path.join(model, "config.json")), f"{model} is not a checkpoint directory"
        assert dtype in ("auto", "float32", "bfloat16", "float16")
        self.model = AutoModelForCausalLM.from_pretrained(model).eval()
        self.skip_tokenizer_init, self.shut_down = skip_tokenizer_init, False
        ENGINES.append(weakref.ref(self))
        _record({"call": "LLM", "model": model, "skip_tokenizer_init": skip_tokenizer_init, "dtype": dtype})
        self.llm_engine = self

    def shutdown(self) -> None:
        self.shut_down = True
        _record({"call": "shutdown", "engine": id(self)})

    @torch.no_grad()
    def generate(self, prompts, sampling_params, use_tqdm: bool = True) -> list[RequestOutput]:
        assert not self.shut_down
        assert isinstance(prompts, list) and isinstance(sampling_params, list) and len(prompts) == len(sampling_params)
        out = []
        for i, (p, sp) in enumerate(zip(prompts, sampling_params, strict=True)):
            ids = p["prompt_token_ids"]
            assert isinstance(ids, list) and all(isinstance(t, int) for t in ids), "prompts go in as token ids"
            assert not (self.skip_tokenizer_init and sp.detokenize), "no tokenizer: detokenize must be off"
            assert sp.stop_token_ids and sp.seed is not None
            out.append(RequestOutput(str(i), ids, self._sample(ids, sp)))
        _record({"call": "generate", "prompts": len(prompts), "n": [sp.n for sp in sampling_params],
                 "seeds": [sp.seed for sp in sampling_params], "stops": sampling_params[0].stop_token_ids,
                 "max_tokens": sampling_params[0].max_tokens})
        return out

    def _sample(self, ids: list[int], sp: SamplingParams) -> list[CompletionOutput]:
        gen = torch.Generator().manual_seed(sp.seed)
        rows = torch.tensor([ids] * sp.n)
        done: list[tuple[list[int], str, int | None] | None] = [None] * sp.n
        for _ in range(sp.max_tokens):
            logits = self.model(input_ids=rows).logits[:, -1].float()
            if sp.temperature == 0:
                nxt = logits.argmax(-1)
            else:
                nxt = torch.multinomial(torch.softmax(logits / sp.temperature, -1), 1, generator=gen).squeeze(1)
            rows = torch.cat([rows, nxt[:, None]], 1)
            for j in range(sp.n):
                if done[j] is None and int(nxt[j]) in sp.stop_token_ids:
                    toks = rows[j, len(ids):].tolist()
                    done[j] = (toks if KEEP_STOP_TOKEN else toks[:-1], "stop", int(nxt[j]))
            if all(d is not None for d in done):
                break
        result = []
        for j in range(sp.n):
            toks, why, stop = done[j] or (rows[j, len(ids):].tolist(), "length", None)
            result.append(CompletionOutput(j, "", toks, why, stop))
        return result
