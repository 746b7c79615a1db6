"""Command line: `python scripts/stylize.py` or `nst-numpy`.

With no arguments it stylizes the built-in samples (a photo of a cat in the style of
The Starry Night, see samples.py) and writes output.png. Every user error prints one line
`error: ...` on stderr and exits with status 2, leaving no output file; Ctrl-C
writes the best image so far and exits with 130.
"""
import dataclasses
import math
import os
import re
import sys

import numpy as np

from . import __version__
from .console import EXIT_INTERRUPTED, hold_interrupts, interrupted, interrupts_raise, one_line, raise_lost_interrupt
from .config import Config
from .checkpoint import Checkpointer, load_checkpoint
from .cli_parser import UsageError, CliParser, build_parser
from .image import MAX_PIXELS, MIN_SIDE, ImageError, check_output_path, check_writable, load_image, save_image
from .memory_plan import default_cap, describe, needs_plan, plan_run
from .margin import Geometry
from .optimize import Interrupted, check_style_sizes, iteration_budgets, stylize
from .progress import Progress
from .samples import painting, photo
from .weights import WeightsError, default_weights_path, file_sha256, get_vgg19, network_class

EXIT_USAGE = 2   # EXIT_INTERRUPTED (130) comes from console.py, whose handler for Ctrl-C while loading uses it too


def _load_network(args, messages=None):
    """The network --engine names, with --weights (a file, the default file, or random) and --pooling.
    messages: the stream a download's progress bar goes to (the CLI's _Messages; None: stderr)."""
    if args.weights == "random":   # fixed weights: --seed varies only the run
        return network_class(args.engine).random(seed=0, pooling=args.pooling)
    try:
        return get_vgg19(args.weights, pooling=args.pooling, dtype=np.float32, download=True,
                         progress=not args.quiet and (messages or True), engine=args.engine)
    except WeightsError as e:
        raise UsageError(one_line(e))
    except OSError as e:
        raise UsageError(f"cannot load weights: {one_line(e)}")


def _snapshot_path(output, step):
    root, ext = os.path.splitext(output)
    return f"{root}_{step:04d}{ext}"


def _checkpoint_path(output):
    return os.path.splitext(output)[0] + ".checkpoint.npz"


def _check_side_files(args, inputs):
    """The output, and the checkpoint and snapshots written beside it: none may be an input, which
    it would overwrite (and a finished run delete its checkpoint), and each side file must be writable
    (a long output name may leave no room for `.checkpoint.npz`). Checked before the run, not when
    the first is due."""
    root, ext = os.path.splitext(os.path.realpath(args.output))
    snapshot = re.compile(re.escape(root) + r"_\d{4,}" + re.escape(ext))
    checkpoint = os.path.realpath(args.resume or _checkpoint_path(args.output))
    for q in inputs:
        path = os.path.realpath(q)
        if path == os.path.realpath(args.output):
            raise UsageError(f"-o {args.output} is also an input ({q}), which the output would overwrite; "
                             f"choose another output")
        if args.checkpoint_every and path == checkpoint:
            raise UsageError(f"{q} is an input, and --checkpoint-every would write the checkpoint over it")
        if args.save_every and (snapshot.fullmatch(path) or path in _linked_snapshots(args.output)):
            raise UsageError(f"{q} is an input, and --save-every would write a snapshot over it")
    if args.checkpoint_every and not args.resume:
        ours = _checkpoint_path(args.output)
        if os.path.exists(ours):   # a new run would write over it, then delete it
            raise UsageError(f"{ours} holds an earlier run that was cut short; continue it "
                             f"with --resume {ours}, or delete it to start afresh")
        check_writable(ours)
    if args.save_every:
        check_writable(_snapshot_path(args.output, 0))


def _linked_snapshots(output):
    """Real paths of the symbolic links named like output's snapshots (output_0010.png): a snapshot is
    written to the file its link names (fileio.atomic_path), which may be an input."""
    folder = os.path.dirname(os.path.abspath(output))
    root, ext = os.path.splitext(os.path.basename(output))
    name = re.compile(re.escape(root) + r"_\d{4,}" + re.escape(ext))
    try:
        names = os.listdir(folder)
    except OSError:   # a folder that may be written but not listed: no link can be seen, nor made by us
        return set()
    return {os.path.realpath(os.path.join(folder, n)) for n in names
            if name.fullmatch(n) and os.path.islink(os.path.join(folder, n))}


