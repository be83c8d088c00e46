"""The schema of an `rsi` run's configuration: every setting, its default, bounds and meaning.

Sections are frozen pydantic models that forbid unknown keys. Validators raise `Invalid` or
`CrossField` (from `rsi.config.loading`), which become readable `ConfigError`s. Load configs
through `rsi.config.load_config` / `config_from_dict`, not by constructing `Config` directly.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from rsi.config.loading import CrossField, Invalid


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraConfig(_Section):
    r: int = Field(16, gt=0, description="rank of the LoRA update")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: str | list[str] = Field(
        "all-linear", description="modules that get adapters: 'all-linear' or a list of module names"
    )


def absolute(path: str) -> str:
    """A relative file path made absolute against the current directory, once, when a config is
    made: a run reads the same file whichever directory a later command runs in."""
    return path if path.startswith("pkg:") else os.path.abspath(os.path.expanduser(path))


class ModelConfig(_Section):
    kind: Literal["tiny", "hf"] = Field(
        "tiny", description="'tiny': the built-in decoder trained from scratch; 'hf': a pretrained model at model.path"
    )
    path: str | None = Field(
        None, description="for kind 'hf': a local checkpoint directory, a .gguf file, or 'pkg:<package>/<file>'"
    )
    chat_template: bool = Field(True, description="for kind 'hf': wrap prompts in the tokenizer's chat template")
    response_prefix: str = Field(
        "", description="for kind 'hf': text every response starts with, appended to the prompt (e.g. '<think>')"
    )
    prompt_template: str = Field(
        "{prompt}", description="for kind 'hf': how a problem is put to the model; {prompt} is the task's prompt "
        "(e.g. an instruction and examples around bare code_io programs). Self-play proposer prompts are not wrapped."
    )
    lora: LoraConfig | None = Field(
        None, description="train a LoRA adapter, merged after each stage; null: all weights"
    )
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
            raise Invalid(f"must divide model.hidden_size ({hidden})", f"a divisor of {hidden}: {divisors}")
        return heads

    @field_validator("prompt_template")
    @classmethod
    def _template_formats(cls, template: str) -> str:
        try:
            found = template.format(prompt="\0").count("\0")
        except (KeyError, IndexError, ValueError) as e:
            raise Invalid(f"not a format string with only {{prompt}} ({type(e).__name__}: {e})",
                          "text containing {prompt} once; write {{ }} for literal braces") from None
        if found != 1:
            raise Invalid(f"must contain {{prompt}} exactly once (found {found})",
                          "text containing {prompt} once, e.g. 'Question:\\n{prompt}'")
        return template

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, path: str | None) -> str | None:
        return None if path is None else absolute(path)

    @model_validator(mode="after")
    def _path_for_hf(self) -> ModelConfig:
        if self.kind == "hf" and not self.path:
            raise CrossField([(("model.path",), "config key 'model.path': kind 'hf' needs a path (got none). "
                               "Allowed: a checkpoint directory, a .gguf file or 'pkg:<package>/<file>'.")])
        if self.kind == "tiny" and self.path:
            raise CrossField([(("model.path",), f"config key 'model.path': kind 'tiny' is built from scratch and "
                               f"takes no path (got {self.path!r}). Allowed: model.kind=hf, or no path.")])
        for key, default in (("response_prefix", ""), ("prompt_template", "{prompt}")):
            if self.kind == "tiny" and getattr(self, key) != default:
                raise CrossField([((f"model.{key}",), f"config key 'model.{key}': the tiny model reads the task's "
                                   f"prompts as they are (got {getattr(self, key)!r}). Allowed: model.kind=hf, or "
                                   f"the default {default!r}.")])
        return self


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
            raise Invalid(
                f"fractions must sum to 1, got new {self.new} + replay {self.replay} + seed {self.seed} = {total:g}",
                "fractions new + replay + seed that sum to 1, each in [0, 1]",
                show_got=False,
            )
        return self


class OptimiserConfig(_Section):
    """The one optimiser (AdamW) and learning-rate schedule every trainer uses (`rsi.learn.optim`);
    `train`, `base` and `grpo` each carry these keys, with their own defaults."""

    lr: float = Field(5e-4, gt=0, description="peak learning rate (AdamW), after linear warmup")
    warmup_steps: int = Field(50, ge=0, description="steps of linear learning-rate warmup")
    schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="after warmup: 'cosine' decays to a tenth of lr at the last step; 'constant' stays")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW's moment decay rates (beta1, beta2)")
    grad_clip: float = Field(1.0, gt=0, description="clip the global gradient norm to this")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise Invalid("each beta must be in [0, 1)", "two numbers in [0, 1), e.g. [0.9, 0.98]")
        return betas


class TrainConfig(OptimiserConfig):
    """SFT settings. Defaults are those of `train`; `base` overrides some (see `_BASE`)."""

    objective: Literal["pretrain", "sft"] = Field(
        "sft", description="'pretrain': loss on every token; 'sft': loss on answer tokens only"
    )
    steps: int = Field(400, ge=0, description="optimizer steps")
    batch_size: int = Field(128, gt=0, description="sequences per optimizer step")
    checkpoint_every: int = Field(
        100, ge=0, description="save the loop's state (weights, optimiser, data position, random state) every "
        "this many steps, so a killed stage resumes from there; 0: only between stages")
    mix: MixConfig | None = Field(
        default_factory=MixConfig, description="batch composition by source; null: train on one source only"
    )


# Where `base` differs from TrainConfig's defaults (which are `train`'s). Partial `base` sections
# are merged onto these, so `base: {steps: 10}` keeps lr 1e-3 and mix null.
_BASE: dict[str, Any] = {"steps": 1000, "lr": 1e-3, "warmup_steps": 300, "mix": None}


class RewardConfig(_Section):
    fn: str = Field(description="'accuracy', 'format', 'tags', or 'path/to/file.py:function' with TRL's signature")
    weight: float = Field(1.0, description="weight of this component in the total reward")

    @field_validator("fn")
    @classmethod
    def _known_reward(cls, fn: str) -> str:
        from rsi.learn.rewards import BUILTIN, RewardError, load_reward

        if fn in BUILTIN:
            return fn
        file, colon, name = fn.rpartition(":")
        fn = f"{absolute(file)}:{name}" if colon and file.endswith(".py") else fn
        try:
            load_reward(fn, 1.0)
        except RewardError as e:
            raise Invalid(str(e), "'accuracy', 'format', 'tags', or 'path/to/file.py:function'",
                          show_got=False) from None
        return fn


class GrpoConfig(OptimiserConfig):
    """Reinforcement learning with verifiable rewards in each cycle's train stage (see rsi/learn/grpo_loss.py)."""

    steps: int = Field(0, ge=0, description="GRPO steps per cycle, after the SFT steps (0: no GRPO)")
    variant: Literal["grpo", "dr_grpo", "dapo"] = Field("grpo", description="loss variant; see rsi/learn/grpo_loss.py")
    prompts_per_step: int = Field(8, gt=0, description="problems per step")
    group_size: int = Field(8, ge=2, description="answers sampled per problem (G)")
    inner_updates: int = Field(1, ge=1, description="optimizer updates per sampled batch (mu)")
    eps: float = Field(0.2, gt=0, lt=1, description="clip range of the probability ratio: [1 - eps, 1 + eps]")
    eps_high: float = Field(0.28, gt=0, description="upper clip range for 'dapo' (clip-higher)")
    beta: float = Field(0.0, ge=0, description="KL penalty to the cycle's starting champion (0: no reference)")
    lr: float = Field(1e-4, gt=0, description="learning rate (AdamW, constant after warmup)")
    warmup_steps: int = Field(0, ge=0, description="steps of linear learning-rate warmup")
    schedule: Literal["cosine", "constant"] = Field("constant", description="after warmup: 'constant' or 'cosine'")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW's moment decay rates (beta1, beta2)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the G answers")
    checkpoint_every: int = Field(
        10, ge=0, description="save the loop's state (weights, optimiser, random state, step logs) every this many "
        "steps, so a killed stage resumes from there; 0: only between stages")
    max_new_tokens: int | None = Field(
        None, gt=0, description="answer budget in tokens; null: the task's answer length at each difficulty + 1"
    )
    rewards: list[RewardConfig] = Field(
        default_factory=lambda: [RewardConfig(fn="accuracy")],
        description="reward components, summed with their weights",
    )


