"""The library-backed metrics, calibration fits and BLEU-2 against the numbers of the code they replaced.

Every OLD_* table below was produced by running the previous hand-written implementations (commit a29c8bb:
Mann-Whitney AUROC, counting precision/recall/F1, equal-width bins, PAV isotonic, golden-section temperature,
regex-tokenised BLEU-2) on these inputs, so it checks that the switch to scikit-learn, scipy and sacrebleu kept
the numbers. Where the library's definition agrees they must match to 1e-9; the rows where it cannot are in
the *_CHANGED tables, each with the old number, the new one and why.
"""

from __future__ import annotations

import itertools
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support import overconfident_scores
from zoomguard.evaluation import scores as metrics
from zoomguard.evaluation.calibration_fit import fit_calibration, fit_isotonic, fit_temperature, log_loss
from zoomguard.evaluation.charts import CONFUSION_SIZE, RELIABILITY_SIZE, confusion_matrix, reliability_diagram
from zoomguard.training.bleu import bleu2, tokenize

TOLERANCE = 1e-9
TEMPERATURE_TOLERANCE = 1e-6 + 1e-12  # T is rounded to 6 decimals: a last-digit flip is the most allowed

AI, REAL = "ai_generated", "real"
T, F = True, False


def rounded(n: int, seed: int, digits: int = 1) -> tuple[list[float], list[bool]]:
    """Scores rounded to `digits` (many ties, 0 and 1 included) with labels that mostly follow them."""
    rng = random.Random(seed)
    scores = [round(rng.random(), digits) for _ in range(n)]
    return scores, [rng.random() < 0.2 + 0.6 * s for s in scores]


AUROC_INPUTS = {
    "perfect": ([0.9, 0.8, 0.2, 0.1], [T, T, F, F]),
    "reversed": ([0.1, 0.2, 0.8, 0.9], [T, T, F, F]),
    "all_tied": ([0.5, 0.5, 0.5, 0.5], [T, F, T, F]),
    "partial_ties": ([0.8, 0.6, 0.8, 0.3], [T, T, F, F]),
    "one_positive_tied": ([0.4, 0.4, 0.2, 0.9, 0.95], [T, F, F, F, F]),
    "zeros_and_ones": ([0.0, 1.0, 1.0, 0.0, 0.0, 1.0], [F, T, F, F, T, T]),
    "rounded_ties_60": rounded(60, seed=1),
    "synthetic_500": overconfident_scores(500, 2.0, seed=2),
    "one_class_positive": ([0.3, 0.7], [T, T]),
    "one_class_negative": ([0.3, 0.7], [F, F]),
    "single": ([0.5], [T]),
    "empty": ([], []),
}

PRF_INPUTS = {
    "half": ([AI, AI, REAL, REAL], [AI, REAL, AI, REAL]),
    "perfect": ([AI, AI, REAL], [AI, AI, REAL]),
    "abstain_on_positive": ([AI, AI, REAL], [AI, "uncertain", REAL]),
    "no_positive_predicted": ([AI, REAL], ["uncertain", REAL]),
    "no_positive_anywhere": ([REAL, REAL], [REAL, "error"]),
    "only_false_positives": ([REAL, REAL], [AI, REAL]),
    "all_uncertain": ([AI, REAL, AI], ["uncertain", "uncertain", "uncertain"]),
    "all_error": ([AI, REAL], ["error", "error"]),
    "errors_on_positives": ([AI, AI, AI, REAL], [AI, "error", "uncertain", AI]),
    "mixed_12": (
        [AI, AI, AI, AI, AI, AI, REAL, REAL, REAL, REAL, REAL, REAL],
        [AI, AI, AI, REAL, "uncertain", "error", AI, REAL, REAL, REAL, "uncertain", AI],
    ),
    "empty": ([], []),
}

BIN_INPUTS = {
    "two_bins_of_10": ([0.9, 0.9, 0.1, 0.1], [T, T, F, F], 10),
    "one_bin_of_10": ([0.7, 0.7, 0.7, 0.7], [T, T, T, F], 10),
    "halves": ([0.25, 0.75], [T, F], 2),
    "single_bin": ([0.2, 0.4, 0.6, 0.8], [F, T, F, T], 1),
    "one_in_last_bin": ([1.0, 0.95], [T, T], 10),
    "edges_of_10": ([i / 10 for i in range(11)], [i % 2 == 0 for i in range(11)], 10),
    "decimal_edges_of_10": ([0.1, 0.2, 0.3, 0.6, 0.7, 0.9], [T, F, T, F, T, F], 10),
    "edges_of_100": ([0.0, 0.01, 0.29, 0.3, 0.57, 0.5, 0.99, 1.0], [F, F, T, F, T, T, T, T], 100),
    "thirds": ([1 / 3, 2 / 3, 0.5, 0.34, 0.0], [T, F, T, F, F], 3),
    "zeros_and_ones": ([0.0, 0.0, 1.0, 1.0], [F, T, T, T], 10),
    "all_uncertain_half": ([0.5] * 6, [T, F, T, F, F, F], 10),
    "many_bins_1000": (*overconfident_scores(40, 1.5, seed=4), 1000),
    "synthetic_15": (*overconfident_scores(400, 2.0, seed=5), 15),
    "empty": ([], [], 10),
}

