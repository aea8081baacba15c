"""Reader for VQA v2 questions and annotations JSON."""

import string

from keras_mm.api_export import keras_mm_export
from keras_mm.data._files import (
    DEFAULT_MAX_PIXELS,
    check_dir,
    check_image_args,
    get_field,
    get_list,
    read_json,
)
from keras_mm.data._reader_common import build_arrays

DEFAULT_IMAGE_FILE_PATTERN = "COCO_{data_subtype}_{image_id:012d}.jpg"


def _pattern_fields(pattern):
    try:
        return {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
    except ValueError as e:
        raise ValueError(
            f"`image_file_pattern` is not a valid format string: {e}. Received: "
            f"{pattern!r}"
        ) from None


def _read_annotations(path, questions):
    """Map question_id -> (answers, multiple_choice_answer, answer_type)."""
    data = read_json(path, "annotations_file")
    source = str(path)
    out = {}
    for i, ann in enumerate(get_list(data, "annotations", source)):
        where = f"annotations[{i}]"
        qid = get_field(ann, "question_id", "int", source, where)
        where = f"{where} (question_id={qid})"
        image_id = get_field(ann, "image_id", "int", source, where)
        if qid in out:
            raise ValueError(f"{source}: {where} repeats question_id {qid}.")
        if qid not in questions:
            raise ValueError(
                f"{source}: {where} has no question in the questions file."
            )
        if questions[qid] != image_id:
            raise ValueError(
                f"{source}: {where} has image_id {image_id} but its question has "
                f"image_id {questions[qid]}."
            )
        answers = []
        for j, a in enumerate(get_field(ann, "answers", "list", source, where)):
            if not isinstance(a, dict) or not isinstance(a.get("answer"), str):
                raise ValueError(
                    f"{source}: {where} answers[{j}] must be an object with an "
                    f"'answer' string. Received: {str(a)[:80]!r}"
                )
            answers.append(a["answer"])
        if not answers:
            raise ValueError(f"{source}: {where} has an empty 'answers' list.")
        mca = ann.get("multiple_choice_answer")
        if not isinstance(mca, str):
            raise ValueError(
                f"{source}: {where} needs a 'multiple_choice_answer' string."
            )
        answer_type = ann.get("answer_type")
        out[qid] = (answers, mca, answer_type if isinstance(answer_type, str) else None)
    missing = [q for q in questions if q not in out]
    if missing:
        raise ValueError(
            f"{source}: no annotation for {len(missing)} question(s), e.g. "
            f"question_id {missing[0]}."
        )
    return out


@keras_mm_export("keras_mm.data.read_vqa")
def read_vqa(
    questions_file,
    image_dir,
    annotations_file=None,
    image_file_pattern=DEFAULT_IMAGE_FILE_PATTERN,
    image_size=224,
    sequence_length=24,
    vocabulary=None,
    crop_to_aspect_ratio=True,
    max_pixels=DEFAULT_MAX_PIXELS,
    skip_missing=False,
    max_images=None,
):
    """Read VQA v2 questions (and answers) with their COCO images.

    Files are VQA v2's `v2_OpenEnded_mscoco_{split}_questions.json`
    (`{"data_subtype": "val2014", "questions": [{"image_id", "question",
    "question_id"}]}`) and, optionally, `v2_mscoco_{split}_annotations.json`
    (`{"annotations": [{"question_id", "image_id", "answers": [{"answer", ...}] * 10,
    "multiple_choice_answer", "answer_type", ...}]}`). Every annotation must match a
    question (same `image_id`) and every question must have one. Images are read
    from `image_dir/image_file_pattern.format(image_id=..., data_subtype=...)`,
    confined to `image_dir`. Questions are tokenized with a keras-hub word tokenizer.

    Args:
        questions_file: path to the questions JSON.
        image_dir: path to the COCO images of that split (e.g. `val2014/`).
        annotations_file: path to the annotations JSON, or None (test-dev/test).
        image_file_pattern: str. File name of an image; `{image_id}` and
            `{data_subtype}` (from the questions file) are filled in. For COCO 2017
            folders use `"{image_id:012d}.jpg"`.
        image_size, vocabulary, crop_to_aspect_ratio, max_pixels, skip_missing,
            max_images: as in `read_coco_captions` (the vocabulary is over the
            questions).
        sequence_length: int. Token ids per question.

    Returns:
        A dict:
        - `"images"`: `(num_images, H, W, 3)` float32 in [0, 1];
          `"image_ids"`: list of int; `"image_files"`: list of str.
        - `"token_ids"`, `"padding_mask"`: `(num_questions, T)`;
          `"question_image_index"`: `(num_questions,)` int32 row of `"images"`.
        - `"questions"`: list of str; `"question_ids"`: list of int.
        - `"answers"`: list (one per question) of the human answers (10 in VQA
          v2), raw, for `keras_mm.metrics.vqa_accuracy`; `"multiple_choice_answers"`
          and `"answer_types"`: lists of str. All three are None without
          `annotations_file`.
        - `"vocabulary"`: list of str; `"num_skipped"`: int.
    """
    image_size = check_image_args(image_size, max_pixels)
    if not isinstance(image_file_pattern, str):
        raise ValueError(
            "`image_file_pattern` must be a str. Received: "
            f"{type(image_file_pattern).__name__}"
        )
    fields = _pattern_fields(image_file_pattern)
    if not fields <= {"image_id", "data_subtype"} or "image_id" not in fields:
        raise ValueError(
            "`image_file_pattern` must use {image_id} and may use {data_subtype}. "
            f"Received: {image_file_pattern!r}"
        )
    try:
        image_file_pattern.format(image_id=1, data_subtype="val2014")
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(
            f"`image_file_pattern` cannot be formatted with an integer image_id: {e}. "
            f"Received: {image_file_pattern!r}"
        ) from None
    root = check_dir(image_dir, "image_dir")
    data = read_json(questions_file, "questions_file")
    source = str(questions_file)
    subtype = data.get("data_subtype")
    if "data_subtype" in fields and not isinstance(subtype, str):
        raise ValueError(
            f"{source}: needs a 'data_subtype' string (e.g. 'val2014') to fill "
            f"`image_file_pattern` {image_file_pattern!r}; pass a pattern without "
            "{data_subtype} otherwise."
        )
    images, records, question_images, seen_images = [], [], {}, set()
    for i, q in enumerate(get_list(data, "questions", source)):
        where = f"questions[{i}]"
        qid = get_field(q, "question_id", "int", source, where)
        where = f"{where} (question_id={qid})"
        image_id = get_field(q, "image_id", "int", source, where)
        question = get_field(q, "question", "str", source, where)
        if qid in question_images:
            raise ValueError(f"{source}: {where} repeats question_id {qid}.")
        if image_id not in seen_images:
            seen_images.add(image_id)
            name = image_file_pattern.format(image_id=image_id, data_subtype=subtype)
            images.append((image_id, name, f"{where} (image_id={image_id})"))
        question_images[qid] = image_id
        records.append((image_id, question.strip(), where))
    if not records:
        raise ValueError(f"{source}: no questions found.")
    annotations = None
    if annotations_file is not None:
        annotations = _read_annotations(annotations_file, question_images)
    arrays, kept = build_arrays(
        source,
        root,
        images,
        records,
        image_size,
        sequence_length,
        vocabulary,
        crop_to_aspect_ratio,
        max_pixels,
        skip_missing,
        max_images,
    )
    qids = list(question_images)
    kept_ids = [qids[i] for i in kept]
    out = {
        "images": arrays["images"],
        "image_ids": arrays["image_keys"],
        "image_files": arrays["image_files"],
        "token_ids": arrays["token_ids"],
        "padding_mask": arrays["padding_mask"],
        "question_image_index": arrays["index"],
        "questions": arrays["texts"],
        "question_ids": kept_ids,
        "answers": None,
        "multiple_choice_answers": None,
        "answer_types": None,
        "vocabulary": arrays["vocabulary"],
        "num_skipped": arrays["num_skipped"],
    }
    if annotations is not None:
        out["answers"] = [annotations[q][0] for q in kept_ids]
        out["multiple_choice_answers"] = [annotations[q][1] for q in kept_ids]
        out["answer_types"] = [annotations[q][2] for q in kept_ids]
    return out
