"""Model tests: single-threaded torch.

The tiny models of these tests are dominated by per-op overhead; on a small,
shared CPU torch's intra-op thread pool makes each step several times slower
(measured: one epoch 11 s with 2 threads vs 1.7 s with 1 on 2 busy cores).
"""

import keras

if keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)