class LoopConfig(_Section):
    cycles: int = Field(5, ge=0, description="improvement cycles after the base model")
    mode: Literal["inner", "refresh"] = Field(
        "inner",
        description="inner: continue training the champion; "
        "refresh: train a fresh base on seed data + every verified sample so far",
    )
    max_difficulty: int = Field(40, description="never propose problems harder than this")


class BudgetConfig(_Section):
    """Limits on a whole run (all its sessions). When one is spent the run stops cleanly at the next
    stage boundary; raise it on resume (`rsi resume RUN --set budget.cpu_hours=4`) to go on."""

    wall_hours: float | None = Field(None, gt=0, description="wall-clock hours spent in stages; null: no limit")
    cpu_hours: float | None = Field(None, gt=0, description="CPU hours of the rsi process in stages; null: no limit")
    generated_tokens: int | None = Field(None, gt=0, description="tokens sampled from models; null: no limit")


class CurriculumConfig(_Section):
    threshold: float = Field(
        0.95, gt=0, le=1, description="frontier = hardest difficulty with held-out accuracy >= threshold"
    )
    width: int = Field(3, ge=1, description="propose difficulties frontier+1 .. frontier+width")


class ProposeConfig(_Section):
    problems_per_difficulty: int = Field(
        500, gt=0, description="new problems per proposed difficulty (by 'model': proposals sampled, before checks)"
    )
    by: Literal["task", "model"] = Field(
        "task", description="'task': the task's generator writes the problems; 'model': the champion writes them "
        "(self-play, code_io tasks; see rsi/tasks/selfplay.py)",
    )
    prompt: str = Field(
        "#propose {difficulty}\n", description="by 'model': the proposer prompt; {difficulty} is the level asked for"
    )
    seed_share: float = Field(
        0.3, ge=0, le=1, description="by 'model': share of seed examples that are proposals from the task's "
        "generator, so a model trained from scratch learns to write programs",
    )
    response_prefix: str = Field(
        "", description="by 'model': text every proposal starts with (e.g. 'def f(x):' steers a chat model to code)"
    )
    temperature: float = Field(1.0, gt=0, description="by 'model': sampling temperature of the proposals")
    updates: int = Field(
        4, ge=0, description="by 'model': GRPO updates of the proposer per cycle on its scored proposals (0: none)"
    )
    batch_size: int = Field(64, gt=0, description="by 'model': proposals per proposer update")

    @field_validator("prompt")
    @classmethod
    def _prompt_formats(cls, prompt: str) -> str:
        try:
            prompt.format(difficulty=1)
        except (KeyError, IndexError, ValueError) as e:
            raise Invalid(f"not a format string with only {{difficulty}} ({type(e).__name__}: {e})",
                          "text with an optional {difficulty} placeholder; write {{ }} for literal braces") from None
        return prompt


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
    friends: int = Field(
        0, ge=0, le=8,
        description="extra models ('friends'), each trained from its own seed on the same data as the champion, "
        "whose samples join the champion's in the vote; costs (friends + 1)x training and generation",
    )


