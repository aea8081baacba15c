"""Reference outputs of tiny random `transformers` CLIP and SigLIP models.

Run as a script (`python hf_reference.py OUTDIR`) in a separate process by the tests:
torch and `transformers` are imported only here, never next to another Keras
backend. It saves `OUTDIR/clip` and `OUTDIR/siglip` with `save_pretrained`
(safetensors, plus a tiny BPE vocabulary for CLIP) and `OUTDIR/reference.npz` with
the inputs and `transformers`' outputs.

Every parameter is perturbed away from its initial value (layer norms start at
exactly 1 and 0, biases at 0), so a tensor mapped to the wrong place changes the
outputs.
"""

import os
import sys

import numpy as np
import torch
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTokenizer,
    SiglipConfig,
    SiglipModel,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_vocabulary import write_tiny_vocabulary  # noqa: E402

IMAGE_SIZE, PATCH_SIZE, LENGTH = 16, 8, 8
PROMPTS = ["a photo of a red circle", "Blue  SQUARE", "a circle of squares"]


def tower(**kwargs):
    return dict(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        **kwargs,
    )


def perturb(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(0.1 * noise)


def main(out):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("f4")
    pixels = torch.tensor(images.transpose(0, 3, 1, 2))
    results = {"images": images}

    # --- CLIP: end-of-text is the last id; one row padded with it, as OpenAI's
    # tokenizer pads.
    clip_dir = os.path.join(out, "clip")
    os.makedirs(clip_dir, exist_ok=True)
    vocabulary, _ = write_tiny_vocabulary(clip_dir)
    size = len(vocabulary)
    eos, bos = size - 1, size - 2
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=tower(
            vocab_size=size,
            max_position_embeddings=LENGTH,
            eos_token_id=eos,
            bos_token_id=bos,
            pad_token_id=eos,
        ),
        vision_config=tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        projection_dim=6,
    )
    model = CLIPModel(config).eval()
    perturb(model, 1)
    with torch.no_grad():
        model.logit_scale.fill_(2.3)
    model.save_pretrained(clip_dir, safe_serialization=True)
    token_ids = np.array(
        [
            [bos, 3, 4, eos, 0, 0, 0, 0],
            [bos, 10, eos, eos, eos, eos, eos, eos],
            [bos, 1, 2, 3, 60, 5, 6, eos],
        ],
        "int64",
    )
    mask = np.ones_like(token_ids)
    mask[0, 4:] = 0
    mask[1, 3:] = 0
    with torch.no_grad():
        outputs = model(
            input_ids=torch.tensor(token_ids),
            attention_mask=torch.tensor(mask),
            pixel_values=pixels,
        )
    results.update(
        clip_token_ids=token_ids,
        clip_padding_mask=mask.astype(bool),
        clip_image_embeddings=outputs.image_embeds.numpy(),
        clip_text_embeddings=outputs.text_embeds.numpy(),
        clip_logits=outputs.logits_per_image.numpy(),
    )
    tokenizer = CLIPTokenizer(
        os.path.join(clip_dir, "vocab.json"), os.path.join(clip_dir, "merges.txt")
    )
    encoded = tokenizer(
        PROMPTS, padding="max_length", max_length=LENGTH, truncation=True
    )
    results["prompt_token_ids"] = np.asarray(encoded["input_ids"])

    # --- SigLIP: attention-pooling image head, last-token text head, bias.
    siglip_dir = os.path.join(out, "siglip")
    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=tower(
            vocab_size=40,
            max_position_embeddings=LENGTH,
            bos_token_id=38,
            eos_token_id=39,
            pad_token_id=1,
        ),
        vision_config=tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
    )
    model = SiglipModel(config).eval()
    perturb(model, 2)
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
        model.logit_bias.fill_(-3.0)
    model.save_pretrained(siglip_dir, safe_serialization=True)
    token_ids = rng.integers(0, 40, size=(3, LENGTH))
    with torch.no_grad():
        outputs = model(input_ids=torch.tensor(token_ids), pixel_values=pixels)
    results.update(
        siglip_token_ids=token_ids,
        siglip_image_embeddings=outputs.image_embeds.numpy(),
        siglip_text_embeddings=outputs.text_embeds.numpy(),
        siglip_logits=outputs.logits_per_image.numpy(),
    )
    np.savez(os.path.join(out, "reference.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