CONFUSION_INPUTS = {
    "mixed": ([AI, REAL, REAL, AI, AI, REAL], [AI, "uncertain", "uncertain", "error", REAL, AI]),
    "all_uncertain": ([AI, REAL], ["uncertain", "uncertain"]),
    "empty": ([], []),
}

BLEU_INPUTS = {
    "identical": ("the cat sat on the mat", "the cat sat on the mat"),
    "short": ("the cat", "the cat sat on the mat"),
    "clipped_repeats": ("the the the", "the cat"),
    "sentence_period": ("Six fingers.", "six fingers on the hand."),
    "one_token": ("cat", "the cat"),
    "unrelated": ("dog", "cat"),
    "unrelated_sentences": ("a sunny beach at noon", "six fingers on the left hand"),
    "empty_candidate": ("", "cat"),
    "empty_reference": ("cat", ""),
    "both_empty": ("", ""),
    "whitespace_only": ("   ", "cat"),
    "punctuation_only": ("!", "!"),
    "case": ("SIX FINGERS ON THE HAND", "six fingers on the hand"),
    "longer_candidate": ("the left hand clearly has six fingers and a melted ring", "the hand has six fingers"),
    "explanation": (
        "The crops show six fingers on the left hand, and the text on the sign is garbled.",
        "Six fingers on the left hand; the sign's lettering is garbled.",
    ),
    "commas_and_colons": ("hands: six fingers, odd; text: garbled", "six fingers, odd hands; garbled text"),
    "hyphen": ("AI-generated face with odd teeth", "an AI generated face, odd teeth"),
    "apostrophe": ("the man's hands don't match", "the man's hands do not match"),
    "decimal_number": ("about 3.5 fingers visible", "3.5 fingers"),
    "underscore": ("verdict ai_generated", "ai_generated verdict"),
    "non_ascii": ("café sign — letters melt", "the café sign’s letters melt"),
}

ISOTONIC_INPUTS = {
    "pools_violators": ([0.1, 0.2, 0.3, 0.8, 0.9], [T, F, F, T, T]),
    "ties_constant": ([0.5, 0.5, 0.5, 0.5], [T, F, T, T]),
    "monotone": ([0.1, 0.4, 0.6, 0.9], [F, F, T, T]),
    "decreasing": ([0.1, 0.4, 0.6, 0.9], [T, T, F, F]),
    "unsorted_input": ([0.9, 0.1, 0.6, 0.4], [T, F, T, F]),
    "ties_non_monotone": ([0.2, 0.2, 0.5, 0.5, 0.5, 0.8, 0.8], [T, F, F, F, T, T, F]),
    "zeros_and_ones": ([0.0, 0.0, 1.0, 1.0, 0.5], [F, T, T, F, T]),
    "single_point": ([0.3], [T]),
    "equal_adjacent_blocks": ([0.05, 0.1, 0.2, 0.3, 0.4, 0.5], [F, T, F, T, F, T]),
    "float_ties": ([0.1, 0.1, 0.1, 0.1, 0.7], [F, F, F, T, T]),
    "rounded_ties_80": rounded(80, seed=6, digits=2),
    "synthetic_120": overconfident_scores(120, 2.5, seed=7),
}

TEMPERATURE_INPUTS = {
    "overconfident_300": overconfident_scores(300, 2.5, seed=8),
    "underconfident_300": overconfident_scores(300, 0.5, seed=9),
    "calibrated_300": overconfident_scores(300, 1.0, seed=10),
    "with_zeros_and_ones": ([0.0, 1.0, 0.9, 0.2, 0.7, 0.4, 1.0, 0.0], [F, T, T, F, F, T, F, T]),
    "separated": ([0.6, 0.7, 0.3, 0.4], [T, T, F, F]),
    "wrong_everywhere": ([0.9, 0.8, 0.1, 0.2], [F, F, T, T]),
    "flat_half": ([0.5] * 10, [T, F] * 5),
}

LOG_LOSS_INPUTS = {
    "mixed": ([0.9, 0.2, 0.6, 0.5], [T, F, F, T]),
    "zeros_and_ones_clipped": ([0.0, 1.0, 0.0, 1.0], [F, T, T, F]),
    "single": ([0.3], [T]),
    "synthetic_200": overconfident_scores(200, 2.0, seed=11),
    "empty": ([], []),
}

FIT_INPUTS = {
    "overconfident_auto": (*overconfident_scores(400, 3.0, seed=12), "auto"),
    "isotonic_forced": (*overconfident_scores(300, 2.0, seed=13), "isotonic"),
    "temperature_forced": (*overconfident_scores(300, 0.6, seed=14), "temperature"),
    "rounded_auto": (*rounded(200, seed=15, digits=1), "auto"),
}

SUMMARY_RECORDS = [  # (label, decision, p_ai, reason, source)
    (AI, AI, 0.93, None, "gen-a"),
    (AI, AI, 0.71, None, "gen-a"),
    (AI, "uncertain", 0.55, "low_confidence", "gen-a"),
    (AI, REAL, 0.2, None, "gen-b"),
    (AI, "uncertain", None, "unparseable_examine", "gen-b"),
    (AI, "error", None, None, "gen-b"),
    (REAL, REAL, 0.05, None, "camera"),
    (REAL, REAL, 0.3, None, "camera"),
    (REAL, AI, 0.81, None, "camera"),
    (REAL, "uncertain", 0.5, "low_confidence", "camera"),
    (REAL, REAL, 0.0, None, "site"),
    (REAL, AI, 1.0, None, "site"),
]


