"""A `.npy` file of float32 rows written batch by batch (row count unknown).

The header is a fixed 128 bytes, written as a placeholder first and filled in
with the final shape on `close()`; rows are appended as they come, so only one
batch is ever in memory. The file is written under a temporary name and
renamed on `close()`: an interrupted index leaves no half-written array.
`numpy.load(path, mmap_mode="r")` reads it like any `.npy` file (format 1.0).
"""

import os

import numpy as np

HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + dict text, 64-aligned
_MAGIC = b"\x93NUMPY\x01\x00"


def npy_header(shape, dtype="float32"):
    """A format-1.0 `.npy` header of exactly `HEADER_BYTES` bytes."""
    fields = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    text = repr(fields).encode("latin1")
    size = HEADER_BYTES - len(_MAGIC) - 2
    if len(text) + 1 > size:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte header")
    text = text + b" " * (size - len(text) - 1) + b"\n"
    return _MAGIC + size.to_bytes(2, "little") + text


class EmbeddingWriter:
    """Append `(n, dim)` float32 batches to a `.npy` file; `close()` commits it."""

    def __init__(self, path):
        self.path, self.tmp = path, f"{path}.part"
        self.rows, self.dim = 0, None
        self._file = open(self.tmp, "wb")
        self._file.write(b"\0" * HEADER_BYTES)

    def append(self, rows):
        rows = np.ascontiguousarray(rows, dtype="float32")
        if rows.ndim != 2 or (self.dim is not None and rows.shape[1] != self.dim):
            raise ValueError(
                f"embedding rows must be (n, {self.dim or 'dim'}). Received: "
                f"shape={rows.shape}"
            )
        self.dim = rows.shape[1]
        self._file.write(rows.tobytes())
        self.rows += len(rows)

    def close(self):
        """Write the header with the final shape and rename to `path`."""
        self._file.seek(0)
        self._file.write(npy_header((self.rows, self.dim or 0)))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self._file.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)
