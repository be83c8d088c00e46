"""rsi: recursive self-improvement loops for language models, measured, recorded and stoppable."""

import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# oneDNN (`rsi.engine.linear`) compiles a kernel for every new matrix shape and keeps up to this many in
# each of two caches, oneDNN's own and PyTorch's ideep wrapper's; their default, 1024 each, held
# hundreds of MB after a few thousand generation batches of new lengths (`benchmarks/soak.py`).
# 64 kept a `quick` run's speed. Read once, at oneDNN's first use: a value set earlier wins.
for _cache in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    os.environ.setdefault(_cache, "64")

__version__ = "0.1.0"
