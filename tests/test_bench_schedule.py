"""scripts/benchmark.py --schedule and --curve (bench_schedule.py): the time-to-result benchmark issue 13
is judged by, and one run's loss curve. At tiny sizes with random weights, or with scripted runs where
the arithmetic of the table is under test; the fixtures are test_benchmark_scripts.py's."""
import importlib
import re
import types

import numpy as np
import pytest
from PIL import Image

from nst_numpy.config import Config
from test_benchmark_scripts import (NUM, _is_ratio, _positive, _table,  # noqa: F401 (fixtures: imported, they apply)
                                    bench, one_blas_thread, pair, weights_file)


def test_parse_set_takes_types_from_config(bench):
    """Also booleans: bool('false') is True, so parse_set once turned normalize=false into True."""
    B = importlib.import_module("bench_schedule")
    assert B.parse_set(["scales=3", "min_improvement=1e-3", "init=noise", "normalize=False", "tile_size=64"]) == \
        {"scales": 3, "min_improvement": 0.001, "init": "noise", "normalize": False, "tile_size": 64}
    assert B.parse_set(["normalize=true"]) == {"normalize": True} and B.parse_set(None) == {}
    assert B.parse_set(["style_layers=relu3_1,relu4_1", "style_layer_weights=1,0.5"]) == \
        {"style_layers": ("relu3_1", "relu4_1"), "style_layer_weights": (1.0, 0.5)}   # not tuples of characters
    with pytest.raises(ValueError, match="no field 'nope'"):
        B.parse_set(["nope=1"])
    for method in ("validate", "as_text", "extra"):   # attributes, not fields: once a TypeError traceback
        with pytest.raises(ValueError, match=f"no field '{method}'"):
            B.parse_set([f"{method}=1"])
    with pytest.raises(ValueError, match="true or false"):
        B.parse_set(["normalize=0"])


def test_pairs_split_where_both_files_exist(bench, tmp_path):
    """--pairs joins two paths with a colon, and a path may hold one itself: the split is at the
    colon with an existing file on both sides (control: the first colon would split inside one)."""
    B = importlib.import_module("bench_schedule")
    content, style = tmp_path / "photo:2024.png", tmp_path / "a:b.png"
    for path in (content, style):
        path.write_bytes(b"")
    pair = f"{content}:{style}"
    assert B.split_pair(pair) == (str(content), str(style))
    assert pair.partition(":")[0] != str(content)                     # the control: first colon is wrong
    assert B.split_pair(f"{tmp_path / 'nope.png'}:{style}") == (str(tmp_path / "nope.png"), str(style))


def test_schedule_mode_compares_new_and_old_runs(bench, weights_file, pair, capsys, monkeypatch):
    """A row per size: the new run (with --set) and the old one (OLD), both scored by the same final loss;
    the ratios are new / old."""
    B = importlib.import_module("bench_schedule")   # the module benchmark.py imports
    monkeypatch.setattr(B, "OLD", dict(B.OLD, iterations=3))   # the old behaviour's 300 iterations take too long here
    runs, timed_run = [], B.timed_run

    def spy(net, content, style, config, on_state=None):   # the exact seconds: the table rounds them to 0.1 s
        result = timed_run(net, content, style, config, on_state)
        runs.append((config, result[1]))
        return result

    monkeypatch.setattr(B, "timed_run", spy)
    args = ["--schedule", "--weights", weights_file, "--pairs", pair, "--sizes", "32", "48", "--set", "iterations=2"]
    assert bench.main(args + ["--threads", "1"]) == 0
    out = capsys.readouterr().out
    head, rows = _table(out)
    assert head == ["pair", "size", "old s", "old loss", "new s", "new loss", "time ratio", "loss ratio",
                    "new iterations / evaluations"]
    # Per row the new run first, then the old one: one scale, no early stop, OLD's iterations, no step
    # sizes, 10 correction pairs.
    assert [(c.size, c.iterations, c.scales, c.min_improvement, c.restart_with_step_sizes_at(), c.correction_pairs())
            for c, _ in runs] == [(32, 2, None, 5e-4, 20, 5), (32, 3, 1, 0.0, 0, 10), (48, 2, None, 5e-4, 20, 5),
                                  (48, 3, 1, 0.0, 0, 10)]
    time_ratios, below, tied = [], 0, 0   # tied: equal to the 4 printed digits, either way unprinted
    for size, row, (_, new_s), (_, old_s) in zip((32, 48), rows, runs[::2], runs[1::2]):
        label, printed_size, _, old_loss, _, new_loss, time_ratio, loss_ratio, its = row
        assert (label, printed_size) == ("content + style", str(size))
        assert _positive(old_loss) and _positive(new_loss) and _is_ratio(loss_ratio, new_loss, old_loss)
        assert time_ratio == f"{new_s / old_s:.2f}"
        time_ratios.append(new_s / old_s)
        below, tied = below + (float(new_loss) < float(old_loss)), tied + (new_loss == old_loss)
        iterations, evaluations = map(int, its.split(" / "))
        assert 1 <= iterations <= 2 and evaluations >= iterations
    assert len(rows) == 2
    assert f"median time ratio {np.median(time_ratios):.2f} (worst {max(time_ratios):.2f})" in out
    count = int(re.search(r"the new run's loss <= the old one's in (\d) of 2\n", out).group(1))
    assert below <= count <= below + tied