def _saved_argv(argv, args, cap):
    """The command line a checkpoint keeps, to rerun on --resume: without --quiet (a resume asks for
    that itself), and with what this run took from the machine when it was left to default, so that a
    resume elsewhere or later is the same run: the thread count (the bands, so the float32 rounding,
    follow it) and the memory cap (the plan's tiles and L-BFGS memory follow it)."""
    saved = [a for a in argv if a not in ("--quiet", "-q")]
    if args.engine == "fast" and not _given(argv, "--threads"):
        saved += ["--threads", str(args.threads)]
    if not _given(argv, "--max-memory"):
        saved += ["--max-memory", str(cap)]
    return saved


def _resumed(argv):
    """For `--resume CHECKPOINT [--quiet]`: (the saved run's argv, (meta, arrays, path)); else (argv, None)."""
    if not _given(argv, "--resume"):
        return argv, None
    p = CliParser(prog="nst-numpy --resume")
    p.add_argument("--resume", required=True)
    p.add_argument("--quiet", "-q", action="store_true")
    try:
        args = p.parse_args(argv)
    except UsageError as e:
        raise UsageError(f"{e}; --resume takes no options but --quiet (the run's options are in the checkpoint)")
    meta, arrays = load_checkpoint(args.resume)
    saved = list(meta.get("argv", []))
    if args.quiet and "--quiet" not in saved:
        saved.append("--quiet")
    return saved, (meta, arrays, args.resume)


def _in_directory(args, cwd):
    """A resumed run's paths, taken relative to the directory its first command ran in (the
    checkpoint's cwd), so that --resume works from any directory. Absolute paths stay as they are.
    The paths as given stay in args.as_given, for the PNG's record: a resumed run writes the same file."""
    args.as_given = {"content": args.content, "style": args.style, "weights": args.weights}

    def at(p):
        return os.path.join(cwd, p)
    if args.content is not None and args.content.lower() != "none":
        args.content = at(args.content)
    args.style = [at(s) for s in args.style] if args.style else args.style
    if args.init not in (None, "content", "noise"):
        args.init = at(args.init)
    if args.weights not in (None, "random"):
        args.weights = at(args.weights)
    args.output = at(args.output)
    return args


def _given(argv, option):
    return any(a == option or a.startswith(option + "=") for a in argv)


def _ignored(argv, args, n_scales):
    """Notes on flags given on the command line that this run cannot use (the run goes on without them)."""
    if args.optimizer == "lbfgs" and _given(argv, "--learning-rate"):
        yield "--learning-rate is Adam's step size; L-BFGS ignores it"
    for flag in ("--lbfgs-memory", "--precondition-after"):
        if args.optimizer == "adam" and _given(argv, flag):
            yield f"{flag} is for L-BFGS; --optimizer adam ignores it"
    if n_scales == 1 and _given(argv, "--coarse-iterations"):
        yield "--coarse-iterations is for the coarser scales; this run has one scale"
    if args.content is not None and args.content.lower() == "none":
        for flag in ("--content-layers", "--content-weight"):
            if _given(argv, flag):
                yield f"{flag} has no content to work on in texture synthesis (--content none)"
    if len(args.style or []) <= 1 and _given(argv, "--style-weights"):
        yield "--style-weights blends several --style images; with one, it changes nothing (--style-weight is beta)"
    if args.engine == "reference" and _given(argv, "--threads"):
        yield "--threads sets the fast engine's threads; --engine reference ignores it"
    if args.scales is not None and args.scales > n_scales:
        yield (f"--scales {args.scales} gives {n_scales} scale(s) at --size {args.size}: halving further "
               f"would go below {MIN_SIDE} px")


