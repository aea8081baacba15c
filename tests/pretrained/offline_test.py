"""Hub names fail fast and clearly without network; local caches still work."""

import os
import shutil
import socket
import time

import pytest

from keras_mm.pretrained import clip_from_huggingface, clip_from_keras_hub, hub_utils

OFFLINE_VARS = hub_utils.OFFLINE_ENV_VARS


@pytest.fixture
def online_env(monkeypatch, tmp_path):
    """No offline variable set, and empty download caches."""
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    return tmp_path


def refused_dns(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


HANG_SECONDS = 20


def hanging_dns(*args, **kwargs):
    time.sleep(HANG_SECONDS)  # A black-holed resolver.
    raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


def no_dns(*args, **kwargs):  # raised in the caller's thread: the test fails
    raise AssertionError("the network must not be consulted")


def assert_fast_clear_error(load, preset, limit=HANG_SECONDS / 4):
    """The error names the preset and arrives without waiting on the resolver.

    The limit is a fraction of the resolver's hang rather than a wall-clock
    promise: first imports (huggingface_hub) take seconds on a loaded CI machine.
    """
    import huggingface_hub  # noqa: F401  # Import time is not what is measured.

    start = time.perf_counter()
    with pytest.raises(ConnectionError) as error:
        load(preset)
    elapsed = time.perf_counter() - start
    assert elapsed < limit, f"took {elapsed:.2f} s"
    message = str(error.value)
    assert preset in message
    assert "local directory" in message
    return message


@pytest.mark.parametrize(
    "load, preset",
    [
        (clip_from_keras_hub, "clip_vit_base_patch16"),
        (clip_from_keras_hub, "kaggle://keras/clip/keras/clip_vit_base_patch16/3"),
        (clip_from_huggingface, "hf://openai/clip-vit-base-patch32"),
    ],
)
def test_offline_variable_gives_a_fast_clear_error(
    load, preset, online_env, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_utils, "host_reachable", no_dns)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "create_connection", no_dns)
    message = assert_fast_clear_error(load, preset)
    assert "HF_HUB_OFFLINE=1 is set" in message
    if load is clip_from_keras_hub:
        assert "save_to_preset" in message


def test_repository_id_without_scheme_is_a_hugging_face_name(online_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_fast_clear_error(clip_from_huggingface, "openai/clip-vit-base-patch32")


@pytest.mark.parametrize("dns", [refused_dns, hanging_dns], ids=["refused", "hangs"])
@pytest.mark.parametrize(
    "load, preset",
    [
        (clip_from_keras_hub, "clip_vit_base_patch16"),
        (clip_from_huggingface, "hf://openai/clip-vit-base-patch32"),
    ],
)
def test_blocked_network_gives_a_fast_clear_error(
    load, preset, dns, online_env, monkeypatch
):
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    message = assert_fast_clear_error(load, preset)
    assert "cannot be reached" in message


def test_kaggle_cache_is_used_offline(clip_preset, online_env, monkeypatch):
    # keras-hub downloads a preset name into kagglehub's cache; offline, that
    # copy loads without any network call.
    cached = online_env / "kagglehub/models/keras/clip/keras/clip_tiny_test/2"
    shutil.copytree(clip_preset, cached)
    monkeypatch.setattr(socket, "getaddrinfo", refused_dns)
    model, preprocessor = clip_from_keras_hub("clip_tiny_test")
    assert model.embed_dim == 6
    assert preprocessor is not None


def test_local_paths_never_touch_the_network(clip_preset, online_env, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a local preset must not probe the network")

    monkeypatch.setattr(hub_utils, "host_reachable", no_network)
    model, _ = clip_from_keras_hub(clip_preset)
    assert model.embed_dim == 6
    with pytest.raises(ValueError, match="not a directory"):
        clip_from_keras_hub(os.path.join(clip_preset, "config.json"))