def test_schedule_summary_gives_medians_and_worst_of_new_over_old(bench, weights_file, pair, capsys, monkeypatch):
    """The last line, the figures the issue is judged by: medians and worst of the per-row ratios new / old,
    each row scored on its own run's output. Scripted runs: time ratios 0.2, 0.5, 0.3 (median 0.30,
    mean 0.33) and loss ratios 1.02, 0.99, 1.06 (median 1.020, mean 1.023)."""
    B = importlib.import_module("bench_schedule")
    seconds, losses, outputs = iter([2.0, 10.0, 5.0, 10.0, 3.0, 10.0]), [1.02, 1.0, 0.99, 1.0, 1.06, 1.0], []

    def fake_run(net, content, style, config, on_state=None):
        assert net.threads == 1   # --threads reaches the network
        outputs.append(np.full((4, 4, 3), float(len(outputs))))   # output k holds k: the score finds its run
        return outputs[-1], next(seconds), 1, 1

    def fake_score(net, content, style, out, objective=None):
        return losses[int(out[0, 0, 0])], {}
    monkeypatch.setattr(B, "timed_run", fake_run)
    monkeypatch.setattr(B, "final_loss", fake_score)
    assert bench.main(["--schedule", "--weights", weights_file, "--pairs", pair, "--sizes", "32", "48", "64",
                       "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert [row[6:8] for row in _table(out)[1]] == [["0.20", "1.020"], ["0.50", "0.990"], ["0.30", "1.060"]]
    assert out.splitlines()[-1] == ("median time ratio 0.30 (worst 0.50); median loss ratio 1.020 (worst 1.060); "
                                    "the new run's loss <= the old one's in 1 of 3")


def test_set_changes_the_new_schedule_only_and_the_objective_of_both(bench, weights_file, pair, capsys, monkeypatch):
    """--set lbfgs_memory=7 precondition_after=3 init=noise coarse_iterations=7: the new run's; the old run
    stays plain L-BFGS-B with 10 pairs from the photo. --set tv_weight=2: the objective, so both runs and the score take it. --set size: an error."""
    B = importlib.import_module("bench_schedule")
    runs, scored = [], []

    def fake_run(net, content, style, config, on_state=None):
        runs.append(config)
        return np.zeros(content.shape), 1.0, 1, 1

    def fake_score(net, content, style, out, objective=None):
        scored.append(objective)
        return 1.0, {}
    monkeypatch.setattr(B, "timed_run", fake_run)
    monkeypatch.setattr(B, "final_loss", fake_score)
    sets = ["lbfgs_memory=7", "precondition_after=3", "tv_weight=2", "init=noise", "coarse_iterations=7"]
    assert bench.main(["--schedule", "--weights", weights_file, "--pairs", pair, "--sizes", "32", "--set", *sets]) == 0
    new, old = runs
    assert (new.correction_pairs(), new.restart_with_step_sizes_at(), new.tv_weight) == (7, 3, 2.0)
    assert (old.correction_pairs(), old.restart_with_step_sizes_at(), old.tv_weight) == (10, 0, 2.0)
    assert (new.init, new.coarse_iterations) == ("noise", 7)
    assert (old.init, old.coarse_iterations) == (Config().init, Config().coarse_iterations)
    assert (old.scales, old.iterations, old.min_improvement) == (1, 300, 0.0)
    assert scored == [{"tv_weight": 2.0}, {"tv_weight": 2.0}]
    capsys.readouterr()
    assert bench.main(["--schedule", "--weights", weights_file, "--pairs", pair, "--set", "size=64"]) == 2
    assert "use --sizes" in capsys.readouterr().err
    runs.clear()   # --curve too, before its run (it once ran, printed its table, then refused)
    assert bench.main(["--curve", "--weights", weights_file, "--pairs", pair, "--set", "size=64"]) == 2
    assert "use --sizes" in capsys.readouterr().err and runs == []


def test_final_loss_scores_the_saved_output_with_the_default_objective(bench, monkeypatch):
    """What the issue is judged by: make_objective(net, content resized to the output, style at
    style_scale times the output's side, Config() with --set's objective fields) at the output as
    saved (clipped, rounded to 8 bits)."""
    from nst_numpy import FastVGG19
    from nst_numpy.image import resize
    B = importlib.import_module("bench_schedule")
    net = FastVGG19.random(seed=0)
    rng = np.random.default_rng(1)
    content, style = rng.uniform(0, 255, (60, 80, 3)), rng.uniform(0, 255, (50, 50, 3))
    out = rng.uniform(-20, 275, (30, 40, 3))       # off the pixel grid and outside 0..255, as a run's x may be
    seen, real = {}, B.make_objective

    class Spy:
        def __init__(self, net_, content_, styles, config):
            seen.update(content=content_, style=styles[0][0], config=config)
            self.f = real(net_, content_, styles, config)

        def __call__(self, x):
            seen["x"] = x.copy()
            return self.f(x)

        @property
        def parts(self):
            return self.f.parts
    monkeypatch.setattr(B, "make_objective", Spy)
    loss, parts = B.final_loss(net, content, style, out, {"style_scale": 0.5, "tv_weight": 2.0})
    np.testing.assert_allclose(seen["content"], net.preprocess(resize(content, (30, 40))))
    assert seen["style"].shape == (20, 20, 3)                           # 0.5 x the output's 40 px
    assert seen["config"] == Config(style_scale=0.5, tv_weight=2.0)
    np.testing.assert_allclose(seen["x"], net.preprocess(np.round(np.clip(out, 0, 255))).reshape(-1))
    assert loss == pytest.approx(sum(parts.values()), rel=1e-6) and loss > 0


def test_load_pair_reads_the_style_for_its_scale_and_curve_scores_with_set(bench, weights_file, pair, tmp_path,
                                                                          capsys, monkeypatch):
    """Images are read as the CLI reads them: a JPEG style decodes at reduced size only below what
    --style-scale times the size needs. --curve's final score takes --set's objective fields, as --schedule's."""
    B = importlib.import_module("bench_schedule")
    style = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (768, 1024, 3), dtype=np.uint8)).save(style)
    content = B.split_pair(pair)[0]
    assert B.load_pair(f"{content}:{style}", 256, 2.0)[1].shape == (768, 1024, 3)   # needs 512 px: no reduction
    assert B.load_pair(f"{content}:{style}", 256, 1.0)[1].shape == (192, 256, 3)    # control: JPEG's 1/4 scale
    scored = []
    monkeypatch.setattr(B, "timed_run", lambda net, c, s, cfg, on_state=None: (np.zeros(c.shape), 1.0, 1, 1))
    monkeypatch.setattr(B, "final_loss", lambda net, c, s, out, objective=None: (scored.append(objective) or 1.0,
                                                                                 dict(content=0.5, style=0.25, tv=0.25)))
    assert bench.main(["--curve", "--weights", weights_file, "--pairs", pair, "--set", "tv_weight=2", "iterations=3"]) == 0
    assert scored == [{"tv_weight": 2.0}]


