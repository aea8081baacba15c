import os

import numpy as np
import pytest

from keras_mm.data import read_vqa
from keras_mm.metrics import vqa_accuracy
from tests.data.reader_fixtures import write_image, write_json


def _vqa(root):
    images = os.path.join(root, "val2014")
    write_image(os.path.join(images, "COCO_val2014_000000000042.jpg"), (255, 0, 0))
    write_image(os.path.join(images, "COCO_val2014_000000000007.jpg"), (0, 255, 0))
    questions = {
        "info": {},
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": {},
        "data_subtype": "val2014",
        "questions": [
            {"image_id": 42, "question": "What color is it?", "question_id": 42000},
            {"image_id": 7, "question": "How many squares?", "question_id": 7000},
            {"image_id": 42, "question": "Is it red?", "question_id": 42001},
        ],
    }

    def answers(*words):
        return [
            {"answer": w, "answer_confidence": "yes", "answer_id": i + 1}
            for i, w in enumerate(words)
        ]

    annotations = {
        "data_subtype": "val2014",
        "annotations": [
            {
                "question_id": 7000,
                "image_id": 7,
                "answer_type": "number",
                "question_type": "how many",
                "multiple_choice_answer": "1",
                "answers": answers(*["1"] * 8, "one", "2"),
            },
            {
                "question_id": 42000,
                "image_id": 42,
                "answer_type": "other",
                "question_type": "what color",
                "multiple_choice_answer": "red",
                "answers": answers(*["red"] * 10),
            },
            {
                "question_id": 42001,
                "image_id": 42,
                "answer_type": "yes/no",
                "question_type": "is it",
                "multiple_choice_answer": "yes",
                "answers": answers(*["yes"] * 2, *["no"] * 8),
            },
        ],
    }
    q = write_json(
        os.path.join(root, "v2_OpenEnded_mscoco_val2014_questions.json"), questions
    )
    a = write_json(
        os.path.join(root, "v2_mscoco_val2014_annotations.json"), annotations
    )
    return q, a, images, questions, annotations


def test_reads_questions_answers_and_images(tmp_path):
    q, a, images, _, _ = _vqa(str(tmp_path))
    data = read_vqa(q, images, annotations_file=a, image_size=6, sequence_length=5)
    assert data["image_ids"] == [42, 7]
    assert data["image_files"][0] == "COCO_val2014_000000000042.jpg"
    np.testing.assert_allclose(data["images"][1].mean((0, 1)), [0, 1, 0], atol=0.02)
    assert data["questions"] == ["What color is it?", "How many squares?", "Is it red?"]
    assert data["question_ids"] == [42000, 7000, 42001]
    np.testing.assert_array_equal(data["question_image_index"], [0, 1, 0])
    assert data["token_ids"].shape == (3, 5)
    assert data["multiple_choice_answers"] == ["red", "1", "yes"]
    assert data["answer_types"] == ["other", "number", "yes/no"]
    assert data["answers"][1] == ["1"] * 8 + ["one", "2"]
    # The answers feed the official metric directly.
    acc = vqa_accuracy(["Red", "one", "yes"], data["answers"])
    assert acc == pytest.approx((1.0 + 1.0 + 0.6) / 3)


def test_questions_only_and_custom_pattern(tmp_path):
    q, _, images, questions, _ = _vqa(str(tmp_path))
    data = read_vqa(q, images, image_size=4)
    assert data["answers"] is None and data["multiple_choice_answers"] is None
    os.rename(
        os.path.join(images, "COCO_val2014_000000000042.jpg"),
        os.path.join(images, "000000000042.jpg"),
    )
    os.rename(
        os.path.join(images, "COCO_val2014_000000000007.jpg"),
        os.path.join(images, "000000000007.jpg"),
    )
    questions.pop("data_subtype")
    write_json(q, questions)
    data = read_vqa(q, images, image_file_pattern="{image_id:012d}.jpg", image_size=4)
    assert data["image_files"] == ["000000000042.jpg", "000000000007.jpg"]
    with pytest.raises(ValueError, match="data_subtype"):
        read_vqa(q, images, image_size=4)
    with pytest.raises(ValueError, match="image_file_pattern"):
        read_vqa(q, images, image_file_pattern="{question_id}.jpg")


@pytest.mark.parametrize(
    "target, mutate, message",
    [
        (
            "a",
            lambda q, a: a["annotations"].pop(0),
            "annotations.json: no annotation for 1 question.*question_id 7000",
        ),
        (
            "a",
            lambda q, a: a["annotations"][1].update(image_id=7),
            r"annotations\[1\] \(question_id=42000\) has image_id 7 but its question",
        ),
        (
            "a",
            lambda q, a: a["annotations"][0].update(question_id=5),
            r"annotations\[0\] \(question_id=5\) has no question",
        ),
        (
            "a",
            lambda q, a: a["annotations"][2]["answers"].append({"text": "x"}),
            r"annotations\[2\] \(question_id=42001\) answers\[10\]",
        ),
        (
            "a",
            lambda q, a: a["annotations"][2].pop("multiple_choice_answer"),
            "multiple_choice_answer",
        ),
        (
            "q",
            lambda q, a: q["questions"][2].pop("question"),
            r"questions.json: questions\[2\] \(question_id=42001\) has no 'question'",
        ),
        (
            "q",
            lambda q, a: q["questions"].append(dict(q["questions"][0])),
            "repeats question_id 42000",
        ),
    ],
)
def test_malformed(tmp_path, target, mutate, message):
    q, a, images, questions, annotations = _vqa(str(tmp_path))
    mutate(questions, annotations)
    write_json(q, questions)
    write_json(a, annotations)
    with pytest.raises(ValueError, match=message):
        read_vqa(q, images, annotations_file=a, image_size=4)
