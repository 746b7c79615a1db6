"""Time to result: a stylize schedule against the single-scale 300-iteration run, and one run's loss curve.

Run through scripts/benchmark.py:

    python scripts/benchmark.py --schedule --weights W.h5 --pairs photo.jpg:painting.jpg ... --sizes 320 512
    python scripts/benchmark.py --curve --weights W.h5 --pairs photo.jpg:painting.jpg --sizes 320 --set scales=1

--schedule runs, per pair and size, the new default (Config(), or Config with --set overrides)
and the old behaviour (--scales 1 --iterations 300 --min-improvement 0: plain L-BFGS-B, as the step sizes
are off without the stopping rule, Config.restart_with_step_sizes_at),
one after the other in this process, and prints both wall times and both final losses. "Final loss" is the
full-resolution objective with the default Config, evaluated on the saved output (RGB rounded
to 8 bits, as written to the PNG): make_objective(net, content resized to the output, style at
--style-scale, Config()). So both runs are scored by the same function, whatever their schedule.

--curve prints, for one run, the content term, the style term of each layer and the TV term
against iteration and seconds (every iteration at the last scale, every 10th before).
"""
import dataclasses
import os
import time

import numpy as np

from nst_numpy.config import Config
from nst_numpy.image import fit_size, load_image, resize
from nst_numpy.objective import Objective, make_objective
from nst_numpy.optimize import stylize

OLD = {"scales": 1, "iterations": 300, "min_improvement": 0.0}   # before the schedule
# --set fields that say how the new run optimises: the old run keeps its own (OLD and the defaults).
# Every other field (loss weights, layers, style scale, ...) defines the objective: both runs and
# the score take it, so the two runs always minimise, and are scored by, the same function.
SCHEDULE_FIELDS = ("scales", "coarse_iterations", "iterations", "min_improvement", "optimizer", "learning_rate",
                   "lbfgs_memory", "precondition_after", "init", "tile_size", "seed")


def split_overrides(overrides):
    """--set fields -> (schedule fields, for the new run only; objective fields, for both and the score)."""
    if "size" in overrides:
        raise ValueError("--set size=...: use --sizes")
    return ({k: v for k, v in overrides.items() if k in SCHEDULE_FIELDS},
            {k: v for k, v in overrides.items() if k not in SCHEDULE_FIELDS})


CONFIG_FIELDS = {f.name for f in dataclasses.fields(Config)} - {"extra"}   # what --set may set


def parse_set(items):
    """['scales=3', 'min_improvement=1e-3'] -> {'scales': 3, 'min_improvement': 0.001} (types from Config)."""
    d, out = Config(), {}
    for item in items or []:
        key, _, value = item.partition("=")
        if key not in CONFIG_FIELDS:   # not hasattr: Config's methods (validate, ...) are no fields
            raise ValueError(f"--set: Config has no field {key!r}")
        default = getattr(d, key)
        if isinstance(default, bool):   # bool("False") is True: spell booleans out
            if value.lower() not in ("true", "false"):
                raise ValueError(f"--set: {key} takes true or false, got {value!r}")
            out[key] = value.lower() == "true"
        elif isinstance(default, tuple):   # layer lists: relu3_1,relu4_1
            out[key] = tuple(v for v in value.split(",") if v)
        elif key in ("style_layer_weights", "style_blend"):   # None by default, else a list of weights
            out[key] = tuple(float(v) for v in value.split(","))
        else:
            out[key] = (int if default is None else type(default))(value)   # None defaults (scales) take whole numbers
    return out


def split_pair(pair):
    """'content.jpg:style.jpg' -> ('content.jpg', 'style.jpg').

    A path may hold a colon itself, so the split is at the first colon with an existing file on
    both sides; if there is none, at the first colon (the loader then names the missing file).
    """
    for i, ch in enumerate(pair):
        if ch == ":" and os.path.isfile(pair[:i]) and os.path.isfile(pair[i + 1:]):
            return pair[:i], pair[i + 1:]
    content, _, style = pair.partition(":")
    return content, style


def load_pair(pair, size, style_scale):
    """'content.jpg:style.jpg' -> (content RGB, style RGB), read as the CLI reads them."""
    content, style = split_pair(pair)
    return (load_image(content, max_side=size),
            load_image(style, max_side=max(16, round(size * style_scale))))


def final_loss(net, content_rgb, style_rgb, out_rgb, objective=None):
    """The default objective (with --set's objective fields, if any) at the output's size, on the
    output rounded to 8 bits (as saved)."""
    cfg = Config(**(objective or {}))
    hw = out_rgb.shape[:2]
    content = net.preprocess(resize(content_rgb, hw))
    style = net.preprocess(resize(style_rgb, fit_size(style_rgb.shape, cfg.style_scale * max(hw))))
    f = make_objective(net, content, [(style, 1.0)], cfg)
    saved = np.round(np.clip(out_rgb, 0, 255))
    loss, _ = f(np.asarray(net.preprocess(saved), np.float64).reshape(-1))
    return loss, dict(f.parts)