def summary_predictions():
    Prediction = metrics.Prediction

    return [
        Prediction(event_id=f"e{i}", label=y, decision=d, p_ai=p, reason=r, source=s)
        for i, (y, d, p, r, s) in enumerate(SUMMARY_RECORDS)
    ]


# ---- outputs of the previous implementation on the inputs above ----

OLD_AUROC = {
    "perfect": 1.0,
    "reversed": 0.0,
    "all_tied": 0.5,
    "partial_ties": 0.625,
    "one_positive_tied": 0.375,
    "zeros_and_ones": 0.6666666666666666,
    "rounded_ties_60": 0.7528280542986425,
    "synthetic_500": 0.8294697745901639,
    "one_class_positive": None,
    "one_class_negative": None,
    "single": None,
    "empty": None,
}

OLD_PRF = {
    "half": {"precision": 0.5, "recall": 0.5, "f1": 0.5},
    "perfect": {"precision": 1.0, "recall": 1.0, "f1": 1.0},
    "abstain_on_positive": {"precision": 1.0, "recall": 0.5, "f1": 0.6666666666666666},
    "no_positive_predicted": {"precision": None, "recall": 0.0, "f1": 0.0},
    "no_positive_anywhere": {"precision": None, "recall": None, "f1": None},
    "only_false_positives": {"precision": 0.0, "recall": None, "f1": 0.0},
    "all_uncertain": {"precision": None, "recall": 0.0, "f1": 0.0},
    "all_error": {"precision": None, "recall": 0.0, "f1": 0.0},
    "errors_on_positives": {"precision": 0.5, "recall": 0.3333333333333333, "f1": 0.4},
    "mixed_12": {"precision": 0.6, "recall": 0.5, "f1": 0.5454545454545454},
    "empty": {"precision": None, "recall": None, "f1": None},
}

OLD_BINS = {
    "two_bins_of_10": {"filled": [(1, 2, 0.1, 0.0), (9, 2, 0.9, 1.0)], "ece": 0.09999999999999999},
    "one_bin_of_10": {"filled": [(7, 4, 0.7, 0.75)], "ece": 0.050000000000000044},
    "halves": {"filled": [(0, 1, 0.25, 1.0), (1, 1, 0.75, 0.0)], "ece": 0.75},
    "single_bin": {"filled": [(0, 4, 0.5, 0.5)], "ece": 0.0},
    "one_in_last_bin": {"filled": [(9, 2, 0.975, 1.0)], "ece": 0.025000000000000022},
    "edges_of_10": {
        "filled": [
            (0, 1, 0.0, 1.0),
            (1, 1, 0.1, 0.0),
            (2, 1, 0.2, 1.0),
            (3, 1, 0.3, 0.0),
            (4, 1, 0.4, 1.0),
            (5, 1, 0.5, 0.0),
            (6, 1, 0.6, 1.0),
            (7, 1, 0.7, 0.0),
            (8, 1, 0.8, 1.0),
            (9, 2, 0.95, 0.5),
        ],
        "ece": 0.5,
    },
    "decimal_edges_of_10": {
        "filled": [
            (1, 1, 0.1, 1.0),
            (2, 1, 0.2, 0.0),
            (3, 1, 0.3, 1.0),
            (6, 1, 0.6, 0.0),
            (7, 1, 0.7, 1.0),
            (9, 1, 0.9, 0.0),
        ],
        "ece": 0.6,
    },
    "edges_of_100": {
        "filled": [
            (0, 1, 0.0, 0.0),
            (1, 1, 0.01, 0.0),
            (28, 1, 0.29, 1.0),
            (30, 1, 0.3, 0.0),
            (50, 1, 0.5, 1.0),
            (56, 1, 0.57, 1.0),
            (99, 2, 0.995, 1.0),
        ],
        "ece": 0.24500000000000002,
    },
    "thirds": {
        "filled": [(0, 1, 0.0, 0.0), (1, 3, 0.39111111111111113, 0.6666666666666666), (2, 1, 0.6666666666666666, 0.0)],
        "ece": 0.29866666666666664,
    },
    "zeros_and_ones": {"filled": [(0, 2, 0.0, 0.5), (9, 2, 1.0, 1.0)], "ece": 0.25},
    "all_uncertain_half": {"filled": [(5, 6, 0.5, 0.3333333333333333)], "ece": 0.16666666666666669},
    "many_bins_1000": {
        "filled": [
            (26, 1, 0.026917628111963694, 0.0),
            (32, 1, 0.03212948954225154, 0.0),
            (43, 1, 0.0432522588416336, 0.0),
            (89, 1, 0.08925448269591545, 0.0),
            (90, 1, 0.0909973388447074, 0.0),
            (116, 1, 0.11627603025811906, 0.0),
            (141, 1, 0.14178185124338338, 0.0),
            (169, 2, 0.16968474081246745, 0.0),
            (196, 1, 0.1967275983751745, 0.0),
            (215, 1, 0.21540658200615703, 0.0),
            (238, 1, 0.23858875941668548, 0.0),
            (341, 1, 0.34167979338954463, 0.0),
            (357, 1, 0.3572710039441125, 1.0),
            (469, 1, 0.4694623848818243, 1.0),
            (486, 1, 0.48683957729779553, 1.0),
            (522, 1, 0.5229652991235355, 1.0),
            (537, 1, 0.5378342301999337, 0.0),
            (573, 1, 0.5734373805199863, 1.0),
            (591, 1, 0.5915898402319412, 1.0),
            (621, 1, 0.6219627543690377, 1.0),
            (667, 1, 0.6679263330757071, 1.0),
            (687, 1, 0.6875825565241496, 1.0),
            (701, 1, 0.7018519494489325, 1.0),
            (712, 1, 0.7121731132482537, 1.0),
            (716, 1, 0.7161468700588527, 0.0),
            (719, 1, 0.7196449445225405, 0.0),
            (734, 1, 0.7340331472513644, 0.0),
            (739, 1, 0.7399958903401609, 1.0),
            (749, 1, 0.7496395552505808, 1.0),
            (836, 1, 0.8360874618918047, 1.0),
            (874, 1, 0.8744359615894316, 0.0),
            (889, 1, 0.8893269725403724, 0.0),
            (903, 1, 0.9037877999480121, 1.0),
            (921, 1, 0.9216510690071935, 0.0),
            (949, 2, 0.949653558155603, 1.0),
            (953, 1, 0.953661933332059, 1.0),
            (984, 1, 0.9841953241413025, 1.0),
            (988, 1, 0.9883802560005314, 1.0),
        ],
        "ece": 0.3204334239909807,
    },
    "synthetic_15": {
        "filled": [
            (0, 70, 0.024545122794470582, 0.11428571428571428),
            (1, 34, 0.09317578932485862, 0.2647058823529412),
            (2, 21, 0.16798650598680023, 0.47619047619047616),
            (3, 27, 0.23614938529801693, 0.2962962962962963),
            (4, 10, 0.30520079208982426, 0.5),
            (5, 12, 0.3634824088860336, 0.5),
            (6, 19, 0.43144826511803425, 0.6842105263157895),
            (7, 10, 0.500192331831209, 0.7),
            (8, 15, 0.5652229432800263, 0.4666666666666667),
            (9, 21, 0.6308604047411162, 0.5238095238095238),
            (10, 17, 0.6999973653668922, 0.35294117647058826),
            (11, 25, 0.7687202523856729, 0.6),
            (12, 21, 0.8349275861647786, 0.6666666666666666),
            (13, 33, 0.8971881558857592, 0.7272727272727273),
            (14, 65, 0.9791836957991211, 0.8461538461538461),
        ],
        "ece": 0.1555722005144083,
    },
    "empty": {"filled": [], "ece": None},
}

