"""The config sections of the model and its training: `model` (and LoRA), `seed_data`, the
optimiser every trainer shares, `train` / `base` (SFT) and `grpo` (with its rewards)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rsi.config.base import Reference, _Section, absolute
from rsi.config.loading import CrossField, Invalid


class LoraConfig(_Section):
    r: int = Field(16, gt=0, description="rank of the LoRA update")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: str | list[str] = Field(
        "all-linear", description="modules that get adapters: 'all-linear' or a list of module names"
    )


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

    objective: Reference = Field(
        "sft", description="'pretrain': loss on every token; 'sft': loss on answer tokens only; or an entry point "
        "in 'rsi.objectives', or 'path/to/file.py:function' (rsi/learn/objectives.py)"
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
    fn: Reference = Field(description="'accuracy', 'format', 'tags', an entry point in 'rsi.rewards', or "
                    "'path/to/file.py:function', with TRL's signature")
    weight: float = Field(1.0, description="weight of this component in the total reward")


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