def timed_run(net, content_rgb, style_rgb, config, on_state=None):
    """stylize with a wall clock; returns (output RGB, seconds, iterations run, evaluations)."""
    calls = [0, 0]
    plain = Objective.__call__

    def counted(self, x):
        calls[1] += 1
        return plain(self, x)

    def callback(state):
        if not state.stopped:
            calls[0] += 1
        if on_state is not None:
            on_state(state)

    Objective.__call__ = counted
    try:
        t0 = time.perf_counter()
        out = stylize(net, content_rgb, [style_rgb], config, callback=callback)
        seconds = time.perf_counter() - t0
    finally:
        Objective.__call__ = plain
    return out, seconds, calls[0], calls[1]


def schedule(net, pairs, sizes, overrides):
    """The --schedule table. Returns 0."""
    _, objective = split_overrides(overrides)   # the schedule fields reach only the new run, through overrides
    new, old = Config(**overrides), Config(**dict(objective, **OLD))
    # Every image is read before the first run: a bad path in the last pair fails now, with a one-line
    # error and no table, rather than after the hours the earlier pairs take.
    inputs = [(size, pair, load_pair(pair, size, new.style_scale)) for size in sizes for pair in pairs]
    def described(c):
        return (f"scales={c.scales or 'automatic'} coarse_iterations={c.coarse_iterations} iterations={c.iterations} "
                f"min_improvement={c.min_improvement:g}, step sizes after {c.restart_with_step_sizes_at() or 'never'}, "
                f"L-BFGS memory {c.correction_pairs()}")
    print(f"new: {described(new)}; old: {described(old)}" + (f"; both: {objective}" if objective else ""))
    print("| pair | size | old s | old loss | new s | new loss | time ratio | loss ratio | new iterations / evaluations |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for size, pair, (content, style) in inputs:
        row = {}
        for name, cfg in (("new", Config(**dict(overrides, size=size))),
                          ("old", Config(**dict(objective, size=size, **OLD)))):
            out, seconds, its, evals = timed_run(net, content, style, cfg)
            row[name] = (seconds, final_loss(net, content, style, out, objective)[0], its, evals)
        (os_, ol, _, _), (ns, nl, nits, nev) = row["old"], row["new"]
        ratios.append((ns / os_, nl / ol))
        label = " + ".join(p.rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in split_pair(pair))
        print(f"| {label} | {size} | {os_:.1f} | {ol:.4f} | {ns:.1f} | {nl:.4f} | {ns / os_:.2f} | "
              f"{nl / ol:.3f} | {nits} / {nev} |", flush=True)
    t, l = np.array(ratios).T
    print(f"median time ratio {np.median(t):.2f} (worst {t.max():.2f}); median loss ratio {np.median(l):.3f} "
          f"(worst {l.max():.3f}); the new run's loss <= the old one's in {int(np.sum(l <= 1))} of {len(l)}")
    return 0


def curve(net, pair, size, overrides):
    """The --curve table for one run. Returns 0."""
    split_overrides(overrides)   # refuses --set size=... before the run, not after it
    cfg = Config(**dict(overrides, size=size))
    content, style = load_pair(pair, size, cfg.style_scale)
    rows, t0 = [], time.perf_counter()
    layer_terms = {}
    plain = Objective.__call__

    def spy(self, x):
        res = plain(self, x)
        layer_terms.update(self.style_parts)
        return res

    def on_state(st):
        if st.stopped:
            print(f"# scale {st.scale}: {st.stopped}")
        elif st.scale == st.n_scales or st.iteration % 10 == 0 or st.iteration == st.iterations:
            rows.append((st.scale, st.iteration, time.perf_counter() - t0, st.loss, dict(st.parts), dict(layer_terms)))

    Objective.__call__ = spy
    try:
        out, seconds, its, evals = timed_run(net, content, style, cfg, on_state)
    finally:
        Objective.__call__ = plain
    layers = list(cfg.style_layers)
    print("scale  iter  seconds      loss   content     style  " + "  ".join(f"{n:>9s}" for n in layers) + "        tv")
    for sc, it, sec, loss, parts, terms in rows:
        print(f"{sc:5d} {it:5d} {sec:8.1f} {loss:9.4f} {parts['content']:9.4f} {parts['style']:9.4f}  "
              + "  ".join(f"{terms.get(n, 0):9.4f}" for n in layers) + f"  {parts['tv']:8.4f}")
    loss, parts = final_loss(net, content, style, out, split_overrides(overrides)[1])
    print(f"# {its} iterations, {evals} evaluations, {seconds:.1f} s; final loss on the saved output {loss:.4f} "
          f"(content {parts['content']:.4f}, style {parts['style']:.4f}, tv {parts['tv']:.4f})")
    return 0
