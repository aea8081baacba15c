"""Activation functions that keras_mm's encoders accept by name."""

from keras import ops

from keras_mm.api_export import keras_mm_export

__all__ = ["quick_gelu"]


@keras_mm_export("keras_mm.activations.quick_gelu")
def quick_gelu(x):
    """CLIP's sigmoid approximation of GELU: `x * sigmoid(1.702 * x)`.

    OpenAI's CLIP and keras-hub's `CLIPBackbone` use it. It is much cheaper than the
    exact (erf) GELU on CPU: with it, a JAX forward+backward pass of keras_mm's
    small ViT tower took 28 ms instead of 45 ms (benchmarks/RESULTS.md). Encoders
    accept it as `activation="quick_gelu"`.

    Reference: Hendrycks and Gimpel, 2016, "Gaussian Error Linear Units", section 2.
    """
    x = ops.convert_to_tensor(x)
    return x * ops.sigmoid(ops.cast(1.702, x.dtype) * x)


# Names the encoders resolve besides Keras' own activations.
ACTIVATIONS = {"quick_gelu": quick_gelu}
