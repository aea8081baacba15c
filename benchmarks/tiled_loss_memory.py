"""Peak extra memory and wall time of the CLIP loss forward+backward, naive vs tiled.

Run by hand (not in CI): `python benchmarks/tiled_loss_memory.py [--backend jax]`.
Each (mode, B) runs in its own process. Memory is measured on JAX from XLA's
compiled memory analysis (`temp_size_in_bytes`: every buffer the compiled
value-and-grad allocates besides its inputs and outputs, i.e. the peak extra
memory of the loss); that is exact and needs no run, so the naive B = 65,536
case (16 GiB per logits matrix) is reported without being executed. On torch
the peak RSS growth of the process is reported instead. Wall time is the median
of `--repeats` runs after one warm-up, for the sizes up to `--max-time-b`.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(mode, b, d, tile, repeats, run):
    import keras
    import numpy as np

    from keras_mm.losses import clip_loss_from_embeddings

    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, d)).astype("float32")
    y = rng.normal(size=(b, d)).astype("float32")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    tile_size = tile if mode == "tiled" else None

    def loss(x, y, s):
        return clip_loss_from_embeddings(x, y, s, tile_size=tile_size)

    out = {"mode": mode, "B": b, "d": d, "tile": tile_size}
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        args = (jax.numpy.asarray(x), jax.numpy.asarray(y), jax.numpy.float32(14.0))
        compiled = fn.lower(*args).compile()
        out["extra_bytes"] = compiled.memory_analysis().temp_size_in_bytes

        def step():
            jax.block_until_ready(compiled(*args))

        if run:  # cross-check: measured growth of the process's peak RSS
            import resource

            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            step()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out["rss_extra_bytes"] = peak - base

    elif backend == "torch":
        import resource

        import torch

        torch.set_num_threads(1)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.tensor(y, requires_grad=True)
        ts = torch.tensor(14.0, requires_grad=True)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        def step():
            value = loss(tx, ty, ts)
            torch.autograd.grad(value, (tx, ty, ts))

        if run:
            step()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out["extra_bytes"] = peak - base
    else:
        raise SystemExit("use --backend jax or torch")
    if run:
        step()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out["seconds"] = sorted(times)[len(times) // 2]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", default="jax")
    p.add_argument("--sizes", default="1024,4096,16384,65536")
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-time-b", type=int, default=4096)
    p.add_argument(
        "--max-naive-b",
        type=int,
        default=16384,
        help="larger naive cases are not even compiled (B=65,536 needs ~112 GiB)",
    )
    p.add_argument("--worker", nargs=2, metavar=("MODE", "B"))
    a = p.parse_args()
    if a.worker:
        mode, b = a.worker[0], int(a.worker[1])
        res = measure(mode, b, a.d, a.tile, a.repeats, run=b <= a.max_time_b)
        print("RESULT " + json.dumps(res))
        return
    env = dict(os.environ, KERAS_BACKEND=a.backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    for b in [int(s) for s in a.sizes.split(",")]:
        for mode in ("naive", "tiled"):
            if mode == "naive" and b > a.max_naive_b:
                rows.append({"mode": mode, "B": b, "skipped": True})
                continue
            cmd = [sys.executable, __file__, "--worker", mode, str(b)]
            cmd += ["--d", str(a.d), "--tile", str(a.tile), "--repeats", str(a.repeats)]
            cmd += ["--max-time-b", str(a.max_time_b)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            res = json.loads(line[-1][7:]) if line else {"mode": mode, "B": b}
            if not line:
                res["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:80]
            rows.append(res)
            print(json.dumps(res), flush=True)
    print(f"\nbackend={a.backend} d={a.d} tile_size={a.tile}")
    print(
        "| B | naive extra MiB | tiled extra MiB | ratio | naive s | tiled s | t/n "
        "| naive RSS MiB | tiled RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    by = {(r["mode"], r["B"]): r for r in rows}
    for b in sorted({r["B"] for r in rows}):
        n, t = by[("naive", b)], by[("tiled", b)]
        nm, tm = n.get("extra_bytes"), t.get("extra_bytes")
        ns, ts = n.get("seconds"), t.get("seconds")

        def f(v, scale=1.0, fmt="{:.1f}"):
            return "-" if v is None else fmt.format(v / scale)

        ratio = f(nm / tm if nm and tm else None)
        speed = f(ts / ns if ns and ts else None, fmt="{:.2f}")
        print(
            f"| {b} | {f(nm, 2**20)} | {f(tm, 2**20)} | {ratio} | "
            f"{f(ns, fmt='{:.3f}')} | {f(ts, fmt='{:.3f}')} | {speed} | "
            f"{f(n.get('rss_extra_bytes'), 2**20)} | "
            f"{f(t.get('rss_extra_bytes'), 2**20)} |"
        )


if __name__ == "__main__":
    main()
