"""A config's references made into the parts they name, checked before any work, and recorded.

The config (`rsi.config`) checks only its own shape: keys, types, ranges and the form of each
reference (`Config.references`: the task, rewards, labeler, custom filters and objectives). What a
reference names is found where it is used, through its kind's registry (`rsi.registry`: a
built-in, an installed package's entry point, or `path/to/file.py:Name`), and here, once, before
a run starts or resumes:

- `check(cfg)`: the device `engine.device` names is on this machine, the trackers `track` names
  are installed, every reference resolves,
  and the config fits its task (difficulty ranges inside
  the task's, rows at every difficulty the run draws from, a task that can take proposals under
  self-play). Problems come back as (key paths, message) for `rsi.config`'s one error paragraph.
- `load(source, overrides)` / `resumed(stored, overrides)`: `rsi.config`'s loaders with `check`.
- `origins(cfg)`: where each part came from (built-in; a file and its sha256; a package and its
  version), recorded as the run's `parts` event; the files are among the run's inputs
  (`rsi.run.inputs`), so a resume refuses when one changed.

Example:
    >>> cfg = load("quick", ["task=sort"])                                 # doctest: +SKIP
    >>> origins(cfg)["task"]                                                # doctest: +SKIP
    {'ref': 'sort', 'from': 'built-in'}
"""

from __future__ import annotations

from collections.abc import Sequence

from rsi.config import Config, config_from_dict, load_config, resumed_config
from rsi.engine.device import DeviceError, choose
from rsi.engine.vllm_sampler import VllmMissing, require_vllm
from rsi.errors import ConfigError, RsiError
from rsi.learn.objectives import OBJECTIVES
from rsi.learn.rewards import REWARDS, load_reward
from rsi.registry import Registry, is_file_ref
from rsi.stages.label import FILTERS, LABELERS
from rsi.tasks import PARAMETRIC, TASKS, Task, get_task, task_names
from rsi.track import EXTRA as TRACK_EXTRA
from rsi.track import missing as missing_trackers

Problems = list[tuple[tuple[str, ...], str]]


def _registry(key: str) -> Registry:
    kind = key.split(".")[-1].split("[")[0]
    return {"task": TASKS, "fn": REWARDS, "labeler": LABELERS, "objective": OBJECTIVES, "custom": FILTERS}[kind]


def check(cfg: Config) -> Problems:
    """Every problem with what `cfg`'s references name (see the module docstring)."""
    problems: Problems = []
    try:
        task = get_task(cfg.task)
    except ConfigError as e:
        if cfg.task.partition(":")[0] in PARAMETRIC or is_file_ref(cfg.task):
            problems.append((("task",), f"config key 'task': {e}"))
        else:
            problems.append((("task",), f"config key 'task': unknown task (got {cfg.task!r}). Allowed: one of "
                             f"the registered tasks: {', '.join(task_names())}, or {' or '.join(PARAMETRIC.values())}, "
                             "or an installed package's entry point in group 'rsi.tasks', or 'path/to/file.py:Name'."))
        task = None
    try:
        choose(cfg.engine)
    except DeviceError as e:
        problems.append(((e.key,), str(e)))
    if cfg.engine.generation == "vllm":
        try:
            require_vllm()
        except VllmMissing as e:
            problems.append((("engine.generation",), str(e)))
    if absent := missing_trackers(cfg.track):
        problems.append((("track",), f"config key 'track': {', '.join(map(repr, absent))} needs its package, which is "
                         f"not installed. Install the extra: {TRACK_EXTRA}, or leave it out of track."))
    for key, ref in cfg.references().items():
        if key == "task":
            continue
        try:
            if key.startswith("grpo.rewards"):
                load_reward(ref, 1.0)
            elif not callable(_registry(key).resolve(ref)):
                raise RsiError(f"{ref!r} names something that is not a function")
        except RsiError as e:
            problems.append(((key,), f"config key '{key}': {e}."))
    return problems + (against_task(cfg, task) if task is not None else [])


def _ranges_that_fit(cfg: Config, lo: int, hi: int) -> str:
    """The overrides that fit the config's difficulty ranges into a task's `lo`..`hi`, labels below
    the top so the loop has a difficulty above them to reach, as a sentence."""
    if lo == hi and cfg.base.steps:
        return (f"The task has one difficulty ({lo}), so nothing lies above labels for the loop to reach: give its "
                "rows 'difficulty' fields (an integer >= 1, harder rows higher), or train no base on labels "
                "(base.steps=0, with a pretrained model).")
    want = {"seed_data.min_difficulty": max(lo, min(cfg.seed_data.min_difficulty, hi)),
            "seed_data.max_difficulty": max(lo, min(cfg.seed_data.max_difficulty, hi - 1 if cfg.base.steps else hi)),
            "loop.max_difficulty": hi,
            "eval.min_difficulty": max(lo, min(cfg.eval.min_difficulty, hi)),
            "eval.max_difficulty": hi}
    want["seed_data.min_difficulty"] = min(want["seed_data.min_difficulty"], want["seed_data.max_difficulty"])
    now = {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in want}
    sets = " ".join(f"--set {k}={v}" for k, v in want.items() if v != now[k])
    return f"To fit task '{cfg.task}''s difficulties {lo}..{hi}: {sets}."


