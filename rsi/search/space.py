"""A search space: the config keys a recipe search may set, and the values it may give them.

    # space.yaml
    train.lr: {loguniform: [1.0e-4, 1.0e-2]}
    train.steps: {choice: [50, 100, 200]}
    generate.temperature: {uniform: [0.6, 1.2]}
    label.vote_threshold: {choice: [0.6, 0.8, 1.0]}

Each key is a config key path that a run's recipe may change between its cycles (`RECIPE`; the
model's shape, `MODEL_SHAPE`, only in `loop.mode: refresh`, where every cycle trains a fresh
model). Keys that define what is measured (task, seed data, the held-out ladder, the curriculum's
threshold, the gate, the monitors) are frozen: a search that changed them would compare trials on
different rulers. Every value a dimension can take is validated as a `--set` of the search's
config would be (a `uniform` or `loguniform` range at both ends), and a key of an integer setting
takes whole numbers (a continuous range is rounded). Errors name the file, line and key.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rsi.config import MODEL_SHAPE, Config, recipe_keys
from rsi.config.loading import apply_overrides, validate
from rsi.errors import ConfigError

KINDS = ("choice", "uniform", "loguniform")


@dataclass(frozen=True)
class Dimension:
    """One key's values: `choice` of `values`, or a `uniform` / `loguniform` range `values` = (lo, hi)."""

    key: str
    kind: str
    values: tuple
    integer: bool = False

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.values)
        lo, hi = self.values
        x = rng.uniform(lo, hi) if self.kind == "uniform" else math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return self._fit(x)

    def perturb(self, value: Any, rng: random.Random, factors: tuple[float, float] = (1.2, 0.8)) -> Any:
        """PBT's explore: a neighbouring choice, or the value times 1.2 or 0.8 kept inside the range."""
        if self.kind == "choice":
            i = self.values.index(value) if value in self.values else rng.randrange(len(self.values))
            return self.values[min(len(self.values) - 1, max(0, i + rng.choice((-1, 1))))]
        lo, hi = self.values
        return self._fit(min(hi, max(lo, value * rng.choice(factors))))

    def _fit(self, x: float) -> Any:
        return round(x) if self.integer else float(x)


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return {d.key: d.sample(rng) for d in self.dimensions}

    def perturb(self, recipe: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        return {d.key: d.perturb(recipe[d.key], rng) for d in self.dimensions}

    def overrides(self, recipe: dict[str, Any]) -> list[str]:
        """A recipe as `--set` overrides, in the space's key order."""
        return [setting(d.key, recipe[d.key]) for d in self.dimensions]


def setting(key: str, value: Any) -> str:
    """`key=value` as `--set` reads it back (YAML)."""
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def _lines(text: str) -> dict[str, int]:
    """Each top-level key's line in the YAML text (1-based), for errors."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def value_at(data: dict, key: str) -> Any:
    """The value at dotted `key` ('train.lr') in a config's nested dict."""
    for part in key.split("."):
        data = data[part]
    return data


def load_space(path: Path, cfg: Config) -> Space:
    """The space in `path` for a search of `cfg`; ConfigError naming the file, line and key of the first problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"search space {path}: cannot read it ({e}); a space is a YAML file of "
                          "'key: {choice: [...]}' lines") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"search space {path}{f':{mark.line + 1}' if mark else ''}: not valid YAML "
                          f"({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"search space {path}: must map config keys to their values, e.g. "
                          "'train.lr: {loguniform: [1.0e-4, 1.0e-2]}'")
    lines, base = _lines(text), cfg.model_dump(mode="json")
    dims = []
    for key, spec in raw.items():
        where = f"search space {path}:{lines.get(str(key), '?')}: key {key!r}"
        dims.append(_dimension(str(key), spec, where, cfg, base))
    return Space(tuple(dims))


def _dimension(key: str, spec: Any, where: str, cfg: Config, base: dict) -> Dimension:
    searchable = recipe_keys(cfg.loop.mode)
    try:
        current = value_at(base, key)
    except (KeyError, TypeError):
        _check(cfg, base, key, None, where)  # names the unknown key and what is there
        raise AssertionError(key) from None
    if isinstance(current, dict):
        raise ConfigError(f"{where} is a section, not a setting: name its settings (e.g. {key}.{next(iter(current))})")
    if not key.startswith(searchable):
        shape = " (the model's shape only with loop.mode: refresh, where each cycle trains a fresh model)" if (
            key.startswith(MODEL_SHAPE)) else ""
        keys = ", ".join(k + "*" if k.endswith(".") else k for k in searchable)
        raise ConfigError(f"{where} is frozen for a search{shape}: a recipe may change only how a cycle trains, "
                          f"samples, labels and proposes: {keys}")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise ConfigError(f"{where} must be one of {{choice: [a, b, ...]}}, {{uniform: [lo, hi]}} or "
                          f"{{loguniform: [lo, hi]}} (got {spec!r})")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {kind} takes a non-empty list (got {values!r})")
    integer = isinstance(current, int) and not isinstance(current, bool)
    if kind != "choice":
        if len(values) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{where}: {kind} takes [lo, hi], two numbers (got {values!r})")
        lo, hi = values
        if not lo < hi:
            raise ConfigError(f"{where}: {kind} range [{lo}, {hi}] is empty: lo must be below hi")
        if kind == "loguniform" and lo <= 0:
            raise ConfigError(f"{where}: loguniform needs lo > 0 (got {lo})")
        if integer:
            values = [math.ceil(lo), math.floor(hi)]
            if values[0] > values[1]:
                raise ConfigError(f"{where}: {key} takes whole numbers and [{lo}, {hi}] holds none")
    elif len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{where}: choice lists a value twice ({values!r})")
    for v in values:
        _check(cfg, base, key, v, where)
    return Dimension(key, kind, tuple(values), integer)


def _check(cfg: Config, base: dict, key: str, value: Any, where: str) -> None:
    """Validate `key=value` as a `--set` of the search's config; ConfigError prefixed with `where`."""
    data = copy.deepcopy(base)
    try:
        set_by = apply_overrides(Config, data, [setting(key, value)])
        validate(Config, data, "the search's config", set_by)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
