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


def test_scales_run_their_own_budgets(net):
    seen = []
    stylize(net, landscape(32, 32), [swirls(32, 32)],
            Config(**SMALL, scales=2, coarse_iterations=3, iterations=2, min_improvement=0.0),
            callback=lambda st: seen.append((st.scale, st.iteration, st.iterations)))
    assert seen == [(1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 2), (2, 2, 2)]


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


def test_progress_reports_tiles_within_an_evaluation():
    """On a terminal every tile refreshes the line; in a log, a line at most every 30 s and at the end."""
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0]).__next__
    log = io.StringIO()
    p = Progress(log, clock=clock)
    for done in (1, 2, 3, 4):
        p.tile(done, 4)
    assert log.getvalue().splitlines() == ["  evaluating: tile 3/4", "  evaluating: tile 4/4"]
    tty = Tty()
    p = Progress(tty, clock=iter([0.0, 1.0, 2.0]).__next__)
    p.tile(1, 2)
    p.tile(2, 2)
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("tile 2/2")
