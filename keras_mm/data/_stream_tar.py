"""Private: read WebDataset-style tar shards sample by sample (img2dataset layout).

A sample is the run of consecutive members sharing a key (the member path up
to the first dot of its base name): one image (`.jpg`, `.png`, `.webp`, ...)
and one caption (`.txt`, or `.json` with a `"caption"` or `"text"` string).
Members are never extracted to disk; names that are absolute or climb out with
`..`, and link members, are bad records all the same.
"""

import os
import posixpath
import tarfile

from keras_mm.data._stream_sources import IMAGE_EXTENSIONS, tar_text

TEXT_EXTENSIONS = ("txt", "json")


def _split(name):
    directory, base = posixpath.split(name)
    stem, dot, ext = base.partition(".")
    return posixpath.join(directory, stem), ext.lower() if dot else ""


def _escapes(name):
    parts = name.replace("\\", "/").split("/")
    return (
        name.startswith(("/", "\\"))
        or ".." in parts
        or (len(name) > 1 and name[1] == ":")
    )


def _sample(tar, shard, key, members, max_bytes, read_image):
    """`(ref, image_bytes, text, error)` of one sample."""
    ref = f"{shard}:{key}"
    images = [
        m for ext, m in members if "." + ext.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS
    ]
    texts = [(ext, m) for ext, m in members if ext in TEXT_EXTENSIONS]
    if not images:
        return ref, b"", "", f"{ref}: sample has no image member (.jpg/.png/.webp...)."
    if not texts:
        return ref, b"", "", f"{ref}: sample has no .txt or .json caption member."
    ext, text_member = texts[0]
    try:
        text = tar_text(ext, tar.extractfile(text_member).read())
    except (UnicodeDecodeError, ValueError) as e:
        return ref, b"", "", f"{ref}.{ext}: unreadable caption ({e})."
    image = images[0]
    if image.size > max_bytes:
        return ref, b"", "", f"{ref}: image member of {image.size} bytes is oversized."
    data = tar.extractfile(image).read() if read_image else b""
    return f"{shard}:{image.name}", data, text, ""


def read_shard(shard, max_bytes, read_image=True):
    """Yield `(ref, image_bytes, text, error)` for every sample of one shard."""
    if not os.path.isfile(shard):
        raise ValueError(f"{shard}: tar shard not found.")
    try:
        tar = tarfile.open(shard, "r:*")
    except (tarfile.TarError, OSError) as e:
        yield shard, b"", "", f"{shard}: not a readable tar file ({e})."
        return
    with tar:
        key, members = None, []
        try:
            for member in tar:
                name = member.name
                if _escapes(name):
                    yield (
                        f"{shard}:{name}",
                        b"",
                        "",
                        f"{shard}: tar member {name!r} escapes the shard (absolute "
                        "path or '..'); refused.",
                    )
                    continue
                if member.issym() or member.islnk():
                    yield (
                        f"{shard}:{name}",
                        b"",
                        "",
                        f"{shard}: tar member {name!r} is a link; refused.",
                    )
                    continue
                if not member.isfile():
                    continue
                member_key, ext = _split(name)
                if member_key != key and members:
                    yield _sample(tar, shard, key, members, max_bytes, read_image)
                    members = []
                key = member_key
                members.append((ext, member))
        except (tarfile.TarError, OSError, EOFError) as e:
            yield shard, b"", "", f"{shard}: truncated or corrupt tar shard ({e})."
            return
        if members:
            yield _sample(tar, shard, key, members, max_bytes, read_image)