OLD_CONFUSION = {
    "mixed": {
        "ai_generated": {"ai_generated": 1, "real": 1, "uncertain": 0, "error": 1},
        "real": {"ai_generated": 1, "real": 0, "uncertain": 2, "error": 0},
    },
    "all_uncertain": {
        "ai_generated": {"ai_generated": 0, "real": 0, "uncertain": 1, "error": 0},
        "real": {"ai_generated": 0, "real": 0, "uncertain": 1, "error": 0},
    },
    "empty": {
        "ai_generated": {"ai_generated": 0, "real": 0, "uncertain": 0, "error": 0},
        "real": {"ai_generated": 0, "real": 0, "uncertain": 0, "error": 0},
    },
}

OLD_BLEU = {
    "identical": 1.0,
    "short": 0.1353352832366127,
    "clipped_repeats": 0.3333333333333333,
    "sentence_period": 0.3003723059100852,
    "one_token": 0.36787944117144233,
    "unrelated": 0.0,
    "unrelated_sentences": 0.0,
    "empty_candidate": 0.0,
    "empty_reference": 0.0,
    "both_empty": 0.0,
    "whitespace_only": 0.0,
    "punctuation_only": 1.0,
    "case": 1.0,
    "longer_candidate": 0.3520893951097652,
    "explanation": 0.5236775984771683,
    "commas_and_colons": 0.565685424949238,
    "hyphen": 0.5532833351724881,
    "apostrophe": 0.6085806194501846,
    "decimal_number": 0.6666666666666666,
    "underscore": 0.7071067811865476,
    "non_ascii": 0.46441135082625445,
}

OLD_TOKENS = {
    "identical": ["the", "cat", "sat", "on", "the", "mat"],
    "short": ["the", "cat"],
    "clipped_repeats": ["the", "the", "the"],
    "sentence_period": ["six", "fingers", "."],
    "one_token": ["cat"],
    "unrelated": ["dog"],
    "unrelated_sentences": ["a", "sunny", "beach", "at", "noon"],
    "empty_candidate": [],
    "empty_reference": ["cat"],
    "both_empty": [],
    "whitespace_only": [],
    "punctuation_only": ["!"],
    "case": ["six", "fingers", "on", "the", "hand"],
    "longer_candidate": ["the", "left", "hand", "clearly", "has", "six", "fingers", "and", "a", "melted", "ring"],
    "explanation": [
        "the",
        "crops",
        "show",
        "six",
        "fingers",
        "on",
        "the",
        "left",
        "hand",
        ",",
        "and",
        "the",
        "text",
        "on",
        "the",
        "sign",
        "is",
        "garbled",
        ".",
    ],
    "commas_and_colons": ["hands", ":", "six", "fingers", ",", "odd", ";", "text", ":", "garbled"],
    "hyphen": ["ai", "-", "generated", "face", "with", "odd", "teeth"],
    "apostrophe": ["the", "man", "'", "s", "hands", "don", "'", "t", "match"],
    "decimal_number": ["about", "3", ".", "5", "fingers", "visible"],
    "underscore": ["verdict", "ai_generated"],
    "non_ascii": ["café", "sign", "—", "letters", "melt"],
}

