"""Converted GGUF models kept on disk, so a GGUF file is dequantised once per machine, not per run.

Loading SmolLM2-135M's GGUF through transformers takes about 20 s of dequantisation on 2 CPU cores;
the same model saved as safetensors loads in 0.6 s. The first load of a GGUF file saves the
converted model and tokenizer under `cache_dir() / "gguf" / <key>`; the key hashes the file's
resolved path, size and modification time and the transformers version, so an edited file or
another converter is converted anew. It is written to a temporary directory and renamed, so a
load never sees half of it; a cache that cannot be written is skipped (the load still works).
`RSI_CACHE_DIR` moves the cache (default `$XDG_CACHE_HOME/rsi`, else `~/.cache/rsi`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("RSI_CACHE_DIR"):
        return Path(os.environ["RSI_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rsi"


def converted(gguf: Path) -> Path:
    """Where the converted checkpoint of `gguf` is kept (it may not exist yet)."""
    import transformers

    st = gguf.stat()
    key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}"
    return cache_dir() / "gguf" / f"{gguf.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def is_ready(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def store(gguf: Path, model, tokenizer) -> None:
    """Save the converted `model` and `tokenizer` of `gguf` to the cache; skipped if it cannot be written."""
    target = converted(gguf)
    if is_ready(target):
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:  # read-only home, full disk, a concurrent writer that won: the next load converts again
        pass
