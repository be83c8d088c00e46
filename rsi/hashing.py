"""sha256 of files and of a checkpoint's weights (no heavy imports: `rsi status` uses it)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(path: Path) -> str:
    """One hash over a checkpoint directory's weight files (`*.safetensors`, by name): equal for two
    checkpoints exactly when their weights are byte-for-byte equal."""
    h = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")):
        h.update(file_sha256(f).encode())
    return h.hexdigest()
