"""PNG figures of an evaluation: a similarity heatmap and a 2-D projection."""

import sys

import numpy as np

MAX_HEATMAP = 24  # images (and their captions) in the heatmap
MAX_POINTS = 600  # images and captions each in the projection


def pca_2d(x):
    """Project rows of `x` on their first two principal components (NumPy SVD)."""
    x = np.asarray(x, dtype="float64")
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    if len(components) < 2:  # fewer than 2 dimensions: pad with zeros
        components = np.vstack([components, np.zeros((1, x.shape[1]))])
    return centred @ components.T


def heatmap_rows(split):
    """Image rows for the heatmap: one per class when labelled, else the first."""
    labels = split["labels"]
    if labels is not None:
        _, first = np.unique(labels, return_index=True)
        rows = first[np.argsort(labels[first])][:MAX_HEATMAP]
    else:
        rows = np.arange(min(len(split["images"]), MAX_HEATMAP))
    index = np.asarray(split["caption_image_index"])
    captions = [int(np.flatnonzero(index == r)[0]) for r in rows]
    return rows, captions


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(split, embeddings, class_names, similarity_path, projection_path):
    """Write both PNG files; return their paths (none without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        print(
            "matplotlib is not installed: skipping the plots (pip install matplotlib)",
            file=sys.stderr,
        )
        return []
    rows, captions = heatmap_rows(split)
    sim = embeddings["similarity"][np.ix_(rows, captions)]
    texts = [split["captions"][c] for c in captions]
    size = max(4.0, 0.32 * len(rows) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(sim, cmap="viridis")
    ax.set_xticks(range(len(texts)), texts, rotation=90, fontsize=7)
    ylabels = (
        [class_names[split["labels"][r]] for r in rows]
        if split["labels"] is not None and class_names
        else [f"image {r}" for r in rows]
    )
    ax.set_yticks(range(len(rows)), ylabels, fontsize=7)
    ax.set_xlabel("caption")
    ax.set_ylabel("image")
    ax.set_title("cosine similarity, test images x their captions")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(similarity_path, dpi=110)
    plt.close(fig)

    n_images = min(len(embeddings["images"]), MAX_POINTS)
    n_texts = min(len(embeddings["texts"]), MAX_POINTS)
    points = pca_2d(
        np.concatenate(
            [embeddings["images"][:n_images], embeddings["texts"][:n_texts]], axis=0
        )
    )
    fig, ax = plt.subplots(figsize=(7, 6))
    if split["labels"] is not None:
        labels = np.asarray(split["labels"])
        image_labels = labels[:n_images]
        text_labels = labels[np.asarray(split["caption_image_index"])[:n_texts]]
        kwargs = dict(c=image_labels, cmap="tab20", vmin=0, vmax=max(labels.max(), 1))
        ax.scatter(*points[:n_images].T, marker="o", s=12, label="images", **kwargs)
        kwargs["c"] = text_labels
        ax.scatter(*points[n_images:].T, marker="x", s=16, label="captions", **kwargs)
        ax.set_title("PCA of test embeddings (colour = class)")
    else:
        ax.scatter(*points[:n_images].T, marker="o", s=12, label="images")
        ax.scatter(*points[n_images:].T, marker="x", s=16, label="captions")
        ax.set_title("PCA of test embeddings")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    legend = ax.legend(loc="best")
    for handle in legend.legend_handles:  # marker shapes only, not one class colour
        handle.set_color("black")
    fig.tight_layout()
    fig.savefig(projection_path, dpi=110)
    plt.close(fig)
    return [similarity_path, projection_path]
