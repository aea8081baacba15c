import numpy as np
import pytest

from keras_mm.data.moving_shapes_videos import DIRECTIONS, load_moving_shapes_videos
from keras_mm.data.shapes import COLORS

COLOURS = ("red", "green", "blue", "yellow")


@pytest.fixture(scope="module")
def data():
    return load_moving_shapes_videos(num_train=200, num_test=80)


def centroids(video, color):
    """Per frame `(x, y)` centroid of the pixels of `color`, or None if absent."""
    palette = np.asarray([COLORS[c] for c in COLOURS])
    palette = palette / np.linalg.norm(palette, axis=-1, keepdims=True)
    target = COLOURS.index(color)
    out = []
    for frame in video:
        bright = frame.max(-1) > 0.5
        cosine = (
            frame
            @ palette.T
            / np.maximum(np.linalg.norm(frame, axis=-1, keepdims=True), 1e-6)
        )
        mask = bright & (np.argmax(cosine, -1) == target)
        if mask.sum() < 3:
            out.append(None)
            continue
        ys, xs = np.nonzero(mask)
        out.append((xs.mean(), ys.mean()))
    return out


def direction_of(points, min_shift):
    """The direction of a centroid track, or None if it stays still."""
    dx = points[-1][0] - points[0][0]
    dy = points[-1][1] - points[0][1]
    if max(abs(dx), abs(dy)) < min_shift:
        return None
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def test_structure_shapes_and_dtypes(data):
    assert data["answer_vocabulary"] == list(DIRECTIONS) + list(COLOURS)
    assert data["question_types"] == ("direction", "color")
    assert data["num_frames"] == 4
    for split, n in (("train", 200), ("test", 80)):
        s = data[split]
        assert sorted(s["inputs"]) == ["padding_mask", "token_ids", "videos"]
        videos = s["inputs"]["videos"]
        assert videos.shape == (n, 4, 16, 16, 3) and videos.dtype == np.float32
        assert videos.min() >= 0 and videos.max() <= 1
        assert s["inputs"]["token_ids"].shape == (n, 10)
        assert not np.any(s["inputs"]["token_ids"] == 1)  # no [UNK]
        assert s["answers"].dtype == np.int32
        texts = [data["answer_vocabulary"][i] for i in s["answers"]]
        assert texts == s["answer_texts"]
        assert len(s["motions"]) == len(s["questions"]) == n


def test_answers_follow_from_the_pixels(data):
    # The asked shape's colour centroid really moves that way; for "what colour
    # is the moving shape?" the answer's colour moves and any other stays still.
    step = 0.3 * 16 / 3
    for split in ("train", "test"):
        s = data[split]
        for video, question, answer, motions in zip(
            s["inputs"]["videos"], s["questions"], s["answer_texts"], s["motions"]
        ):
            assert 1 <= len(motions) <= 2
            assert len({m[0] for m in motions}) == len(motions)
            if question.startswith("which way"):
                color, shape = question.split()[4:6]
                assert (color, shape, answer) in motions
                track = centroids(video, color)
                assert all(p is not None for p in track)
                assert direction_of(track, 2 * step) == answer, (question, motions)
            else:
                assert question == "what colour is the moving shape?"
                assert sum(m[2] is not None for m in motions) == 1
                for color, _, direction in motions:
                    track = centroids(video, color)
                    moved = direction_of(track, 2 * step)
                    assert (moved is not None) == (color == answer), motions
                    assert moved == direction


def test_answers_are_balanced():
    data = load_moving_shapes_videos(num_train=800, num_test=0)
    s = data["train"]
    kinds = np.bincount(s["question_types"], minlength=2) / 800
    assert np.all(kinds > 0.4), kinds
    direction = s["question_types"] == 0
    counts = np.bincount(s["answers"][direction], minlength=4)[:4]
    assert counts.min() / counts.sum() > 0.18, counts
    # Some videos have two moving shapes: the question then names the shape.
    both = [m for m in s["motions"] if sum(d is not None for _, _, d in m) == 2]
    assert len(both) > 50


def test_deterministic_and_options():
    a = load_moving_shapes_videos(num_train=10, num_test=5, seed=1)
    b = load_moving_shapes_videos(num_train=10, num_test=5, seed=1)
    np.testing.assert_array_equal(
        a["train"]["inputs"]["videos"], b["train"]["inputs"]["videos"]
    )
    assert a["test"]["questions"] == b["test"]["questions"]
    c = load_moving_shapes_videos(
        num_train=12,
        num_test=0,
        num_frames=6,
        frame_size=24,
        max_objects=1,
        question_types="direction",
        step=2.0,
    )
    assert c["train"]["inputs"]["videos"].shape == (12, 6, 24, 24, 3)
    assert c["answer_vocabulary"] == list(DIRECTIONS)
    assert all(len(m) == 1 for m in c["train"]["motions"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_frames=1), "num_frames"),
        (dict(frame_size=8), "frame_size"),
        (dict(max_objects=3), "max_objects"),
        (dict(step=0), "step"),
        (dict(step=5.0), "path"),
        (dict(question_types=("count",)), "question_types"),
        (dict(colors=("red", "red")), "colors"),
        (dict(noise=-1), "noise"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_moving_shapes_videos(num_train=2, num_test=2, **kwargs)
