"""ImageTokenizer (VQ-VAE) and TextToImage (DALL-E) against NumPy oracles."""

import os

import keras
import numpy as np
import pytest
from keras import ops
from scipy.special import erf

from keras_mm.models import CLIP, ImageTokenizer, TextToImage
from keras_mm.models.text_to_image.guidance import PromptDropout
from keras_mm.models.text_to_image.sampling import filter_and_sample
from keras_mm.models.text_to_image.vector_quantizer import VectorQuantizer, vq_losses
from tests.losses.backend_utils import value_and_grad

VOCAB = ["[PAD]", "[UNK]", "a", "red", "blue", "circle", "square"]
TEXT_LENGTH = 4


def tiny_tokenizer(**kwargs):
    config = dict(num_codes=8, code_dim=4, hidden_dim=8, num_downsamples=2)
    config.update(kwargs)
    return ImageTokenizer((16, 16, 3), **config)


def randomize(model, seed):
    """Every trainable weight from NumPy: the same model on every backend."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "embeddings" in variable.path or "codebook" in variable.path:
            value = rng.normal(size=shape)
        elif len(shape) >= 2:
            value = rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
        elif "gamma" in variable.path:
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif "ema" in variable.path:
            continue
        else:
            value = 0.1 * rng.normal(size=shape)
        variable.assign(value.astype("float32"))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = TextToImage(
        tiny_tokenizer(),
        VOCAB,
        text_length=TEXT_LENGTH,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
    )
    randomize(model, seed=1)
    return model


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(0, len(VOCAB), (n, TEXT_LENGTH)).astype("int32"),
        "image_codes": rng.integers(0, 8, (n, 4, 4)).astype("int32"),
    }


def np_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


# ---------------------------------------------------------------- NumPy oracle
def oracle_transformer(layer, ids):
    """Logits `(batch, T, V)` of `CausalTransformer` in float64 NumPy."""
    w = {v.path.split("/", 1)[1]: np_numpy(v) for v in layer.weights}

    def norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w[f"{name}/gamma"] + w[f"{name}/beta"]

    def dense(x, name):
        return x @ w[f"{name}/kernel"] + w[f"{name}/bias"]

    t = ids.shape[1]
    x = w["token_embedding/embeddings"][ids] + w["position_embedding/embeddings"][:t]
    heads, dh = layer.num_heads, layer.head_dim
    causal = np.tril(np.ones((t, t), bool))
    for i in range(layer.num_layers):
        qkv = dense(norm(x, f"block{i}_norm1"), f"block{i}_qkv")
        q, k, v = (
            a.reshape(len(ids), t, heads, dh).transpose(0, 2, 1, 3)
            for a in np.split(qkv, 3, axis=-1)
        )
        scores = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh), -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + dense(attn.transpose(0, 2, 1, 3).reshape(x.shape), f"block{i}_out")
        h = dense(norm(x, f"block{i}_norm2"), f"block{i}_ff1")
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        x = x + dense(h, f"block{i}_ff2")
    return dense(norm(x, "final_norm"), "head")


# ------------------------------------------------------------------ quantiser
def test_vector_quantizer_nearest_code_straight_through_and_losses():
    rng = np.random.default_rng(0)
    layer = VectorQuantizer(5, 3, ema_decay=None)
    layer.build((None, 3))
    codebook = rng.normal(size=(5, 3)).astype("float32")
    layer.codebook.assign(codebook)
    z = rng.normal(size=(2, 3, 3, 3)).astype("float32")
    weights = rng.normal(size=z.shape).astype("float32")

    out = layer(z)
    expected = np.argmin(((z[..., None, :] - codebook) ** 2).sum(-1), axis=-1)
    np.testing.assert_array_equal(ops.convert_to_numpy(out["codes"]), expected)
    q = codebook[expected]
    np.testing.assert_allclose(np_numpy(out["quantized"]), q, atol=1e-6)
    np.testing.assert_allclose(np_numpy(out["straight_through"]), q, atol=1e-6)
    commitment, codebook_loss = vq_losses(z, out["quantized"])
    np.testing.assert_allclose(np_numpy(commitment), np.mean((z - q) ** 2), rtol=1e-5)
    np.testing.assert_allclose(
        np_numpy(codebook_loss), np.mean((z - q) ** 2), rtol=1e-5
    )

    def fn(latents):
        vq = layer(latents)
        commitment, _ = vq_losses(latents, vq["quantized"])
        product = vq["straight_through"] * ops.convert_to_tensor(weights, "float32")
        return ops.sum(product) + 0.25 * commitment

    value, (grad,) = value_and_grad(fn, z)
    # Straight-through: d/dz of the decoder side is the gradient at e, as if
    # the quantiser were the identity; the commitment term adds 2 beta (z - e) / n.
    np.testing.assert_allclose(grad, weights + 0.5 * (z - q) / z.size, atol=1e-5)
    np.testing.assert_allclose(
        value, np.sum(q * weights) + 0.25 * np.mean((z - q) ** 2), rtol=1e-5
    )


def test_ema_update_and_dead_code_restart_match_numpy():
    rng = np.random.default_rng(1)
    k, d, decay, eps, threshold = 6, 2, 0.9, 1e-5, 0.5
    layer = VectorQuantizer(k, d, ema_decay=decay, dead_code_threshold=threshold)
    layer.build((None, d))
    codebook = rng.normal(size=(k, d)).astype("float32")
    counts = np.asarray([3.0, 0.2, 2.0, 0.1, 1.0, 4.0], "float32")
    sums = (codebook * counts[:, None]).astype("float32")
    layer.codebook.assign(codebook)
    layer.ema_counts.assign(counts)
    layer.ema_sums.assign(sums)
    layer._ema_started.assign(1.0)
    z = rng.normal(size=(10, d)).astype("float32")
    layer(z, training=True)

    dist = ((z[:, None] - codebook[None]) ** 2).sum(-1)
    codes = dist.argmin(-1)
    one_hot = np.eye(k)[codes]
    new_counts = decay * counts + (1 - decay) * one_hot.sum(0)
    new_sums = decay * sums + (1 - decay) * one_hot.T @ z
    n = new_counts.sum()
    expected = new_sums / ((new_counts + eps) / (n + k * eps) * n)[:, None]
    dead = np.flatnonzero(new_counts < threshold)
    assert len(dead) == 2  # codes 1 and 3 fall below the threshold
    worst = np.argsort(-dist.min(-1), kind="stable")
    expected[dead] = z[worst[: len(dead)]]
    new_counts[dead] = 1.0
    np.testing.assert_allclose(np_numpy(layer.codebook), expected, atol=1e-5)
    np.testing.assert_allclose(np_numpy(layer.ema_counts), new_counts, atol=1e-5)
    np.testing.assert_allclose(np_numpy(layer.ema_sums)[dead], z[worst[:2]], atol=1e-6)
    layer(z, training=False)  # inference leaves the codebook alone
    np.testing.assert_allclose(np_numpy(layer.codebook), expected, atol=1e-5)


def test_tokenizer_losses_encode_decode_and_fit_step():
    keras.utils.set_random_seed(0)
    tokenizer = tiny_tokenizer(ema_decay=None)
    images = np.random.default_rng(2).uniform(size=(4, 16, 16, 3)).astype("float32")
    out = tokenizer({"images": images})
    terms = tokenizer.loss_terms({"images": images}, y_pred=out)
    recon, z = np_numpy(out["reconstructions"]), np_numpy(out["latents"])
    q = np_numpy(out["quantized"])
    np.testing.assert_allclose(
        float(terms["reconstruction"]), np.mean((images - recon) ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(terms["loss"]),
        np.mean((images - recon) ** 2) + 1.25 * np.mean((z - q) ** 2),
        rtol=1e-5,
    )
    codes = tokenizer.encode(images)
    assert codes.shape == (4, 4, 4) and codes.dtype == np.int32
    np.testing.assert_array_equal(codes, ops.convert_to_numpy(out["codes"]))
    np.testing.assert_allclose(tokenizer.decode(codes), recon, atol=1e-5)

    before = np_numpy(tokenizer.quantizer.codebook)
    tokenizer.compile(optimizer=keras.optimizers.SGD(0.1))
    history = tokenizer.fit({"images": images}, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(np_numpy(tokenizer.quantizer.codebook), before)
    with pytest.raises(ValueError, match="codes"):
        tokenizer.decode(np.full((1, 4, 4), 8))
    with pytest.raises(ValueError, match="image_shape"):
        ImageTokenizer((18, 18, 3), num_downsamples=2)


# ---------------------------------------------------------------- transformer
def test_causal_mask_and_logits_match_numpy(model):
    ids = np.random.default_rng(3).integers(0, 15, (2, 20)).astype("int32")
    logits = np_numpy(model.transformer(ids))
    np.testing.assert_allclose(
        logits, oracle_transformer(model.transformer, ids), atol=1e-4
    )
    changed = ids.copy()
    changed[:, 12] = (changed[:, 12] + 1) % 15
    after = np_numpy(model.transformer(changed))
    np.testing.assert_allclose(after[:, :12], logits[:, :12], atol=1e-6)
    assert np.abs(after[:, 12:] - logits[:, 12:]).max(axis=-1).min() > 1e-4


def test_cached_decoding_equals_full_logits(model):
    ids = np.random.default_rng(4).integers(0, 15, (3, 20)).astype("int32")
    full = np_numpy(model.transformer(ids))[:, :12]
    logits, cache = model.transformer.prefill(ids[:, :8])
    steps = [np_numpy(logits)]
    for t in range(8, 12):  # the cache holds all 20 positions; 4 steps suffice
        logits, cache = model.transformer.step(ids[:, t : t + 1], t, cache)
        steps.append(np_numpy(logits)[:, None])
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_greedy_generation_equals_numpy_greedy_decode(model):
    prompts = ["a red circle", "blue square"]
    # Every `generate` call of these tests decodes 4 sequences: one compilation.
    images, codes = model.generate(
        prompts, num_samples=2, temperature=0, return_codes=True
    )
    images, codes = images[::2], codes[::2]
    text = model.tokenize(prompts)
    np.testing.assert_array_equal(text, [[2, 3, 5, 0], [4, 6, 0, 0]])
    offset, sequence = len(VOCAB), text
    for _ in range(16):  # greedy over the image codes only
        logits = oracle_transformer(model.transformer, sequence)[:, -1, offset:]
        sequence = np.concatenate([sequence, logits.argmax(-1)[:, None] + offset], 1)
    expected = sequence[:, TEXT_LENGTH:] - offset
    np.testing.assert_array_equal(codes.reshape(2, -1), expected)
    np.testing.assert_allclose(images, model.image_tokenizer.decode(codes), atol=1e-6)
    assert images.shape == (2, 16, 16, 3) and 0 <= images.min() <= images.max() <= 1


def guided_copy(model, prompt_dropout=0.25):
    config = model.get_config()
    config["prompt_dropout"] = prompt_dropout
    guided = TextToImage.from_config(config)
    guided.transformer.set_weights(model.transformer.get_weights())
    guided.image_tokenizer.set_weights(model.image_tokenizer.get_weights())
    return guided


def test_guided_greedy_generation_equals_numpy_guided_decode(model, tmp_path):
    guided = guided_copy(model)
    prompts, scale = ["a red circle", "blue square"], 2.5
    codes = guided.generate(
        prompts, num_samples=2, temperature=0, guidance_scale=scale, return_codes=True
    )[1][::2]
    offset = len(VOCAB)
    text = guided.tokenize(prompts)
    empty = np.zeros_like(text)  # classifier-free guidance's empty prompt
    image = np.zeros((2, 0), "int64")
    for _ in range(16):
        with_text = oracle_transformer(
            model.transformer, np.concatenate([text, image], 1)
        )
        without = oracle_transformer(
            model.transformer, np.concatenate([empty, image], 1)
        )
        u, c = without[:, -1, offset:], with_text[:, -1, offset:]
        image = np.concatenate(
            [image, (u + scale * (c - u)).argmax(-1)[:, None] + offset], 1
        )
    np.testing.assert_array_equal(codes.reshape(2, -1), image - offset)
    plain = model.generate(prompts, num_samples=2, temperature=0, return_codes=True)[1]
    assert not np.array_equal(codes, plain[::2])  # the guidance changed the samples
    # Scale 1 is plain conditional sampling, also when sampling (same seed).
    once = guided.generate(
        prompts, num_samples=2, seed=4, guidance_scale=1.0, return_codes=True
    )[1]
    np.testing.assert_array_equal(
        once, model.generate(prompts, num_samples=2, seed=4, return_codes=True)[1]
    )
    path = os.path.join(tmp_path, "guided.keras")
    guided.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.generate(
        prompts, num_samples=2, temperature=0, guidance_scale=scale, return_codes=True
    )[1][::2]
    assert loaded.prompt_dropout == 0.25
    np.testing.assert_array_equal(again, codes)
    with pytest.raises(ValueError, match="guidance_scale"):
        guided.generate(prompts, guidance_scale=-1.0)


def test_fit_forward_pass_sees_the_empty_prompt_at_the_dropout_rate(model):
    guided = guided_copy(model, prompt_dropout=0.5)
    x = data(16)
    x["token_ids"][:, 0] = 2  # no row is already the empty prompt
    trained = np_numpy(guided(x, training=True)["logits"])
    with_text = np_numpy(guided(x)["logits"])
    empty = np_numpy(guided({**x, "token_ids": 0 * x["token_ids"]})["logits"])
    dropped = np.abs(trained - empty).max(axis=(1, 2)) < 1e-5
    kept = np.abs(trained - with_text).max(axis=(1, 2)) < 1e-5
    np.testing.assert_array_equal(dropped, ~kept)  # each row one or the other
    assert 0 < dropped.sum() < 16, dropped
    with pytest.raises(ValueError, match="prompt_dropout"):
        TextToImage(model.image_tokenizer, VOCAB, prompt_dropout=1.0)


def test_prompt_dropout_empties_whole_prompts_in_training_only():
    ids = np.random.default_rng(0).integers(2, 7, (2000, TEXT_LENGTH)).astype("int32")
    layer = PromptDropout(0.3, seed=1)
    dropped = np.asarray(ops.convert_to_numpy(layer(ids, training=True)))
    empty = (dropped == 0).all(axis=1)
    np.testing.assert_array_equal(dropped[~empty], ids[~empty])  # whole rows only
    assert 0.25 < empty.mean() < 0.35
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(ids)), ids)
    assert PromptDropout.from_config(layer.get_config()).rate == 0.3
    with pytest.raises(ValueError, match="prompt_dropout"):
        PromptDropout(1.0)


def test_filter_and_sample_matches_numpy():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 7)).astype("float32") * 2
    u = rng.uniform(size=6).astype("float32")
    temperature = np.asarray([0.0, 1.0, 0.5, 1.0, 2.0, 1.0], "float32")
    top_k = np.asarray([7, 7, 3, 1, 7, 2], "int32")
    top_p = np.asarray([1.0, 1.0, 1.0, 1.0, 0.6, 0.9], "float32")
    got = ops.convert_to_numpy(filter_and_sample(logits, u, temperature, top_k, top_p))
    for row in range(6):
        if temperature[row] == 0:
            assert got[row] == logits[row].argmax()
            continue
        p = np.exp(logits[row] / temperature[row])
        p /= p.sum()
        order = np.argsort(-p)
        keep = np.zeros(7, bool)
        keep[order[: top_k[row]]] = True
        mass_before = np.cumsum(p[order]) - p[order]
        nucleus = np.zeros(7, bool)
        nucleus[order[mass_before < top_p[row]]] = True
        kept = np.where(keep & nucleus, p, 0.0)
        cdf = np.cumsum(kept)
        assert got[row] == min(np.sum(cdf <= u[row] * cdf[-1]), 6), row


def test_sampling_seeds_and_clip_rerank(model):
    a = model.generate(["a red circle"], num_samples=4, seed=7, return_codes=True)[1]
    b = model.generate(["a red circle"], num_samples=4, seed=7, return_codes=True)[1]
    c = model.generate(["a red circle"], num_samples=4, seed=8, return_codes=True)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    greedy = model.generate(["a red"], num_samples=4, temperature=0, return_codes=True)
    top1 = model.generate(["a red"], num_samples=4, top_k=1, seed=3, return_codes=True)
    np.testing.assert_array_equal(top1[1], greedy[1])

    from keras_mm.encoders import ConvImageEncoder, TextEncoder

    clip = CLIP(
        ConvImageEncoder(image_shape=(16, 16, 3), hidden_dim=8),
        TextEncoder(
            vocabulary_size=len(VOCAB),
            max_sequence_length=TEXT_LENGTH,
            hidden_dim=8,
            num_layers=1,
            num_heads=1,
            intermediate_dim=8,
        ),
        embed_dim=8,
        vocabulary=VOCAB,
    )
    images = model.generate(["a red circle"], num_samples=4, seed=7)
    scores = TextToImage.clip_scores(clip, ["a red circle"], images)
    best = model.generate(["a red circle"], num_samples=4, seed=7, rerank=clip, keep=2)
    np.testing.assert_allclose(best, images[np.argsort(-scores)[:2]], atol=1e-6)


def test_saving_round_trips(model, tmp_path):
    path = os.path.join(tmp_path, "t2i.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = data(4)
    np.testing.assert_allclose(
        np_numpy(loaded(x)["logits"]), np_numpy(model(x)["logits"]), atol=1e-6
    )
    codes = model.generate(["a red"], num_samples=4, seed=0, return_codes=True)[1]
    np.testing.assert_array_equal(
        loaded.generate(["a red"], num_samples=4, seed=0, return_codes=True)[1], codes
    )
    assert loaded.vocabulary == VOCAB and not loaded.image_tokenizer.trainable
    tokenizer_path = os.path.join(tmp_path, "tokenizer.keras")
    model.image_tokenizer.save(tokenizer_path)
    tokenizer = keras.saving.load_model(tokenizer_path)
    codes = np.random.default_rng(0).integers(0, 8, (2, 4, 4))
    np.testing.assert_allclose(
        tokenizer.decode(codes), model.image_tokenizer.decode(codes), atol=1e-6
    )


def test_fit_step_trains_transformer_only(model):
    tokenizer_before = [np_numpy(v) for v in model.image_tokenizer.weights]
    head_before = np_numpy(model.transformer.head.kernel)
    clone = TextToImage.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = clone.fit(data(8), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(np_numpy(clone.transformer.head.kernel), head_before)
    for before, after in zip(tokenizer_before, clone.image_tokenizer.weights):
        np.testing.assert_array_equal(np_numpy(after), before)
    x = data(8)
    terms = clone.loss_terms(x, y_pred=clone(x))
    logits = np_numpy(clone(x)["logits"])
    image = logits[:, TEXT_LENGTH - 1 : -1, len(VOCAB) :]
    image = image - np.log(np.exp(image).sum(-1, keepdims=True))
    targets = x["image_codes"].reshape(8, -1)
    expected = -np.take_along_axis(image, targets[..., None], -1).mean()
    np.testing.assert_allclose(float(terms["image_loss"]), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prompts": [""]}, "empty prompt"),
        ({"prompts": ["a green circle"]}, "unknown \\['green'\\]"),
        ({"prompts": ["a red circle a blue"]}, "text_length=4"),
        ({"prompts": []}, "prompts"),
        ({"prompts": ["a red"], "num_samples": 0}, "num_samples"),
        ({"prompts": ["a red"], "temperature": -1.0}, "temperature"),
        ({"prompts": ["a red"], "top_k": 9}, "top_k"),
        ({"prompts": ["a red"], "top_p": 0.0}, "top_p"),
        ({"prompts": ["a red"], "rerank": "clip"}, "rerank"),
        ({"prompts": ["a red"], "guidance_scale": 2.0}, "prompt_dropout"),
    ],
)
def test_bad_generate_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate(**kwargs)
