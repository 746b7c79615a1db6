"""Progress of a stylize run on a terminal or in a log: iteration, loss by part, it/s, ETA, tiles."""
import os
import time


class Progress:
    """A stylize callback printing iteration, loss by part, it/s and ETA.

    On a terminal the line is refreshed in place (carriage return); otherwise
    (a log file, a pipe) plain lines are printed every `every` iterations and at
    the end of each scale. A scale that ends early (--min-improvement) gets a line
    of its own saying why. The ETA is the schedule's remaining work (pixel-iterations,
    which shrink when a scale ends early) at the run's average rate so far. With
    --min-improvement on, a scale usually ends before its budget, so the ETA is shown as
    an upper bound ("ETA ≤1:05"): predicting the stop from a noisy loss curve would be a guess.
    """

    def __init__(self, stream, every=None, clock=time.perf_counter, columns=None):
        self.stream = stream
        self.columns = columns          # terminal width (None: ask the terminal at each refresh)
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every or (1 if self.tty else 10)
        self.clock = clock
        self.t_start = clock()
        self.scale_start = (1, self.t_start, 0)  # (scale, time it began, its iterations done before then)
        self.work_before = None         # work done before this process's first iteration (a resumed run's)
        self.width = 0
        self.last_time = self.t_start
        self.lines = ()                 # the last iteration line and its shorter forms (a tile count follows them)
        self.last_write = self.t_start  # when the last line went to a log

    def __call__(self, st):
        now = self.clock()
        if st.stopped:
            self.close()
            self.stream.write(f"scale {st.scale}/{st.n_scales} {st.size[1]}x{st.size[0]}: stopped after "
                              f"{st.iteration} of {st.iterations} iterations at loss {st.loss:.4g}; {st.stopped}\n")
            self.stream.flush()
            self.last_write = now
            return
        if self.work_before is None:
            # The first call comes after one iteration of this process. A resumed run starts with
            # the checkpoint's work done: rates count only what this process did in its own time.
            self.work_before = st.work_done - st.size[0] * st.size[1]
            self.scale_start = (st.scale, self.t_start, st.iteration - 1)
        if st.scale != self.scale_start[0]:
            self.scale_start = (st.scale, self.last_time, 0)
        self.last_time = now
        if st.iteration % self.every and st.iteration != st.iterations:
            return
        its = (st.iteration - self.scale_start[2]) / max(now - self.scale_start[1], 1e-9)
        rate = (st.work_done - self.work_before) / max(now - self.t_start, 1e-9)  # pixel-iterations per second
        eta = (st.work_total - st.work_done) / max(rate, 1e-9)
        bound = "≤" if st.may_stop_early and st.work_total > st.work_done else ""   # nothing left: exact
        p = st.parts
        head = f"scale {st.scale}/{st.n_scales} {st.size[1]}x{st.size[0]}  it {st.iteration}/{st.iterations}  " \
               f"loss {st.loss:.4g}"
        parts = f" (content {p.get('content', 0):.3g}, style {p.get('style', 0):.3g}, tv {p.get('tv', 0):.3g})"
        speed, eta = f"  {its:.2f} it/s", f"  ETA {bound}{_clock_time(eta)}"
        # The whole line, then the shorter ones a narrow terminal gets (_refresh): the ETA stays.
        lines = (head + parts + speed + eta, head + speed + eta, head + eta)
        if self.tty:
            self._refresh(lines)
            self.lines = lines
            if st.iteration == st.iterations and st.scale == st.n_scales:
                self.stream.write("\n")
                self.width, self.lines = 0, ()
        else:
            self.stream.write(lines[0] + "\n")
            self.last_write = now
        self.stream.flush()

    def tile(self, done, total):
        """Progress inside one tiled evaluation: stylize calls it after each tile of each of the
        evaluation's two passes (tiled_objective), done of total = 2 x tiles.

        Slow evaluations (minutes at 8K) would otherwise show nothing between iterations. On a
        terminal the tile count follows the last iteration's line, in place; in a log, a line
        only once 30 s have passed without one (the iteration lines go on as usual)."""
        now = self.clock()
        n = total // 2   # tiles per pass
        where = f"tile {done - n if done > n else done}/{n}, pass {2 if done > n else 1}/2"
        if self.tty:
            self._refresh([f"{line}  [{where}]" for line in self.lines] or [f"evaluating: {where}"])
        elif now - self.last_write >= 30:
            self.stream.write(f"  evaluating: {where}\n")
            self.last_write = now
        else:
            return
        self.stream.flush()

    def _refresh(self, lines):
        """Rewrite the terminal's current line with the first of `lines` (longest first) that fits the
        terminal's width, else the last one cut to it: a line that wraps cannot be rewritten in place
        (a carriage return only reaches the last row)."""
        columns = self.columns or _terminal_columns(self.stream)
        text = next((t for t in lines if len(t) < columns), lines[-1][:columns - 1])
        self.stream.write("\r" + text.ljust(min(self.width, columns - 1)))
        self.width = len(text)

    def close(self):
        """End an in-place line (e.g. after Ctrl-C) so the next message starts on its own line."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0
        self.lines = ()   # what follows starts a new line of its own


def _terminal_columns(stream):
    """The width of the terminal stream writes to; very wide when unknown (not a terminal, or no fileno)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 1 << 20
    except (AttributeError, OSError, ValueError):   # io.UnsupportedOperation is both an OSError and a ValueError
        return 1 << 20


def _clock_time(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
