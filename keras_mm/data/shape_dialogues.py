"""Procedural multi-turn, image-grounded dialogues about shape scenes."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data._scenes import check_count
from keras_mm.data.encode_texts import encode_texts
from keras_mm.data.shape_captions import (
    DEFAULT_COLORS,
    DEFAULT_SHAPES,
    END_ID,
    PHRASES,
    POSITIONS,
    START_ID,
    encode_with_markers,
    render_scenes,
    sample_scenes,
    scene_vocabulary,
)
from keras_mm.data.shapes import COLORS, SHAPES, _check_names

COUNTS = ("one", "two")


def _answer_types(colors, shapes):
    return {
        "colour": list(colors),
        "shape": list(shapes),
        "position": [PHRASES[p] for p in POSITIONS],
        "count": list(COUNTS),
        "yes_no": ["yes", "no"],
    }


def _question_texts(colors, shapes):
    """Every question the generator can ask (for the vocabulary)."""
    texts = [f"what colour is the {s} ?" for s in shapes]
    texts += [f"what shape is {PHRASES[p]} ?" for p in POSITIONS]
    texts += ["where is it ?", "what colour is it ?", "what shape is it ?"]
    texts += ["how many shapes are there ?"]
    texts += [f"is there a {c} {s} ?" for c in colors for s in shapes]
    return texts


def _ask(rng, scene, subject, first, colors, shapes):
    """One (question, answer, answer type, new subject) for the scene."""
    kinds = ["colour_of", "shape_at"]
    if not first:
        kinds += ["where", "colour_it", "shape_it", "count", "is_there"]
    kind = kinds[rng.integers(len(kinds))]
    if kind in ("colour_of", "shape_at"):
        subject = scene[rng.integers(len(scene))]
        color, shape, position = subject
        if kind == "colour_of":
            return f"what colour is the {shape} ?", color, "colour", subject
        return f"what shape is {PHRASES[position]} ?", shape, "shape", subject
    color, shape, position = subject
    if kind == "where":
        return "where is it ?", PHRASES[position], "position", subject
    if kind == "colour_it":
        return "what colour is it ?", color, "colour", subject
    if kind == "shape_it":
        return "what shape is it ?", shape, "shape", subject
    if kind == "count":
        return "how many shapes are there ?", COUNTS[len(scene) - 1], "count", subject
    present = {(c, s) for c, s, _ in scene}
    if rng.random() < 0.5:
        c, s = sorted(present)[rng.integers(len(present))]
        return f"is there a {c} {s} ?", "yes", "yes_no", subject
    absent = [(c, s) for c in colors for s in shapes if (c, s) not in present]
    c, s = absent[rng.integers(len(absent))]
    return f"is there a {c} {s} ?", "no", "yes_no", subject


def _candidates(rng, answer, kind, types, pool, num_candidates):
    """`num_candidates` distinct answers: the truth, every answer of its type,
    then random others; shuffled. Returns (candidates, index of the truth)."""
    same = [a for a in types[kind] if a != answer]
    others = [a for a in pool if a != answer and a not in same]
    rng.shuffle(others)
    chosen = [answer] + same + others
    chosen = chosen[:num_candidates]
    order = rng.permutation(num_candidates)
    return [chosen[i] for i in order], int(np.flatnonzero(order == 0)[0])


@keras_mm_export("keras_mm.data.load_shape_dialogues")
def load_shape_dialogues(
    num_train=1000,
    num_test=200,
    num_turns=3,
    num_candidates=10,
    image_size=32,
    history_length=24,
    question_length=8,
    answer_length=5,
    colors=DEFAULT_COLORS,
    shapes=DEFAULT_SHAPES,
    noise=0.03,
    seed=0,
):
    """Load procedural image-grounded dialogues over shape scenes (VisDial-style).

    Every scene (one or two coloured shapes, as in
    `keras_mm.data.load_shape_captions`) gets a dialogue of `num_turns`
    question-answer turns. The first question names an object ("what colour
    is the circle ?" -> "red", "what shape is on the left ?" -> "square");
    later ones may refer back to it ("where is it ?" -> "on the left", "what
    colour is it ?"), or ask "how many shapes are there ?" ("one" / "two") or
    "is there a blue square ?" ("yes" / "no", half each). "it" is resolved
    only by the dialogue history, so a model must read image, history and
    question together.

    Each row is one turn. As in VisDial (Das et al., 2017) every turn has
    `num_candidates` candidate answers: the true one, every other answer of
    the same type (all colours for a colour question, ...) and random other
    answers, shuffled; `"labels"` is the index of the true one.

    Args:
        num_train: int. Training scenes (rows = scenes * num_turns).
        num_test: int. Held-out scenes (another random stream).
        num_turns: int >= 1. Turns per dialogue.
        num_candidates: int. Candidates per turn, 5 to 14 (the answer pool
            holds 14 answers with the default colours and shapes).
        image_size: int >= 16.
        history_length: int. Tokens of the history: the earlier turns as
            "question ? answer ." (zeros for the first turn).
        question_length: int. Tokens of the question.
        answer_length: int. Tokens of `"answer_ids"`, `[START] answer [END]`.
        colors: list of colour names; shapes: list of shape names.
        noise: float >= 0. Pixel noise.
        seed: int.

    Returns:
        A dict:
        - `"train"`, `"test"`: each with `"inputs"` = `{"images": (N, S, S,
          3) float32, "history_ids": (N, history_length) int32,
          "question_ids": (N, question_length) int32, "answer_ids": (N,
          answer_length) int32, "candidate_ids": (N, num_candidates, 3)
          int32}`, `"labels"` `(N,)` int32 (the true candidate), and the
          texts `"histories"`, `"questions"`, `"answers"`, `"candidates"`;
          `"scene_index"` and `"turn"` `(N,)` int32; `"scenes"`.
        - `"vocabulary"`, `"answer_pool"` (list of str), `"start_token_id"`,
          `"end_token_id"`, `"num_candidates"`.

    Example:

    >>> data = load_shape_dialogues(num_train=4, num_test=2, seed=1)
    >>> data["train"]["inputs"]["candidate_ids"].shape
    (12, 10, 3)
    >>> data["train"]["questions"][0], data["train"]["answers"][0]
    ('what shape is in the middle ?', 'circle')
    """
    num_train = check_count("num_train", num_train, 0)
    num_test = check_count("num_test", num_test, 0)
    num_turns = check_count("num_turns", num_turns, 1)
    image_size = check_count("image_size", image_size, 16)
    for arg, value in (
        ("history_length", history_length),
        ("question_length", question_length),
        ("answer_length", answer_length),
    ):
        check_count(arg, value, 1)
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0. Received: noise={noise!r}")
    colors = _check_names("colors", colors, COLORS)
    shapes = _check_names("shapes", shapes, SHAPES)
    types = _answer_types(colors, shapes)
    pool = [a for answers in types.values() for a in answers]
    num_candidates = check_count("num_candidates", num_candidates, 5)
    if num_candidates > len(pool):
        raise ValueError(
            f"`num_candidates` must be at most the answer pool size ({len(pool)}). "
            f"Received: num_candidates={num_candidates}"
        )
    vocabulary = scene_vocabulary(
        colors, shapes, _question_texts(colors, shapes) + pool + ["."]
    )
    out = {}
    for split_id, (split, n) in enumerate((("train", num_train), ("test", num_test))):
        rng = np.random.default_rng([seed, 202, split_id])
        scenes = sample_scenes(rng, n, colors, shapes, max_objects=2)
        images = render_scenes(rng, scenes, image_size, noise)
        rows = {k: [] for k in ("histories", "questions", "answers", "candidates")}
        labels, scene_index, turns = [], [], []
        for i, scene in enumerate(scenes):
            history, subject = [], None
            for t in range(num_turns):
                question, answer, kind, subject = _ask(
                    rng, scene, subject, t == 0, colors, shapes
                )
                candidates, label = _candidates(
                    rng, answer, kind, types, pool, num_candidates
                )
                rows["histories"].append(" ".join(history))
                rows["questions"].append(question)
                rows["answers"].append(answer)
                rows["candidates"].append(candidates)
                labels.append(label)
                scene_index.append(i)
                turns.append(t)
                history.append(f"{question} {answer} .")
        histories = encode_texts(rows["histories"], vocabulary, history_length)
        too_long = [h for h in rows["histories"] if len(h.split()) > history_length] + [
            q for q in rows["questions"] if len(q.split()) > question_length
        ]
        if too_long:
            raise ValueError(
                "`history_length` or `question_length` is too short for "
                f"{too_long[0]!r} ({len(too_long[0].split())} tokens). Received: "
                f"history_length={history_length}, question_length={question_length}"
            )
        flat = [c for cands in rows["candidates"] for c in cands]
        candidate_ids = encode_texts(flat, vocabulary, 3)["token_ids"]
        scene_index = np.asarray(scene_index, dtype="int32")
        out[split] = {
            "inputs": {
                "images": images[scene_index],
                "history_ids": histories["token_ids"],
                "question_ids": encode_texts(
                    rows["questions"], vocabulary, question_length
                )["token_ids"],
                "answer_ids": encode_with_markers(
                    rows["answers"], vocabulary, answer_length, arg="answer_length"
                ),
                "candidate_ids": candidate_ids.reshape(len(labels), num_candidates, 3),
            },
            "labels": np.asarray(labels, dtype="int32"),
            **rows,
            "scene_index": scene_index,
            "turn": np.asarray(turns, dtype="int32"),
            "scenes": scenes,
        }
    out["vocabulary"] = vocabulary
    out["answer_pool"] = pool
    out["start_token_id"] = START_ID
    out["end_token_id"] = END_ID
    out["num_candidates"] = num_candidates
    return out
