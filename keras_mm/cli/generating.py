"""`keras-mm generate`: sample images for prompts from a text-to-image run."""

import os

import keras
import numpy as np

from keras_mm.cli.app import RunError
from keras_mm.cli.checkpoints import MODEL, VOCABULARY, RunDir
from keras_mm.cli.parser import UsageError
from keras_mm.cli.text_to_image import DEFAULT_GUIDANCE_SCALE, DEFAULT_TOP_P
from keras_mm.models import CLIP, TextToImage

GRID_SCALE = 4  # grid.png shows the samples enlarged (nearest neighbour)


def prompt_dirname(prompt):
    """`"a red circle"` -> `"a_red_circle"` (a safe folder name)."""
    name = "_".join(prompt.split())
    name = "".join(c if c.isalnum() or c in "_-." else "_" for c in name)
    return name.strip(".") or "prompt"


def _load(run_path, option, cls, family):
    run = RunDir(run_path)
    path = run.file(MODEL)
    if not os.path.isfile(path):
        raise RunError(
            f"{option} {run_path!r} has no trained {MODEL} (train it with "
            f"`keras-mm train --family {family} --output {run_path}`)"
        )
    model = keras.saving.load_model(path, compile=False)
    if not isinstance(model, cls):
        raise RunError(
            f"{option} {run_path!r} holds a {type(model).__name__}, not a "
            f"{cls.__name__} (a --family {family} run)"
        )
    return run, model


def grid_image(images, columns=None):
    """The samples side by side on a grey background, `GRID_SCALE` times larger."""
    n, h, w, _ = images.shape
    columns = columns or min(n, 8)
    rows = -(-n // columns)
    pad = 2
    grid = np.full(
        (rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 0.5, "float32"
    )
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = image
    return np.repeat(np.repeat(grid, GRID_SCALE, axis=0), GRID_SCALE, axis=1)


def _save_png(path, image):
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype("uint8")
    keras.utils.save_img(path, pixels, scale=False)


def generate(args):
    _, model = _load(args.run, "RUN", TextToImage, "text-to-image")
    clip = None
    if args.rerank:
        clip_run, clip = _load(args.rerank, "--rerank", CLIP, "clip")
        if clip.vocabulary is None:
            clip.vocabulary = clip_run.read_json(VOCABULARY)
    if args.top_p is not None and args.top_p > 1:
        raise UsageError(f"--top-p must be in (0, 1], got {args.top_p}")
    guidance, top_p = args.guidance_scale, args.top_p
    if model.prompt_dropout:  # a run of this version: its measured best settings
        guidance = DEFAULT_GUIDANCE_SCALE if guidance is None else guidance
        top_p = DEFAULT_TOP_P if top_p is None else top_p
    elif guidance is not None:
        raise UsageError(
            f"--guidance-scale needs a run trained with prompt dropout; {args.run!r} "
            "was not (train it again with this version of keras-mm)"
        )
    images = model.generate(
        args.prompts,
        num_samples=args.num_samples,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=top_p,
        seed=args.seed,
        rerank=clip,
        keep=args.num_samples,
        batch_size=args.batch_size,
        guidance_scale=guidance,
    )
    images = images.reshape((len(args.prompts), args.num_samples) + images.shape[1:])
    for prompt, samples in zip(args.prompts, images):
        folder = os.path.join(args.output, prompt_dirname(prompt))
        os.makedirs(folder, exist_ok=True)
        for i, sample in enumerate(samples):
            _save_png(os.path.join(folder, f"sample-{i}.png"), sample)
        _save_png(os.path.join(folder, "grid.png"), grid_image(samples))
        order = ", best first by CLIP" if clip is not None else ""
        print(f"{prompt!r}: {len(samples)} samples{order} in {folder}")
    return 0
