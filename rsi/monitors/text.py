"""Text statistics the monitors share: tokens, n-grams, distinct-n.

Tokens are lower-cased words, single digits and single punctuation marks, so that compact
prompts such as `s:9524=` or `f(-39)=82` split where problems differ (each digit is a token)
and prose splits into words.

Example:
    >>> tokens("s:95=")
    ['s', ':', '9', '5', '=']
    >>> distinct_n(["a b", "a b"], 2), unique_share(["x", "x", "y", "z"])
    (0.5, 0.75)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(r"\d|[^\W\d]+|[^\w\s]")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def normalised(text: str) -> str:
    """The text with case and whitespace differences removed (for exact-match checks)."""
    return " ".join(tokens(text))


def ngrams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of `texts` (1.0 for no n-grams at all)."""
    seen, total = set(), 0
    for t in texts:
        toks = tokens(t)
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 1.0


def unique_share(texts: Sequence[str]) -> float:
    """Unique items over items, after normalisation (1.0 for none): 1 - the duplicate rate."""
    return len({normalised(t) for t in texts}) / len(texts) if texts else 1.0