def run(args, stderr, argv=(), resume=None):
    """Everything after parsing; raises UsageError / ImageError for bad input."""
    check_output_path(args.output)
    texture = args.content is not None and args.content.lower() == "none"
    init = args.init or ("noise" if texture else "content")
    if texture and init == "content":
        raise UsageError("--init content needs a content image; use noise or a path for texture synthesis")
    if texture and args.preserve_colors != "none":
        raise UsageError("--preserve-colors keeps a content image's colours; texture synthesis has none")
    if texture and args.style_weight <= 0 and args.tv_weight <= 0:
        raise UsageError("texture synthesis (--content none) with --style-weight 0 has nothing to optimise "
                         "(the content weight has no content); give a style weight above 0")
    styles = args.style or []
    if args.style_weights is not None:
        if len(args.style_weights) != max(1, len(styles)):
            raise UsageError(f"--style-weights has {len(args.style_weights)} values for {max(1, len(styles))} style image(s)")
        if sum(args.style_weights) <= 0:
            raise UsageError("--style-weights must not all be zero")
    config = Config(content_layers=args.content_layers, style_layers=args.style_layers,
                    style_layer_weights=tuple(args.style_layer_weights) if args.style_layer_weights else None,
                    content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
                    iterations=args.iterations, coarse_iterations=args.coarse_iterations,
                    min_improvement=args.min_improvement, optimizer=args.optimizer, learning_rate=args.learning_rate,
                    lbfgs_memory=args.lbfgs_memory, precondition_after=args.precondition_after, init=init,
                    size=args.size, style_scale=args.style_scale, margin=args.margin,
                    style_blend=tuple(args.style_weights) if args.style_weights else None, scales=args.scales,
                    preserve_colors=args.preserve_colors, seed=args.seed, tile_size=args.tile_size)
    try:
        config.validate()
    except ValueError as e:
        raise UsageError(str(e))

    # Inputs are read (and checked) before the network, so a bad file fails fast.
    # Style images may be scaled up to style_scale * size, which --size bounds.
    if texture:
        content = None
    elif args.content is None:
        content = photo()
    else:
        content = load_image(args.content, max_side=args.size)
    style_side = max(16, round(args.size * args.style_scale))
    if style_side ** 2 > MAX_PIXELS:   # the memory plan sizes the output, not the style images
        raise UsageError(f"--size {args.size} with --style-scale {args.style_scale:g} makes the style image "
                         f"{style_side} px on a side; at most {math.isqrt(MAX_PIXELS)} px")
    style_imgs = [load_image(s, max_side=style_side) for s in styles] or [painting()]
    init_img = None
    if init not in ("content", "noise"):
        init_img = load_image(init, max_side=args.size)
    inputs = [q for q in [None if texture else args.content, init_img is not None and init] + styles if q]
    _check_side_files(args, inputs)

    geometry = Geometry(content.shape if content is not None else style_imgs[0].shape, config)
    sizes = geometry.sizes   # what stylize will run: with --margin, the canvas
    blend = args.style_weights or [1.0] * len(style_imgs)
    used = [s.shape for s, w in zip(style_imgs, blend) if w > 0]   # a style weighted 0 is never run
    check_style_sizes(used, geometry.pictures, config.style_scale)   # --dry-run included
    if not args.quiet:
        for note in _ignored(argv, args, len(sizes)):
            stderr.write(f"note: {note}\n")
        (h, w), (ih, iw) = geometry.out_hw, (init_img.shape[:2] if init_img is not None else geometry.out_hw)
        if abs(ih * w - iw * h) > 0.02 * h * iw:   # aspect ratios more than 2% apart
            stderr.write(f"note: --init {init} is {iw}x{ih}, stretched to the output's {w}x{h}\n")
        if config.margin:   # the progress lines give the canvas's size
            ch, cw = sizes[-1]
            stderr.write(f"note: --margin {config.margin}: the run paints a {cw}x{ch} canvas and crops the "
                         f"{w}x{h} picture from it\n")

    net = _load_network(args, messages=stderr)
    raise_lost_interrupt()   # a Ctrl-C that Python dropped while the weights loaded (console._on_unraisable)
    if hasattr(net, "set_threads"):   # the reference network has no threads of its own
        net.set_threads(args.threads)
    cap = args.max_memory or default_cap()
    plans = None   # small runs without --max-memory: untiled, or --tile-size as given (memory_plan.needs_plan)
    style_hws = geometry.style_hws(used)
    if args.max_memory or args.dry_run or needs_plan(sizes, config, style_hws[-1]):
        try:
            plans = plan_run(net, sizes, style_hws, config, cap, timed=args.dry_run)
        except MemoryError as e:
            raise UsageError(str(e))
    if args.dry_run:
        print(describe(plans, iteration_budgets(config, len(sizes)), cap, given=bool(args.max_memory)))
        if config.margin:   # the lines above give the canvas's sizes
            print(f"--margin {config.margin}: each scale's canvas holds its picture; the output is "
                  f"{geometry.out_hw[1]}x{geometry.out_hw[0]}")
        return 0
    asked = config.correction_pairs()   # --lbfgs-memory, or its automatic value
    m = min(p.lbfgs_memory for p in plans) if plans else asked
    if config.optimizer == "lbfgs" and m < asked:
        if not args.quiet:
            stderr.write(f"note: --lbfgs-memory lowered from {asked} to {m} to fit the memory cap "
                         f"{cap / 2 ** 30:.1f} GiB\n")
        config.lbfgs_memory = m   # what the run uses, and the PNG records: every scale's plan gets it
        plans = [dataclasses.replace(p, lbfgs_memory=m) for p in plans]
    given = getattr(args, "as_given", None) or {"content": args.content, "style": styles, "weights": args.weights}
    config.extra = {"content": given["content"] or "built-in chelsea_cat.jpg",
                    "style": ",".join(given["style"] or []) or "built-in starry_night.jpg",
                    "weights": given["weights"] or str(default_weights_path()), "pooling": args.pooling,
                    "engine": args.engine}
    if args.engine == "fast":
        config.extra["threads"] = args.threads   # the bands, so the float32 rounding, follow the thread count
    text = {"Software": f"nst_numpy {__version__}", "Parameters": config.as_text()}

    progress = None if args.quiet else Progress(stderr)
    unsaved = []   # snapshots that could not be written: a full disk should not end a long run
    unwritten = []   # the same for checkpoints (Checkpointer.failed): warned once

    def callback(state):
        raise_lost_interrupt()
        if checkpoint is not None and checkpoint.failed and not unwritten:
            unwritten.append(checkpoint.failed)   # once: the next ones would fail the same way
            if progress is not None:
                progress.close()
            last = checkpoint.saved or os.path.exists(checkpoint.path)   # this run's, or the one it resumed
            stderr.write(f"warning: {checkpoint.failed}; the run goes on, and --resume would start from "
                         f"{'the last one written' if last else 'the beginning'}\n")
        if progress is not None:
            progress(state)
        if args.save_every and state.step % args.save_every == 0:
            try:
                save_image(_snapshot_path(args.output, state.step), state.image(), text)
            except ImageError as e:
                if not unsaved:   # once: the next ones would fail the same way
                    if progress is not None:
                        progress.close()
                    stderr.write(f"warning: {one_line(e)}; the run goes on without this snapshot\n")
                unsaved.append(state.step)
    if progress is not None:
        callback.tile = progress.tile   # stylize calls it after each tile of a tiled evaluation

    checkpoint = None
    if args.checkpoint_every or resume is not None:
        # argv's paths are relative to cwd, the first command's directory: a resumed run keeps it
        # and resolves them there (_in_directory).
        cwd = os.getcwd() if resume is None else resume[0].get("cwd", os.getcwd())
        # The weights file too: converted again or replaced since, it would make the resumed run another run.
        hashed = inputs + ([args.weights or str(default_weights_path())] if args.weights != "random" else [])
        try:
            hashes = {os.path.abspath(q): file_sha256(q) for q in hashed}
        except WeightsError as e:   # an input made unreadable since it was read
            raise UsageError(one_line(e))
        meta = {"argv": _saved_argv(argv, args, cap), "cwd": cwd, "inputs": hashes}
        if resume is not None:
            changed = [q for q, h in resume[0].get("inputs", {}).items()
                       if meta["inputs"].get(os.path.join(cwd, q)) != h]
            if changed:
                raise UsageError(f"{changed[0]} has changed since the checkpoint was written; cannot resume")
        checkpoint = Checkpointer(args.resume or _checkpoint_path(args.output), args.checkpoint_every or 1 << 30,
                                  meta, resume)
        if resume is not None and not args.quiet:   # the checkpoint chose the output: say where it goes
            stderr.write(f"resuming {args.resume} after iteration {resume[0].get('point', {}).get('step', 0)}; "
                         f"the picture goes to {os.path.abspath(args.output)}\n")
    old = _checkpoint_path(args.output)
    if not (args.quiet or args.resume) and os.path.exists(old):   # with --checkpoint-every it was refused already
        stderr.write(f"note: {old} from an earlier run stays; resuming it would write over this run's picture\n")
    try:
        out = stylize(net, content, style_imgs, config, callback=callback, init_rgb=init_img, plans=plans,
                      checkpoint=checkpoint)
    except Interrupted as e:
        if progress is not None:
            progress.close()
        save_image(args.output, e.rgb, dict(text, Interrupted=f"after {e.iteration} iterations"))
        resume_hint = ""
        if checkpoint is not None and os.path.exists(checkpoint.path):
            resume_hint = f"; continue from its last checkpoint with --resume {checkpoint.path}"
        stderr.write(f"interrupted after {e.iteration} iterations: wrote the best image so far to {args.output}"
                     f"{resume_hint}\n")
        return EXIT_INTERRUPTED
    hold_interrupts()   # the picture is done: a Ctrl-C now would only stop it being written
    save_image(args.output, out, text)
    problem = checkpoint.remove() if checkpoint is not None else None   # the run is done: the output is the record
    if progress is not None:
        progress.close()      # end a progress line a terminal left open
    if problem:
        stderr.write(f"warning: {problem}\n")
    if len(unsaved) > 1:
        stderr.write(f"warning: {len(unsaved)} snapshots could not be written (steps {unsaved[0]}–{unsaved[-1]})\n")
    if not args.quiet:
        stderr.write(f"wrote {args.output} ({out.shape[1]}x{out.shape[0]})\n")
    return 0


