"""Tests for rsi/config/: defaults, built-in configs, overrides, and errors that name the key path.

Run: .venv/bin/python -m pytest -q tests/test_config.py
"""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from rsi.config import (
    Config,
    MixConfig,
    TrainConfig,
    config_from_dict,
    config_names,
    dump_config,
    load_config,
)
from rsi.errors import ConfigError
from rsi.resolve import load
from rsi.tasks import task_names


def write(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_load():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.name == "default" and cfg.task == "sort" and cfg.seed == 0
    assert (cfg.model.hidden_size, cfg.model.layers, cfg.model.heads) == (128, 4, 4)
    assert cfg.base == TrainConfig(steps=1000, lr=1e-3, warmup_steps=300, mix=None)
    assert cfg.train.steps == 400 and cfg.train.lr == 5e-4 and cfg.train.mix == MixConfig(new=0.5, replay=0.3, seed=0.2)
    assert cfg.loop.mode == "inner" and cfg.label.labeler == "verifier"
    assert load_config("default") == cfg


def test_builtin_names():
    assert {"default", "quick", "vote"} <= set(config_names())


def test_quick_loads_with_its_values():
    cfg = load_config("quick")
    assert cfg.name == "quick"
    assert (cfg.model.hidden_size, cfg.model.layers, cfg.model.heads, cfg.model.intermediate_size) == (64, 2, 2, 256)
    assert cfg.seed_data.max_difficulty == 3
    assert (cfg.base.steps, cfg.base.warmup_steps, cfg.base.lr, cfg.base.mix) == (600, 50, 3e-3, None)
    assert (cfg.loop.cycles, cfg.loop.max_difficulty) == (4, 10)
    assert cfg.propose.problems_per_difficulty == 100
    assert (cfg.train.steps, cfg.train.warmup_steps) == (150, 10)
    assert (cfg.eval.problems_per_difficulty, cfg.eval.max_difficulty) == (50, 10)


def test_vote_loads_with_its_values():
    cfg = load_config("vote")
    assert cfg.name == "vote"
    assert cfg.label.labeler == "vote"
    assert cfg.label.vote_threshold == 1.0 and cfg.curriculum.width == 1
    assert cfg.generate.samples_per_problem == 5 and cfg.generate.temperature == 1.0
    assert cfg.train == Config().train and cfg.model == Config().model


def test_addition_labels_a_range_and_aims_at_twice_it():
    """The addition config's labels stop at L >= 4 digits and its loop may go past 2L."""
    cfg = load_config("addition")
    L = cfg.seed_data.max_difficulty
    assert cfg.task == "addition" and L >= 4 and cfg.loop.max_difficulty >= 2 * L <= cfg.eval.max_difficulty
    assert cfg.label.labeler == "verifier" and cfg.model == Config().model


def test_file_holds_only_differences_and_is_named_after_its_stem(tmp_path):
    cfg = load_config(str(write(tmp_path, "seed: 7\nbase:\n  steps: 10\n")))
    assert cfg.name == "exp" and cfg.seed == 7
    # A partial `base` keeps base's own defaults, not train's.
    assert cfg.base == TrainConfig(steps=10, lr=1e-3, warmup_steps=300, mix=None)


def test_override_changes_nested_value_with_yaml_types():
    cfg = load_config("quick", ["train.lr=0.002", "loop.cycles=3", "filter.dedup=false", "loop.mode=refresh",
                                "base.mix={new: 0, replay: 0, seed: 1}", "train.mix.new=0.6", "train.mix.replay=0.2"])
    assert cfg.train.lr == 0.002 and isinstance(cfg.train.lr, float)
    assert cfg.loop.cycles == 3 and isinstance(cfg.loop.cycles, int)
    assert cfg.filter.dedup is False and cfg.loop.mode == "refresh"
    assert cfg.base.mix == MixConfig(new=0, replay=0, seed=1)
    assert cfg.train.mix == MixConfig(new=0.6, replay=0.2, seed=0.2)
    assert cfg.model.hidden_size == 64  # the rest of quick is untouched
    assert load_config(None, ["train.mix=null"]).train.mix is None


def test_unknown_key_in_yaml_names_path_and_lists_allowed(tmp_path):
    path = write(tmp_path, "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    msg = str(e.value)
    assert "'train.lrr' is not allowed" in msg
    assert "allowed keys under 'train': batch_size, betas, checkpoint_every, grad_clip, lr, mix" in msg
    assert str(path) in msg


def test_unknown_key_in_override_names_path_and_lists_allowed():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.mix.neww=0.5"])
    assert "'train.mix.neww' is not allowed" in str(e.value)
    assert "allowed keys under 'train.mix': new, replay, seed" in str(e.value)
    with pytest.raises(ConfigError, match="allowed keys at the top level: base, budget, curriculum"):
        load_config(None, ["trian.lr=1"])
    with pytest.raises(ConfigError, match="'train.lr' is a value, not a section"):
        load_config(None, ["train.lr.x=1"])


def test_override_without_equals():
    with pytest.raises(ConfigError, match=r"override 'train\.lr' has no '='.*Allowed keys under 'train': batch_size"):
        load_config(None, ["train.lr"])


def test_bad_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["loop.mode=outer"])
    assert "config key 'loop.mode'" in str(e.value) and "(got 'outer')" in str(e.value)
    assert "Allowed: 'inner', 'refresh'." in str(e.value)
    with pytest.raises(ConfigError, match=r"'label\.labeler': unknown labeler 'judge'; known: verifier, vote, or "):
        load(None, ["label.labeler=judge"])


def test_negative_lr_names_train_lr(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.lr=-1"])
    assert "config key 'train.lr': Input should be greater than 0 (got -1). Allowed: a number > 0." in str(e.value)
    path = write(tmp_path, "train:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*config key 'train\.lr'"):
        load_config(str(path))


def test_field_bounds_and_types():
    for override, key in [("curriculum.threshold=0", "curriculum.threshold"), ("gate.confidence=1", "gate.confidence"),
                          ("loop.cycles=-1", "loop.cycles"), ("generate.samples_per_problem=0",
                                                              "generate.samples_per_problem"),
                          ("model.layers=2.5", "model.layers"), ("train=3", "train")]:
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            load_config(None, [override])


def test_heads_must_divide_hidden_size():
    with pytest.raises(ConfigError, match=r"'model\.heads'.*must divide model\.hidden_size \(128\).*got 3"):
        load_config(None, ["model.heads=3"])


def test_mix_not_summing_to_one_names_train_mix():
    with pytest.raises(ConfigError, match=r"config key 'train\.mix': fractions must sum to 1"):
        load_config(None, ["train.mix.new=0.6"])


def test_seed_data_above_loop_max_fails():
    with pytest.raises(ConfigError) as e:
        load(None, ["seed_data.max_difficulty=40"])
    assert "'loop.max_difficulty'" in str(e.value) and "'seed_data.max_difficulty' (40)" in str(e.value)


def test_difficulty_ranges():
    with pytest.raises(ConfigError, match=r"'seed_data\.min_difficulty' and 'seed_data\.max_difficulty'.*3 > 2"):
        load(None, ["seed_data.min_difficulty=3", "seed_data.max_difficulty=2"])
    with pytest.raises(ConfigError, match=r"'eval\.min_difficulty': outside task 'sort''s difficulties"):
        load(None, ["eval.min_difficulty=0"])
    with pytest.raises(ConfigError, match=r"'loop\.max_difficulty'.*got 1000"):
        load(None, ["loop.max_difficulty=1000"])


def test_the_config_checks_its_shape_and_the_layer_above_what_its_names_name():
    """Configuration is the ground floor: it imports no task or reward; a name it cannot know is
    refused where it is resolved (`rsi.resolve`), before a run starts, in the same one paragraph."""
    import subprocess
    import sys

    code = "import sys, rsi.config; print(sorted(m for m in sys.modules if m.startswith('rsi.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert {m for m in eval(loaded) if not m.startswith("rsi.config")} == {"rsi.errors"}
    assert load_config(None, ["task=nope"]).task == "nope"  # a well-formed name
    with pytest.raises(ConfigError, match=r"'task': not a name nor 'path/to/file.py:Name' \(got 'a b'\)"):
        load_config(None, ["task=a b"])
    with pytest.raises(ConfigError, match=r"'task': unknown task \(got 'nope'\).*\[set by override 'task=nope'\]"):
        load(None, ["task=nope"])


def test_unknown_task_lists_known_tasks():
    with pytest.raises(ConfigError) as e:
        load(None, ["task=nope"])
    msg = str(e.value)
    assert "config key 'task'" in msg and "'nope'" in msg
    assert all(name in msg for name in task_names())


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n   steps: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}', line 3"):
        load_config(str(path))


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\ntrain:\n  steps: 3\n")
    with pytest.raises(ConfigError, match=r"line 3.*'train' appears twice"):
        load_config(str(path))


def test_missing_file_names_path_and_builtins(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml.*built-in configs: addition, code, default, quick, selfplay, "
                                          r"smollm2-arithmetic, smollm2-selfplay, vote"):
        load_config(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("name", ["default", "quick", "code", "addition", "smollm2-arithmetic", "vote"])
def test_dump_round_trips(name):
    cfg = load_config(name, ["seed=5"])
    text = dump_config(cfg)
    assert config_from_dict(yaml.safe_load(text)) == cfg


def test_dumped_file_reloads(tmp_path):
    cfg = load_config("quick", ["train.lr=0.00012"])
    path = write(tmp_path, dump_config(cfg), name="config.yaml")
    assert load_config(str(path)) == cfg


def test_config_from_dict_reports_config_error():
    with pytest.raises(ConfigError, match=r"runs/x/config\.yaml.*'gate\.max_regression'"):
        config_from_dict({"gate": {"max_regression": -0.1}}, source="runs/x/config.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        config_from_dict([1, 2])  # type: ignore[arg-type]


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train.lr = 1.0  # type: ignore[misc]


def test_prompt_template_needs_one_placeholder_and_a_pretrained_model():
    for bad, why in (("no placeholder", r"exactly once \(found 0\)"),
                     ("{prompt} {prompt}", r"exactly once \(found 2\)"),
                     ("{answer}: {prompt}", "not a format string")):
        with pytest.raises(ConfigError, match=rf"'model\.prompt_template'.*{why}"):
            load_config("smollm2-selfplay", [f"model.prompt_template='{bad}'"])
    ok = load_config("smollm2-selfplay", ["model.prompt_template='{{literal}} {prompt}'"])
    assert ok.model.prompt_template.format(prompt="p") == "{literal} p"
    for key, value in (("prompt_template", "Q: {prompt}"), ("response_prefix", "<think>")):
        with pytest.raises(ConfigError, match=rf"'model\.{key}': the tiny model reads the task's prompts as they are"):
            load_config(None, [f"model.{key}='{value}'"])
