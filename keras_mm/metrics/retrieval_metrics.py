"""Cross-modal retrieval: recall@K both directions, mean and median rank."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._utils import check_finite, check_ks, to_numpy


@keras_mm_export("keras_mm.metrics.retrieval_metrics")
def retrieval_metrics(similarity, caption_image_index=None, ks=(1, 5, 10)):
    """Image-text retrieval recall@K in both directions, with ranks.

    `similarity[i, c]` scores image `i` against caption `c`; caption `c` describes
    image `caption_image_index[c]`, and an image may have several captions (5 in
    COCO and Flickr30K), as in the standard evaluation (Karpathy & Fei-Fei, 2015;
    Faghri et al., 2018, VSE++):

    - image -> text: the rank of image `i` is the best rank among its captions,
      when all captions are sorted by `similarity[i]`;
    - text -> image: the rank of caption `c` is the rank of its image when all
      images are sorted by `similarity[:, c]`.

    Ranks start at 1. Ties count against the query: a ground-truth item ranks after
    every other item with an equal or higher score, so a model whose scores are all
    equal gets the worst ranks, not the best. R@K is the share of queries with rank
    <= K. When K is at least the worst rank a query can get (text -> image:
    `num_images`; image -> text: `1 + num_captions - ` the fewest captions of an
    image), R@K is 1 whatever the scores, so it is reported as NaN ("n/a"):
    R@5 of 3 images says nothing about the model.

    Args:
        similarity: `(num_images, num_captions)` array or tensor of scores (e.g.
            cosine similarities of L2-normalised embeddings). Must be finite.
        caption_image_index: `(num_captions,)` int array, or None when captions
            and images pair one to one (`num_images == num_captions`, caption `c`
            describes image `c`). Every image needs at least one caption.
        ks: int or list of int.

    Returns:
        A dict of Python floats: `"image_to_text_r{K}"` and `"text_to_image_r{K}"`
        for each K (in [0, 1], or NaN when K covers every candidate),
        `"image_to_text_mean_rank"`,
        `"image_to_text_median_rank"`, `"text_to_image_mean_rank"` and
        `"text_to_image_median_rank"`.

    Example:

    >>> import numpy as np
    >>> sim = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.7]])
    >>> m = retrieval_metrics(sim, caption_image_index=[0, 0, 1], ks=(1,))
    >>> m["image_to_text_r1"], m["text_to_image_r1"]
    (1.0, 1.0)
    """
    ks = check_ks(ks)
    sim = to_numpy(similarity, "similarity")
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(
            "`similarity` must be a non-empty (num_images, num_captions) matrix. "
            f"Received: shape={sim.shape}"
        )
    check_finite(sim, "similarity")
    num_images, num_captions = sim.shape
    if caption_image_index is None:
        if num_images != num_captions:
            raise ValueError(
                "Without `caption_image_index`, `similarity` must be square (one "
                f"caption per image). Received: shape={sim.shape}"
            )
        index = np.arange(num_captions)
    else:
        index = to_numpy(caption_image_index, "caption_image_index", dtype="float64")
        if (
            index.shape != (num_captions,)
            or np.any(index != np.round(index))
            or np.any(index < 0)
            or np.any(index >= num_images)
        ):
            raise ValueError(
                "`caption_image_index` must be (num_captions,) integers in "
                f"[0, {num_images}). Received: shape={index.shape}"
            )
        index = index.astype("int64")
    counts = np.bincount(index, minlength=num_images)
    if np.any(counts == 0):
        raise ValueError(
            "Every image needs at least one caption in `caption_image_index`; "
            f"image {int(np.argmin(counts))} has none."
        )
    captions = np.arange(num_captions)
    # text -> image: images scoring >= the true image (the true one included).
    true_scores = sim[index, captions]
    t2i = np.sum(sim >= true_scores[None, :], axis=0)
    # image -> text: non-matching captions scoring >= the image's best caption.
    positive = index[None, :] == np.arange(num_images)[:, None]
    best = np.max(np.where(positive, sim, -np.inf), axis=1)
    i2t = 1 + np.sum((sim >= best[:, None]) & ~positive, axis=1)
    worst = {
        "image_to_text": 1 + num_captions - int(counts.min()),
        "text_to_image": num_images,
    }
    out = {}
    for name, ranks in (("image_to_text", i2t), ("text_to_image", t2i)):
        for k in ks:
            recall = float("nan") if k >= worst[name] else float(np.mean(ranks <= k))
            out[f"{name}_r{k}"] = recall
        out[f"{name}_mean_rank"] = float(np.mean(ranks))
        out[f"{name}_median_rank"] = float(np.median(ranks))
    return out
