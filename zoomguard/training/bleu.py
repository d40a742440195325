"""BLEU-2 for one candidate against one reference: the explanation reward.

Own implementation (sentence-level, no corpus statistics): unigram and bigram clipped precisions,
geometric mean with equal weights, brevity penalty. The bigram precision is add-one smoothed
(Lin and Och, 2004) so that a short explanation with the right words but no shared bigram still gets
a graded reward instead of 0; the unigram precision is not smoothed, so text sharing no word scores 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: 'Six fingers.' -> ['six', 'fingers', '.']."""
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def clipped_matches(candidate: Sequence[str], reference: Sequence[str], n: int) -> tuple[int, int]:
    """(matches, total) n-grams of the candidate, each counted at most as often as in the reference."""
    cand, ref = _ngrams(candidate, n), _ngrams(reference, n)
    matches = sum(min(count, ref[gram]) for gram, count in cand.items())
    return matches, sum(cand.values())


def bleu2(candidate: str, reference: str) -> float:
    """Sentence BLEU-2 in [0, 1]; 0 when either side has no tokens."""
    cand, ref = tokenize(candidate), tokenize(reference)
    if not cand or not ref:
        return 0.0
    m1, t1 = clipped_matches(cand, ref, 1)
    if m1 == 0:
        return 0.0
    m2, t2 = clipped_matches(cand, ref, 2)
    p1 = m1 / t1
    p2 = (m2 + 1) / (t2 + 1)  # add-one smoothing; t2 is 0 for a one-token candidate, then p2 = 1
    brevity = 1.0 if len(cand) > len(ref) else math.exp(1 - len(ref) / len(cand))
    return brevity * math.exp(0.5 * math.log(p1) + 0.5 * math.log(p2))
