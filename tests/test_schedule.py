"""The run's schedule: iteration budgets per scale, the --min-improvement stopping rule, honest progress."""
import io

import numpy as np
import pytest

from nst_numpy import FastVGG19
from nst_numpy.config import Config
from nst_numpy.optimize import StoppingRule, auto_scales, iteration_budgets, scale_sizes, stylize
from nst_numpy.progress import Progress
from nst_numpy.samples import landscape, swirls

SMALL = dict(size=32, style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_2",))


@pytest.fixture(scope="module")
def net():
    return FastVGG19.random(seed=0, dtype=np.float32)


def test_stopping_rule_stops_when_the_average_improvement_falls_below_the_bound():
    """Loss 1.0, falling 1% of itself per iteration for 20 iterations, then 0.01%: with
    min_improvement 0.1% and a 10-iteration window the rule first fires once the window holds
    mostly slow iterations, and never while the loss still falls fast (negative control)."""
    losses = [0.99 ** i for i in range(21)]
    losses += [losses[-1] * 0.9999 ** i for i in range(1, 30)]
    rule = StoppingRule(1e-3, window=10)
    fired = [i for i, loss in enumerate(losses, 1) if rule(loss) is not None]
    # One fast drop (1%) in the window already averages 0.1%: it fires once all 10 are slow,
    # at iteration 31 (the slow drops are iterations 22, 23, ...).
    assert fired and fired[0] == 31, fired
    fast = StoppingRule(1e-3, window=10)
    assert all(fast(0.99 ** i) is None for i in range(200))          # 1% per iteration: never stops
    edge = StoppingRule(0.25, window=2)   # dyadic losses: the rate is exactly the bound, 0.25
    assert [edge(loss) for loss in (1.5, 1.25, 1.0)] == [None, None, None]   # "less than F" ends it, F does not
    assert edge(1.0) is not None
    off = StoppingRule(0.0, window=10)
    assert all(off(1.0) is None for _ in range(50))                  # 0 disables the rule, even when flat


def test_budgets_and_the_old_behaviour():
    """coarse_iterations at every coarser scale, iterations at the output size; one scale = iterations."""
    assert iteration_budgets(Config(scales=3, coarse_iterations=7, iterations=2), 3) == [7, 7, 2]
    assert iteration_budgets(Config(scales=1, iterations=300), 1) == [300]


def test_automatic_scales_start_coarse_only_from_1024_px():
    """Config.scales None: one scale below 1024 px; from there one more per doubling, the coarsest 512..1023 px."""
    assert Config().scales is None
    assert [auto_scales(s) for s in (64, 320, 512, 1023, 1024, 2047, 2048, 4096)] == [1, 1, 1, 1, 2, 2, 3, 4]
    assert scale_sizes((600, 800), 1024, None) == [(384, 512), (768, 1024)]
    assert scale_sizes((600, 800), 320, None) == [(240, 320)]
    assert scale_sizes((600, 800), 320, 3) == [(60, 80), (120, 160), (240, 320)]   # an explicit count wins
    assert scale_sizes((64, 64), 99, 2) == [(50, 50), (99, 99)]   # 99 / 2 rounded, not floored to 49


def test_scales_run_their_own_budgets(net):
    seen = []
    stylize(net, landscape(32, 32), [swirls(32, 32)],
            Config(**SMALL, scales=2, coarse_iterations=3, iterations=2, min_improvement=0.0),
            callback=lambda st: seen.append((st.scale, st.iteration, st.iterations)))
    assert seen == [(1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 2), (2, 2, 2)]


def test_each_scale_starts_from_the_previous_scales_result_upsampled(net, monkeypatch):
    """Coarse to fine (Gatys et al. 2017): scale 2 starts from scale 1's best point, as a picture
    (deprocessed, clipped), upsampled bicubically and preprocessed again, not from the photo."""
    from nst_numpy import optimize
    from nst_numpy.image import upsample
    runs, real = [], optimize.run_lbfgs

    def spy(f, x0, *args, **kwargs):
        out = real(f, x0, *args, **kwargs)
        runs.append((x0.copy(), f.best_x.copy()))
        return out

    monkeypatch.setattr(optimize, "run_lbfgs", spy)
    content = landscape(32, 32)
    stylize(net, content, [swirls(32, 32)], Config(**SMALL, scales=2, coarse_iterations=3, iterations=1,
                                                   min_improvement=0.0))
    assert len(runs) == 2
    coarse_best, fine_start = runs[0][1], runs[1][0]
    picture = np.clip(net.deprocess(coarse_best.reshape(16, 16, 3).astype(np.float32)), 0, 255)
    expected = np.asarray(net.preprocess(upsample(picture, (32, 32))), np.float64).reshape(-1)
    assert np.allclose(fine_start, expected, atol=1e-3)
    photo = np.asarray(net.preprocess(content), np.float64).reshape(-1)
    assert not np.allclose(fine_start, photo, atol=1.0)   # control: the photo itself is another start


def test_min_improvement_ends_a_scale_early_and_says_why(net):
    """A bound no run meets for long (99% per iteration) ends each scale soon after the window
    (10 iterations) fills; the callback gets one extra state with the reason, the ETA's total
    work shrinks, and the progress printer says so on a line of its own."""
    states = []
    stream = io.StringIO()
    progress = Progress(stream)

    def callback(st):
        states.append(st)
        progress(st)

    out = stylize(net, landscape(32, 32), [swirls(32, 32)],
                  Config(**SMALL, scales=2, coarse_iterations=40, iterations=40, min_improvement=0.99),
                  callback=callback)
    assert out.shape == (32, 32, 3)
    stops = [st for st in states if st.stopped]
    assert [st.scale for st in stops] == [1, 2]
    assert all(11 <= st.iteration < 40 and "converged" in st.stopped for st in stops)   # first check at 11
    assert states[-1].work_total == pytest.approx(states[-1].work_done)   # nothing left in the schedule
    assert states[0].work_total > states[-1].work_total                   # the estimate shrank
    text = stream.getvalue()
    assert f"stopped after {stops[-1].iteration} of 40 iterations" in text and "min-improvement" in text
    assert all(st.may_stop_early for st in states) and "ETA ≤" in text   # the budget is an upper bound


def test_min_improvement_zero_runs_every_iteration(net):
    """The old behaviour stays reachable: --scales 1 --iterations N --min-improvement 0 runs N (as one
    plain L-BFGS-B run: tests/test_lbfgs.py)."""
    seen = []
    stylize(net, landscape(32, 32), [swirls(32, 32)], Config(**SMALL, scales=1, iterations=25, min_improvement=0.0),
            callback=lambda st: seen.append(st))
    assert len(seen) == 25 and not any(st.stopped or st.may_stop_early for st in seen)
    stream = io.StringIO()
    Progress(stream)(seen[-1])
    assert "ETA 0:" in stream.getvalue() and "≤" not in stream.getvalue()   # a fixed count: a plain ETA


@pytest.mark.parametrize("field, value", [("min_improvement", -0.1), ("min_improvement", 1.0),
                                          ("coarse_iterations", 0), ("iterations", 2.5), ("scales", 0),
                                          ("precondition_after", -1), ("precondition_after", 2.5)])
def test_bad_schedule_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field.replace("_", "-")):
        Config(**{field: value}).validate()


