"""Every setting of an `rsi` run, in one typed tree: defaults here, named configs in YAML.

A run's configuration is one `Config`. It is built from the defaults below, then a YAML file
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

import difflib
import json
import os
import re
import types
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from rsi.errors import ConfigError

__all__ = [
    "Config",
    "CurriculumConfig",
    "EvalConfig",
    "FilterConfig",
    "GateConfig",
    "GenerateConfig",
    "LabelConfig",
    "LoopConfig",
    "MixConfig",
    "ModelConfig",
    "ProposeConfig",
    "SeedDataConfig",
    "TrainConfig",
    "config_from_dict",
    "config_names",
    "dump_config",
    "load_config",
]


class _Invalid(ValueError):
    """A validator's complaint: why the value is wrong, and (optionally) what is allowed instead."""

    def __init__(self, reason: str, allowed: str | None = None, show_got: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.allowed, self.show_got = reason, allowed, show_got


class _CrossField(ValueError):
    """Problems that involve several keys; each is (key paths, complete message)."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        super().__init__(" ".join(msg for _, msg in problems))
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# The schema


class ModelConfig(_Section):
    kind: Literal["tiny"] = Field("tiny", description="model family; 'tiny' is the built-in decoder-only transformer")
    hidden_size: int = Field(128, gt=0, description="width of the residual stream")
    layers: int = Field(4, gt=0, description="number of transformer blocks")
    heads: int = Field(4, gt=0, description="attention heads per block; must divide hidden_size")
    intermediate_size: int = Field(512, gt=0, description="width of the MLP's hidden layer")

    @field_validator("heads")
    @classmethod
    def _heads_divide_hidden(cls, heads: int, info: ValidationInfo) -> int:
        hidden = info.data.get("hidden_size")
        if hidden is not None and hidden % heads:
            divisors = ", ".join(str(d) for d in range(1, hidden + 1) if hidden % d == 0)
            raise _Invalid(f"must divide model.hidden_size ({hidden})", f"a divisor of {hidden}: {divisors}")
        return heads


class SeedDataConfig(_Section):
    min_difficulty: int = Field(1, description="easiest difficulty of the ground-truth seed data")
    max_difficulty: int = Field(3, description="hardest difficulty of the ground-truth seed data")


class MixConfig(_Section):
    new: float = Field(0.5, ge=0, le=1, description="fraction of each batch from this cycle's accepted samples")
    replay: float = Field(0.3, ge=0, le=1, description="fraction from accepted samples of earlier cycles")
    seed: float = Field(0.2, ge=0, le=1, description="fraction from the ground-truth seed data")

    @model_validator(mode="after")
    def _sums_to_one(self) -> MixConfig:
        total = self.new + self.replay + self.seed
        if abs(total - 1.0) > 1e-6:
            raise _Invalid(
                f"fractions must sum to 1, got new {self.new} + replay {self.replay} + seed {self.seed} = {total:g}",
                "fractions new + replay + seed that sum to 1, each in [0, 1]",
                show_got=False,
            )
        return self


class TrainConfig(_Section):
    """Optimisation settings. Defaults are those of `train`; `base` overrides some (see `_BASE`)."""

    objective: Literal["pretrain", "sft"] = Field(
        "sft", description="'pretrain': loss on every token; 'sft': loss on answer tokens only"
    )
    steps: int = Field(400, ge=0, description="optimizer steps")
    batch_size: int = Field(128, gt=0, description="sequences per optimizer step")
    lr: float = Field(5e-4, gt=0, description="peak learning rate (AdamW), after linear warmup")
    warmup_steps: int = Field(50, ge=0, description="steps of linear learning-rate warmup")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, description="clip the global gradient norm to this")
    mix: MixConfig | None = Field(
        default_factory=MixConfig, description="batch composition by source; null: train on one source only"
    )


# Where `base` differs from TrainConfig's defaults (which are `train`'s). Partial `base` sections
# are merged onto these, so `base: {steps: 10}` keeps lr 1e-3 and mix null.
_BASE: dict[str, Any] = {"steps": 1000, "lr": 1e-3, "warmup_steps": 300, "mix": None}


class LoopConfig(_Section):
    cycles: int = Field(5, ge=0, description="improvement cycles after the base model")
    mode: Literal["inner", "refresh"] = Field(
        "inner",
        description="inner: continue training the champion; "
        "refresh: train a fresh base on seed data + every verified sample so far",
    )
    max_difficulty: int = Field(24, description="never propose problems harder than this")


class CurriculumConfig(_Section):
    threshold: float = Field(
        0.95, gt=0, le=1, description="frontier = hardest difficulty with held-out accuracy >= threshold"
    )
    width: int = Field(3, ge=1, description="propose difficulties frontier+1 .. frontier+width")


class ProposeConfig(_Section):
    problems_per_difficulty: int = Field(500, gt=0, description="new unlabelled problems per proposed difficulty")


class GenerateConfig(_Section):
    samples_per_problem: int = Field(4, ge=1, description="completions sampled per proposed problem")
    temperature: float = Field(1.0, ge=0, description="sampling temperature; 0 means greedy")
    batch_size: int = Field(256, gt=0, description="prompts per generation batch")


class LabelConfig(_Section):
    labeler: Literal["verifier", "vote"] = Field(
        "verifier", description="verifier: the task's checker; vote: majority of samples, no ground truth"
    )
    vote_threshold: float = Field(
        0.5, gt=0, le=1, description="fraction of samples that must agree for the vote labeler to accept"
    )


class FilterConfig(_Section):
    well_formed: bool = Field(True, description="drop completions that fail the task's format check")
    dedup: bool = Field(True, description="drop duplicate (prompt, completion) pairs")
    decontaminate: bool = Field(True, description="drop samples whose prompt appears in the held-out set")


class EvalConfig(_Section):
    problems_per_difficulty: int = Field(200, gt=0, description="held-out problems per difficulty")
    min_difficulty: int = Field(1, description="first difficulty of the evaluation ladder")
    max_difficulty: int = Field(24, description="last difficulty of the evaluation ladder")
    stop_after_zeros: int = Field(
        2, ge=1, description="stop the ladder after this many consecutive difficulties at 0 %"
    )


class GateConfig(_Section):
    min_gain: float = Field(0.01, description="a candidate must beat the champion by at least this much accuracy")
    confidence: float = Field(0.95, gt=0, lt=1, description="one-sided confidence that the gain is real")
    max_regression: float = Field(
        0.05, ge=0, description="largest accuracy drop allowed at any already-mastered difficulty"
    )


_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class Config(_Section):
    """One run's complete configuration."""

    name: str = Field("default", description="run name; the run directory is runs/<name>")
    seed: int = Field(0, description="seed for model init, data order and sampling")
    task: str = Field("sort", description="registered task to improve on (see `rsi tasks`)")
    model: ModelConfig = Field(default_factory=ModelConfig, description="architecture of every model")
    seed_data: SeedDataConfig = Field(
        default_factory=SeedDataConfig, description="ground-truth labelled data the base model trains on"
    )
    base: TrainConfig = Field(
        default_factory=lambda: TrainConfig(**_BASE), description="training of the base model on seed data"
    )
    loop: LoopConfig = Field(default_factory=LoopConfig, description="the outer self-improvement loop")
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig, description="which difficulties to propose")
    propose: ProposeConfig = Field(default_factory=ProposeConfig, description="proposing new problems")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="sampling the champion's answers")
    label: LabelConfig = Field(default_factory=LabelConfig, description="deciding which samples are correct")
    filter: FilterConfig = Field(default_factory=FilterConfig, description="filters applied before training")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training a candidate each cycle")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="held-out accuracy ladder")
    gate: GateConfig = Field(default_factory=GateConfig, description="accepting a candidate as the new champion")

    @model_validator(mode="before")
    @classmethod
    def _base_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("base"), dict):
            data = {**data, "base": {**_BASE, **data["base"]}}
        return data

    @field_validator("name")
    @classmethod
    def _name_is_dir_name(cls, name: str) -> str:
        if not _NAME_RE.match(name) or name in (".", ".."):
            raise _Invalid("not usable as a directory name", "letters, digits, '_', '-' and '.'")
        return name

    @field_validator("task")
    @classmethod
    def _task_registered(cls, task: str) -> str:
        from rsi.tasks import task_names  # lazy: the task registry imports much more than config needs

        if task not in task_names():
            raise _Invalid("unknown task", "one of the registered tasks: " + ", ".join(task_names()))
        return task

    @model_validator(mode="after")
    def _cross_field(self) -> Config:
        from rsi.tasks import get_task

        task = get_task(self.task)
        lo, hi = task.min_difficulty, task.max_difficulty
        problems: list[tuple[tuple[str, ...], str]] = []

        def inside(path: str, value: int) -> None:
            if not lo <= value <= hi:
                problems.append(
                    ((path,), f"config key '{path}': outside task '{self.task}''s difficulties (got {value}). "
                     f"Allowed: an integer from {lo} to {hi}.")
                )

        for section in ("seed_data", "eval"):
            s = getattr(self, section)
            inside(f"{section}.min_difficulty", s.min_difficulty)
            inside(f"{section}.max_difficulty", s.max_difficulty)
            if s.min_difficulty > s.max_difficulty:
                problems.append(
                    ((f"{section}.min_difficulty", f"{section}.max_difficulty"),
                     f"config keys '{section}.min_difficulty' and '{section}.max_difficulty': min is above max "
                     f"(got {s.min_difficulty} > {s.max_difficulty}). Allowed: min <= max.")
                )
        top = self.loop.max_difficulty
        if not self.seed_data.max_difficulty < top <= hi:
            problems.append(
                (("loop.max_difficulty", "seed_data.max_difficulty"),
                 f"config key 'loop.max_difficulty' must be above 'seed_data.max_difficulty' "
                 f"({self.seed_data.max_difficulty}) and at most task '{self.task}''s max difficulty ({hi}) "
                 f"(got {top}). Allowed: an integer from {self.seed_data.max_difficulty + 1} to {hi}.")
            )
        if problems:
            raise _CrossField(problems)
        return self


