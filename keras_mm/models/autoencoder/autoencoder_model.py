import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.models.autoencoder.autoencoder_layers import (
    ModalityDropout,
    default_decoder,
)
from keras_mm.models.autoencoder.autoencoder_presets import autoencoder_presets
from keras_mm.models.model_utils import (
    check_positive_int,
    image_like_input,
    make_fusion,
    pooled_features,
    serialize_fusion,
)
from keras_mm.models.multimodal_model import MultimodalModel

MASK_KEY = "modality_mask"


def _per_example_mse(reconstruction, target):
    diff = ops.cast(reconstruction, "float32") - ops.cast(target, "float32")
    sq = ops.square(diff)
    return ops.mean(ops.reshape(sq, (ops.shape(sq)[0], -1)), axis=-1)


@keras_mm_export("keras_mm.models.MultimodalAutoencoder")
class MultimodalAutoencoder(MultimodalModel):
    """Multimodal autoencoder with cross-modal reconstruction of a masked modality.

    Seed section 4.1.1,

        min L(x, y) = || f_d(f_e(x, y)) - [x, y] ||^2,

    generalised to `n >= 2` continuous modalities: one encoder per modality,
    a linear map of each to `code_dim`, a fusion layer (concat, attention or
    gated; it respects a `(batch, n)` modality mask) giving the shared code, and
    one decoder per modality reconstructing it from the code. The loss is the
    sum over modalities of the mean squared error (per example, then averaged).

    Cross-modal reconstruction: during training `ModalityDropout` hides one
    modality of an example with probability `modality_dropout` (its code is
    zeroed and masked out of the fusion) while its reconstruction still counts,
    so the code of the remaining modalities must predict it. At inference pass
    `"modality_mask"` (or call `reconstruct` with the modality left out) to
    reconstruct a missing modality from the others. Metrics:
    `reconstruction_loss` (visible modalities) and `cross_modal_loss` (hidden).

    Args:
        encoders: dict `{key: keras.Model}`; each key is an input key (e.g.
            `"images"`, `"audio"`) and the model maps that input to features.
        decoders: dict `{key: keras.Model}` from `(batch, code_dim)` to the shape
            of that input, or None for MLP decoders with `decoder_hidden_dim`.
        code_dim: int. Size of the fused code.
        fusion: `"concat"`, `"attention"`, `"gated"` or a fusion layer taking a
            list of `(batch, code_dim)` tensors and a `(batch, n)` `mask`.
        modality_dropout: float in [0, 1]. Probability of hiding one modality of
            an example during training.
        decoder_hidden_dim: int. Hidden width of the default decoders.
        seed: int or None. Seed of the modality dropout.
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with one entry per encoder key, and optionally
            `"modality_mask"` `(batch, n)` (1 = present, in the encoders' order;
            default all ones).

    Returns:
        A dict: `"code"` `(batch, code_dim)`, `"modality_mask"` (the mask after
        dropout) and `"<key>_reconstruction"` for every modality.

    Example:

    >>> model = MultimodalAutoencoder({"images": image_enc, "audio": audio_enc},
    ...                               code_dim=32)  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit({"images": images, "audio": audio}, epochs=5)  # doctest: +SKIP
    >>> audio_hat = model.reconstruct({"images": images})["audio_reconstruction"]
    ... # doctest: +SKIP

    Reference:
        Ngiam et al., 2011, "Multimodal Deep Learning"; seed section 4.1.1.
    """

    _nested_layer_keys = ("encoders", "decoders", "fusion")
    presets = autoencoder_presets

    def __init__(
        self,
        encoders,
        decoders=None,
        code_dim=32,
        fusion="concat",
        modality_dropout=0.5,
        decoder_hidden_dim=128,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        if not isinstance(encoders, dict) or len(encoders) < 2:
            raise ValueError(
                "`encoders` must be a dict of at least 2 `{input_key: model}` "
                f"entries. Received: encoders={encoders!r}"
            )
        keys = list(encoders)
        if MASK_KEY in keys:
            raise ValueError(f"`encoders` must not use the reserved key {MASK_KEY!r}")
        check_positive_int("code_dim", code_dim)
        check_positive_int("decoder_hidden_dim", decoder_hidden_dim)
        fusion_layer = make_fusion(fusion, code_dim, dtype)
        dropout_layer = ModalityDropout(
            modality_dropout, seed=seed, name="modality_dropout"
        )

        # === Functional graph ===
        inputs = {k: image_like_input(encoders[k], f"encoders['{k}']", k) for k in keys}
        inputs[MASK_KEY] = keras.Input((len(keys),), dtype="float32", name=MASK_KEY)
        if decoders is None:
            decoders = {
                k: default_decoder(
                    code_dim,
                    tuple(inputs[k].shape[1:]),
                    decoder_hidden_dim,
                    name=f"{k}_decoder",
                    dtype=dtype,
                )
                for k in keys
            }
        if not isinstance(decoders, dict) or sorted(decoders) != sorted(keys):
            raise ValueError(
                "`decoders` must be None or a dict with the keys of `encoders` "
                f"{keys}. Received: decoders keys="
                f"{sorted(decoders) if isinstance(decoders, dict) else decoders!r}"
            )
        to_code = {
            k: keras.layers.Dense(code_dim, dtype=dtype, name=f"{k}_to_code")
            for k in keys
        }
        mask = dropout_layer(inputs[MASK_KEY])
        codes = []
        for i, k in enumerate(keys):
            z = to_code[k](pooled_features(encoders[k](inputs[k])))
            codes.append(z * ops.cast(mask[:, i : i + 1], z.dtype))
        code = fusion_layer(codes, mask=mask)
        outputs = {"code": code, MASK_KEY: mask}
        for k in keys:
            reconstruction = decoders[k](code)
            if tuple(reconstruction.shape[1:]) != tuple(inputs[k].shape[1:]):
                raise ValueError(
                    f"decoders['{k}'] must output the shape of input '{k}' "
                    f"{tuple(inputs[k].shape)}. Received: output "
                    f"shape={tuple(reconstruction.shape)}"
                )
            outputs[f"{k}_reconstruction"] = reconstruction
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Attributes ===
        self.encoders = encoders
        self.decoders = decoders
        self.modality_keys = keys
        self.to_code = to_code
        self.fusion_layer = fusion_layer
        self.modality_dropout_layer = dropout_layer
        self.fusion = fusion
        self.code_dim = code_dim
        self.modality_dropout = float(modality_dropout)
        self.decoder_hidden_dim = decoder_hidden_dim
        self.seed = seed
        self._add_term_trackers(["reconstruction_loss", "cross_modal_loss"])
        self._finish_init()

    def _fill_inputs(self, inputs):
        if MASK_KEY not in inputs:
            present = [k for k in self.modality_keys if k in inputs]
            if present:
                first = inputs[present[0]]
                n = len(self.modality_keys)
                if isinstance(first, np.ndarray):  # keep eager NumPy calls NumPy
                    inputs[MASK_KEY] = np.ones((first.shape[0], n), "float32")
                else:
                    inputs[MASK_KEY] = ops.ones((ops.shape(first)[0], n), "float32")
        return inputs

    def loss_terms(self, x, y=None, y_pred=None, training=False):
        n = len(self.modality_keys)
        first = x[self.modality_keys[0]]
        available = x.get(MASK_KEY)
        if available is None:
            available = ops.ones((ops.shape(first)[0], n), "float32")
        available = ops.cast(available, "float32")
        visible = ops.cast(y_pred[MASK_KEY], "float32") * available
        hidden = available - visible
        total = rec = cross = 0.0
        for i, k in enumerate(self.modality_keys):
            err = _per_example_mse(y_pred[f"{k}_reconstruction"], x[k])
            a, v, h = available[:, i], visible[:, i], hidden[:, i]
            total = total + ops.sum(err * a) / ops.maximum(ops.sum(a), 1.0)
            rec = rec + ops.sum(err * v) / ops.maximum(ops.sum(v), 1.0)
            cross = cross + ops.sum(err * h) / ops.maximum(ops.sum(h), 1.0)
        return {"loss": total, "reconstruction_loss": rec, "cross_modal_loss": cross}

    def reconstruct(self, inputs, batch_size=256):
        """Reconstruct every modality, including those missing from `inputs`.

        Missing modality keys are filled with zeros and masked out, so their
        reconstruction comes from the other modalities alone.

        Returns:
            The model's output dict as NumPy arrays.
        """
        present = [k for k in self.modality_keys if k in inputs]
        if not present:
            raise ValueError(
                f"{self.__class__.__name__}.reconstruct needs at least one of the "
                f"modalities {self.modality_keys}. Received: keys={sorted(inputs)}"
            )
        batch = int(np.shape(inputs[present[0]])[0])
        filled = {}
        for k in self.modality_keys:
            if k in inputs:
                filled[k] = inputs[k]
            else:
                spec = self._inputs_struct[k]
                filled[k] = np.zeros((batch,) + tuple(spec.shape[1:]), spec.dtype)
        mask = np.asarray(
            [[float(k in inputs)] * batch for k in self.modality_keys], "float32"
        ).T
        if MASK_KEY in inputs:
            mask = mask * np.asarray(inputs[MASK_KEY], "float32")
        filled[MASK_KEY] = mask
        return self.predict(filled, batch_size=batch_size, verbose=0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoders": {
                    k: keras.layers.serialize(v) for k, v in self.encoders.items()
                },
                "decoders": {
                    k: keras.layers.serialize(v) for k, v in self.decoders.items()
                },
                "code_dim": self.code_dim,
                "fusion": serialize_fusion(self.fusion),
                "modality_dropout": self.modality_dropout,
                "decoder_hidden_dim": self.decoder_hidden_dim,
                "seed": self.seed,
            }
        )
        return config