def against_task(cfg: Config, task: Task) -> Problems:
    """The config's difficulty ranges, rows and self-play setting against its task."""
    lo, hi = task.min_difficulty, task.max_difficulty
    problems: Problems = []
    fix = _ranges_that_fit(cfg, lo, hi)
    for section in ("seed_data", "eval"):
        s = getattr(cfg, section)
        for end in ("min_difficulty", "max_difficulty"):
            value = getattr(s, end)
            if not lo <= value <= hi:
                problems.append(((f"{section}.{end}",), f"config key '{section}.{end}': outside task "
                                 f"'{cfg.task}''s difficulties {lo}..{hi} (got {value})."))
    top = cfg.loop.max_difficulty
    # beyond the labelled range; without base training (a pretrained model) no label was used at all
    low = cfg.seed_data.max_difficulty + (1 if cfg.base.steps else 0)
    if not low <= top <= hi:
        above = "above" if cfg.base.steps else "at least"
        problems.append(
            (("loop.max_difficulty", "seed_data.max_difficulty"),
             f"config key 'loop.max_difficulty' must be {above} 'seed_data.max_difficulty' "
             f"({cfg.seed_data.max_difficulty}) and at most task '{cfg.task}''s max difficulty ({hi}) "
             f"(got {top}).")
        )
    if problems:  # the one way out, said once
        problems[0] = (problems[0][0], f"{problems[0][1]} {fix}")
    drawn = (("eval", "held-out", "heldout", cfg.eval.min_difficulty, cfg.eval.max_difficulty),
             ("seed_data", "training", "train", cfg.seed_data.min_difficulty, top))
    for section, what, split, first, last in drawn:
        if empty := task.empty_at(split, range(max(first, lo), min(last, hi) + 1)):  # outside: said above
            end = "eval.max_difficulty" if section == "eval" else "loop.max_difficulty"
            problems.append(
                ((f"{section}.min_difficulty", end),
                 f"config keys '{section}.min_difficulty'..'{end}': task '{cfg.task}' has no {what} rows at "
                 f"difficulty {', '.join(map(str, empty))}, which the run draws {what} problems from. Add rows "
                 "there (a row is held out by a hash of its content), or narrow the range to difficulties "
                 "the file has both kinds of rows at.")
            )
    if cfg.propose.by == "model" and not getattr(task, "proposable_modes", lambda: ())():
        problems.append(
            (("propose.by", "task"),
             f"config key 'propose.by': task '{cfg.task}' cannot take problems written by the model (got "
             "'model'). Allowed: propose.by=task, or a code_io task that poses deduction or abduction "
             "(code_io, code_io_deduction, code_io_abduction).")
        )
    return problems


def require(cfg: Config) -> None:
    """Raise `ConfigError` with every problem `check` finds in `cfg` (one made in code, not loaded)."""
    if problems := check(cfg):
        raise ConfigError("invalid config: " + " ".join(msg for _, msg in problems))


def load(source=None, overrides: Sequence[str] = ()) -> Config:
    """`rsi.config.load_config` with the references checked: the config a run starts from."""
    return load_config(source, overrides, checks=(check,))


def from_dict(d: dict, source: str | None = None) -> Config:
    """`rsi.config.config_from_dict` with the references checked."""
    return config_from_dict(d, source, checks=(check,))


def resumed(stored: dict, overrides: Sequence[str], source: str | None = None, recipe: Sequence[str] = ()) -> Config:
    """`rsi.config.resumed_config` with the references checked: the config a run resumes with."""
    return resumed_config(stored, overrides, source, checks=(check,), recipe=recipe)


def origins(cfg: Config) -> dict[str, dict]:
    """{key path: {"ref", "from", ...}} for every reference of `cfg` (see `Registry.origin`)."""
    out = {}
    for key, ref in cfg.references().items():
        parametric = key == "task" and ref.partition(":")[0] in PARAMETRIC
        out[key] = {"ref": ref, **({"from": "built-in"} if parametric else _registry(key).origin(ref))}
    return out