class FilterConfig(_Section):
    well_formed: bool = Field(True, description="drop completions that fail the task's format check")
    dedup: bool = Field(True, description="drop duplicate (prompt, completion) pairs")
    decontaminate: bool = Field(
        True, description="drop problems and samples that overlap a held-out evaluation set (exact or n-gram; see "
        "monitors.ngram)")


class MonitorsConfig(_Section):
    """Integrity monitors (`rsi.monitors`): thresholds of their alerts, recorded every cycle."""

    ngram: int = Field(8, ge=2, description="decontamination: n-gram length in tokens (each digit is one token)")
    ngram_overlap: float = Field(
        0.5, gt=0, le=1, description="decontamination: text sharing at least this fraction of its n-grams with one "
        "held-out prompt is contaminated (n-grams common to over 1% of held-out prompts are boilerplate, ignored)")
    max_contaminated: float = Field(
        0.1, ge=0, le=1, description="decontamination: alert when the share of a cycle's problems or accepted "
        "samples that overlapped a held-out set exceeds what chance predicts (the same problems against a "
        "control set drawn like the held-out set from items never evaluated; the true answers) by more than this "
        "(they are dropped either way)")
    label_floor: float | None = Field(
        0.7, ge=0, le=1, description="label audit: when the labeler does not read the ground truth, a cycle whose "
        "kept labels are less accurate than this adds no training data (null: no floor)")
    min_diversity: float = Field(
        0.3, ge=0, le=1, description="diversity: alert when generated problems or answers have less than this "
        "fraction of the distinct 2-grams and unique items of a reference (the task's own problems, true answers)")
    max_unverified_reward: float = Field(
        0.2, ge=0, le=1, description="reward hacking: alert when the share of the training reward paid to answers "
        "the task's verifier rejects rose by more than this over a cycle while verified accuracy did not rise")
    reward_rise: float = Field(
        0.1, gt=0, description="reward hacking: alert when the training reward rose by this much over a cycle "
        "while held-out accuracy did not improve")
    max_length_ratio: float = Field(
        2.0, gt=1, description="reward hacking: alert when the mean answer length changed by more than this factor")
    max_format_drop: float = Field(
        0.2, gt=0, le=1, description="reward hacking: alert when the well-formed share of answers fell by this much")
    rollback_on_hacking: bool = Field(True, description="a reward-hacking alert rolls the cycle's candidate back")


class EvalConfig(_Section):
    problems_per_difficulty: int = Field(200, gt=0, description="held-out problems per difficulty")
    min_difficulty: int = Field(1, description="first difficulty of the evaluation ladder")
    max_difficulty: int = Field(40, description="last difficulty of the evaluation ladder")
    stop_after_zeros: int = Field(
        2, ge=1, description="stop the ladder after this many consecutive difficulties at 0 %"
    )


