"""`keras-mm index` and `keras-mm search`: embed a collection once, query it.

```
INDEX/embeddings.npy   float32 (N, D), unit rows, written batch by batch
INDEX/files.txt        the image of each row: a path, or `shard.tar:member`
INDEX/index.json       run, model digest, embedding size, count, created, ...
```

`index` is one streaming pass over the images (`ImageTextDataset`, the run's
preprocessing): each batch is encoded and appended to `embeddings.npy`, so one
batch is in memory whatever the collection's size. `search` memory-maps the
embeddings and ranks them exactly by cosine similarity (a NumPy matmul over
blocks of rows, keeping the running top-k).
"""

import datetime
import json
import os

import numpy as np

from keras_mm.cli.checkpoints import MODEL, RunDir
from keras_mm.cli.embedding_file import EmbeddingWriter
from keras_mm.cli.encoding import RunModel, file_digest, image_source
from keras_mm.cli.evaluation import load_run
from keras_mm.cli.parser import UsageError, check_file

EMBEDDINGS = "embeddings.npy"
FILES = "files.txt"
INDEX_JSON = "index.json"
SEARCH_PNG = "search.png"
SEARCH_JSON = "search.json"
BLOCK_ROWS = 65536  # rows scored at a time by `top_k`


def index(args):
    source, fmt = image_source(args.images)
    output = os.path.abspath(args.output)
    if os.path.exists(os.path.join(output, INDEX_JSON)) and not args.overwrite:
        raise UsageError(
            f"--output {args.output!r} already holds an index; pass --overwrite "
            "to replace it"
        )
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"--output {args.output!r} is not a directory")
    source = os.path.abspath(source)
    root = None
    if fmt == "images":
        root = source
    elif fmt != "tar":
        root = os.path.abspath(args.image_root or os.path.dirname(source))
    run_model = RunModel(args.run)
    stream = run_model.image_stream(
        source, fmt, args.batch_size, args.skip_bad_records, image_root=root
    )
    os.makedirs(output, exist_ok=True)
    for name in (INDEX_JSON, EMBEDDINGS, FILES):  # no stale index if this fails
        if os.path.exists(os.path.join(output, name)):
            os.remove(os.path.join(output, name))
    writer = EmbeddingWriter(os.path.join(output, EMBEDDINGS))
    files_tmp = os.path.join(output, f"{FILES}.part")
    try:
        with open(files_tmp, "w", encoding="utf-8") as files:
            for refs, embeddings in run_model.encode_batches(stream):
                writer.append(embeddings)
                for ref in refs:
                    path = ref if root is None else os.path.join(root, ref)
                    files.write(path + "\n")
    except BaseException:
        writer.abort()
        os.remove(files_tmp)
        raise
    if writer.rows == 0:
        writer.abort()
        os.remove(files_tmp)
        raise ValueError(f"{args.images}: no image could be read (all were skipped)")
    writer.close()
    os.replace(files_tmp, os.path.join(output, FILES))
    bad = int(sum(stream.bad_records.values()))
    import keras

    info = {
        "run": os.path.abspath(run_model.run.path),
        "model_sha256": run_model.model_digest(),
        "family": run_model.config["family"],
        "embed_dim": int(writer.dim),
        "count": int(writer.rows),
        "source": source,
        "format": fmt,
        "image_size": run_model.image_size,
        "normalization": run_model.normalization,
        "bad_records": bad,
        "backend": keras.backend.backend(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    RunDir(output).write_json(INDEX_JSON, info)
    skipped = f", {bad} unreadable images skipped" if bad else ""
    print(
        f"keras-mm index: {writer.rows} images of {args.images} embedded "
        f"({writer.dim} dimensions){skipped}"
    )
    print(f"Wrote {output}/{{{EMBEDDINGS}, {FILES}, {INDEX_JSON}}}")
    return 0


def top_k(embeddings, query, k, block=BLOCK_ROWS):
    """`(rows, scores)` of the `k` rows of highest `embeddings @ query`.

    Exact; scored `block` rows at a time (a memory map is read once). Ties go
    to the lower row, as `np.argsort(-scores, kind="stable")`.
    """
    best_rows = np.zeros(0, dtype="int64")
    best_scores = np.zeros(0, dtype="float32")
    for start in range(0, len(embeddings), block):
        scores = np.asarray(embeddings[start : start + block]) @ query
        rows = np.arange(start, start + len(scores))
        best_rows = np.concatenate([best_rows, rows])
        best_scores = np.concatenate([best_scores, scores.astype("float32")])
        order = np.lexsort((best_rows, -best_scores))[:k]
        best_rows, best_scores = best_rows[order], best_scores[order]
    return best_rows, best_scores


def load_index(path):
    """`(info, embeddings memory map, files)` of an index, checked."""
    info_path = os.path.join(path, INDEX_JSON)
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise UsageError(f"index {path!r} {what}")
    if not os.path.isfile(info_path):
        raise UsageError(
            f"{path!r} holds no index ({INDEX_JSON} missing): build it with "
            f"`keras-mm index RUN --images DIR --output {path}`"
        )
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        embeddings = np.load(os.path.join(path, EMBEDDINGS), mmap_mode="r")
        with open(os.path.join(path, FILES), encoding="utf-8") as f:
            files = f.read().splitlines()
        count, dim = int(info["count"]), int(info["embed_dim"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"index {path!r} cannot be read ({e})") from None
    if embeddings.shape != (count, dim) or len(files) != count:
        raise UsageError(
            f"index {path!r} is inconsistent: {INDEX_JSON} says {count} x {dim}, "
            f"{EMBEDDINGS} is {embeddings.shape}, {FILES} lists {len(files)} files; "
            "rebuild it with `keras-mm index --overwrite`"
        )
    return info, embeddings, files


def search(args):
    query = args.query
    if args.image is None and (query is None or not query.strip()):
        raise UsageError("empty query: give a text query or --image FILE")
    if args.image is not None and query is not None:
        raise UsageError("give a text query or --image FILE, not both")
    if args.image is not None:
        check_file(args.image, "--image")
    info, embeddings, files = load_index(args.index)
    if args.run is None and not os.path.isdir(str(info.get("run"))):
        raise UsageError(
            f"the run {info.get('run')!r} that built index {args.index!r} is gone; "
            "name its new place with --run"
        )
    run, _ = load_run(args.run or info["run"])
    if file_digest(run.file(MODEL)) != info.get("model_sha256"):
        raise UsageError(
            f"index {args.index!r} was built by another model than "
            f"{run.file(MODEL)!r} (the run was retrained or is another run); "
            "rebuild it with `keras-mm index --overwrite`"
        )
    run_model = RunModel(run.path)
    if args.image is not None:
        vector = run_model.encode_image_file(args.image)[0]
        asked = f"image {args.image}"
    else:
        vector = run_model.encode_texts([query])[0]
        asked = repr(query)
    if vector.shape != (embeddings.shape[1],):
        raise UsageError(
            f"index {args.index!r} holds {embeddings.shape[1]}-dimensional "
            f"embeddings; the model gives {vector.shape[0]}"
        )
    rows, scores = top_k(embeddings, vector, args.top_k)
    print(f"keras-mm search: {asked} in {len(files)} images")
    results = []
    for rank, (row, score) in enumerate(zip(rows, scores), start=1):
        print(f"{rank:>4}  {score:.4f}  {files[row]}")
        results.append({"rank": rank, "score": float(score), "file": files[row]})
    output = args.output or args.index
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, SEARCH_JSON), "w", encoding="utf-8") as f:
        json.dump({"query": asked, "results": results}, f, indent=2)
    print(f"Wrote {os.path.join(output, SEARCH_JSON)}")
    if not args.no_plots:
        from keras_mm.cli.contact_sheet import write_contact_sheet

        cells = [(r["file"], f"{r['rank']}. {r['score']:.3f}", None) for r in results]
        path = write_contact_sheet(
            cells, os.path.join(output, SEARCH_PNG), f"search: {asked}"
        )
        if path:
            print(f"Wrote {path}")
    return 0
