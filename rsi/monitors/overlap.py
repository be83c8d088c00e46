"""Decontamination: does a text overlap a held-out evaluation set?

A text is contaminated when, after normalisation (`rsi.monitors.text`), it equals a held-out
prompt (`exact`), or when at least `overlap` of its n-grams occur in one single held-out prompt
(`ngram`). N-grams that occur in more than 1 % of the held-out prompts (and in at least two) are
boilerplate, such as a task's instruction sentence, and count neither way; a text with only
boilerplate n-grams is checked for exact matches only.

Example:
    >>> index = HeldoutIndex(["s:12345678=", "s:99999999="], n=4, overlap=0.5)
    >>> index.hit("S: 12345678 ="), index.hit("s:12345670="), index.hit("s:31415926=")
    ('exact', 'ngram', None)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rsi.monitors.text import ngrams, normalised, tokens

BOILERPLATE_SHARE = 0.01


class HeldoutIndex:
    """The held-out prompts of a run, indexed for exact and n-gram overlap checks."""

    def __init__(self, prompts: Sequence[str], n: int, overlap: float) -> None:
        self.n, self.overlap = n, overlap
        self.exact = {normalised(p) for p in prompts}
        grams = [ngrams(tokens(p), n) for p in prompts]
        counts = Counter(g for gs in grams for g in gs)
        limit = max(2, int(BOILERPLATE_SHARE * len(prompts)))
        self.boilerplate = {g for g, c in counts.items() if c > limit}
        self.where: dict[tuple[str, ...], list[int]] = {}
        for i, gs in enumerate(grams):
            for g in gs - self.boilerplate:
                self.where.setdefault(g, []).append(i)

    def hit(self, text: str) -> str | None:
        """'exact', 'ngram' or None (clean)."""
        if normalised(text) in self.exact:
            return "exact"
        informative = ngrams(tokens(text), self.n) - self.boilerplate
        if not informative:
            return None
        shared = Counter(i for g in informative for i in self.where.get(g, ()))
        if shared and shared.most_common(1)[0][1] / len(informative) >= self.overlap:
            return "ngram"
        return None


REASONS = {"exact": "contaminated: equals a held-out prompt",
           "ngram": "contaminated: shares n-grams with a held-out prompt"}
