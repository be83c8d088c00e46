"""Every setting of an `rsi` run, in one typed tree: defaults in `schema.py`, named configs in YAML.

A run's configuration is one `Config`. It is built from the schema's defaults, then a YAML file
(a built-in name such as `quick`, or a path) holding only the keys that differ, then
`--set a.b.c=value` overrides. Any bad key or value raises `ConfigError` with the full dotted
key path, the bad value and what is allowed, in one paragraph.

Example:
    >>> from rsi.config import load_config, dump_config, config_from_dict
    >>> cfg = load_config("quick", ["train.lr=0.002", "loop.mode=refresh"])
    >>> (cfg.train.lr, cfg.loop.mode, cfg.model.hidden_size)
    (0.002, 'refresh', 64)
    >>> import yaml
    >>> config_from_dict(yaml.safe_load(dump_config(cfg))) == cfg
    True

Build configs only through `load_config` / `config_from_dict`: they turn pydantic's
`ValidationError` into `ConfigError`. Constructing `Config(...)` directly works but raises
pydantic's own error type.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rsi.config.loading import Check, apply_overrides, parse_yaml, validate
from rsi.config.schema import (
    BudgetConfig,
    Config,
    CurriculumConfig,
    EngineConfig,
    EvalConfig,
    FilterConfig,
    GateConfig,
    GenerateConfig,
    GrpoConfig,
    LabelConfig,
    LoopConfig,
    LoraConfig,
    MixConfig,
    ModelConfig,
    MonitorsConfig,
    OptimiserConfig,
    ProposeConfig,
    RayConfig,
    RewardConfig,
    ScaleConfig,
    SeedDataConfig,
    TrainConfig,
)
from rsi.errors import ConfigError

__all__ = [
    "BudgetConfig",
    "Config",
    "CurriculumConfig",
    "EngineConfig",
    "EvalConfig",
    "FilterConfig",
    "GateConfig",
    "GenerateConfig",
    "GrpoConfig",
    "LabelConfig",
    "LoopConfig",
    "LoraConfig",
    "MixConfig",
    "ModelConfig",
    "MonitorsConfig",
    "OptimiserConfig",
    "ProposeConfig",
    "RayConfig",
    "RewardConfig",
    "ScaleConfig",
    "SeedDataConfig",
    "TrainConfig",
    "config_from_dict",
    "config_names",
    "dump_config",
    "load_config",
    "resumed_config",
]


def config_names() -> list[str]:
    """Names of the built-in configs (`rsi/configs/<name>.yaml`), sorted."""
    return sorted(
        f.name[: -len(".yaml")] for f in _configs_dir().iterdir() if f.is_file() and f.name.endswith(".yaml")
    )


def load_config(source: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                checks: Sequence[Check] = ()) -> Config:
    """Resolve defaults <- built-in name or YAML file <- `a.b.c=value` overrides into a `Config`.

    `source`: None for the built-in "default", a built-in name (`config_names()`), or a path.
    A file that does not set `name` is named after its file stem. Override values are parsed
    with `yaml.safe_load`, so `3`, `0.5`, `true`, `null` and `[1, 2]` have their YAML types.
    `checks` are the names' checks of a layer above (`rsi.resolve.load` passes them).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    source = os.fspath("default" if source is None else source)
    if source in config_names():
        origin = f"built-in config '{source}'"
        data = parse_yaml(_configs_dir().joinpath(f"{source}.yaml").read_text(), origin)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"config '{source}' is neither a built-in config nor an existing file ({path.absolute()}); "
                f"built-in configs: {', '.join(config_names())}"
            )
        origin = f"config file '{path}'"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{origin} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); a "
                              "config is a YAML file") from None
        data = parse_yaml(text, origin)
        data.setdefault("name", path.stem)
    set_by = apply_overrides(Config, data, overrides)
    return validate(Config, data, origin, set_by, checks)


def config_from_dict(d: dict, source: str | None = None, checks: Sequence[Check] = ()) -> Config:
    """Validate a (possibly partial) dict, e.g. a run's stored config.yaml, into a `Config`.

    `source` (such as the file it was read from) is named in error messages.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping of keys, got {type(d).__name__}")
    return validate(Config, d, source, {}, checks)


# what `rsi resume --set` may change: how far a run goes and whether a person approves promotions, not how
RESUMABLE = ("budget.", "loop.cycles", "gate.require_approval", "engine.", "scale.", "track")
# what a recipe may change between cycles (`rsi resume --recipe`, `rsi search`): how a cycle trains, samples,
# labels and proposes; never what is measured (task, seed data, held-out ladder, threshold, gate, monitors)
RECIPE = ("train.", "grpo.", "generate.samples_per_problem", "generate.temperature", "curriculum.width",
          "propose.problems_per_difficulty", "propose.temperature", "propose.updates", "propose.seed_share",
          "label.vote_threshold")
MODEL_SHAPE = ("model.hidden_size", "model.layers", "model.heads", "model.intermediate_size")  # refresh mode only


def recipe_keys(loop_mode: str) -> tuple[str, ...]:
    """The key prefixes a recipe may change: `RECIPE`, and the model's shape where every cycle trains a
    fresh model (`loop.mode: refresh`)."""
    return RECIPE + (MODEL_SHAPE if loop_mode == "refresh" else ())


def resumed_config(stored: dict, overrides: Sequence[str], source: str | None = None,
                   checks: Sequence[Check] = (), recipe: Sequence[str] = ()) -> Config:
    """A run's stored config with `overrides` of its limits (budget.*, loop.cycles), of
    gate.require_approval and of where it runs (engine.*, scale.*: a run may resume on another machine), for a resume.

    Every other key is frozen with the run: changing it would make the ledger's history describe
    a run that never happened, so it is a `ConfigError` that names the key. `recipe`: the run's
    recipe changes (`recipe` events, oldest first), applied before `overrides`; only `recipe_keys`.
    """
    data = copy.deepcopy(stored)
    allowed = recipe_keys(stored.get("loop", {}).get("mode", "inner"))
    for o in recipe:
        key = o.partition("=")[0].strip()
        if not key.startswith(allowed):
            raise ConfigError(f"recipe change {o!r}: a recipe may change only how a cycle trains, samples, labels and "
                              f"proposes ({', '.join(k + '*' if k.endswith('.') else k for k in allowed)}); "
                              "what a run measures stays as it started. Start a new run to change it.")
    for o in overrides:
        key = o.partition("=")[0].strip()
        if not key.startswith(RESUMABLE):
            raise ConfigError(f"override {o!r}: a run's config is frozen when it starts; on resume only budget.*, "
                              "loop.cycles, gate.require_approval, engine.* and scale.* (where it runs) and track "
                              "may change. "
                              "Start a new run to change anything else.")
    set_by = apply_overrides(Config, data, [*recipe, *overrides])
    return validate(Config, data, source, set_by, checks)


def dump_config(cfg: Config) -> str:
    """YAML of the fully resolved config: every key, in schema order; reloads to an equal `Config`."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


def _configs_dir() -> Any:
    return resources.files("rsi").joinpath("configs")
