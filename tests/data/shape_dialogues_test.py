import doctest

import numpy as np
import pytest

from keras_mm.data import shape_dialogues
from keras_mm.data.shape_dialogues import load_shape_dialogues

PHRASES = {"left": "on the left", "middle": "in the middle", "right": "on the right"}


@pytest.fixture(scope="module")
def data():
    return load_shape_dialogues(num_train=60, num_test=20, seed=2)


def _decode(ids, vocab):
    return " ".join(vocab[i] for i in ids if i != 0)


def _oracle_answer(scene, history_questions, question):
    """Answer `question` from the scene; "it" is the object that the latest
    naming question of the dialogue (this one or an earlier one) was about."""

    def named(q):
        words = q.split()
        if q.startswith("what colour is the "):
            return next(o for o in scene if o[1] == words[4])
        if q.startswith("what shape is ") and words[3] != "it":
            pos = {"left": "left", "middle": "middle", "right": "right"}[words[-2]]
            return next(o for o in scene if o[2] == pos)
        return None

    subject = None
    for q in history_questions + [question]:
        subject = named(q) or subject
    if question.startswith("what colour is the "):
        return subject[0]
    if question.startswith("what shape is") and "it" not in question.split():
        return subject[1]
    if question == "where is it ?":
        return PHRASES[subject[2]]
    if question == "what colour is it ?":
        return subject[0]
    if question == "what shape is it ?":
        return subject[1]
    if question == "how many shapes are there ?":
        return ("one", "two")[len(scene) - 1]
    _, _, _, color, shape, _ = question.split()
    return "yes" if any(o[:2] == (color, shape) for o in scene) else "no"


def test_structure_shapes_and_dtypes(data):
    vocab = data["vocabulary"]
    assert vocab[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"] and len(vocab) < 50
    assert len(data["answer_pool"]) == 14
    for split, n in (("train", 60 * 3), ("test", 20 * 3)):
        inputs = data[split]["inputs"]
        assert inputs["images"].shape == (n, 32, 32, 3)
        assert inputs["history_ids"].shape == (n, 24)
        assert inputs["question_ids"].shape == (n, 8)
        assert inputs["answer_ids"].shape == (n, 5)
        assert inputs["candidate_ids"].shape == (n, 10, 3)
        for key in ("history_ids", "question_ids", "answer_ids", "candidate_ids"):
            assert inputs[key].dtype == np.int32
            assert not np.any(inputs[key] == 1), key  # no unknown words
        assert data[split]["labels"].shape == (n,)
        assert data[split]["labels"].dtype == np.int32
        np.testing.assert_array_equal(data[split]["turn"], np.tile([0, 1, 2], n // 3))
        # All turns of a dialogue show the same image.
        images = inputs["images"].reshape(n // 3, 3, 32, 32, 3)
        np.testing.assert_array_equal(images[:, 0], images[:, 2])


def test_texts_token_ids_and_labels_agree(data):
    vocab = data["vocabulary"]
    for split in ("train", "test"):
        d = data[split]
        inputs = d["inputs"]
        for i in range(len(d["labels"])):
            assert _decode(inputs["history_ids"][i], vocab) == d["histories"][i]
            assert _decode(inputs["question_ids"][i], vocab) == d["questions"][i]
            answer = inputs["answer_ids"][i]
            assert answer[0] == 2 and _decode(answer[1:], vocab).endswith("[END]")
            assert _decode(answer[1:], vocab) == d["answers"][i] + " [END]"
            cands = [_decode(c, vocab) for c in inputs["candidate_ids"][i]]
            assert cands == d["candidates"][i]
            assert cands[d["labels"][i]] == d["answers"][i]
            assert len(set(cands)) == len(cands)


def test_answers_follow_scene_and_history(data):
    """An oracle that resolves "it" from the history gets every answer right."""
    pool = data["answer_pool"]
    same_type = [pool[:4], pool[4:7], pool[7:10], pool[10:12], pool[12:]]
    resolved_by_history = 0
    for split in ("train", "test"):
        d = data[split]
        for i in range(len(d["labels"])):
            scene = d["scenes"][d["scene_index"][i]]
            turn = d["turn"][i]
            earlier = d["questions"][i - turn : i]
            assert d["histories"][i] == " ".join(
                f"{q} {a} ." for q, a in zip(earlier, d["answers"][i - turn : i])
            )
            assert _oracle_answer(scene, earlier, d["questions"][i]) == d["answers"][i]
            # Every answer of the true answer's type is a candidate.
            group = next(g for g in same_type if d["answers"][i] in g)
            assert set(group) <= set(d["candidates"][i])
            if " it " in d["questions"][i] and len(scene) == 2:
                resolved_by_history += 1
    assert resolved_by_history > 10


def test_deterministic():
    a = load_shape_dialogues(num_train=5, num_test=2, seed=9)
    b = load_shape_dialogues(num_train=5, num_test=2, seed=9)
    for key, value in a["train"]["inputs"].items():
        np.testing.assert_array_equal(value, b["train"]["inputs"][key])
    assert a["train"]["questions"] == b["train"]["questions"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_turns": 0}, "num_turns"),
        ({"num_candidates": 4}, "num_candidates"),
        ({"num_candidates": 15}, "num_candidates"),
        ({"history_length": 5}, "history_length"),
        ({"answer_length": 3}, "answer_length"),
        ({"colors": ("red",)}, "colors"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_shape_dialogues(**{"num_train": 10, "num_test": 0, **kwargs})


def test_docstring_example_runs():
    result = doctest.testmod(shape_dialogues, verbose=False)
    assert result.attempted > 0 and result.failed == 0
