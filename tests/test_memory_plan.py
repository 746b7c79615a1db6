"""The run's plan (memory_plan.py): sizes, tiles, L-BFGS memory, and a peak estimate that holds."""
import json
import os
import subprocess
import sys
import textwrap
import types
from dataclasses import replace

import numpy as np
import pytest

from nst_numpy.config import Config
from nst_numpy.fast import FastVGG19
from nst_numpy.memory_plan import WindowCost, estimate, parse_size, plan_scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parse_size():
    assert parse_size("8G") == 8 << 30
    assert parse_size("512M") == 512 << 20
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("2GiB") == 2 << 30
    for bad in ("eight", "8X", "-1G", "0", "9" * 400):   # the last overflows a float to inf
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.fixture(scope="module")
def cost():
    return WindowCost(FastVGG19.random(seed=0), ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))


def test_plan_is_untiled_when_it_fits_else_tiled_else_lower_m_else_a_clear_refusal(cost):
    hw, cfg = (1200, 900), Config(lbfgs_memory=10)
    whole = estimate(cost, hw, [], cfg, 0, 10, 0)
    assert plan_scale(cost, hw, [], cfg, whole.peak, 0).tiles == 1
    tiled = plan_scale(cost, hw, [], cfg, whole.peak - 1, 0)
    assert tiled.tiles > 1 and tiled.peak <= whole.peak - 1 and tiled.lbfgs_memory == 10
    smallest_m10 = estimate(cost, hw, [], cfg, 128, 10, 0)
    lowered = plan_scale(cost, hw, [], cfg, smallest_m10.peak - 1, 0)
    assert lowered.lbfgs_memory < 10 and lowered.peak < smallest_m10.peak
    with pytest.raises(MemoryError, match=r"--lbfgs-memory 3, tiles of \d+ px, halo \d+ px.*adam needs about"):
        plan_scale(cost, hw, [], cfg, 1 << 20, 0)
    with pytest.raises(MemoryError, match=r"\(L-BFGS with --lbfgs-memory 3, untiled: too small for tiles\)"):
        plan_scale(cost, (64, 48), [], cfg, 1 << 10, 0)   # smaller than every tile: no "tiles of 0 px"
    adam = replace(cfg, optimizer="adam")
    assert plan_scale(cost, hw, [], adam, estimate(cost, hw, [], adam, 0, 0, 0).peak, 0).tiles == 1
    with pytest.raises(MemoryError, match="tile-size"):   # a forced tile that cannot fit
        plan_scale(cost, hw, [], replace(cfg, tile_size=512), 1 << 20, 0)
    # an asked m below MIN_LBFGS_MEMORY (3) is planned as it is, not lowered further
    two = replace(cfg, lbfgs_memory=2)
    assert plan_scale(cost, hw, [], two, 1 << 40, 0).lbfgs_memory == 2
    with pytest.raises(MemoryError, match=r"--lbfgs-memory 2, tiles of"):
        plan_scale(cost, hw, [], two, 1 << 20, 0)


def _fresh_process(script, *args):
    """The JSON that `script` prints last, run in a fresh Python (its memory is its own) with args."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", script] + [str(a) for a in args], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


SMALL_RUN = textwrap.dedent("""
    import json, sys
    from nst_numpy.config import Config
    from nst_numpy.fast import FastVGG19
    from nst_numpy.memory_plan import peak_rss, plan_run
    from nst_numpy.optimize import stylize
    from nst_numpy.samples import landscape, swirls
    tile, h, w, side = (int(a) for a in sys.argv[1:])
    net = FastVGG19.random(seed=0)
    cfg = Config(size=w, scales=1, iterations=2, min_improvement=0.0, tile_size=tile or None, style_scale=side / w)
    content, style = landscape(h, w), swirls(side, side)
    plans = plan_run(net, [(h, w)], [[(side, side)]], cfg, cap=64 << 30)
    # The peak from here on is the run's alone: not the plan's probes (writing 5 resets VmHWM to the RSS now).
    net.release_buffers()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        sys.exit(print(json.dumps({"skip": "cannot reset the peak RSS (/proc/self/clear_refs)"})))
    stylize(net, content, [style], cfg, plans=plans)
    p = plans[0]
    style = p.peak_parts is p.style_parts
    print(json.dumps({"estimate": p.peak, "tiles": p.tiles, "measured": peak_rss(), "style": style}))