# ---------------------------------------------------------------------------------------------
# Loading


def config_names() -> list[str]:
    """Names of the built-in configs (`rsi/configs/<name>.yaml`), sorted."""
    return sorted(
        f.name[: -len(".yaml")] for f in _configs_dir().iterdir() if f.is_file() and f.name.endswith(".yaml")
    )


def load_config(source: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Resolve defaults <- built-in name or YAML file <- `a.b.c=value` overrides into a `Config`.

    `source`: None for the built-in "default", a built-in name (`config_names()`), or a path.
    A file that does not set `name` is named after its file stem. Override values are parsed
    with `yaml.safe_load`, so `3`, `0.5`, `true`, `null` and `[1, 2]` have their YAML types.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    if source is None:
        source = "default"
    source = os.fspath(source)
    if source in config_names():
        origin = f"built-in config '{source}'"
        data = _parse_yaml(_configs_dir().joinpath(f"{source}.yaml").read_text(), origin)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"config '{source}' is neither a built-in config nor an existing file ({path.absolute()}); "
                f"built-in configs: {', '.join(config_names())}"
            )
        origin = f"config file '{path}'"
        data = _parse_yaml(path.read_text(), origin)
        data.setdefault("name", path.stem)
    set_by = {}
    for override in overrides:
        keys, value = _parse_override(override)
        _set(data, keys, value)
        set_by[".".join(keys)] = override
    return _validate(data, origin, set_by)


