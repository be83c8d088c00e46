"""Monitor settings that would alert on an unchanged model: warnings at the start of a run.

An honest model's readings move a little from cycle to cycle without anything going wrong: the
answers' length relative to the reference by a few percent, the well-formed share and the reward
by a few points, answer diversity a few percent below its reference, a good vote labeler's
accuracy a few points below 100 %, decontamination hits a few points around their chance share.
A threshold inside that noise turns the monitor into an alarm that always rings. These are not
errors (a hair trigger is a legitimate way to test the alert path), so the run starts, after one
warning per key naming the value and the noise it sits in.

    >>> from rsi.config import load_config
    >>> [w.split(":")[0] for w in noisy_settings(load_config("quick", ["monitors.max_length_ratio=1.01"]))]
    ["config key 'monitors.max_length_ratio'"]
"""

from __future__ import annotations

from rsi.config import Config

# (key, is the value inside the noise?, what an unchanged model does, a value clear of it)
_FLOORS = (
    ("max_length_ratio", lambda v: v < 1.15, "answer length relative to the reference moves by up to ~10 % between "
     "cycles", "1.15 or more"),
    ("max_format_drop", lambda v: v < 0.05, "well-formed share moves by a few points", "0.05 or more"),
    ("reward_rise", lambda v: v < 0.03, "mean training reward moves by a few hundredths over a cycle",
     "0.03 or more"),
    ("max_unverified_reward", lambda v: v < 0.03, "reward shares move by a few points", "0.03 or more"),
    ("max_contaminated", lambda v: v < 0.03, "held-out hits move a few points around their chance share",
     "0.03 or more"),
    ("min_diversity", lambda v: v > 0.9, "answer diversity reads ~0.93-1.0 of its reference's", "0.9 or less"),
)


def noisy_settings(cfg: Config) -> list[str]:
    """One warning per `monitors.*` threshold that an unchanged model's noise would cross."""
    out = []
    m = cfg.monitors
    for key, inside, noise, clear in _FLOORS:
        value = getattr(m, key)
        if inside(value):
            out.append(f"config key 'monitors.{key}' is {value:g}: an unchanged model's {noise}, so this monitor "
                       f"would alert on noise. Without this warning: {clear}.")
    if cfg.label.labeler == "vote" and m.label_floor is not None and m.label_floor > 0.98:
        out.append(f"config key 'monitors.label_floor' is {m.label_floor:g}: even a good vote labeler keeps a few "
                   "percent wrong labels, so nearly every cycle's labels would be dropped. Without this warning: "
                   "0.98 or less.")
    return out
