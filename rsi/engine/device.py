"""Where models run and in what precision: `engine.device` and `engine.dtype`, decided here only.

- `choose(cfg)` turns the config's `engine.device` (`auto`, `cpu`, `cuda`, `cuda:N`) and
  `engine.dtype` (`auto`, `float32`, `bfloat16`) into a `Placement`: `auto` is the first CUDA GPU
  when one is visible, else the CPU; `auto` precision is float32 on the CPU and bfloat16 on CUDA.
  A device that is not there is a `DeviceError` naming the key.
- `place(model, placement)` moves a model's weights to the device. Weights stay float32 (the
  optimiser's master copy, and what checkpoints hold); bfloat16 is the *compute* precision, run
  under `torch.autocast`, so small updates are not rounded away.
- `of(model)`, `compute_dtype(model)`, `fast_path(model)`, `sharded(model)` and `autocast(model)`
  are what the rest of the engine asks; nothing outside `rsi.engine` creates a tensor on a device or picks a dtype.

Example:
    >>> from rsi.config import EngineConfig
    >>> choose(EngineConfig(device="cpu"))
    Placement(device=device(type='cpu'), dtype=torch.float32)
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from rsi.config import EngineConfig
from rsi.errors import RsiError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_COMPUTE = "rsi_compute_dtype"  # a plain attribute on the module (not in its state dict, not saved)


class DeviceError(RsiError):
    """`engine.device` or `engine.dtype` (`.key`) asks for what this machine does not have."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key = key


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype  # the compute precision; weights are float32


def choose(cfg: EngineConfig) -> Placement:
    """The placement `cfg` asks for, checked against this machine."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("engine.device", f"{cfg.device!r} asks for a GPU, but this machine has no CUDA GPU "
                              f"that PyTorch {torch.__version__} can use (torch.cuda.is_available() is False). "
                              "Use engine.device=cpu (or auto), or install a CUDA build of PyTorch on a GPU machine.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError("engine.device", f"{cfg.device!r} names a GPU this machine does not have: it has "
                              f"{count} CUDA device(s), cuda:0 .. cuda:{count - 1}.")
        device = torch.device("cuda", device.index or 0)
    dtype = DTYPES[cfg.dtype] if cfg.dtype != "auto" else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("engine.dtype", f"{device} does not support bfloat16. Use engine.dtype=float32.")
    return Placement(device, dtype)


def inventory() -> list[tuple[str, str, str]]:
    """(what, found, how to get it) for the devices and engines this machine offers (`rsi doctor`)."""
    from importlib.metadata import PackageNotFoundError, version

    rows = [("torch", torch.__version__, "")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            bf16 = "bf16" if torch.cuda.get_device_capability(i) >= (8, 0) else "no bf16"
            rows.append((f"cuda:{i}", f"{torch.cuda.get_device_name(i)} ({bf16})", ""))
    else:
        rows.append(("cuda", "none (engine.device=auto runs on the CPU)",
                     "a CUDA GPU and a CUDA build of PyTorch for engine.device=cuda"))
    for package, extra in (("vllm", "engine.generation=vllm: pip install 'rsi[vllm]'"),
                           ("ray", "scale.ray: pip install 'rsi[ray]'")):
        try:
            rows.append((package, version(package), ""))
        except PackageNotFoundError:
            rows.append((package, "not installed", extra))
    return rows


def place(model: torch.nn.Module, placement: Placement) -> torch.nn.Module:
    """`model` with float32 weights on `placement.device`, computing in `placement.dtype`."""
    model.to(device=placement.device, dtype=torch.float32)
    object.__setattr__(model, _COMPUTE, placement.dtype)
    return model


def of(model: torch.nn.Module) -> torch.device:
    """The device `model`'s weights are on."""
    return next(model.parameters()).device


def compute_dtype(model: torch.nn.Module) -> torch.dtype:
    """The precision `model` computes in (float32 unless placed otherwise); a peft wrapper answers for its base."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, _COMPUTE, torch.float32)


def fast_path(model: torch.nn.Module) -> bool:
    """Whether rsi's CPU forwards (lean sampler, packed forward, tape: oneDNN float32 matmuls) apply:
    float32 on the CPU, its weights plain tensors (not FSDP's shards)."""
    return of(model).type == "cpu" and compute_dtype(model) == torch.float32 and not sharded(model)


def sharded(model: torch.nn.Module) -> bool:
    """Whether `model`'s weights are FSDP shards (DTensors), which only its own forward gathers."""
    from torch.distributed.tensor import DTensor

    return isinstance(next(model.parameters()), DTensor)


def for_collective(t: torch.Tensor) -> torch.Tensor:
    """`t` where the current process group's collectives take it: the GPU under NCCL, else as it is."""
    import torch.distributed as dist

    return t.to(torch.device("cuda", torch.cuda.current_device())) if dist.get_backend() == "nccl" else t


def release_cache() -> None:
    """Give cached GPU memory back (after an inference engine is shut down); nothing on the CPU."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def autocast(model: torch.nn.Module):
    """The context a forward of `model` runs in: autocast to its compute precision, or nothing for float32."""
    dtype = compute_dtype(model)
    return nullcontext() if dtype == torch.float32 else torch.autocast(of(model).type, dtype=dtype)
