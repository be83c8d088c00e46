"""vLLM's offline batch engine as a stage's sampler (`engine.generation: vllm`).

Written to vLLM's documented offline API (`vllm.LLM`, `vllm.SamplingParams`, `LLM.generate` with
token-id prompts) and tested against a fake `vllm` module that checks that contract
(`tests/test_vllm.py`); it has not been run against a real vLLM on any machine of this project
(vLLM's PyPI build needs CUDA). What it does:

- loads the stage's checkpoint directory (its hashes verified first) into `vllm.LLM` once, with
  `skip_tokenizer_init`: prompts go in as the token ids rsi's own tokenizer makes
  (`encode_prompt`: chat template, prompt template, BOS), and answers come back as token ids that
  rsi decodes, so a vLLM answer reads exactly like a torch one;
- samples with one `SamplingParams` per prompt: `n`, `temperature` (0 is greedy, asked once and
  repeated `n` times), top-p 1, `max_tokens`, `stop_token_ids` (every end-of-answer token of the
  tokenizer and the generation config) and a seed per prompt drawn from (stage seed, prompt,
  occurrence), so results do not depend on how prompts are batched or sharded;
- shuts the engine down and empties the CUDA cache on `close()`, so training gets the GPU back.
"""

from __future__ import annotations

import gc
import importlib.util
import random
from collections.abc import Callable
from pathlib import Path

from transformers import AutoTokenizer, GenerationConfig

from rsi.config import EngineConfig
from rsi.engine import device
from rsi.engine.generate import Completion, stop_tokens
from rsi.engine.manifest import verify_checkpoint
from rsi.engine.tokenizer import encode_prompt, response_prefix
from rsi.errors import RsiError

CHUNK = 1024  # prompts per `LLM.generate` call: vLLM batches inside; rsi's progress bar moves between calls


class VllmMissing(RsiError):
    """`engine.generation: vllm` on a machine without the `vllm` package."""


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise VllmMissing("config key 'engine.generation' is 'vllm', but the vllm package is not installed. Install "
                          "the extra: pip install 'rsi[vllm]' (a CUDA machine), or set engine.generation=torch.")


def prompt_seeds(prompts: list[str], seed: int) -> list[int]:
    """One seed per prompt from (seed, prompt, how many times it came before): independent of batching."""
    seen: dict[str, int] = {}
    out = []
    for p in prompts:
        k = seen[p] = seen.get(p, -1) + 1
        out.append(random.Random(f"{seed}/{k}/{p}").randrange(2**31))
    return out


class VllmSampler:
    """A `rsi.engine.samplers.Sampler` over `vllm.LLM` (see the module docstring)."""

    def __init__(self, checkpoint: Path, engine: EngineConfig):
        require_vllm()
        import vllm

        verify_checkpoint(checkpoint)
        placement = device.choose(engine)
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        try:
            generation = GenerationConfig.from_pretrained(checkpoint)
        except OSError:  # no generation_config.json: the tokenizer's end token only
            generation = None
        self.stops = sorted(stop_tokens(self.tokenizer, generation))
        self._vllm = vllm
        self.llm = vllm.LLM(model=str(checkpoint), skip_tokenizer_init=True, seed=0,
                            dtype=str(placement.dtype).removeprefix("torch."))

    def sample(self, prompts: list[str], max_new_tokens: int, n: int = 1, temperature: float = 0.0, seed: int = 0,
               batch_size: int = 256, on_batch: Callable[[int], None] | None = None) -> list[list[Completion]]:
        greedy = temperature == 0
        params = [self._vllm.SamplingParams(n=1 if greedy else n, temperature=temperature, top_p=1.0,
                                            max_tokens=max_new_tokens, stop_token_ids=self.stops, seed=s,
                                            detokenize=False)
                  for s in prompt_seeds(prompts, seed)]
        inputs = [{"prompt_token_ids": encode_prompt(self.tokenizer, p)} for p in prompts]
        prefix = response_prefix(self.tokenizer)
        out: list[list[Completion]] = []
        for k in range(0, len(prompts), CHUNK):
            results = self.llm.generate(inputs[k:k + CHUNK], params[k:k + CHUNK], use_tqdm=False)
            if len(results) != len(inputs[k:k + CHUNK]):
                raise RsiError(f"vLLM returned {len(results)} results for {len(inputs[k:k + CHUNK])} prompts")
            for r in results:
                got = [self._completion(c, prefix) for c in r.outputs]
                out.append(got * n if greedy else got)
            if on_batch:
                on_batch(sum(len(cs) for cs in out[k:]))
        return out

    def _completion(self, c, prefix: str) -> Completion:
        """rsi's `Completion` of a vLLM `CompletionOutput`: the stop token kept, the text decoded by rsi."""
        toks = list(c.token_ids)
        finished = c.finish_reason == "stop"
        if finished and (not toks or toks[-1] not in self.stops):  # an end token vLLM left out of the ids
            toks.append(c.stop_reason if isinstance(c.stop_reason, int) else self.stops[0])
        text = prefix + self.tokenizer.decode(toks, skip_special_tokens=True)
        return Completion(text=text, n_tokens=len(toks), finished=finished, token_ids=tuple(toks))

    def close(self) -> None:
        """Shut the engine down and give its GPU memory back."""
        llm, self.llm = self.llm, None
        shutdown = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm, shutdown  # the bound method holds the engine too: the collection below would miss it
        gc.collect()
        device.release_cache()
