"""Checkpoints: an HF `save_pretrained` directory (safetensors) plus its manifest (`rsi.engine.manifest`).

A checkpoint is written to a temporary directory and renamed into place, so a crash never leaves
a half-written directory under the final name. Loading verifies every hash first and loads only
safetensors and JSON (no pickle).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from rsi.config import EngineConfig
from rsi.engine import device
from rsi.engine.manifest import verify_checkpoint, write_manifest

__all__ = ["load_checkpoint", "save_checkpoint", "verify_checkpoint"]
hf_logging.disable_progress_bar()  # rsi draws its own progress bars


def save_checkpoint(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path, meta: dict | None = None
) -> Path:
    """Write model + tokenizer + manifest to `path` atomically (replacing an older one)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    write_manifest(tmp, meta or {})
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def load_checkpoint(path: Path, engine: EngineConfig | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Verify hashes, then load the model (safetensors only), placed as `engine` says (default: the
    CPU, float32), and its tokenizer."""
    verify_checkpoint(path)
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if engine is not None:
        device.place(model, device.choose(engine))
    return model, tokenizer