def test_curve_mode_prints_the_loss_terms_per_iteration(bench, weights_file, pair, capsys):
    """Every iteration of the last scale, the last of the coarse one; each row's terms add up to its
    loss and the layers' style terms to the style term."""
    overrides = ["scales=2", "coarse_iterations=2", "iterations=3", "min_improvement=0"]   # no early stop
    assert bench.main(["--curve", "--weights", weights_file, "--pairs", pair, "--sizes", "48", "--set", *overrides,
                       "--threads", "1"]) == 0
    head, *rows, last = capsys.readouterr().out.strip().splitlines()
    layers = list(Config().style_layers)
    assert head.split() == ["scale", "iter", "seconds", "loss", "content", "style", *layers, "tv"]
    values = [[float(v) for v in row.split()] for row in rows]
    assert [(int(v[0]), int(v[1])) for v in values] == [(1, 2), (2, 1), (2, 2), (2, 3)]
    for _, _, seconds, loss, content, style, *terms, tv in values:
        assert loss > 0 and seconds >= 0
        assert loss == pytest.approx(content + style + tv, abs=1e-3)
        assert style == pytest.approx(sum(terms), abs=1e-3)
    m = re.fullmatch(rf"# 5 iterations, (\d+) evaluations, {NUM} s; final loss on the saved output ({NUM}) "
                     rf"\(content ({NUM}), style ({NUM}), tv ({NUM})\)", last)
    assert m and int(m[1]) >= 5, last
    assert float(m[2]) > 0 and float(m[2]) == pytest.approx(sum(map(float, m.group(3, 4, 5))), abs=1e-3)