def test_whole_numbers_of_any_type_are_taken_as_ints_and_others_refused():
    """5.0 or np.int64(5) from a caller's arithmetic run (range() and numpy's seeding once raised a
    TypeError deep in the run); np.float32 fractions pass; a fractional or negative seed is refused."""
    c = Config(iterations=5.0, scales=np.int64(2), seed=np.uint8(3), min_improvement=np.float32(1e-3)).validate()
    assert (type(c.iterations), type(c.scales), type(c.seed)) == (int, int, int) and c.iterations == 5
    for seed in (1.5, -1, True):
        with pytest.raises(ValueError, match="seed must be a whole number"):
            Config(seed=seed).validate()


def test_adam_stopped_without_improvement_reports_its_best_loss(net):
    """Adam's loss can rise: the rule then ends the scale as "no improvement", not "converged", and the
    stopped line gives the loss of the picture handed on (the best), not that of the last point."""
    seen = []
    stylize(net, landscape(), [swirls()], Config(size=32, iterations=60, optimizer="adam", learning_rate=40.0,
                                                 min_improvement=5e-3), callback=seen.append)
    stopped, losses = seen[-1], [st.loss for st in seen[:-1]]
    assert stopped.stopped.startswith("no improvement") and losses[-1] > min(losses)   # the case: a rise
    assert stopped.loss == pytest.approx(min(losses), rel=1e-12)