def config_from_dict(d: dict, source: str | None = None) -> Config:
    """Validate a (possibly partial) dict, e.g. a run's stored config.yaml, into a `Config`.

    `source` (such as the file it was read from) is named in error messages.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping of keys, got {type(d).__name__}")
    return _validate(d, source, {})


def dump_config(cfg: Config) -> str:
    """YAML of the fully resolved config: every key, in schema order; reloads to an equal `Config`."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


def _configs_dir() -> Any:
    return resources.files("rsi").joinpath("configs")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in this mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _parse_yaml(text: str, origin: str) -> dict:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{origin}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: must be a mapping of config keys, got a {type(data).__name__}")
    return data


def _parse_override(override: str) -> tuple[list[str], Any]:
    key, eq, raw = override.partition("=")
    keys = key.strip().split(".")
    if not eq:
        _check_keys(keys, override)
        section, _ = _walk(keys[:-1])
        raise ConfigError(
            f"override '{override}' has no '='; write it as {key.strip()}=VALUE. "
            f"Allowed keys {_under(keys[:-1])}: {', '.join(sorted(section.model_fields))}"
        )
    _check_keys(keys, override)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", e)
        raise ConfigError(f"override '{override}': the value {raw!r} is not valid YAML ({problem})") from None
    return keys, value


