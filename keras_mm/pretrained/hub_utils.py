"""Private helpers: where a checkpoint is, and a fast, clear failure when offline.

`resolve_checkpoint(preset, ...)` turns what a user passed (a local directory, a
keras-hub preset name such as `"clip_vit_base_patch16"`, `"kaggle://..."` or
`"hf://org/name"`) into either a local directory or a hub handle that can be
downloaded now. With no network it answers in well under a second: from the local
download caches if the checkpoint is there, else with a `ConnectionError` that says
what to do, instead of keras-hub's / kagglehub's 15-20 seconds of retries ending in a
DNS error. Nothing here imports keras-hub, TensorFlow or a downloader client.

A checkpoint is considered offline when `KERAS_MM_OFFLINE`, `HF_HUB_OFFLINE` or
`TRANSFORMERS_OFFLINE` is set to a true value (for every hub, Kaggle included), or when
the hub's host cannot be reached within `PROBE_TIMEOUT` seconds.
"""

import glob
import os
import socket
import threading
from urllib.parse import urlparse

OFFLINE_ENV_VARS = ("KERAS_MM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
TRUTHY = ("1", "true", "yes", "on")
PROBE_TIMEOUT = 0.75  # seconds, name resolution and TCP connect together
KAGGLE_HOST = "api.kaggle.com"
HUB_SCHEMES = ("kaggle", "hf", "modelscope", "gs", "s3")


def offline_env_var():
    """The name of the set offline environment variable, or None."""
    for name in OFFLINE_ENV_VARS:
        if os.environ.get(name, "").strip().lower() in TRUTHY:
            return name
    return None


def _scheme(preset):
    return preset.split("://", 1)[0].lower() if "://" in preset else None


def _hf_host():
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or "huggingface.co"


def host_reachable(host, port=443, timeout=PROBE_TIMEOUT):
    """Whether a TCP connection to `host:port` opens within `timeout` seconds.

    Name resolution runs in a daemon thread because `getaddrinfo` has no timeout
    of its own (a black-holed resolver can block for many seconds).
    """
    result = {}

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result.get("ok", False))


def _kaggle_cached_dir(preset):
    """A complete kagglehub cache directory of `preset` (name or handle), or None."""
    cache = os.environ.get(
        "KAGGLEHUB_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "kagglehub")
    )
    handle = preset.split("://", 1)[1] if "://" in preset else None
    if handle is None:  # A keras-hub preset name: any owner, model and version.
        pattern = os.path.join(cache, "models", "*", "*", "*", preset, "*")
    else:
        parts = handle.strip("/").split("/")
        if len(parts) == 4:
            parts.append("*")
        if len(parts) != 5:
            return None
        pattern = os.path.join(cache, "models", *parts)
    candidates = [
        d for d in glob.glob(pattern) if os.path.isfile(os.path.join(d, "config.json"))
    ]

    def version(path):
        name = os.path.basename(path)
        return int(name) if name.isdigit() else -1

    return max(candidates, key=version) if candidates else None


def _hf_cached_dir(preset, allow_patterns=None):
    """The local snapshot of an `hf://org/name` repository, or None (no network)."""
    try:
        import huggingface_hub
    except ImportError:
        return None
    try:
        path = huggingface_hub.snapshot_download(
            preset.split("://", 1)[1],
            local_files_only=True,
            allow_patterns=allow_patterns,
        )
    except Exception:  # LocalEntryNotFoundError, validation errors, ...
        return None
    return path if os.path.isfile(os.path.join(path, "config.json")) else None


def offline_error(preset, reason, local_example):
    return ConnectionError(
        f"Cannot load {preset!r}: it is a hub name (not a local directory), "
        f"{reason}, and it is not in the local download cache; keras_mm does not "
        "retry. Connect to the network, or download it once on a machine that "
        "has one and pass the local directory instead:\n"
        f"    {local_example}\n"
        "(a keras-hub preset directory is made with `save_to_preset(directory)`; a "
        "Hugging Face checkpoint directory holds config.json and *.safetensors). "
        "Received: preset="
        f"{preset!r}"
    )


def resolve_checkpoint(preset, local_example, hf_allow_patterns=None):
    """Return `(location, is_local)` for `preset`, or raise fast when offline.

    Args:
        preset: str. A local directory, a keras-hub preset name, or a
            `kaggle://`, `hf://` (or other hub) handle.
        local_example: str. One line of code shown in the offline error.
        hf_allow_patterns: file patterns for the Hugging Face cache lookup.

    Returns:
        `(path, True)` for a local directory (possibly a cache snapshot), or
        `(preset, False)` for a hub handle that can be downloaded now.
    """
    if not isinstance(preset, str) or not preset:
        raise ValueError(
            "`preset` must be a non-empty string: a local directory or a hub name. "
            f"Received: preset={preset!r}"
        )
    path = os.path.expanduser(preset)
    if os.path.isdir(path):
        return path, True
    scheme = _scheme(preset)
    if scheme is None and (
        os.path.exists(path)
        or os.sep in preset
        or preset.startswith(".")
        or preset.startswith("~")
    ):
        raise ValueError(
            f"`preset` {preset!r} looks like a path but is not a directory. Pass a "
            "preset directory (made with `save_to_preset`) or a Hugging Face "
            "checkpoint directory. Received: preset="
            f"{preset!r}"
        )
    if scheme == "file":
        return resolve_checkpoint(preset.split("://", 1)[1], local_example)
    env = offline_env_var()
    if env is not None:
        reason = f"{env}={os.environ[env]} is set"
    else:
        host = _hf_host() if scheme == "hf" else KAGGLE_HOST
        if scheme not in (None, "kaggle", "hf") or host_reachable(host):
            return preset, False
        reason = f"{host} cannot be reached (no network within {PROBE_TIMEOUT} s)"
    if scheme == "hf":
        cached = _hf_cached_dir(preset, hf_allow_patterns)
    elif scheme in (None, "kaggle"):
        cached = _kaggle_cached_dir(preset)
    else:
        cached = None
    if cached is not None:
        return cached, True
    raise offline_error(preset, reason, local_example)