def test_progress_reports_tiles_within_an_evaluation():
    """On a terminal each tile refreshes the tile count after the last iteration's line; in a log, a
    tile line only when 30 s have passed without a line. done/total counts 2 passes of 2 tiles."""
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True
    log = io.StringIO()
    p = Progress(log, clock=iter([0.0, 1.0, 2.0, 40.0, 41.0]).__next__)
    for done in (1, 2, 3, 4):
        p.tile(done, 4)
    assert log.getvalue().splitlines() == ["  evaluating: tile 1/2, pass 2/2"]   # at 40 s only
    tty = Tty()
    p = Progress(tty, clock=iter([0.0, 1.0, 2.0, 3.0]).__next__)
    p.tile(1, 4)
    p.tile(4, 4)
    assert tty.getvalue() == "\revaluating: tile 1/2, pass 1/2\revaluating: tile 2/2, pass 2/2"
    p.lines = ("scale 1/1 64x48  it 3/9",)   # after an iteration's line, the count follows it
    p.tile(2, 4)
    assert tty.getvalue().endswith("\rscale 1/1 64x48  it 3/9  [tile 2/2, pass 1/2]")
    p.close()   # Ctrl-C: the next message ("interrupted after ...") starts on its own line
    p.close()   # and only one line end, however often it is called
    assert tty.getvalue().endswith("pass 1/2]\n") and p.lines == ()
    Progress(log).close()
    assert log.getvalue().endswith("pass 2/2\n")   # a log's lines already end: nothing added


def test_terminal_lines_fit_the_terminal():
    """A line wider than the terminal wraps, and a carriage return cannot rewrite a wrapped line:
    on 80 columns the loss breakdown is dropped first, then the rate (the ETA stays), then the end is cut."""
    from nst_numpy.optimize import State

    class Tty(io.StringIO):
        def isatty(self):
            return True
    st = State(1, 1, (384, 512), 7, 150, 7, 4.857, dict(content=0.00135, style=4.82, tv=0.032),
               7.0 * 384 * 512, 150.0 * 384 * 512, None, may_stop_early=True)
    wide, narrow = Tty(), Tty()
    # This process's first iteration (the 7th: a resumed run) took 1/0.7 s: 0.70 it/s.
    Progress(wide, clock=iter([0.0, 1 / 0.7]).__next__, columns=200)(st)
    assert "(content 0.00135, style 4.82, tv 0.032)" in wide.getvalue()   # control: room for all of it
    p = Progress(narrow, clock=iter([0.0, 1 / 0.7, 11.0, 12.0]).__next__, columns=80)
    p(st)
    p.tile(3, 8)
    rows = narrow.getvalue().split("\r")[1:]
    assert rows[0] == "scale 1/1 512x384  it 7/150  loss 4.857  0.70 it/s  ETA ≤3:24"
    assert rows[1] == "scale 1/1 512x384  it 7/150  loss 4.857  ETA ≤3:24  [tile 3/4, pass 1/2]"
    assert all(len(r) < 80 for r in rows)
    p.columns = 40
    p.tile(4, 8)
    assert narrow.getvalue().split("\r")[-1] == "scale 1/1 512x384  it 7/150  loss 4.857"