def _fake_stylize(net, content, styles, config, callback=None, **kw):
    """Three iterations, then the notice that the run stopped (a state with .stopped set, not an iteration)."""
    for i in (1, 2, 3):
        callback(types.SimpleNamespace(stopped="", iteration=i))
    callback(types.SimpleNamespace(stopped="loss flat", iteration=3))
    return np.zeros((4, 4, 3))


def test_timed_run_counts_iterations_not_the_stop_notice(bench, monkeypatch):
    B = importlib.import_module("bench_schedule")
    monkeypatch.setattr(B, "stylize", _fake_stylize)
    out, seconds, its, evals = B.timed_run(None, None, None, Config())
    assert its == 3 and evals == 0


def test_timed_run_restores_objective_call(bench, monkeypatch):
    """timed_run counts evaluations by patching Objective.__call__; it must put the real one back."""
    B = importlib.import_module("bench_schedule")
    plain = B.Objective.__call__
    monkeypatch.setattr(B, "stylize", _fake_stylize)
    B.timed_run(None, None, None, Config())
    assert B.Objective.__call__ is plain


def _schedule_out(monkeypatch, capsys, overrides):
    """The --schedule table's lines for one pair with stand-ins for the runs (1 s, loss 1.0 each)."""
    B = importlib.import_module("bench_schedule")
    monkeypatch.setattr(B, "load_pair", lambda pair, size, scale: (np.zeros((4, 4, 3)), np.zeros((4, 4, 3))))
    monkeypatch.setattr(B, "timed_run", lambda net, c, s, cfg, on_state=None: (np.zeros((4, 4, 3)), 1.0, 1, 1))
    monkeypatch.setattr(B, "final_loss", lambda net, c, s, out, objective=None: (1.0, {}))
    assert B.schedule(None, ["c.png:s.png"], [32], overrides) == 0
    return capsys.readouterr().out.splitlines()


def test_schedule_header_describes_the_old_run_without_the_new_runs_fields(bench, monkeypatch, capsys):
    first = _schedule_out(monkeypatch, capsys, {"lbfgs_memory": 7})[0]
    assert first.split("; old: ")[1].startswith("scales=1 ") and "L-BFGS memory 10" in first.split("; old: ")[1]


def test_schedule_summary_counts_an_equal_loss_as_not_worse(bench, monkeypatch, capsys):
    assert _schedule_out(monkeypatch, capsys, {})[-1].endswith("the new run's loss <= the old one's in 1 of 1")
