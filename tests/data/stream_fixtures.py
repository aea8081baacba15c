"""Writers of every streaming format, with scikit-image's real photographs.

scikit-image ships 29 images in its wheel (`skimage/data/`): greyscale, RGB and
RGBA PNGs, a palette GIF, TIFFs and JPEGs from 14 px to 1,411 px. The tests copy
them into each format and caption them; one is also re-encoded as WebP.
"""

import io
import json
import os
import shutil
import tarfile

import skimage.data
from PIL import Image

SKIMAGE_DIR = os.path.dirname(skimage.data.__file__)
EXTENSIONS = (".png", ".jpg", ".gif", ".tif")
# Every readable photograph; Pillow cannot open this one (a bad record to skip).
UNSUPPORTED = "multipage_rgb.tif"
PHOTOS = sorted(
    f
    for f in os.listdir(SKIMAGE_DIR)
    if f.lower().endswith(EXTENSIONS) and f != UNSUPPORTED
)
WORDS = ("red", "green", "blue", "cat", "dog", "sky", "road", "moon")
# A fixed word vocabulary shared by every format (the tiny test CLIP has 24 ids).
VOCABULARY = ["[PAD]", "[UNK]", "a", "photo", "of", "the", ".", *WORDS]


def caption(i):
    return f"a photo of the {WORDS[i % len(WORDS)]} {WORDS[(i * 3 + 1) % 8]}."


def photo_bytes(name):
    with open(os.path.join(SKIMAGE_DIR, name), "rb") as f:
        return f.read()


def webp_bytes(name="chelsea.png"):
    out = io.BytesIO()
    Image.open(os.path.join(SKIMAGE_DIR, name)).save(out, format="WEBP")
    return out.getvalue()


def pick(n, offset):
    """`n` photographs starting at `offset` (wrapping), plus a WebP."""
    names = [PHOTOS[(offset + i) % len(PHOTOS)] for i in range(n - 1)]
    return names + ["chelsea.webp"]


def copy_photos(directory, names):
    os.makedirs(directory, exist_ok=True)
    for name in names:
        data = webp_bytes() if name.endswith(".webp") else photo_bytes(name)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    return names


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def write_coco(root, names):
    copy_photos(os.path.join(root, "val2017"), names)
    data = {
        "images": [
            {"id": i + 1, "file_name": os.path.join("val2017", n)}
            for i, n in enumerate(names)
        ],
        "annotations": [
            {"id": 100 + i, "image_id": i + 1, "caption": caption(i)}
            for i in range(len(names))
        ],
    }
    return write_json(os.path.join(root, "captions.json"), data)


def write_karpathy(root, names):
    copy_photos(os.path.join(root, "images"), names)
    images = [
        {
            "filepath": "images",
            "filename": n,
            "split": "train",
            "imgid": i,
            "sentences": [{"raw": caption(i), "tokens": []}],
        }
        for i, n in enumerate(names)
    ]
    return write_json(os.path.join(root, "dataset_coco.json"), {"images": images})


def write_flickr30k(root, names):
    copy_photos(root, names)
    lines = [f"{n}#0\t{caption(i)}" for i, n in enumerate(names)]
    path = os.path.join(root, "results_20130124.token")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_vqa(root, names):
    for i, n in enumerate(names):  # a .jpg name whatever the content: sniffed
        copy_photos(os.path.join(root, "src"), [n])
        target = os.path.join(root, f"COCO_val2014_{i:012d}.jpg")
        shutil.move(os.path.join(root, "src", n), target)
    questions = [
        {"image_id": i, "question": f"is it a {WORDS[i % 8]}?", "question_id": 10 * i}
        for i in range(len(names))
    ]
    data = {"data_subtype": "val2014", "questions": questions}
    return write_json(os.path.join(root, "questions.json"), data)


def write_csv(root, names, separator=","):
    copy_photos(os.path.join(root, "img"), names)
    ext = "tsv" if separator == "\t" else "csv"
    rows = [f"filepath{separator}title"]
    rows += [f"img/{n}{separator}{caption(i)}" for i, n in enumerate(names)]
    path = os.path.join(root, f"train.{ext}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    return path


def add_member(tar, name, data, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write_tar(root, names, num_shards=2, json_every=2):
    """img2dataset layout: `shard-{00000..N}.tar`, `{key}.<ext>` + `.txt`/`.json`."""
    os.makedirs(root, exist_ok=True)
    per = -(-len(names) // num_shards)
    for s in range(num_shards):
        with tarfile.open(os.path.join(root, f"shard-{s:05d}.tar"), "w") as tar:
            for i in range(s * per, min((s + 1) * per, len(names))):
                n, key = names[i], f"{i:09d}"
                data = webp_bytes() if n.endswith(".webp") else photo_bytes(n)
                add_member(tar, f"{key}.{n.rsplit('.', 1)[1]}", data)
                if i % json_every:
                    text = json.dumps({"caption": caption(i)}).encode()
                    add_member(tar, f"{key}.json", text)
                else:
                    add_member(tar, f"{key}.txt", caption(i).encode())
    return os.path.join(root, "shard-{00000..%05d}.tar" % (num_shards - 1))


def write_folder(root, names):
    for i, n in enumerate(names):
        copy_photos(os.path.join(root, WORDS[i % 3]), [n])
    return root


WRITERS = {
    "coco": write_coco,
    "karpathy": write_karpathy,
    "flickr30k": write_flickr30k,
    "vqa": write_vqa,
    "csv": write_csv,
    "tar": write_tar,
    "folder": write_folder,
}