def test_bad_stylize_calls_are_one_line_errors(net):
    """stylize's own checks, for callers of the API (the CLI rejects these before it calls stylize)."""
    content, style = landscape(32, 32), swirls(32, 32)
    quick = Config(**SMALL, scales=1, iterations=1)
    assert stylize(net, content, [style], quick).shape == (32, 32, 3)   # control: a good call runs
    cases = [
        (dict(style_blend=(1.0, 2.0)), "1 style images but 2 style weights"),
        (dict(init="painting.png"), "init 'painting.png': no image given"),   # a path, but no init_rgb
        (dict(size=8), "--size 8 gives a 8x8 output; the network needs at least 16 px"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            stylize(net, content, [style], Config(**dict(SMALL, **changes), scales=1, iterations=1))
    with pytest.raises(ValueError, match="texture synthesis .* needs --init noise or an image"):
        stylize(net, None, [style], quick)   # quick.init is "content", and there is none


def test_init_from_an_image_starts_there(net, monkeypatch):
    """Config.init naming an image (the CLI's --init PATH): the first scale starts from that image,
    resized to the scale, not from the photo."""
    from nst_numpy import optimize
    from nst_numpy.image import resize
    real, starts = optimize.run_lbfgs, []

    def record(f, x0, *args, **kwargs):
        starts.append(x0.copy())
        return real(f, x0, *args, **kwargs)
    monkeypatch.setattr(optimize, "run_lbfgs", record)
    content, start = landscape(32, 32), swirls(20, 20)
    stylize(net, content, [swirls(32, 32)], Config(**SMALL, scales=1, iterations=1, init="start.png"),
            init_rgb=start)
    rgb = net.deprocess(starts[0].reshape(32, 32, 3))
    assert np.max(np.abs(rgb - np.clip(resize(start, (32, 32)), 0, 255))) < 1e-3   # Lanczos overshoot clipped
    assert np.max(np.abs(rgb - content)) > 10   # control: not the photo


def test_a_nan_loss_and_an_early_ctrl_c(net, monkeypatch):
    """A loss that turns NaN stops the run with FloatingPointError, not a picture of NaNs; Ctrl-C
    before the first evaluation finished has no picture to save, so it stays a KeyboardInterrupt."""
    from nst_numpy import optimize
    from nst_numpy.optimize import Interrupted
    content = landscape(32, 32)
    content[5, 5] = np.nan   # load_image refuses these; a caller of the API might not
    with pytest.raises(FloatingPointError, match="the loss became NaN or infinite"):
        stylize(net, content, [swirls(32, 32)], Config(**SMALL, scales=1, iterations=2))

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(optimize, "run_lbfgs", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        try:
            stylize(net, landscape(32, 32), [swirls(32, 32)], Config(**SMALL, scales=1, iterations=2))
        except Interrupted:
            pytest.fail("Interrupted carries a picture, and none was computed")


def test_a_resumed_run_counts_only_its_own_iterations_in_its_rate_and_eta():
    """Resumed at iteration 44 of 200, 4 iterations a second: the line says 4.00 it/s and 0:39 left
    (156 iterations), not 45 iterations over this process's first 0.25 s."""
    from nst_numpy.optimize import State
    hw = (48, 64)
    log = io.StringIO()
    p = Progress(log, every=1, clock=iter([0.0, 0.25, 0.5]).__next__)
    for i in (45, 46):
        p(State(1, 1, hw, i, 200, i, 1.0, {}, i * hw[0] * hw[1], 200 * hw[0] * hw[1], lambda: None))
    last = log.getvalue().splitlines()[-1]
    assert "it 46/200" in last and "4.00 it/s" in last and "ETA 0:38" in last   # 154 left at 4 a second
    fresh = io.StringIO()
    p = Progress(fresh, every=1, clock=iter([0.0, 0.25, 0.5]).__next__)
    for i in (1, 2):    # the control: a run from the start gives the same rate
        p(State(1, 1, hw, i, 200, i, 1.0, {}, i * hw[0] * hw[1], 200 * hw[0] * hw[1], lambda: None))
    assert "4.00 it/s" in fresh.getvalue().splitlines()[-1]


def test_adam_is_not_restarted_at_the_step_size_iteration(net):
    """precondition_after is L-BFGS-B's: an Adam run is the same run whatever it says (before, Adam
    restarted with fresh moments at iteration 20 and its loss rose there)."""
    outs = [stylize(net, landscape(32, 32), [swirls(32, 32)],
                    Config(**SMALL, scales=1, iterations=25, min_improvement=0, optimizer="adam", precondition_after=p))
            for p in (None, 0, 3)]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_adam_reports_the_loss_of_the_point_it_reached(net):
    """Each iteration's State carries the loss at the point that iteration moved to: the best loss
    so far is never above it, and the last one is the run's final loss (not one step behind)."""
    from nst_numpy.objective import make_objective
    seen = []
    cfg = Config(**SMALL, scales=1, iterations=5, min_improvement=0, optimizer="adam")
    out = stylize(net, landscape(32, 32), [swirls(32, 32)], cfg, callback=seen.append)
    assert [st.iteration for st in seen] == [1, 2, 3, 4, 5]
    f = make_objective(net, net.preprocess(landscape(32, 32)), [(net.preprocess(swirls(32, 32)), 1.0)], cfg)
    final = f(net.preprocess(out).reshape(-1).astype(np.float64))[0]
    assert seen[-1].loss == pytest.approx(final, rel=1e-2)   # the saved image is the last point, rounded
    assert seen[0].parts["content"] > 0                        # iteration 1 has moved off the content image


def test_l_bfgs_b_stopping_on_its_own_is_reported_and_counted(net):
    """Content and style the same flat picture, no TV: the start is already a minimum, so L-BFGS-B
    stops at once. The scale says why on a line of its own, and the counters stay honest."""
    flat = np.full((32, 32, 3), 128.0)
    states = []
    stylize(net, flat, [flat], Config(**SMALL, scales=1, iterations=30, min_improvement=0, tv_weight=0.0),
            callback=states.append)
    stops = [st for st in states if st.stopped]
    assert len(stops) == 1 and "L-BFGS-B found no step" in stops[0].stopped
    assert stops[0].iteration < 30 and stops[0].work_total == pytest.approx(stops[0].work_done)
    assert [st.iteration for st in states if not st.stopped] == list(range(1, stops[0].iteration + 1))


def test_l_bfgs_b_ending_a_segment_early_restarts_it(net, monkeypatch):
    """A segment that L-BFGS-B ends after some iterations (a failed line search, evaluations run out)
    restarts from the best point with a fresh memory: the scale goes on to its budget, no stop line."""
    from nst_numpy import optimize
    real, calls = optimize.run_lbfgs, []

    def short_first(f, x0, lo, hi, n, on_iteration=None, memory=10, step_sizes=None, info=None):
        calls.append(n)
        return real(f, x0, lo, hi, min(n, 4) if len(calls) == 1 else n, on_iteration, memory, step_sizes, info)
    monkeypatch.setattr(optimize, "run_lbfgs", short_first)
    states = []
    stylize(net, landscape(32, 32), [swirls(32, 32)],
            Config(**SMALL, scales=1, iterations=12, min_improvement=0), callback=states.append)
    assert calls[:2] == [12, 8]   # 4 of 12 ran, so the restart has the other 8
    assert [st.iteration for st in states] == list(range(1, 13)) and not any(st.stopped for st in states)


def test_the_last_line_of_a_run_that_may_stop_early_gives_a_plain_eta():
    """With --min-improvement on the ETA is an upper bound ("≤") only while work is left: the
    last iteration's line, with nothing left, says an exact 0:00."""
    from nst_numpy.optimize import State
    hw = (48, 64)
    log = io.StringIO()
    p = Progress(log, every=1, clock=iter([0.0, 1.0, 2.0]).__next__)
    for i in (19, 20):
        p(State(1, 1, hw, i, 20, i, 1.0, {}, i * hw[0] * hw[1], 20 * hw[0] * hw[1], lambda: None,
                may_stop_early=True))
    first, last = log.getvalue().splitlines()
    assert "ETA ≤0:01" in first   # control: work left, an upper bound
    assert last.endswith("ETA 0:00"), last


def test_the_it_per_s_rate_restarts_at_each_scale():
    """Scale 2 starts at 100 s (scale 1's one slow iteration took them) and runs 10 iterations in
    10 s: 1.00 it/s, not 10 iterations over the run's 110 s."""
    from nst_numpy.optimize import State
    hw = (48, 64)
    log = io.StringIO()
    p = Progress(log, every=1, clock=iter([0.0, 100.0] + [100.0 + i for i in range(1, 11)]).__next__)
    p(State(1, 2, hw, 1, 1, 1, 1.0, {}, hw[0] * hw[1], 11 * hw[0] * hw[1], lambda: None))
    for i in range(1, 11):
        p(State(2, 2, hw, i, 10, 1 + i, 1.0, {}, (1 + i) * hw[0] * hw[1], 11 * hw[0] * hw[1], lambda: None))
    last = log.getvalue().splitlines()[-1]
    assert "scale 2/2" in last and "it 10/10" in last and "1.00 it/s" in last, last


def test_stylize_eta_shows_hours():
    from nst_numpy.progress import _clock_time
    assert _clock_time(3725) == "1:02:05" and _clock_time(65) == "1:05"


def _state(i, n=20):
    from nst_numpy.optimize import State
    return State(1, 1, (32, 32), i, n, i, 1.0, {"content": 0, "style": 1, "tv": 0}, i * 1024.0, n * 1024.0, None)


def test_stylize_progress_in_a_log_every_10_iterations():
    log = io.StringIO()
    p = Progress(log, clock=iter(range(100)).__next__)
    for i in range(1, 21):
        p(_state(i))
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "it 10/20" in lines[0] and "it 20/20" in lines[1], lines


def test_a_log_gets_no_tile_line_before_30_seconds():
    """A log gets a tile line only after 30 s without one: at 29 s nothing, at 30 s one line."""
    log = io.StringIO()
    p = Progress(log, clock=iter([0.0, 29.0, 30.0]).__next__)
    p.tile(1, 4)
    assert log.getvalue() == ""
    p.tile(2, 4)
    assert log.getvalue() == "  evaluating: tile 2/2, pass 1/2\n"


def test_a_line_as_wide_as_the_terminal_is_not_used():
    """A line of exactly `columns` characters puts the cursor past the last
    column (it wraps on many terminals, Windows' console at once), so a shorter form is chosen."""
    class Tty(io.StringIO):
        def isatty(self):
            return True
    lines = ("x" * 50, "y" * 30)
    t = Tty()
    p = Progress(t, columns=50)
    p._refresh(lines)
    assert t.getvalue() == "\r" + "y" * 30
