import numpy as np
import pytest
from keras import ops

from keras_mm.metrics import retrieval_metrics


def oracle(sim, index, ks):
    """Rank by sorting; on ties the ground truth goes after the other items."""
    num_images, num_captions = sim.shape
    i2t, t2i = [], []
    for i in range(num_images):
        order = sorted(range(num_captions), key=lambda c: (-sim[i, c], index[c] == i))
        i2t.append(1 + min(p for p, c in enumerate(order) if index[c] == i))
    for c in range(num_captions):
        order = sorted(range(num_images), key=lambda i: (-sim[i, c], i == index[c]))
        t2i.append(1 + order.index(index[c]))
    out = {}
    for name, ranks in (("image_to_text", i2t), ("text_to_image", t2i)):
        # Worst possible rank: all other images, or all non-matching captions.
        fewest = min(list(index).count(i) for i in range(num_images))
        worst = num_images if name == "text_to_image" else 1 + num_captions - fewest
        for k in ks:
            recall = sum(r <= k for r in ranks) / len(ranks)
            out[f"{name}_r{k}"] = float("nan") if k >= worst else recall
        out[f"{name}_mean_rank"] = sum(ranks) / len(ranks)
        out[f"{name}_median_rank"] = float(np.median(ranks))
    return out


def test_hand_computed_fixture():
    # 2 images, 4 captions; captions 0, 1 describe image 0, captions 2, 3 image 1.
    sim = np.array([[0.9, 0.1, 0.5, 0.2], [0.3, 0.8, 0.7, 0.1]])
    m = retrieval_metrics(sim, [0, 0, 1, 1], ks=(1, 2))
    # image 0: caption 0 is top -> rank 1. image 1: captions by score 1 (0.8, wrong),
    # 2 (0.7, right) -> rank 2.
    assert m["image_to_text_r1"] == 0.5 and m["image_to_text_r2"] == 1.0
    assert m["image_to_text_mean_rank"] == 1.5
    # caption 0 -> image 0 first (rank 1); caption 1 -> image 1 first (rank 2);
    # caption 2 -> image 1 (rank 1); caption 3 -> image 0 (0.2 > 0.1, rank 2).
    assert m["text_to_image_r1"] == 0.5 and m["text_to_image_mean_rank"] == 1.5
    assert m["text_to_image_median_rank"] == 1.5


def test_ties_count_against_the_query():
    m = retrieval_metrics(np.zeros((3, 6)), [0, 0, 1, 1, 2, 2], ks=(1, 4))
    assert m["image_to_text_r1"] == 0.0 and m["text_to_image_r1"] == 0.0
    assert m["image_to_text_mean_rank"] == 5.0  # after the 4 other captions
    assert m["text_to_image_mean_rank"] == 3.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sorting_oracle(seed):
    rng = np.random.default_rng(seed)
    num_images, per_image = 7, 3
    index = np.repeat(np.arange(num_images), per_image)
    rng.shuffle(index)
    # Rounded scores make ties frequent.
    sim = np.round(rng.normal(size=(num_images, len(index))), 1)
    sim[index, np.arange(len(index))] += 0.5
    got = retrieval_metrics(
        ops.convert_to_tensor(sim.astype("float32")), index, ks=(1, 5, 10)
    )
    want = oracle(sim.astype("float32"), index, (1, 5, 10))
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], nan_ok=True), key
        assert isinstance(got[key], float)


def test_recall_at_k_covering_every_candidate_is_nan():
    # 3 images, 3 captions: every rank is <= 3, so R@5 and R@10 say nothing.
    sim = np.random.default_rng(0).normal(size=(3, 3))
    m = retrieval_metrics(sim, ks=(1, 2, 3, 5, 10))
    for name in ("image_to_text", "text_to_image"):
        assert not np.isnan(m[f"{name}_r2"])
        for k in (3, 5, 10):
            assert np.isnan(m[f"{name}_r{k}"]), (name, k)
    # 2 images with 3 and 1 captions: image 1 ranks at worst 1 + 3 = 4 captions.
    m = retrieval_metrics(np.zeros((2, 4)), [0, 0, 0, 1], ks=(1, 3, 4))
    assert m["image_to_text_r3"] == 0.5 and np.isnan(m["image_to_text_r4"])
    assert m["text_to_image_r1"] == 0.0 and np.isnan(m["text_to_image_r3"])


def test_one_caption_per_image_default():
    sim = np.eye(4) + 0.01
    m = retrieval_metrics(sim)
    assert m["image_to_text_r1"] == 1.0 and m["text_to_image_median_rank"] == 1.0


@pytest.mark.parametrize(
    "sim, index, message",
    [
        (np.zeros((2, 3)), None, "square"),
        (np.zeros(3), None, "similarity"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), None, "finite"),
        (np.zeros((2, 3)), [0, 0, 2], "caption_image_index"),
        (np.zeros((2, 3)), [0, 0], "caption_image_index"),
        (np.zeros((2, 3)), [0, 0, 0], "image 1 has none"),
    ],
)
def test_rejects_bad_inputs(sim, index, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(sim, index)
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(np.eye(2), ks=(0,))