""")


@pytest.mark.parametrize("tile, h, w, side, tiles, style_phase", [
    (0, 300, 400, 300, 1, False),       # untiled
    (192, 300, 400, 300, 6, False),     # tiles forced
    (128, 96, 128, 640, 1, True),       # one window for the output; the style image's pass in tiles sets the peak
])
def test_the_plans_estimate_bounds_the_measured_peak_of_a_small_run(tile, h, w, side, tiles, style_phase):
    """The run's own peak RSS (VmHWM, reset after the plan) is under the estimate, and more than half of it."""
    r = _fresh_process(SMALL_RUN, tile, h, w, side)
    if "skip" in r:
        pytest.skip(r["skip"])
    assert r["tiles"] == tiles and r["style"] == style_phase, r
    assert r["measured"] <= r["estimate"], r
    assert r["estimate"] < 2 * r["measured"], r   # and not so loose that it says nothing


def test_cli_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    from nst_numpy import cli
    out = tmp_path / "out.png"
    assert cli.main(["--weights", "random", "--size", "64", "--scales", "2", "--dry-run", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scale 2/2: 64x" in text and "untiled" in text and "peak estimate" in text and "s/iteration" in text
    assert "of the memory available; --max-memory sets it)" in text   # no --max-memory: the default cap
    assert os.listdir(tmp_path) == [] and "--margin" not in text
    assert cli.main(["--weights", "random", "--size", "64", "--scales", "2", "--dry-run", "--margin", "8", "-q",
                     "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scale 2/2: 80x59" in text and "--margin 8: each scale's canvas holds its picture; the output is 64x43" in text


@pytest.mark.parametrize("args, message", [
    (["--max-memory", "1M"], "over the memory cap 1 MiB (L-BFGS with --lbfgs-memory 3, untiled: too small for tiles); --optimizer adam needs about"),
    (["--max-memory", "lots"], "not understood"),
    (["--tile-size", "40"], "multiple of 16"),
])
def test_cli_memory_errors_are_one_line(tmp_path, capsys, args, message):
    from nst_numpy import cli
    out = tmp_path / "out.png"
    assert cli.main(["--weights", "random", "--size", "64", "-o", str(out)] + args) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_time_model_counts_the_restart_with_step_sizes(monkeypatch):
    """--dry-run's setup time: one optimiser start per scale, two when L-BFGS-B restarts at
    --precondition-after within the scale's budget (the network's time fixed at 1 s here)."""
    from nst_numpy import memory_plan
    monkeypatch.setattr(WindowCost, "seconds", lambda self, *window, tiled=False: 1.0)
    net, hws = FastVGG19.random(seed=0), [(32, 48), (64, 96)]
    cost = WindowCost(net, Config().content_layers, Config().style_layers)   # measured once for the 4 plans
    monkeypatch.setattr(memory_plan, "WindowCost", lambda *layers: cost)

    def setup(**changes):
        cfg = Config(scales=2, coarse_iterations=10, iterations=30, **changes)
        return [p.setup_seconds for p in memory_plan.plan_run(net, hws, [[(32, 32)], [(64, 64)]], cfg,
                                                              cap=8 << 30, timed=True)]
    plain, early, default = setup(precondition_after=0), setup(precondition_after=5), setup()
    per_value = memory_plan.LBFGS_SETUP_SECONDS_PER_VALUE   # scipy's bounds set-up, per image value
    assert plain == pytest.approx([1.0 + per_value * 3 * 32 * 48, 1.0 + per_value * 3 * 64 * 96])
    assert early == pytest.approx([2 * plain[0], 2 * plain[1]])     # restarts at 5 in both scales
    assert default == pytest.approx([plain[0], 2 * plain[1]])       # at 20: the 10-iteration coarse scale never does
    assert setup(min_improvement=0.0) == pytest.approx(plain)       # automatic: no step sizes without the rule


def test_an_api_run_plans_itself_when_memory_is_short(monkeypatch):
    """stylize with tile_size None plans its own run when memory_plan.needs_plan says so (a big
    picture, or under 8 GB available), as the CLI does. Here the machine is made to look short of
    memory, so even a 32 px run is planned; the plan fits it untiled, so it is the same run."""
    from nst_numpy import memory_plan
    from nst_numpy.optimize import stylize
    from nst_numpy.samples import landscape, swirls
    net = FastVGG19.random(seed=0)
    cfg = Config(size=32, scales=1, iterations=3, min_improvement=0.0, style_layers=("relu1_1", "relu2_1"),
                 content_layers=("relu2_2",))
    run = (net, landscape(32, 32), [swirls(32, 32)], cfg)
    unplanned, real, plans = stylize(*run), memory_plan.plan_run, []

    def plan_run(*args, **kwargs):
        plans.append(real(*args, **kwargs))
        return plans[-1]
    monkeypatch.setattr(memory_plan, "plan_run", plan_run)
    monkeypatch.setattr(memory_plan, "available_memory", lambda: 16 << 30)
    assert np.max(np.abs(stylize(*run) - unplanned)) < 1e-3 and plans == []   # control: 16 GB, no plan
    monkeypatch.setattr(memory_plan, "available_memory", lambda: 4 << 30)
    assert np.max(np.abs(stylize(*run) - unplanned)) < 1e-3
    assert len(plans) == 1 and plans[0][0].tiles == 1 and plans[0][0].lbfgs_memory == 10


def test_over_the_cap_never_prints_two_equal_figures():
    """0.521 and 0.518 GiB both print as 0.52 GiB: then MiB say which is larger. A cap that would print as
    0.00 GiB is given in MiB, or in KiB under 1 MiB."""
    from nst_numpy.memory_plan import over
    assert over(int(0.521 * 2 ** 30), int(0.518 * 2 ** 30)) == "534 MiB, over the memory cap 530 MiB"
    assert over(2 * 2 ** 30, 2 ** 30) == "2.00 GiB, over the memory cap 1.00 GiB"
    assert over(2 ** 29, 3 * 2 ** 20) == "512 MiB, over the memory cap 3 MiB"   # not "0.00 GiB"
    assert over(2 ** 29, 2 ** 10) == "512 MiB, over the memory cap 1 KiB"


def test_a_container_limit_caps_the_memory_available(tmp_path, monkeypatch):
    """cgroup v2's memory.max less memory.current (v1: limit_in_bytes less usage_in_bytes); 'max' or v1's
    huge number means no limit; no files: no limit."""
    from nst_numpy import memory_plan
    from nst_numpy.memory_plan import cgroup_room

    def files(limit, usage, cache=None):
        (tmp_path / "max").write_text(limit + "\n")
        (tmp_path / "current").write_text(usage + "\n")
        (tmp_path / "stat").write_text("anon 5\n" + ("" if cache is None else f"inactive_file {cache}\n") + "file 9\n")
        missing = str(tmp_path / "missing")
        return ((missing, missing, missing, "x"), (str(tmp_path / "max"), str(tmp_path / "current"),
                                                   str(tmp_path / "stat"), "inactive_file"))
    assert cgroup_room(files(str(6 << 30), str(1 << 30))) == 5 << 30
    assert cgroup_room(files(str(6 << 30), str(6 << 30), cache=2 << 30)) == 2 << 30   # cache the kernel gives back
    assert cgroup_room(files("max", str(1 << 30))) is None
    assert cgroup_room(files(str(1 << 62), "0")) is None
    assert cgroup_room(((str(tmp_path / "none"), str(tmp_path / "none"), str(tmp_path / "none"), "x"),)) is None
    monkeypatch.setattr(memory_plan, "cgroup_room", lambda: 3 << 30)
    assert memory_plan.available_memory() <= 3 << 30


def test_measuring_the_network_leaves_a_callers_tracemalloc_running():
    """Under a caller's tracing session the measurement runs in that session, leaves it running and
    measures what it measures under its own (it once gave a = 5 bytes/px there, against 1331)."""
    import tracemalloc
    net = FastVGG19.random(seed=0)
    # One thread: with two, a process's first measurement differs from its later ones (a = 1419 against 1331
    # bytes/px, b 12% apart), which failed this test once in CI; with one, every measurement is the same.
    net.set_threads(1)
    alone = WindowCost(net, ("relu2_1",), ("relu1_1",))
    tracemalloc.start()
    try:
        cost = WindowCost(net, ("relu2_1",), ("relu1_1",))
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    assert cost.a == pytest.approx(alone.a, rel=0.1) and cost.b == pytest.approx(alone.b, rel=0.1)


def test_the_peak_adds_the_headroom_to_the_modelled_sum():
    """The parts model only what the code allocates; the peak adds HEADROOM on top (allocator slack,
    BLAS buffers), and --dry-run says how much."""
    from nst_numpy.memory_plan import HEADROOM, ScalePlan, describe
    plan = ScalePlan((480, 640), 0, 1, (480, 640), "lbfgs", 10, {"network": 3 << 30, "optimiser": 1 << 30})
    assert HEADROOM > 1 and plan.peak == pytest.approx(HEADROOM * (4 << 30))
    assert f"+{round(100 * (HEADROOM - 1))}% headroom" in describe([plan], [100], 8 << 30)


def test_each_lbfgs_correction_pair_costs_two_vectors_per_value():
    """L-BFGS-B keeps a step s and a gradient change y (float64) per correction pair: one more pair
    costs at least 16 bytes per image value."""
    from nst_numpy.memory_plan import optimizer_bytes
    n = 3 * 480 * 640
    for m in (3, 10):
        assert optimizer_bytes(n, "lbfgs", m + 1) - optimizer_bytes(n, "lbfgs", m) >= 16 * n


def test_the_time_estimate_includes_each_scales_setup():
    """--dry-run's time: iterations times seconds per iteration, plus each scale's optimiser set-up
    (here 60 s of iterations and 60 s of set-up: 2.0 min, not 1.0)."""
    from nst_numpy.memory_plan import ScalePlan, describe
    plan = ScalePlan((480, 640), 0, 1, (480, 640), "lbfgs", 10, {"network": 1 << 30},
                     seconds_per_iteration=0.5, setup_seconds=60.0)
    assert "estimated time ~2.0 min if every scale runs its full budget" in describe([plan], [120], 8 << 30)


def test_default_cap_adds_what_the_process_holds(monkeypatch):
    from nst_numpy import memory_plan as mp
    monkeypatch.setattr(mp, "available_memory", lambda: 10 << 30)
    monkeypatch.setattr(mp, "current_rss", lambda: 1 << 30)
    assert mp.default_cap() == int(mp.SAFE_SHARE * (10 << 30)) + (1 << 30)


def test_tiled_estimate_drops_the_float32_gradient_copy():
    from nst_numpy.memory_plan import OBJECTIVE_BYTES, estimate
    layers = ("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1")
    cost = types.SimpleNamespace(layers=list(layers), content_layers=("relu4_2",), bytes=lambda h, w: 0)
    hw, n = (600, 800), 3 * 600 * 800
    assert estimate(cost, hw, [], Config(), 0, 5, 0).parts["image-sized arrays"] == OBJECTIVE_BYTES * n
    tiled = estimate(cost, hw, [], Config(), 256, 5, 0)
    assert tiled.tiles > 1 and tiled.parts["image-sized arrays"] == (OBJECTIVE_BYTES - 4) * n


def test_window_cost_line_passes_through_both_probes():
    """WindowCost._fit: the line a * pixels + b through the two probes' peaks (an estimate too high
    passes every bound test, but plans needless tiles and a lower m)."""
    from nst_numpy.memory_plan import WindowCost
    a, b = WindowCost._fit(WindowCost.__new__(WindowCost), [1000.0 + 7 * 96 ** 2, 1000.0 + 7 * 160 ** 2], (96, 160))
    assert (a, b) == pytest.approx((7.0, 1000.0))


def test_a_tile_of_efficient_tile_px_keeps_the_asked_m():
    """EFFICIENT_TILE px tiles count as large: a cap that takes them at m = 10 gets them at m = 10, though
    larger tiles with a lower m would fit too."""
    from nst_numpy.fast import FastVGG19
    from nst_numpy.memory_plan import EFFICIENT_TILE, TILE_SIDES, WindowCost, estimate, plan_scale
    cost = WindowCost(FastVGG19.random(seed=0), ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1"))
    hw, cfg = (1200, 900), Config(lbfgs_memory=10)
    cap = estimate(cost, hw, [], cfg, EFFICIENT_TILE, 10, 0).peak
    larger = TILE_SIDES[TILE_SIDES.index(EFFICIENT_TILE) - 1]
    assert estimate(cost, hw, [], cfg, larger, 3, 0).peak <= cap   # the wrong answer is there to take
    p = plan_scale(cost, hw, [], cfg, cap, 0)
    assert (p.tile, p.lbfgs_memory) == (EFFICIENT_TILE, 10)


def test_lower_m_is_tried_before_tiles_under_efficient_tile():
    from nst_numpy.fast import FastVGG19
    from nst_numpy.memory_plan import EFFICIENT_TILE, WindowCost, estimate, plan_scale
    cost = WindowCost(FastVGG19.random(seed=0), ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1"))
    hw, cfg = (1200, 900), Config(lbfgs_memory=10)
    cap = estimate(cost, hw, [], cfg, EFFICIENT_TILE, 10, 0).peak - 1
    p = plan_scale(cost, hw, [], cfg, cap, 0)
    assert p.tile >= EFFICIENT_TILE and p.lbfgs_memory < 10, (p.tile, p.lbfgs_memory)


def test_a_big_style_image_is_planned_by_its_own_pass(cost, monkeypatch):
    """Untiled, style images go through the network whole, before the optimiser starts. A 32 px output
    with a 1600x1000 style image (--style-scale 50) once ran at 1.7 GB under --max-memory 700M:
    the plan counted the style image's pixels but not its forward pass."""
    from nst_numpy import memory_plan
    from nst_numpy.memory_plan import HEADROOM, describe, needs_plan
    hw, style, cfg = (24, 32), (1000, 1600), Config()
    p = estimate(cost, hw, [style], cfg, 0, 5, 0)
    net_part = "network on the 1600x1000 style image"
    assert p.peak_parts is p.style_parts and p.style_parts[net_part] == cost.forward_bytes(*style)
    # at least relu1_1's activation (64 float32 channels), which the pass holds; at most a window's forward and backward
    assert 1000 * 1600 * 64 * 4 < cost.forward_bytes(*style) < cost.bytes(*style)
    assert p.peak == int(HEADROOM * sum(p.style_parts.values()))
    assert net_part in describe([p], [10], 8 << 30)
    assert plan_scale(cost, hw, [style], cfg, p.peak, 0).tile == 0
    small = estimate(cost, hw, [(24, 32)], cfg, 0, 5, 0)   # control: a small style image does not set the peak
    assert small.peak_parts is small.parts
    monkeypatch.setattr(memory_plan, "available_memory", lambda: 16 << 30)
    assert needs_plan([hw], cfg, [style]) and not needs_plan([hw], cfg, [(24, 32)])


def test_a_tiled_run_tiles_its_style_images_and_the_plan_counts_a_window(cost):
    """TiledObjective._grams takes the style images tile by tile too, so a tiled plan counts one window of the
    style image, and a small output with a big style image is tiled for the style's sake. The untiled count once
    refused a 200 px run with a 1400 px style image at --tile-size 128 (1.84 GiB) that peaked at 476 MB."""
    from nst_numpy.memory_plan import describe
    from nst_numpy.tiling import plan_tiles
    hw, style, cfg = (24, 32), (1000, 1600), Config()
    untiled, tiled = estimate(cost, hw, [style], cfg, 0, 5, 0), estimate(cost, hw, [style], cfg, 256, 5, 0)
    a0, a1, b0, b1 = plan_tiles(style, 256, cost.style_layers)[0].window
    part = f"network on a {b1 - b0}x{a1 - a0} window of the 1600x1000 style image"
    assert tiled.style_parts[part] == cost.forward_bytes(a1 - a0, b1 - b0) and tiled.peak < untiled.peak
    p = plan_scale(cost, hw, [style], cfg, untiled.peak - 1, 0)   # the output fits one window; the style does not
    assert p.tile > 0 and p.tiles == 1 and p.peak < untiled.peak, p
    assert f"one window, style images in tiles of {p.tile} px" in describe([p], [10], 8 << 30)
    smallest = estimate(cost, hw, [style], cfg, 128, 3, 0)
    with pytest.raises(MemoryError, match=r"1600x1000 style image needs .* \(its Gram matrices in tiles of 128 px\)"):
        plan_scale(cost, hw, [style], cfg, smallest.peak - 1, 0)
    # "not tiled" only where no tile is smaller than the pictures (128 px here)
    small = estimate(cost, hw, [(96, 128)], cfg, 0, 3, 0)
    assert small.peak_parts is small.style_parts
    with pytest.raises(MemoryError, match=r"the 128x96 style image needs .* \(style images are not tiled\); lower"):
        plan_scale(cost, hw, [(96, 128)], cfg, small.peak - 1, 0)


def test_the_style_image_is_blamed_only_when_the_run_would_fit_without_it(cost):
    """With a process that leaves no room, lowering --style-scale cannot help: the general message, although the
    style pass is the larger phase (it once said "lower --style-scale" there, and again after that was done)."""
    from nst_numpy.memory_plan import HEADROOM
    hw, cfg = (24, 32), Config()
    p = estimate(cost, hw, [(96, 128)], cfg, 0, 3, 1 << 30)
    assert p.peak_parts is p.style_parts
    with pytest.raises(MemoryError, match=r"a 32x24 run needs at least") as e:
        plan_scale(cost, hw, [(96, 128)], cfg, 1 << 30, 1 << 30)
    assert "style" not in str(e.value)
    # A big style image's copies, kept all run long, are its own too: the rest fits, so it is named.
    big = estimate(cost, hw, [(1000, 1600)], cfg, 128, 3, 0)
    rest = int(HEADROOM * (sum(big.parts.values()) - big.parts["style images"]))
    with pytest.raises(MemoryError, match=r"the 1600x1000 style image needs about .*; lower --style-scale"):
        plan_scale(cost, hw, [(1000, 1600)], cfg, rest, 0)


BASE_RUN = textwrap.dedent("""
    import json
    from nst_numpy.config import Config
    from nst_numpy.fast import FastVGG19
    from nst_numpy.memory_plan import current_rss, plan_run
    net = FastVGG19.random(seed=0)
    cfg = Config(style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_2",))
    base = plan_run(net, [(32, 32)], [[(32, 32)]], cfg, cap=8 << 30)[0].parts["process before the run"]
    net.release_buffers()
    print(json.dumps({"base": base, "released": current_rss()}))
""")


def test_the_process_before_the_run_leaves_out_the_probes_buffers():
    """WindowCost releases the network's buffers after its last probe (a 512 px forward pass: 180 MB to relu2_2
    in a fresh process, 210 MB with VGG19's layers), so plan_run's process before the run holds none of them."""
    r = _fresh_process(BASE_RUN)
    assert r["base"] - r["released"] < 16 << 20, r


def test_the_smallest_tile_does_not_ask_for_a_smaller_one(cost):
    """--tile-size 16 is the smallest allowed: the refusal says what can help instead."""
    with pytest.raises(MemoryError, match=r"--tile-size 16 .*; raise --max-memory or lower --size$"):
        plan_scale(cost, (1200, 900), [], Config(tile_size=16), 1 << 20, 0)
    with pytest.raises(MemoryError, match=r"--tile-size 32 .*; use a smaller --tile-size or none"):   # control
        plan_scale(cost, (1200, 900), [], Config(tile_size=32), 1 << 20, 0)