OLD_ISOTONIC = {
    "pools_violators": ([0.20000000000000004, 0.8, 0.9], [0.3333333333333333, 1.0, 1.0]),
    "ties_constant": ([0.0, 1.0], [0.75, 0.75]),
    "monotone": ([0.1, 0.4, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]),
    "decreasing": ([0.0, 1.0], [0.5, 0.5]),
    "unsorted_input": ([0.1, 0.4, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]),
    "ties_non_monotone": ([0.35, 0.65, 0.8], [0.25, 0.5, 1.0]),
    "zeros_and_ones": ([0.0, 0.75, 1.0], [0.5, 0.5, 1.0]),
    "single_point": ([0.0, 1.0], [1.0, 1.0]),
    "equal_adjacent_blocks": ([0.05, 0.15000000000000002, 0.35, 0.5], [0.0, 0.5, 0.5, 1.0]),
    "float_ties": ([0.10000000000000002, 0.1, 0.7], [0.0, 1.0, 1.0]),
    "rounded_ties_80": (
        [
            0.0,
            0.01,
            0.02,
            0.03,
            0.10142857142857144,
            0.22250000000000003,
            0.355625,
            0.5942105263157894,
            0.8291304347826087,
            0.98,
            1.0,
        ],
        [0.0, 0.0, 0.0, 0.0, 0.14285714285714285, 0.375, 0.4375, 0.6842105263157895, 0.7391304347826086, 1.0, 1.0],
    ),
    "synthetic_120": (
        [
            7.920589566896166e-05,
            0.0006140069763227314,
            0.0008042568545777167,
            0.0009556030098713472,
            0.0011214021261223399,
            0.0014430093908945852,
            0.0017565998990304746,
            0.0019310962480684104,
            0.00410080615329503,
            0.007920507592467376,
            0.02153695428550542,
            0.03315300166125792,
            0.1753421978991075,
            0.6928170340474304,
            0.9123275442335348,
            0.9277688853920871,
            0.9711665663898239,
            0.9925968095466986,
            0.9948719503722606,
            0.994907439781553,
            0.9952308416030852,
            0.9955137434231297,
            0.9962326216716588,
            0.9962842237938238,
            0.9971319305785297,
            0.9976191125203712,
            0.9998897557591504,
        ],
        [
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.16666666666666666,
            0.3333333333333333,
            0.3333333333333333,
            0.42857142857142855,
            0.5555555555555556,
            0.6,
            0.6666666666666666,
            0.8571428571428571,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
    ),
}

OLD_TEMPERATURE = {
    "overconfident_300": 2.254029,
    "underconfident_300": 0.656904,
    "calibrated_300": 0.756036,
    "with_zeros_and_ones": 50.0,
    "separated": 0.02,
    "wrong_everywhere": 50.0,
    "flat_half": 0.02,
}

OLD_LOG_LOSS = {
    "mixed": 0.48448549485153414,
    "zeros_and_ones_clipped": 4.6052201884882855,
    "single": 1.2039728043259361,
    "synthetic_200": 0.7139866846334794,
    "empty": None,
}

OLD_FITS = {
    "overconfident_auto": {
        "method": "temperature",
        "temperature": 3.117068,
        "isotonic_x": [],
        "isotonic_y": [],
        "reason": "temperature: lowest held-out log loss (0.5380) over 5 folds",
        "heldout": {
            "identity": {"nll": 0.771716952850433, "ece": 0.18693550163262965},
            "temperature": {"nll": 0.5380347553724859, "ece": 0.06340349002806735},
            "isotonic": {"nll": 0.5570308382771956, "ece": 0.0520103503640861},
        },
    },
    "isotonic_forced": {
        "method": "isotonic",
        "temperature": 1.0,
        "isotonic_x": [
            0.0001388546290044063,
            0.00018892132184742086,
            0.001232577118983307,
            0.0016135987155245213,
            0.0021023694098139057,
            0.0027252163472127394,
            0.002778784895281673,
            0.002869568135422545,
            0.003327648411861909,
            0.0052792289631870114,
            0.005373882767395957,
            0.005662279795754601,
            0.006047170063388348,
            0.006335885669237837,
            0.00659852100460883,
            0.007233474846214503,
            0.007567742711297422,
            0.0076749938995325576,
            0.007750377498842026,
            0.009036468124867587,
            0.009760431708927389,
            0.014364113332542623,
            0.022692285836907286,
            0.0669642714474556,
            0.21111012307009208,
            0.4145018191861905,
            0.5894558013506065,
            0.7247447845697934,
            0.8573669624147909,
            0.9485823411823665,
            0.985087956296868,
            0.9966346813303162,
            0.9978584671800493,
            0.99881862553382,
            0.9993247809795749,
        ],
        "isotonic_y": [
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.125,
            0.16666666666666666,
            0.17073170731707318,
            0.32142857142857145,
            0.4583333333333333,
            0.6,
            0.6153846153846154,
            0.6744186046511628,
            0.8333333333333334,
            0.88,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        "reason": "as configured",
        "heldout": {"isotonic": {"nll": 0.5890463613972061, "ece": 0.0544641397395486}},
    },
    "temperature_forced": {
        "method": "temperature",
        "temperature": 0.628405,
        "isotonic_x": [],
        "isotonic_y": [],
        "reason": "as configured",
        "heldout": {"temperature": {"nll": 0.524212308714625, "ece": 0.03283112284000954}},
    },
    "rounded_auto": {
        "method": "isotonic",
        "temperature": 1.0,
        "isotonic_x": [
            0.06000000000000001,
            0.18125000000000002,
            0.2761904761904761,
            0.42250000000000004,
            0.557142857142857,
            0.6437499999999998,
            0.7315789473684212,
            0.8266666666666668,
            0.9107142857142858,
            1.0,
        ],
        "isotonic_y": [
            0.04,
            0.1875,
            0.23809523809523808,
            0.3,
            0.42857142857142855,
            0.5625,
            0.6842105263157895,
            0.7333333333333333,
            0.8928571428571429,
            1.0,
        ],
        "reason": "isotonic: lowest held-out log loss (0.7139) over 5 folds",
        "heldout": {
            "identity": {"nll": 0.7266109416452625, "ece": 0.09699999999999989},
            "temperature": {"nll": 0.7476860527358892, "ece": 0.11663995144490913},
            "isotonic": {"nll": 0.7139480048240927, "ece": 0.07092289630007399},
        },
    },
}

OLD_SUMMARY = {
    "count": 12,
    "accuracy": 0.4166666666666667,
    "coverage": 0.6666666666666666,
    "selective_accuracy": 0.625,
    "precision": 0.5,
    "recall": 0.3333333333333333,
    "f1": 0.4,
    "auroc": 0.625,
    "ece": 0.32300000000000006,
    "scored": 10,
    "mean_box_iou": None,
    "box_records": 0,
    "parse_failure_rate": 0.08333333333333333,
    "uncertain_rate": 0.25,
    "error_rate": 0.08333333333333333,
    "labels": {"ai_generated": 6, "real": 6},
    "confusion": {
        "ai_generated": {"ai_generated": 2, "real": 1, "uncertain": 2, "error": 1},
        "real": {"ai_generated": 2, "real": 3, "uncertain": 1, "error": 0},
    },
}

OLD_PER_SOURCE_ECE = {"camera": 0.41500000000000004, "gen-a": 0.26999999999999996, "gen-b": 0.8, "site": 0.5}


# ---- rows where the new number differs from the old one, and why ----

# 13a tokenisation instead of the old regex (see zoomguard/training/bleu.py): (new score, why)
BLEU_CHANGED: dict[str, tuple[float, str]] = {
    "explanation": (0.4707511531578505, "13a keeps \"sign's\" one token, so it no longer matches 'sign'"),
    "hyphen": (0.32838841542924935, "13a keeps 'ai-generated' one token: it matches neither 'ai' nor 'generated'"),
    "apostrophe": (0.5672333048200775, '13a keeps "man\'s", "don\'t" whole: fewer tokens, a brevity penalty now'),
    "decimal_number": (0.49999999999999994, "13a keeps '3.5' one token: 2 of 4 words match instead of 4 of 6 tokens"),
    "underscore": (0.8660254037844388, "13a splits 'ai_generated' into ai _ generated: two shared bigrams appear"),
    "non_ascii": (0.4898979485566357, "13a leaves the curly apostrophe in 'sign’s'; the old regex split it off"),
}
# The old PAV pooled a tied p into the last block only while that block's mean p still equalled it: once
# the first of the ties had been pooled with a lower p, the rest of them started new blocks, so equal raw
# values could get different calibrated values (and three 0.1s summed to a mean of 0.10000000000000002,
# which left breakpoints out of order). np.unique pools ties exactly; sklearn then fits the pooled means.
ISOTONIC_CHANGED: dict[str, tuple[tuple[list[float], list[float]], str]] = {
    "ties_non_monotone": (([0.38, 0.8], [0.4, 0.5]), "the three 0.5s were split over two blocks (0.25 and 1.0)"),
    "zeros_and_ones": (
        ([0.0, 0.8333333333333334], [0.5, 0.6666666666666666]),
        "the two 1.0s were split over two blocks (0.5 and 1.0)",
    ),
    "float_ties": (([0.1, 0.7], [0.25, 1.0]), "0.1 x 3 / 3 != 0.1: the fourth 0.1 got its own block, out of order"),
    "rounded_ties_80": (
        (
            [
                0.0,
                0.01,
                0.02,
                0.03,
                0.10142857142857144,
                0.31124999999999997,
                0.618695652173913,
                0.8614285714285714,
                1.0,
            ],
            [0.0, 0.0, 0.0, 0.0, 0.14285714285714285, 0.4166666666666667, 0.6956521739130435, 0.7619047619047619, 1.0],
        ),
        "ties at several p were split over blocks",
    ),
}
# The old golden-section search broke ties towards the low end, Brent stops wherever the loss stopped moving.
TEMPERATURE_CHANGED: dict[str, tuple[float, str]] = {
    "separated": (0.039952, "every p is clipped at 1e-4 for T below ~0.05: the loss is flat there, any T minimises"),
    "flat_half": (49.999996, "logit(0.5) = 0: the loss does not depend on T at all"),
}
# A fit over tied p (scores rounded to 0.1): the isotonic fix above changes the fitted curve and its score.
FIT_CHANGED: dict[str, tuple[dict[str, Any], str]] = {
    "rounded_auto": (
        {
            "method": "isotonic",
            "temperature": 1.0,
            "isotonic_x": [0.0, 0.1, 0.2, 0.39838709677419354, 0.6, 0.745945945945946, 0.9236842105263158],
            "isotonic_y": [
                0.1,
                0.16666666666666666,
                0.2777777777777778,
                0.2903225806451613,
                0.5294117647058824,
                0.6486486486486487,
                0.8157894736842105,
            ],
            "reason": "isotonic: lowest held-out log loss (0.6090) over 5 folds",
            "heldout": {
                "identity": {"nll": 0.7266109416452626, "ece": 0.09699999999999989},
                "temperature": {"nll": 0.7476860527358895, "ece": 0.11663995144490916},
                "isotonic": {"nll": 0.6090260296055997, "ece": 0.04016594367288162},
            },
        },
        "ties pooled exactly: held-out log loss of isotonic 0.7139 -> 0.6090, ECE 0.071 -> 0.040",
    ),
}
# T's last (sixth) decimal may flip in a fold (see TEMPERATURE_TOLERANCE): the held-out scores move by ~1e-8.
HELDOUT_TEMPERATURE_TOLERANCE = 1e-7


def same(new: Any, old: Any, tolerance: float = TOLERANCE) -> bool:
    """Equal structure, None where None, floats within `tolerance`, everything else exactly equal."""
    if old is None or new is None:
        return old is None and new is None
    if isinstance(old, dict):
        return isinstance(new, dict) and list(new) == list(old) and all(same(new[k], old[k], tolerance) for k in old)
    if isinstance(old, list | tuple):
        return len(new) == len(old) and all(same(a, b, tolerance) for a, b in zip(new, old, strict=True))
    if isinstance(old, float):  # a plain float: numpy scalars would leak into report.json and the registry
        return type(new) is float and math.isclose(new, old, abs_tol=tolerance)
    return bool(new == old) and type(new) is type(old)


@pytest.mark.parametrize("case", list(AUROC_INPUTS))
def test_auroc_matches_the_old_rank_formula(case: str) -> None:
    assert same(metrics.auroc(*AUROC_INPUTS[case]), OLD_AUROC[case])


@pytest.mark.parametrize("case", list(PRF_INPUTS))
def test_precision_recall_f1_match_the_old_counts(case: str) -> None:
    assert same(metrics.precision_recall_f1(*PRF_INPUTS[case]), OLD_PRF[case])


@pytest.mark.parametrize("case", list(BIN_INPUTS))
def test_reliability_bins_and_ece_match_the_old_bins(case: str) -> None:
    probabilities, positives, n = BIN_INPUTS[case]
    bins = metrics.reliability_bins(probabilities, positives, n)
    assert len(bins) == n
    assert all(b.lower == i / n and b.upper == (i + 1) / n for i, b in enumerate(bins))
    assert all(b.mean_p_ai is None and b.fraction_ai is None for b in bins if not b.count)
    filled = [(i, b.count, b.mean_p_ai, b.fraction_ai) for i, b in enumerate(bins) if b.count]
    assert same(filled, OLD_BINS[case]["filled"])
    assert same(metrics.expected_calibration_error(probabilities, positives, n), OLD_BINS[case]["ece"])


@pytest.mark.parametrize("case", list(CONFUSION_INPUTS))
def test_confusion_matches_the_old_counts(case: str) -> None:
    assert same(metrics.confusion(*CONFUSION_INPUTS[case]), OLD_CONFUSION[case])


def test_summary_and_per_source_match_the_old_ones() -> None:
    assert same(metrics.summarize(summary_predictions(), ece_bins=10), OLD_SUMMARY)
    per_source = metrics.per_source(summary_predictions(), 5)
    assert same({k: v["ece"] for k, v in per_source.items()}, OLD_PER_SOURCE_ECE)


@pytest.mark.parametrize("case", [c for c in BLEU_INPUTS if c not in BLEU_CHANGED])
def test_bleu2_matches_the_old_score(case: str) -> None:
    assert same(bleu2(*BLEU_INPUTS[case]), OLD_BLEU[case])
    assert tokenize(BLEU_INPUTS[case][0]) == OLD_TOKENS[case]


@pytest.mark.parametrize("case", list(BLEU_CHANGED))
def test_bleu2_rows_that_changed(case: str) -> None:
    new, _why = BLEU_CHANGED[case]
    got = bleu2(*BLEU_INPUTS[case])
    assert same(got, new) and not same(got, OLD_BLEU[case])


@pytest.mark.parametrize("case", [c for c in ISOTONIC_INPUTS if c not in ISOTONIC_CHANGED])
def test_isotonic_matches_the_old_pav(case: str) -> None:
    assert same(fit_isotonic(*ISOTONIC_INPUTS[case]), OLD_ISOTONIC[case])


@pytest.mark.parametrize("case", list(ISOTONIC_CHANGED))
def test_isotonic_rows_that_changed(case: str) -> None:
    new, _why = ISOTONIC_CHANGED[case]
    got = fit_isotonic(*ISOTONIC_INPUTS[case])
    assert same(got, new) and not same(got, OLD_ISOTONIC[case])


@pytest.mark.parametrize("case", [c for c in TEMPERATURE_INPUTS if c not in TEMPERATURE_CHANGED])
def test_temperature_matches_the_old_search(case: str) -> None:
    assert same(fit_temperature(*TEMPERATURE_INPUTS[case]), OLD_TEMPERATURE[case], TEMPERATURE_TOLERANCE)


@pytest.mark.parametrize("case", list(TEMPERATURE_CHANGED))
def test_temperature_rows_that_changed(case: str) -> None:
    new, _why = TEMPERATURE_CHANGED[case]
    got = fit_temperature(*TEMPERATURE_INPUTS[case])
    assert same(got, new, TEMPERATURE_TOLERANCE) and not same(got, OLD_TEMPERATURE[case], TEMPERATURE_TOLERANCE)


@pytest.mark.parametrize("case", list(LOG_LOSS_INPUTS))
def test_log_loss_matches_the_old_mean(case: str) -> None:
    assert same(log_loss(*LOG_LOSS_INPUTS[case]), OLD_LOG_LOSS[case])


def _fit_as_recorded(case: str) -> dict[str, Any]:
    p_ai, is_ai, method = FIT_INPUTS[case]
    fit = fit_calibration(p_ai, is_ai, method=method)
    c = fit.calibration
    return {
        "method": c.method,
        "temperature": c.temperature,
        "isotonic_x": c.isotonic_x,
        "isotonic_y": c.isotonic_y,
        "reason": fit.reason,
        "heldout": fit.heldout,
    }


def _same_fit(new: dict[str, Any], old: dict[str, Any]) -> bool:
    return (
        (new["method"], new["reason"]) == (old["method"], old["reason"])
        and same(new["temperature"], old["temperature"], TEMPERATURE_TOLERANCE)
        and same((new["isotonic_x"], new["isotonic_y"]), (old["isotonic_x"], old["isotonic_y"]))
        and list(new["heldout"]) == list(old["heldout"])
        and all(
            same(
                new["heldout"][m], old["heldout"][m], HELDOUT_TEMPERATURE_TOLERANCE if m == "temperature" else TOLERANCE
            )
            for m in old["heldout"]
        )
    )


@pytest.mark.parametrize("case", [c for c in FIT_INPUTS if c not in FIT_CHANGED])
def test_fitted_calibration_matches_the_old_one(case: str) -> None:
    assert _same_fit(_fit_as_recorded(case), OLD_FITS[case])


@pytest.mark.parametrize("case", list(FIT_CHANGED))
def test_fitted_calibration_rows_that_changed(case: str) -> None:
    new, _why = FIT_CHANGED[case]
    got = _fit_as_recorded(case)
    assert _same_fit(got, new) and not _same_fit(got, OLD_FITS[case])


@pytest.mark.parametrize("case", list(ISOTONIC_INPUTS))
def test_isotonic_breakpoints_lie_on_sklearns_fit(case: str) -> None:
    """An independent check of the ties and the pooling: each breakpoint is on IsotonicRegression's curve."""
    from sklearn.isotonic import IsotonicRegression

    p_ai, is_ai = ISOTONIC_INPUTS[case]
    xs, ys = fit_isotonic(p_ai, is_ai)
    reference = IsotonicRegression(out_of_bounds="clip").fit(p_ai, [float(y) for y in is_ai])
    assert all(b > a for a, b in itertools.pairwise(xs))
    assert reference.predict(xs).tolist() == pytest.approx(ys, abs=1e-12)


# ---- the charts (matplotlib) and where the libraries may be imported ----


def test_charts_are_plausible_pngs(tmp_path: Path) -> None:
    bins = metrics.reliability_bins(*BIN_INPUTS["synthetic_15"][:2], 15)
    table = metrics.confusion(*CONFUSION_INPUTS["mixed"])
    drawn = {
        reliability_diagram(bins, tmp_path / "a" / "reliability.png"): RELIABILITY_SIZE,
        confusion_matrix(table, tmp_path / "confusion.png", title="Confusion: v7"): CONFUSION_SIZE,
        reliability_diagram(metrics.reliability_bins([], [], 10), tmp_path / "empty.png"): RELIABILITY_SIZE,
    }
    for path, size in drawn.items():
        assert 5_000 < path.stat().st_size < 500_000, path
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == size
            colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
        assert (255, 255, 255) in colours and len(colours) > 20  # a white page with drawing (and anti-aliasing) on it
    with Image.open(tmp_path / "a" / "reliability.png") as image:
        pixels = set(image.convert("RGB").getdata())
    assert (0x46, 0x78, 0xC8) in pixels  # the bars' fill


ISOLATION_SCRIPT = """
import sys
from pathlib import Path
import zoomguard.cli, zoomguard.app.config, zoomguard.commands.run, zoomguard.commands.evaluate, zoomguard.commands.promote
import zoomguard.detector.calibration, zoomguard.detector.zoomin, zoomguard.app.worker_service
LIBRARIES = {"sklearn", "scipy", "matplotlib", "sacrebleu"}
print(sorted(LIBRARIES & {name.split(".")[0] for name in sys.modules}))
from zoomguard.evaluation.charts import confusion_matrix, reliability_diagram
from zoomguard.evaluation.scores import confusion, reliability_bins
reliability_diagram(reliability_bins([0.2, 0.9], [False, True], 10), Path(sys.argv[1]) / "r.png")
confusion_matrix(confusion(["real"], ["uncertain"]), Path(sys.argv[1]) / "c.png")
print("matplotlib.pyplot" in sys.modules)
"""


def test_the_libraries_stay_in_the_learning_loop(tmp_path: Path) -> None:
    """The CLI and the worker import none of them (a worker image has no train extra); charts never use pyplot."""
    done = subprocess.run(
        [sys.executable, "-c", ISOLATION_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "False"], done.stdout + done.stderr
