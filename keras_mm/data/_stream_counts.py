"""Private, TensorFlow-free parts of the streams: normalization, bad-record counts."""

import threading

# CLIP (Radford et al. 2021, OpenAI's preprocessing), SigLIP (big_vision), [0, 1].
NORMALIZATION = {
    "clip": (
        (0.48145466, 0.4578275, 0.40821073),
        (0.26862954, 0.26130258, 0.27577711),
    ),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


class BadRecordCounts:
    """Thread-safe counts of bad records, per pass over the data (iteration)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.iterations = {}  # iteration -> {"fetched", "delivered", reasons...}
        self.examples = []
        self.records_read = 0

    def add(self, iteration, key, value=1, example=None):
        with self._lock:
            counts = self.iterations.setdefault(int(iteration), {})
            counts[key] = counts.get(key, 0) + value
            if key == "fetched":
                self.records_read += value
            if example is not None and len(self.examples) < 20:
                self.examples.append(example)

    def report(self, iteration):
        """`{reason: count}` of one pass; "undecodable" when it ran to its end."""
        with self._lock:
            counts = dict(self.iterations.get(int(iteration), {}))
        fetched, delivered = counts.pop("fetched", 0), counts.pop("delivered", 0)
        if counts.pop("finished", 0):
            undecodable = fetched - delivered - sum(counts.values())
            if undecodable:
                counts["undecodable"] = undecodable
        return counts


def check_normalization(normalization):
    if isinstance(normalization, str) and normalization in NORMALIZATION:
        return NORMALIZATION[normalization]
    try:
        mean, std = normalization
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        if len(mean) == len(std) == 3 and min(std) > 0:
            return tuple(mean), tuple(std)
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f"`normalization` must be one of {sorted(NORMALIZATION)} or a (mean, std) "
        f"pair of 3 floats each (std > 0). Received: {normalization!r}"
    )
