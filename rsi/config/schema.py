"""The schema of an `rsi` run's configuration: every setting, its default, bounds and meaning.

The model and training sections are in `training.py`, what sections share in `base.py`. Sections
are frozen pydantic models that forbid unknown keys. Validators raise `Invalid` or
`CrossField` (from `rsi.config.loading`), which become readable `ConfigError`s. Load configs
through `rsi.config.load_config` / `config_from_dict`, not by constructing `Config` directly.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rsi.config.base import REFERENCE, Reference, _Section, absolute, reference  # noqa: F401  (public names)
from rsi.config.loading import CrossField, Invalid
from rsi.config.training import (  # noqa: F401
    _BASE,
    GrpoConfig,
    LoraConfig,
    MixConfig,
    ModelConfig,
    OptimiserConfig,
    RewardConfig,
    SeedDataConfig,
    TrainConfig,
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
    labeler: Reference = Field(
        "verifier", description="verifier: the task's checker; vote: majority of samples, no ground truth; or "
        "an entry point in 'rsi.labelers', or 'path/to/file.py:function' (rsi/stages/label.py)"
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
    custom: list[Reference] = Field(
        default_factory=list, description="more filters, each an entry point in 'rsi.filters' or "
        "'path/to/file.py:function': fn(problem, answer) -> a reason to drop the kept sample, or None")


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


class RayConfig(_Section):
    address: str | None = Field(
        None, description="null: everything in this process (no Ray); 'local': start a Ray on this machine; else "
        "the address of a running cluster (auto, host:6379, ray://host:10001)")


class ScaleConfig(_Section):
    ray: RayConfig = Field(default_factory=RayConfig, description="the Ray cluster the stages fan out on")
    workers: int = Field(
        1, ge=1, description="with scale.ray: Ray workers the generate, label and evaluate stages share their "
        "problems among (each loads the stage's model once), and the data-parallel trainer's workers")
    strategy: Literal["driver", "ddp", "fsdp"] = Field(
        "driver", description="with scale.ray, how SFT trains: driver (in this process), ddp (data-parallel on "
        "Ray Train, a whole model per worker) or fsdp (data-parallel, the model sharded: PyTorch's FSDP2)")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


class EngineConfig(_Section):
    device: str = Field(
        "auto", description="where every model runs: auto (the first CUDA GPU when one is visible, else the CPU), "
        "cpu, cuda or cuda:N")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="compute precision (weights stay float32): auto is float32 on the CPU, bfloat16 on CUDA")
    generation: Literal["torch", "vllm"] = Field(
        "torch", description="what samples the generate and evaluate stages' answers: torch (rsi's engine) or vllm "
        "(vLLM's offline batch engine, the extra rsi[vllm]); GRPO rollouts and self-play stay on torch")

    @field_validator("device")
    @classmethod
    def _device_name(cls, device: str) -> str:
        if not _DEVICE_RE.match(device):
            raise Invalid("not a device name", "auto, cpu, cuda or cuda:N (N a GPU index)")
        return device


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
    engine: EngineConfig = Field(default_factory=EngineConfig, description="the device and precision models run in")
    scale: ScaleConfig = Field(default_factory=ScaleConfig, description="fanning stages out on a Ray cluster")
    track: list[Literal["tensorboard", "mlflow", "wandb", "trackio"]] = Field(
        default_factory=list, description="experiment trackers the run's figures also go to (rsi.track): any of "
        "tensorboard, mlflow, wandb, trackio (the extra rsi[track])")

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
    def _task_reference(cls, task: str) -> str:
        kind, colon, arg = task.partition(":")
        if colon and kind in ("jsonl", "code_tests", "reasoning_gym", "verifiers") and arg:
            return f"{kind}:{absolute(arg)}" if kind in ("jsonl", "code_tests") else task
        return reference(task)

    @model_validator(mode="after")
    def _cross_field(self) -> Config:
        """Checks across keys that need no task (those against the task are `rsi.resolve.against_task`)."""
        problems: list[tuple[tuple[str, ...], str]] = []
        for section in ("seed_data", "eval"):
            s = getattr(self, section)
            if s.min_difficulty > s.max_difficulty:
                problems.append(
                    ((f"{section}.min_difficulty", f"{section}.max_difficulty"),
                     f"config keys '{section}.min_difficulty' and '{section}.max_difficulty': min is above max "
                     f"(got {s.min_difficulty} > {s.max_difficulty}). Allowed: min <= max.")
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
        if problems:
            raise CrossField(problems)
        return self

    def references(self) -> dict[str, str]:
        """Every key that names a part found elsewhere (`rsi.registry`), with its reference."""
        refs = {"task": self.task, "label.labeler": self.label.labeler, "train.objective": self.train.objective,
                "base.objective": self.base.objective}
        refs |= {f"grpo.rewards[{i}].fn": r.fn for i, r in enumerate(self.grpo.rewards)}
        refs |= {f"filter.custom[{i}]": f for i, f in enumerate(self.filter.custom)}
        return refs
