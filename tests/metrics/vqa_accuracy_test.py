import itertools
import re

import pytest

from keras_mm.metrics import normalize_vqa_answer, vqa_accuracy

# ---- Reference: the official GT-Vision-Lab/VQA vqaEval.py logic, line by line. ----
CONTRACTIONS = {
    "dont": "don't",
    "isnt": "isn't",
    "whats": "what's",
    "cant": "can't",
    "Im": "I'm",
    "youre": "you're",
}  # the subset the fixtures use
MANUAL_MAP = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = ["a", "an", "the"]
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]


def process_punctuation(in_text):
    out_text = in_text
    for p in PUNCT:
        if (p + " " in in_text or " " + p in in_text) or (
            re.search(COMMA_STRIP, in_text) is not None
        ):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    out_text = PERIOD_STRIP.sub("", out_text, re.UNICODE)
    return out_text


def process_digit_article(in_text):
    out_text = []
    for word in in_text.lower().split():
        word = MANUAL_MAP.setdefault(word, word)
        if word not in ARTICLES:
            out_text.append(word)
    for word_id, word in enumerate(out_text):
        if word in CONTRACTIONS:
            out_text[word_id] = CONTRACTIONS[word]
    return " ".join(out_text)


def official_accuracy(res_ans, gt_answers):
    answers = [{"answer": a, "answer_id": i + 1} for i, a in enumerate(gt_answers)]
    res_ans = res_ans.replace("\n", " ").replace("\t", " ").strip()
    res_ans = process_digit_article(process_punctuation(res_ans))
    if len(set(gt_answers)) > 1:
        for ans in answers:
            ans["answer"] = process_punctuation(ans["answer"])
    # The average over the C(10, 9) subsets of 9 humans, as the paper states it.
    accs = []
    for subset in itertools.combinations(answers, len(answers) - 1):
        matching = [item for item in subset if item["answer"] == res_ans]
        accs.append(min(1, len(matching) / 3))
    return sum(accs) / len(accs)


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("Two", "2"),
        ("the dog.", "dog"),
        ("A Cat", "cat"),
        ("dont know", "don't know"),
        ("none", "0"),
        ("3.5", "3.5"),
        ("3,000", "3000"),
        ("yes!", "yes"),
        ("black/white", "black white"),
        ("black / white", "black white"),
        ("  red\tand\nblue  ", "red and blue"),
        ("an eight-year-old", "8 year old"),
        ("ten.", "10"),
        ("Im here", "im here"),  # lower-cased first: the "Im" entry never fires
    ],
)
def test_normalisation_fixtures(raw, normalized):
    assert normalize_vqa_answer(raw) == normalized


def test_hand_computed_accuracies():
    # 2 of 10 humans: each 9-subset holds 1 or 2 matches -> (2*1/3 + 8*2/3)/10.
    assert vqa_accuracy(["2"], [["2"] * 2 + ["3"] * 8]) == pytest.approx(0.6)
    # 3 of 10: 3 subsets hold 2 matches, 7 hold 3 -> (3*2/3 + 7)/10 = 0.9.
    assert vqa_accuracy(["cat"], [["cat"] * 3 + ["dog"] * 7]) == pytest.approx(0.9)
    assert vqa_accuracy(["cat"], [["cat"] * 4 + ["dog"] * 6]) == pytest.approx(1.0)
    assert vqa_accuracy(["cow"], [["cat"] * 10]) == 0.0
    assert vqa_accuracy(["Two."], [["2"] * 10]) == 1.0  # prediction normalised
    mean, per = vqa_accuracy(
        ["2", "cow"], [["2"] * 10, ["cat"] * 10], return_per_question=True
    )
    assert mean == 0.5 and per.tolist() == [1.0, 0.0]


def test_matches_official_reference_on_varied_answers():
    cases = [
        ("yes", ["yes"] * 10),
        ("Yes", ["yes"] * 7 + ["no"] * 3),
        ("two", ["2"] * 5 + ["two"] * 3 + ["3", "4"]),
        (
            "black and white",
            ["black and white"] * 2 + ["black/white"] * 4 + ["black & white"] * 4,
        ),
        ("skateboarding", ["skateboarding"] + ["skateboard"] * 9),
        ("3,000", ["3000"] * 4 + ["3,000"] * 6),
        ("dont know", ["don't know"] * 3 + ["dont know"] * 7),
        ("the red one", ["red"] * 6 + ["red one"] * 4),
        ("red one", ["red one!"] * 2 + ["red"] * 8),
        ("none", ["0"] * 3 + ["none"] * 7),
    ]
    for pred, gts in cases:
        assert vqa_accuracy([pred], [gts]) == pytest.approx(
            official_accuracy(pred, gts)
        ), (pred, gts)
    preds, gts = zip(*cases)
    mean = sum(official_accuracy(p, g) for p, g in cases) / len(cases)
    assert vqa_accuracy(list(preds), list(gts)) == pytest.approx(mean)


@pytest.mark.parametrize(
    "preds, answers, message",
    [
        ("yes", [["yes"]], "single string"),
        (["yes"], [], "same length"),
        ([3], [["yes"]], r"predictions\[0\]"),
        (["yes"], [[]], r"answers\[0\]"),
        (["yes"], ["yes"], r"answers\[0\]"),
    ],
)
def test_rejects_bad_inputs(preds, answers, message):
    with pytest.raises(ValueError, match=message):
        vqa_accuracy(preds, answers)
    with pytest.raises(ValueError, match="answer"):
        normalize_vqa_answer(None)
