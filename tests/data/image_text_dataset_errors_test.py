"""ImageTextDataset: bad records and escaping paths, named or skipped and counted."""

import os
import re
import tarfile

import keras
import pytest

from keras_mm.data import ImageTextDataset
from keras_mm.models import CLIP
from tests.data import stream_fixtures as fx
from tests.models.model_test_utils import image_encoder, text_encoder

GOOD = ["rocket.jpg", "chelsea.png", "horse.png", "coins.png"]
# name in the CSV -> reason it is counted under with on_error="skip"
BAD = {
    "missing.jpg": "missing",
    "corrupt.jpg": "corrupt",
    "truncated.jpg": "truncated",
    "retina.jpg": "oversized",  # 1411 x 1411 > max_pixels below
    fx.UNSUPPORTED: "corrupt",  # a TIFF Pillow cannot read
    "../outside.png": "escaping_path",
    "/etc/hostname": "escaping_path",
    "link.png": "escaping_path",  # a symbolic link out of the root
}
MAX_PIXELS = 1000 * 1000


def stream(source, **kwargs):
    args = dict(batch_size=2, image_size=16, vocabulary=fx.VOCABULARY)
    args.update(sequence_length=6, max_pixels=MAX_PIXELS, shuffle=False, **kwargs)
    return ImageTextDataset(source, **args)


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    root = base / "root"
    fx.copy_photos(str(root), GOOD + ["retina.jpg"])
    fx.copy_photos(str(base), ["phantom.png"])
    os.rename(base / "phantom.png", base / "outside.png")
    os.symlink(base / "outside.png", root / "link.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "truncated.jpg").write_bytes(fx.photo_bytes("rocket.jpg")[:20_000])
    (root / fx.UNSUPPORTED).write_bytes(fx.photo_bytes(fx.UNSUPPORTED))
    sources = {}
    for name in BAD:
        rows = ["filepath,title"] + [f"{g},{fx.caption(i)}" for i, g in enumerate(GOOD)]
        rows.insert(2, f"{name},a photo of the moon.")
        path = root / f"{name.replace('/', '_')}.csv"
        path.write_text("\n".join(rows) + "\n")
        sources[name] = str(path)
    rows = ["filepath,title"] + [f"{n},{fx.caption(i)}" for i, n in enumerate(BAD)]
    rows += [f"{g},{fx.caption(i)}" for i, g in enumerate(GOOD)]
    (root / "all.csv").write_text("\n".join(rows) + "\n")
    return str(root), sources


@pytest.mark.backend_independent  # tf.data alone
def test_each_bad_record_is_a_value_error_naming_the_file(bad_csv):
    _, sources = bad_csv
    # Through the whole pipeline (iteration raises a plain ValueError) ...
    with pytest.raises(ValueError, match=r"link\.png.*outside the dataset root"):
        list(stream(sources["link.png"]))
    # ... and, for every kind, the fetch step that pipeline runs per record.
    data = stream(sources["missing.jpg"])
    for name, reason in BAD.items():
        with pytest.raises(ValueError) as info:
            data._fetch(0, name.encode(), b"", b"")
        assert os.path.basename(name) in str(info.value), (name, info.value)
        words = {
            "missing": "not found",
            "escaping_path": "refused|outside",
            "oversized": "exceeds max_pixels",
        }
        assert re.search(words.get(reason, reason), str(info.value)), info.value


@pytest.mark.backend_independent  # tf.data alone
def test_skip_counts_every_bad_record_per_epoch(bad_csv):
    root, _ = bad_csv
    data = stream(os.path.join(root, "all.csv"), on_error="skip")
    for _ in range(2):  # counted again at each epoch
        batches = list(data)
        assert sum(len(b[1]) for b in batches) == len(GOOD)
        expected = {}
        for reason in BAD.values():
            expected[reason] = expected.get(reason, 0) + 1
        assert data.bad_records == expected


def test_fit_reports_skips_and_raise_names_the_file_in_fit(bad_csv):
    root, sources = bad_csv
    model = CLIP(image_encoder(), text_encoder(), embed_dim=8)
    model.compile(optimizer="adam")
    data = stream(os.path.join(root, "all.csv"), on_error="skip")
    history = model.fit(data.dataset, callbacks=[data.callback(False)], verbose=0)
    assert history.history["bad_records"] == [len(BAD)]
    data = stream(sources["truncated.jpg"])
    # Inside fit TensorFlow wraps the ValueError; its message names the file.
    with pytest.raises(Exception, match=r"ValueError: .*truncated\.jpg: truncated"):
        model.fit(data.dataset, verbose=0)


def write_bad_tar(path):
    with tarfile.open(path, "w") as tar:
        rocket = fx.photo_bytes("rocket.jpg")
        fx.add_member(tar, "000.jpg", rocket)
        fx.add_member(tar, "000.txt", b"a photo of the sky.")
        fx.add_member(tar, "../001.jpg", rocket)  # escapes
        fx.add_member(tar, "../001.txt", b"a cat")
        fx.add_member(tar, "/abs/002.jpg", rocket)
        fx.add_member(tar, "003.jpg", b"", tarfile.SYMTYPE, "/etc/passwd")
        fx.add_member(tar, "004.jpg", rocket)
        fx.add_member(tar, "004.txt", b"\xff\xfe not utf-8 \xff")  # unreadable
        fx.add_member(tar, "005.png", rocket[:9000])  # truncated, named .png
        fx.add_member(tar, "005.json", b'{"caption": "a photo of the road."}')
        fx.add_member(tar, "006.jpg", rocket)  # no caption
        fx.add_member(tar, "007.webp", fx.webp_bytes())
        fx.add_member(tar, "007.json", b'{"caption": "a photo of a cat."}')
    return str(path)


@pytest.mark.backend_independent  # tf.data alone
def test_tar_members_escaping_or_broken_are_named_or_counted(tmp_path):
    source = write_bad_tar(tmp_path / "bad-000.tar")
    data = stream(source, on_error="skip", batch_size=1)
    assert len(list(data)) == 2  # 000 and 007
    counts = data.bad_records
    assert counts == {"bad_record": 6, "truncated": 1}, counts
    with pytest.raises(ValueError, match=r"'\.\./001\.jpg' escapes the shard"):
        list(stream(source, batch_size=1))


def test_escaping_paths_in_json_formats(tmp_path):
    root = tmp_path / "root"
    path = fx.write_coco(str(root), ["rocket.jpg"])
    text = open(path).read().replace("val2017/rocket.jpg", "../../rocket.jpg")
    with open(path, "w") as f:
        f.write(text)
    with pytest.raises(ValueError, match="outside the dataset root"):
        list(stream(path, batch_size=1))
    assert keras.backend.backend()  # runs under every backend