def _walk(keys: Sequence[str]) -> tuple[type[BaseModel], int]:
    """Follow `keys` through the schema; return the last section reached and how many keys it took."""
    model: type[BaseModel] = Config
    for i, key in enumerate(keys):
        field = model.model_fields.get(key)
        sub = _section_type(field.annotation) if field else None
        if sub is None:
            return model, i
        model = sub
    return model, len(keys)


def _check_keys(keys: Sequence[str], override: str) -> None:
    model, n = _walk(keys)
    if n == len(keys):
        return  # the whole path is a section: setting it to a mapping is fine
    key = keys[n]
    path = ".".join(keys[: n + 1])
    if key not in model.model_fields:
        raise ConfigError(_unknown_key_msg(path, keys[:n], model) + f" (in override '{override}')")
    if n + 1 < len(keys):
        raise ConfigError(
            f"config key '{'.'.join(keys)}' is not allowed (in override '{override}'): "
            f"'{path}' is a value, not a section"
        )


def _set(data: dict, keys: Sequence[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if isinstance(value, dict) and isinstance(node.get(keys[-1]), dict):
        node[keys[-1]] = _merge(node[keys[-1]], value)
    else:
        node[keys[-1]] = value


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into one readable paragraph


def _validate(data: dict, origin: str | None, set_by: dict[str, str]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        messages = [msg for err in e.errors() for msg in _messages(err, set_by)]
    head = f"invalid config (from {origin}): " if origin else "invalid config: "
    raise ConfigError(head + " ".join(messages))


def _messages(err: Any, set_by: dict[str, str]) -> list[str]:
    ctx = err.get("ctx") or {}
    exc = ctx.get("error")
    if isinstance(exc, _CrossField):
        return [_with_override(msg, paths, set_by) for paths, msg in exc.problems]
    loc = [str(part) for part in err["loc"]]
    path = ".".join(loc)
    if err["type"] == "extra_forbidden":
        model, _ = _walk(loc[:-1])
        return [_with_override(_unknown_key_msg(path, loc[:-1], model) + ".", (path,), set_by)]
    if isinstance(exc, _Invalid):
        reason, allowed, show_got = exc.reason, exc.allowed or _allowed(loc), exc.show_got
    else:
        reason, allowed, show_got = err["msg"], _allowed(loc), True
    got = f" (got {_show(err.get('input'))})" if show_got else ""
    return [_with_override(f"config key '{path}': {reason}{got}. Allowed: {allowed}.", (path,), set_by)]


def _with_override(msg: str, paths: Sequence[str], set_by: dict[str, str]) -> str:
    for key, override in set_by.items():
        if any(p == key or p.startswith(key + ".") or key.startswith(p + ".") for p in paths):
            return f"{msg} [set by override '{override}']"
    return msg


def _unknown_key_msg(path: str, parent: Sequence[str], model: type[BaseModel]) -> str:
    allowed = sorted(model.model_fields)
    hint = difflib.get_close_matches(path.rsplit(".", 1)[-1], allowed, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"config key '{path}' is not allowed{did_you_mean}; allowed keys {_under(parent)}: {', '.join(allowed)}"


def _under(parent: Sequence[str]) -> str:
    return f"under '{'.'.join(parent)}'" if parent else "at the top level"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The config section class in `annotation` (`X` or `X | None`), else None."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _allowed(loc: Sequence[str]) -> str:
    """What a value at `loc` may be, in words, read from the schema."""
    model, n = _walk(loc)
    if n == len(loc):
        return f"a mapping with keys {', '.join(sorted(model.model_fields))}"
    field = model.model_fields.get(loc[n])
    if field is None:
        return "see the schema in rsi/config.py"
    ann = field.annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is Literal:
        return ", ".join(repr(a) for a in args)
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        sub = _section_type(ann)
        if sub is not None:
            return f"a mapping with keys {', '.join(sorted(sub.model_fields))}, or null"
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(ann, str(ann))
    bounds = []
    for m in field.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{op} {getattr(m, attr)}")
    return kind + (" " + " and ".join(bounds) if bounds else "")
