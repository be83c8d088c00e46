"""The built-in tiny model: a Hugging Face causal LM built from a config, no download.

The architecture is SmolLM3 with every layer's rotary embedding switched off (NoPE,
`no_rope_layers=[0] * L`). Position-free attention is what lets a model trained on short
problems get a foothold on longer ones, which the loop then turns into labels; with learned
absolute positions or RoPE a model that learned 1-5 digit addition scored 0 % on 6 digits.
A `<bos>` token at the start of every sequence acts as an attention sink.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase, SmolLM3Config, SmolLM3ForCausalLM

from rsi.config import ModelConfig


def build_tiny_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> SmolLM3ForCausalLM:
    """A freshly initialised NoPE decoder sized by `cfg`, its vocabulary taken from `tokenizer`."""
    config = SmolLM3Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        no_rope_layers=[0] * cfg.layers,
        use_sliding_window=False,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return SmolLM3ForCausalLM(config)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
