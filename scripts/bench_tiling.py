"""Any size in bounded memory: the tiling's overhead, and whole runs against their plan.

Run through scripts/benchmark.py:

    python scripts/benchmark.py --tiling-overhead --weights W.h5 --pairs photo.jpg:painting.jpg --sizes 2048
    python scripts/benchmark.py --tiling-run --weights W.h5 --pairs photo.jpg:painting.jpg \
        --sizes 3840 --max-memory 8G --set iterations=3 scales=1

--tiling-overhead times one objective evaluation (value and gradient) at SIDE x SIDE px untiled and
with tiles forced (--tile-size, default 1024), alternating, and prints the medians per pixel
and their ratio (the target at 2048 px: at most 1.5).

--tiling-run runs the command line on a 16:9 crop of the photo at --sizes (3840 gives
3840x2160): first with --dry-run, to get the plan's peak and seconds per iteration, then for
real; it prints the plan beside the measured peak RSS (the child's VmHWM, which it prints as it exits)
and wall time.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench_schedule import split_pair   # scripts/ is on sys.path, as benchmark.py imports both
from nst_numpy.fileio import atomic_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs a script (argv[1:]) and, as it exits, prints its own peak RSS (VmHWM of its own memory map) to
# stderr. wait4's ru_maxrss cannot give it: exec keeps the spawning process's peak as a floor, so a
# child of a large process (a test session, 2.6 GB) reported that process's peak, not its own.
OWN_PEAK = """import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                print("VmHWM", line.split()[1], "kB", file=sys.stderr)
atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def overhead(net, pair, side, tile, repeat):
    from nst_numpy.config import Config
    from nst_numpy.image import load_image, resize
    from nst_numpy.objective import make_objective
    content_path, style_path = split_pair(pair)
    content = net.preprocess(resize(load_image(content_path), (side, side)))
    style = net.preprocess(resize(load_image(style_path), (side, side)))
    x = content.astype(np.float64).ravel()
    times = {}
    for name, t in (("untiled", None), (f"tiles of {tile} px", tile)):
        f = make_objective(net, content, [(style, 1.0)], Config(), tile_size=t)
        f(x)   # warm-up: plans the buffer arena
        times[name] = (f, [])
        if t:
            print(f"{name}: {len(f.tiles)} windows of {f.tiles[0].window[1] - f.tiles[0].window[0]} px", flush=True)
    for _ in range(repeat):   # alternate, so that a noisy neighbour hurts both alike
        for name, (f, ts) in times.items():
            t0 = time.perf_counter()
            f(x)
            ts.append(time.perf_counter() - t0)
    med = {name: float(np.median(ts)) for name, (_, ts) in times.items()}
    for name, m in med.items():
        print(f"{side}x{side} {name}: median {m:.2f} s per evaluation ({1e6 * m / side ** 2:.2f} us/px), "
              f"runs {', '.join(f'{t:.2f}' for t in times[name][1])}")
    a, b = med.values()
    print(f"tiled / untiled per pixel: {b / a:.2f}x")


def _crop_16x9(path, folder):
    from PIL import Image
    with Image.open(path) as src:
        im = src.convert("RGB")
    w, h = im.size
    if w * 9 >= h * 16:
        cw, ch = h * 16 // 9, h
    else:
        cw, ch = w, w * 9 // 16
    out = os.path.join(folder, "content_16x9.png")
    im.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)).save(out)
    return out


def run(weights, pair, side, max_memory, overrides, threads=None):
    """The CLI at `side` on a 16:9 crop: dry run, then the real run; plan against measurement.
    threads: the CLI's --threads (None: its default, all cores)."""
    content_path, style_path = split_pair(pair)
    with tempfile.TemporaryDirectory() as tmp:
        content = _crop_16x9(content_path, tmp)
        args = [sys.executable, os.path.join(ROOT, "scripts", "stylize.py"), "--weights", weights,
                "--content", content, "--style", style_path, "--size", str(side), "-o", os.path.join(tmp, "out.png")]
        if max_memory:
            args += ["--max-memory", max_memory]
        if threads:
            args += ["--threads", str(threads)]
        for item in overrides or []:
            k, v = item.split("=", 1)
            args += [f"--{k.replace('_', '-')}", v]
        plan = subprocess.run(args + ["--dry-run"], capture_output=True, text=True)
        print(plan.stdout + plan.stderr, flush=True)
        if plan.returncode:
            return plan.returncode
        t0 = time.perf_counter()
        child = subprocess.Popen([args[0], "-c", OWN_PEAK] + args[1:], stderr=subprocess.PIPE, text=True)
        err = child.stderr.read()   # read to the end first: a full pipe would block the child
        code = child.wait()
        wall = time.perf_counter() - t0
        lines = err.strip().splitlines()
        own = [int(line.split()[1]) for line in lines if line.startswith("VmHWM ")]
        peak = own[-1] * 1024 if own else float("nan")   # nan: killed before it could say
        print("\n".join([line for line in lines if not line.startswith("VmHWM ")][-3:]), flush=True)
        print(f"measured: exit {code}, wall {wall:.0f} s, peak RSS {peak / 2 ** 30:.2f} GiB")
        keep = os.environ.get("NST_BENCH_KEEP")   # a folder to keep the picture in, to look at it
        if keep and code == 0:
            # Copied (a rename from tmp across filesystems would fail) to a hidden temporary name in keep,
            # which a Ctrl-C or a failed copy removes (fileio.atomic_path), then renamed.
            with atomic_path(os.path.join(keep, f"tiled_{side}_{int(time.time())}.png")) as kept:
                shutil.copyfile(os.path.join(tmp, "out.png"), kept)
        return code
