"""Check every hand-written gradient against finite differences and print a table.

    python scripts/gradcheck.py              # add --samples 100 for a more thorough (slower) run

Each row compares an analytic gradient (a backward pass or a loss's gradient)
with centered finite differences in float64 and reports their relative error
(nst_numpy/gradcheck.py::rel_error). A check passes when the error is below its
bound. Rows marked "expected to fail" are negative controls: they feed a
deliberately wrong gradient and pass only if the check catches it, which
shows the check can fail. Exit status: 0 if every row passes, 1 otherwise (130 on Ctrl-C).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # script_guard, also when imported by the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.gradcheck import run_all_checks  # noqa: E402


def format_table(rows):
    """rows: CheckResults -> the table as one string (one line per check, then a summary)."""
    width = max(len(r.name) for r in rows)
    lines = [f"{'check':<{width}}  {'rel. error':>10}  {'bound':>7}  result",
             "-" * (width + 36)]
    for r in rows:
        bound = f"{'>' if r.expect_fail else '<'}{r.bound:.0e}"
        verdict = "pass" if r.passed else "FAIL"
        if r.expect_fail:
            verdict += " (expected to fail: caught)" if r.passed else " (expected to fail: NOT caught)"
        lines.append(f"{r.name:<{width}}  {r.error:>10.2e}  {bound:>7}  {verdict}")
    failed = sum(not r.passed for r in rows)
    lines.append("-" * (width + 36))
    lines.append(f"{len(rows) - failed}/{len(rows)} checks passed" + (f", {failed} FAILED" if failed else ""))
    return "\n".join(lines)


@script_guard.guarded()
def main(argv=None):
    """Run all checks, print the table; returns the exit status (0 = all passed, 130 = Ctrl-C)."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=12,
                        help="input values probed in each whole-network check (default 12; each costs 2 forward passes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs and upstream gradients")
    args = parser.parse_args(argv)
    if args.samples < 3:
        parser.error("--samples must be at least 3")  # one line, exit status 2 (OneLineParser)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    start = time.perf_counter()
    rows = run_all_checks(seed=args.seed, n_samples=args.samples)
    print(format_table(rows))
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0 if all(r.passed for r in rows) else 1

