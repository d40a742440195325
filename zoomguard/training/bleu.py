"""BLEU-2 for one candidate against one reference: the explanation reward, computed by sacrebleu.

Why sacrebleu: it is the BLEU the field reports, so a reward (and any number logged from it) means what
readers expect. The configuration, and why:
- sentence level, `max_ngram_order=2`, `effective_order=True` (what sacrebleu recommends for one sentence);
- `smooth_method="add-k"`, `smooth_value=1`: add-one on the bigram precision only (Lin and Och, 2004), the
  smoothing this reward always had: a short explanation with the right words but no shared bigram still
  gets a graded reward instead of 0, while text sharing no word scores 0;
- `lowercase=True` and the standard `13a` tokenizer (mteval-v13a, sacrebleu's default), so the reward is
  the BLEU of a published signature rather than one of our own: "Six" matches "six", ASCII punctuation is
  split off. It cannot equal the regex this module used before (a word or a single punctuation mark per
  token) everywhere: 13a keeps hyphenated words ("ai-generated"), apostrophes ("don't"), decimals ("3.5")
  and non-ASCII punctuation ("sign’s") inside a token, and splits underscores ("ai _ generated"), so such
  texts score differently (the README lists it); on plain words, commas, periods, colons and the like
  the scores are the old ones.
Brevity penalty (exp(1 - r/c) when c <= r) and clipping are sacrebleu's and agree with the old code.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from sacrebleu.metrics import BLEU
from sacrebleu.metrics.helpers import extract_all_word_ngrams


@cache
def _scorer() -> BLEU:
    return BLEU(
        lowercase=True,
        tokenize="13a",
        smooth_method="add-k",
        smooth_value=1,
        max_ngram_order=2,
        effective_order=True,
    )


def tokenize(text: str) -> list[str]:
    """The tokens BLEU compares: lower-cased, 13a-tokenised. 'Six fingers.' -> ['six', 'fingers', '.']."""
    return _scorer().tokenizer(text.lower().rstrip()).split()


def clipped_matches(candidate: Sequence[str], reference: Sequence[str], n: int) -> tuple[int, int]:
    """(matches, total) n-grams of the candidate, each counted at most as often as in the reference.

    The statistic sacrebleu accumulates, from its own n-gram extraction; kept to show what a score is made of.
    """
    cand, _ = extract_all_word_ngrams(" ".join(candidate), n, n)
    ref, _ = extract_all_word_ngrams(" ".join(reference), n, n)
    return sum((cand & ref).values()), sum(cand.values())


def bleu2(candidate: str, reference: str) -> float:
    """Sentence BLEU-2 in [0, 1]; 0 when either side has no tokens."""
    if not tokenize(candidate) or not tokenize(reference):
        return 0.0
    percent = float(_scorer().sentence_score(candidate, [reference]).score)
    return min(1.0, percent / 100.0)  # sacrebleu's exp(mean log 100) can land a hair above 100