def main(argv=None, stderr=None):
    """Entry point. Returns (and, as a console script, exits with) 0, 2 (bad input) or 130 (Ctrl-C,
    or SIGTERM or SIGHUP, which are handled the same way: the best image so far is saved; a second one
    while it is saved is ignored, console.interrupts_raise)."""
    stderr = _Messages(stderr or sys.stderr)
    with interrupts_raise():
        return _main(argv, stderr)


class _Messages:
    """The stream for the run's messages (stderr). A write that fails (`2>&1 | head -1` closed the pipe,
    the terminal closed, a full disk) ends the messages, not the run: the picture is still written, and
    the exit status says how it ended."""

    def __init__(self, stream):
        self.stream, self.dead = stream, False

    def _do(self, method, *a):
        if self.dead:
            return
        try:
            getattr(self.stream, method)(*a)
        except (OSError, ValueError):   # ValueError: the stream was closed
            self.dead = True
            try:   # what the stream still buffers would fail again as Python exits, and set status 120
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            except (AttributeError, OSError, ValueError):   # not a file (a StringIO)
                pass

    def write(self, text):
        # A file name the stream's encoding cannot show is escaped (\udcff), not the end of the messages.
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        self._do("write", text.encode(encoding, "backslashreplace").decode(encoding))

    def flush(self):
        self._do("flush")

    def isatty(self):
        try:
            return not self.dead and self.stream.isatty()
        except (AttributeError, OSError, ValueError):
            return False

    def fileno(self):
        return self.stream.fileno()


def _main(argv, stderr):
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        run_argv, resume = _resumed(argv)
        args = build_parser().parse_args(run_argv)
        if resume is not None:
            args = _in_directory(args, resume[0].get("cwd", os.getcwd()))
            args.resume = resume[2]
        return run(args, stderr, run_argv, resume and resume[:2])
    except (UsageError, ImageError, ValueError, FloatingPointError) as e:
        stderr.write(f"error: {one_line(e)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:  # before or after the optimisation loop: nothing to save
        stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except MemoryError:
        stderr.write("error: out of memory; try a smaller --size\n")
        return EXIT_USAGE
    except Exception:
        if not interrupted():   # a real failure: its traceback is the report
            raise
        stderr.write("interrupted\n")   # a Ctrl-C that Python turned into another exception (console.interrupted)
        return EXIT_INTERRUPTED
