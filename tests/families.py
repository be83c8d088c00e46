"""The model families the tests of rsi's own forwards (lean, packed, replay) compare against, at one
small size: Qwen2 (GQA, qkv bias, RoPE), Llama and the tiny model (SmolLM3, NoPE), over the sort
task's character tokenizer."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rsi.config import ModelConfig
from rsi.engine.model import build_tiny_model
from rsi.engine.tokenizer import build_char_tokenizer

TOK = build_char_tokenizer("0123456789s:=")
SIZES = dict(vocab_size=len(TOK), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, pad_token_id=TOK.pad_token_id, bos_token_id=TOK.bos_token_id,
             eos_token_id=TOK.eos_token_id)
TINY = ModelConfig(hidden_size=64, layers=2, heads=2)
MAKERS = {
    "qwen2 (GQA, qkv bias, RoPE)": lambda: Qwen2ForCausalLM(Qwen2Config(**SIZES)),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**SIZES, rope_theta=500.0)),
    "tiny (SmolLM3, NoPE)": lambda: build_tiny_model(TINY, TOK, 0),
}


def family_models(seed: int) -> list[tuple[str, torch.nn.Module]]:
    """(name, model) for each family, built in turn after seeding torch with `seed`."""
    torch.manual_seed(seed)
    return [(name, make()) for name, make in MAKERS.items()]
