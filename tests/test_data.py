import random

from rsi.config import MixConfig, SeedDataConfig
from rsi.learn.data import mixture, seed_stream
from rsi.records import Example
from rsi.tasks import get_task

TASK = get_task("addition")


def test_seed_stream_stays_in_the_labelled_range_and_is_correct():
    draw = seed_stream(TASK, SeedDataConfig(min_difficulty=2, max_difficulty=3))
    rng = random.Random(0)
    examples = [draw(rng) for _ in range(300)]
    assert {e.difficulty for e in examples} == {2, 3}
    for e in examples:
        a, b = e.prompt[:-1].split("+")
        assert int(e.answer[::-1]) == int(a[::-1]) + int(b[::-1])
        assert e.origin == "seed"


def test_mixture_follows_fractions_and_redistributes_empty_pools():
    new = [Example("n", "1", 4, "self")]
    replay = [Example("r", "2", 4, "self")]
    seed = seed_stream(TASK, SeedDataConfig(min_difficulty=1, max_difficulty=1))
    rng = random.Random(1)
    batch = mixture({"new": new, "replay": replay}, seed, MixConfig(new=0.5, replay=0.3, seed=0.2))(rng, 5000)
    counts = {k: sum(e.prompt == k for e in batch) for k in ("n", "r")}
    assert abs(counts["n"] / 5000 - 0.5) < 0.03 and abs(counts["r"] / 5000 - 0.3) < 0.03
    only_new = mixture({"new": new, "replay": []}, seed, MixConfig(new=0.5, replay=0.3, seed=0.2))(rng, 5000)
    share = sum(e.prompt == "n" for e in only_new) / 5000
    assert abs(share - 0.5 / 0.7) < 0.03  # replay's share went to the others in proportion
    assert all(e.origin == "seed" for e in mixture({}, seed, None)(rng, 50))