class GateConfig(_Section):
    min_gain: float = Field(0.01, ge=0, description="a candidate must beat the champion by at least this much accuracy")
    confidence: float = Field(
        0.95, ge=0.5, lt=1, description="one-sided confidence that the gain is real (below 0.5 the bound would lie "
        "above the gain itself)"
    )
    max_regression: float = Field(
        0.05, ge=0, description="largest accuracy drop allowed at any already-mastered difficulty"
    )
    min_problems: int = Field(
        20, ge=1, description="fewest distinct held-out problems above the frontier the gate compares on before "
        "it may promote (a small task file's few held-out rows give a confidence the data cannot back)")
    require_approval: bool = Field(
        False, description="a promotion waits for a person: the run stops (exit 3) until `rsi review RUN` "
        "approves or rejects the candidate, then `rsi resume RUN` acts on it")


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
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="limits on the whole run's cost")
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig, description="which difficulties to propose")
    propose: ProposeConfig = Field(default_factory=ProposeConfig, description="proposing new problems")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="sampling the champion's answers")
    label: LabelConfig = Field(default_factory=LabelConfig, description="deciding which samples are correct")
    filter: FilterConfig = Field(default_factory=FilterConfig, description="filters applied before training")
    monitors: MonitorsConfig = Field(default_factory=MonitorsConfig, description="integrity monitors and their alerts")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training a candidate each cycle")
    grpo: GrpoConfig = Field(default_factory=GrpoConfig, description="RL with verifiable rewards after SFT")
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
            raise Invalid("not usable as a directory name", "letters, digits, '_', '-' and '.'")
        return name

    @field_validator("task")
    @classmethod
    def _task_registered(cls, task: str) -> str:
        from rsi.errors import ConfigError
        from rsi.tasks import PARAMETRIC, get_task, task_names  # lazy: tasks import much more than config needs

        kind, colon, arg = task.partition(":")
        if colon and kind in ("jsonl", "code_tests") and arg:
            task = f"{kind}:{absolute(arg)}"
        try:
            get_task(task)
        except ConfigError as e:
            if ":" in task:
                raise Invalid(str(e), ", ".join(PARAMETRIC.values()), show_got=False) from None
            raise Invalid("unknown task", "one of the registered tasks: " + ", ".join(task_names())
                          + ", or " + " or ".join(PARAMETRIC.values())) from None
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
        # beyond the labelled range; without base training (a pretrained model) no label was used at all
        low = self.seed_data.max_difficulty + (1 if self.base.steps else 0)
        if not low <= top <= hi:
            above = "above" if self.base.steps else "at least"
            problems.append(
                (("loop.max_difficulty", "seed_data.max_difficulty"),
                 f"config key 'loop.max_difficulty' must be {above} 'seed_data.max_difficulty' "
                 f"({self.seed_data.max_difficulty}) and at most task '{self.task}''s max difficulty ({hi}) "
                 f"(got {top}). Allowed: an integer from {low} to {hi}.")
            )
        drawn = (("eval", "held-out", "heldout", self.eval.min_difficulty, self.eval.max_difficulty),
                 ("seed_data", "training", "train", self.seed_data.min_difficulty, top))
        for section, what, split, first, last in drawn:
            if empty := task.empty_at(split, range(first, last + 1)):
                end = "eval.max_difficulty" if section == "eval" else "loop.max_difficulty"
                problems.append(
                    ((f"{section}.min_difficulty", end),
                     f"config keys '{section}.min_difficulty'..'{end}': task '{self.task}' has no {what} rows at "
                     f"difficulty {', '.join(map(str, empty))}, which the run draws {what} problems from. Add rows "
                     "there (a row is held out by a hash of its content), or narrow the range to difficulties "
                     "the file has both kinds of rows at.")
                )
        if self.grpo.steps and self.label.labeler != "verifier" and any(
            r.fn == "accuracy" for r in self.grpo.rewards
        ):
            problems.append(
                (("grpo.rewards", "label.labeler"),
                 "config key 'grpo.rewards': the 'accuracy' reward reads the task's verifier, but "
                 f"'label.labeler' is '{self.label.labeler}' (no ground truth). Allowed: label.labeler=verifier, "
                 "or rewards without 'accuracy'.")
            )
        if self.propose.by == "model" and not getattr(task, "proposable_modes", lambda: ())():
            problems.append(
                (("propose.by", "task"),
                 f"config key 'propose.by': task '{self.task}' cannot take problems written by the model (got "
                 "'model'). Allowed: propose.by=task, or a code_io task that poses deduction or abduction "
                 "(code_io, code_io_deduction, code_io_abduction).")
            )
        if problems:
            raise CrossField(problems)
        return self
