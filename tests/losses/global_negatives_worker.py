"""Worker for global_negatives_test.py: run as `python -m ... jax KIND TILE`.

Prints one JSON line. The environment (KERAS_BACKEND, XLA_FLAGS) is set by the
test before Python starts, since both must be fixed before keras imports.
"""

import json
import sys

import numpy as np

B, D_IMAGE, D_TEXT, D = 32, 8, 6, 16
LR = 0.5


def data():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(B, D_IMAGE)).astype("float32")
    texts = rng.normal(size=(B, D_TEXT)).astype("float32")
    return images, texts


def build(keras):
    from keras_mm.layers import ContrastiveLogits

    images = keras.Input((D_IMAGE,), name="images")
    texts = keras.Input((D_TEXT,), name="texts")
    x = keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotUniform(1))(
        images
    )
    y = keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotUniform(2))(
        texts
    )
    x = keras.ops.normalize(x, axis=-1)
    y = keras.ops.normalize(y, axis=-1)
    model = keras.Model({"images": images, "texts": texts}, [x, y])
    head = ContrastiveLogits(init_scale=10.0, max_scale=100.0, init_bias=-5.0)
    head.build((None, D), (None, D))
    return model, head


def loss_of(kind, head, x, y, tile_size):
    from keras_mm.losses import clip_loss_from_embeddings, siglip_loss_from_embeddings

    if kind == "clip":
        return clip_loss_from_embeddings(x, y, head.scale, tile_size=tile_size)
    return siglip_loss_from_embeddings(x, y, head.scale, head.bias, tile_size=tile_size)


def run_jax(kind, tile_size):
    import keras

    images, texts = data()

    class Tiny(keras.Model):
        def __init__(self):
            inner, head = build(keras)
            super().__init__(inner.inputs, inner.outputs)
            self.head = head

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kw):
            return loss_of(kind, self.head, y_pred[0], y_pred[1], tile_size)

    def one_step():
        model = Tiny()
        model.compile(optimizer=keras.optimizers.SGD(LR))
        inputs = {"images": images, "texts": texts}
        hist = model.fit(inputs, batch_size=B, epochs=1, shuffle=False, verbose=0)
        weights = [np.asarray(w).tolist() for w in model.get_weights()]
        sharding = getattr(model.weights[0].value, "sharding", None)
        placed = len(sharding.device_set) if sharding is not None else 1
        return hist.history["loss"][0], weights, placed

    single = one_step()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    dist = one_step()
    return {"devices": len(devices), "single": single, "dist": dist}


def local_negatives_loss(kind, shards):
    """Mean of per-shard losses at the initial weights (the weaker loss)."""
    import keras

    images, texts = data()
    model, head = build(keras)
    x, y = model({"images": images, "texts": texts})
    per = B // shards
    losses = [
        float(
            loss_of(
                kind, head, x[i * per : (i + 1) * per], y[i * per : (i + 1) * per], None
            )
        )
        for i in range(shards)
    ]
    return float(np.mean(losses))


if __name__ == "__main__":
    backend, kind, tile = sys.argv[1], sys.argv[2], sys.argv[3]
    tile = None if tile == "none" else int(tile)
    result = run_jax(kind, tile)
    result["local"] = local_negatives_loss(kind, result["devices"])
    print("RESULT " + json.dumps(result))
