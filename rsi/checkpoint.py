"""Checkpoints: an HF `save_pretrained` directory (safetensors) plus `manifest.json` of sha256 hashes.

A checkpoint is written to a temporary directory and renamed into place, so a crash never leaves
a half-written directory under the final name. Loading verifies every hash first and loads only
safetensors and JSON (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from rsi.errors import CheckpointError
from rsi.hashing import file_sha256

MANIFEST = "manifest.json"
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
    files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    body = {"files": files, "meta": meta or {}}
    (tmp / MANIFEST).write_text(json.dumps(body | {"sha256": _digest(body)}, indent=1))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def verify_checkpoint(path: Path) -> dict:
    """Check every file against the manifest; return the manifest or raise CheckpointError."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {path} has no {MANIFEST}: it is incomplete or not an rsi checkpoint. "
                              "Re-run the stage that writes it (`rsi resume`), or point at a complete checkpoint.")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint manifest {manifest_path} is unreadable ({e}).") from None
    # the manifest's own hash covers its metadata; manifests written before it have only these two keys
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    if set(body) != {"files", "meta"} or not isinstance(files, dict) or (
            "sha256" in manifest and manifest["sha256"] != _digest(body)):
        raise CheckpointError(f"checkpoint manifest {manifest_path} is corrupted (its keys or its own sha256 do not "
                              "match its contents). Restore it or retrain that cycle.")
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is missing {name}, listed in its manifest.")
        if file_sha256(f) != digest:
            raise CheckpointError(
                f"checkpoint file {f} does not match the sha256 in {manifest_path}: the file is corrupted "
                "or was changed after saving. Restore it or retrain that cycle."
            )
    return manifest


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_checkpoint(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Verify hashes, then load the model (safetensors only) and its tokenizer."""
    verify_checkpoint(path)
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer
