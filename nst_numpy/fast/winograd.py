"""Fast 3x3 convolution: Winograd's minimal filtering F(4x4, 3x3), in bands, on several threads.

This is the engine's hot path. ``layers.conv_forward`` (im2col + one matrix
product) stays the readable reference; tests/test_fastconv.py compares every
path here with it.

Why it is correct (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural Networks", section 4):
in 1-D, four outputs of a 3-tap correlation take 6 multiplications instead of 12,
y = A^T [ (G g) * (B^T d) ] (* = elementwise). winograd_matrices.py derives B^T, G and A^T exactly
from 5 interpolation points, and says which points keep float32 accurate. 2-D: nesting the 1-D
algorithm along rows and columns gives, for a 6x6 input tile d and a 3x3 kernel g, the 4x4 output tile

    Y = A^T [ (G g G^T) * (B^T d B) ] A                        (Lavin & Gray, eq. 8)

and summing over input channels commutes with A^T . A, so for each of the 36
positions (p, q) of the 6x6 "Winograd domain" the channel sum is one matrix
product:  M[p, q] = V[p, q] @ U[p, q], with V[p, q]: (tiles, C_in) the
transformed input and U[p, q]: (C_in, C_out) the transformed kernel. That is
36 products of 1/16 the size instead of 9 of full size: 36/16 = 2.25 full-size
products' worth of multiplications instead of 9, i.e. 4x fewer (36 instead of
144 per 4x4 output tile and channel pair), the speed-up that lets this beat a
GEMM-bound library (the transforms cost memory passes the count leaves out).

Backward to the input: dx = conv(dout, kernel flipped in space, C_in and C_out swapped)
(layers.conv_backward): the same fast forward with a second transformed kernel.

The four transform stages are matrix products, one matmul call each, on strided
views: R = B^T times 6 input rows; V = B^T times the 6 columns of each tile of R (one
(6, C_in) block of memory per tile: a batch of small products, 4-5x faster than the 17
numpy passes they replace); Z = A^T times 6 rows of M; Y = A^T times 6 rows of Z. The
output tiles go into the image in one strided pass, with the ReLU.

Work split: the image is cut into bands of tile rows. Each band is transformed,
multiplied and transformed back while it is still in cache, so no large temporary
exists (the 36 matrices of one band are a few MB). Bands are shared between worker
threads; NumPy releases the GIL in matmul and in the ufuncs, and each thread calls a
single-threaded BLAS (see threads.py), which beats letting OpenBLAS split each small
product. Every band goes through the same operations whichever thread runs it; only
the band height follows the thread count, and BLAS may round a product of a different
height differently, so results depend on the thread count by float rounding at most.
"""
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from . import threads as T
from . import winograd_matrices
from .pooling_bands import relu_mask
from .winograd_matrices import AT, BT, G


TILE = 4  # output tile side (m); the input tile is TILE + 2 = 6
MIN_TILES = 256  # rows of each band's matrix products, when the image has that many
_MATRICES = {}   # dtype -> (BT, AT) in that dtype, for the stages done as matrix products
_points = winograd_matrices.POINTS   # the points BT, G and AT are made from now (interpolation_points)


def _bt_at(dtype):
    """(BT, AT) in dtype (their entries are small integers: exact in float32)."""
    if dtype not in _MATRICES:
        _MATRICES[dtype] = (BT.astype(dtype), AT.astype(dtype))
    return _MATRICES[dtype]


@contextlib.contextmanager
def interpolation_points(points):
    """Within the block, the engine computes with toom_cook(points) instead of POINTS (for the
    precision measurements: tests/test_fastconv.py, scripts/bench_precision.py --run). A network keeps
    its transformed kernels by the points they were made with (current_points), so one used both inside
    and outside the block transforms them again for each."""
    global BT, G, AT, _MATRICES, _points
    saved = BT, G, AT, _MATRICES, _points
    BT, G, AT = winograd_matrices.toom_cook(points)
    _MATRICES = {}   # the per-dtype copies of BT and AT, made again from the new ones
    _points = tuple(points)
    try:
        yield
    finally:
        BT, G, AT, _MATRICES, _points = saved


def current_points():
    """The interpolation points the transforms use now: POINTS, or those of an interpolation_points block."""
    return _points


def transform_kernel(w, dtype=None):
    """U = G w G^T for every (C_in, C_out) pair.  w: (3, 3, C_in, C_out) -> U: (36, C_in, C_out).

    Computed in dtype (two small matrix products, no float64 detour: this runs once per
    layer and network, and for VGG19's 20 M weights the float64 temporaries alone would
    cost more time than the products); the float32 rounding of G's fractions is far below
    the rounding of the channel sums (winograd_matrices.py, "Which points").
    """
    dtype = np.dtype(dtype or w.dtype)
    c_in, c_out = w.shape[2], w.shape[3]
    g = G.astype(dtype)
    rows = (g @ np.asarray(w, dtype).reshape(3, -1)).reshape(6, 3, c_in * c_out)  # G w: (6, 3, C_in C_out)
    return np.matmul(g, rows).reshape(36, c_in, c_out)                           # (G w) G^T: (6, 6, ...)


def flip_kernel(w):
    """The kernel of the backward-to-input convolution: flipped in space, C_in and C_out swapped.

    w: (3, 3, C_in, C_out) -> (3, 3, C_out, C_in).
    """
    return w[::-1, ::-1].transpose(0, 1, 3, 2)


def input_transform(band, nb, bt, v):
    """V[6 p + q] = (B^T d B)[p, q] for the 6x6 tiles d of the first nb tile rows of band.

    band: padded input rows, (>= 4 nb + 2, 4 TW + 2, C_in), tile row i at rows 4 i..4 i + 5,
    each row contiguous; bt: B^T in band's dtype; v: _Scratch.views(nb) of a matching scratch.
    Returns v["V"]: (36, nb TW, C_in), tiles in row-major order.
    """
    # Rows first: R[p] = sum_k BT[p, k] * (input rows 4 i + k of tile row i), for each tile row
    # one product BT @ (its 6 input rows, each a vector of Wp C_in). One strided view holds them
    # all: i steps 4 rows, k one row (tile rows overlap by 2 rows, so it overlaps; only read).
    # A real check, not an assert (which python -O drops): as_strided trusts these strides blindly.
    if band.strides[2] != band.itemsize or band.strides[1] != band.shape[2] * band.itemsize:
        raise ValueError(f"the input transform needs rows of contiguous pixels, got strides {band.strides}")
    rows = as_strided(band, shape=(nb, 6, band.shape[1] * band.shape[2]),
                      strides=(TILE * band.strides[0], band.strides[0], band.itemsize), writeable=False)
    np.matmul(bt, rows, out=v["Rrows"])                                      # (nb, p, Wp C_in)
    # Then columns: V[p, q] = sum_k BT[q, k] R[p][:, 4 j + k]. The 6 columns of tile (i, j) in
    # R[p] are one (6, C_in) block (cols, a view), so this is a batch of (6, 6) @ (6, C_in).
    np.matmul(bt, v["cols"], out=v["Vcols"])                                 # (p, i, j, q, C_in)
    return v["V"]


class _Scratch:
    """One band's buffers, carved out of one flat per-thread scratch array (reused by every band and layer)."""

    def __init__(self, nb, tw, wp, c_in, c_out, alloc):
        t = nb * tw
        shapes = dict(R=(6, nb, wp, c_in),        # rows transformed: (p, tile row, x, c)
                      V=(36, t, c_in),            # (p*6 + q, tile, c): the GEMM operands
                      M=(36, t, c_out),           # the products, Winograd domain
                      Z=(4, 6, t, c_out),         # columns transformed back: (j, p, tile, o)
                      Y=(4, 4, t, c_out))         # the output tiles: (j, i, tile, o)
        flat = alloc(sum(int(np.prod(v)) for v in shapes.values()))
        at = 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            setattr(self, name, flat[at:at + n].reshape(shape))
            at += n
        self.tw, self.c_in, self.c_out = tw, c_in, c_out
        self._views = {}

    def views(self, nb):
        """The views of these buffers that _band works on, for a band of nb tile rows (the last
        band may be shorter). Made once per nb: building them costs ~0.1 ms of Python, with the
        GIL held, for every band otherwise."""
        v = self._views.get(nb)
        if v is None:
            tw, c_in, c_out, t = self.tw, self.c_in, self.c_out, nb * self.tw
            def view(a, shape):   # written through: a view or an error, never a silent copy
                return np.reshape(a, shape, copy=False)

            R = self.R[:, :nb]
            V6 = view(self.V[:, :t], (6, 6, nb, tw, c_in))
            Z = self.Z[:, :, :t]
            v = self._views[nb] = dict(
                # R seen as (tile row, p, Wp C_in): the out= of the rows product
                Rrows=view(R.transpose(1, 0, 2, 3), (nb, 6, -1)),
                # (p, i, j, k, C_in): column 4 j + k of tile row i of R[p] (overlapping, only read)
                cols=as_strided(R, shape=(6, nb, tw, 6, c_in), writeable=False,
                                strides=R.strides[:2] + (TILE * R.strides[2], R.strides[2], R.strides[3])),
                Vcols=V6.transpose(0, 2, 3, 1, 4),                                 # (p, i, j, q, C_in)
                V=self.V[:, :t], M=self.M[:, :t],                                 # (36, t, C_in), (36, t, C_out)
                M66=view(self.M[:, :t], (6, 6, t * c_out)),                       # (p, q, t C_out)
                Zv=view(Z, (TILE, 6, t * c_out)).transpose(1, 0, 2),               # (p, j, t C_out)
                Zj=view(Z, (TILE, 6, t * c_out)),                                  # (j, p, t C_out)
                Yj=view(self.Y[:, :, :t], (TILE, TILE, t * c_out)),                # (j, i, t C_out)
                Y=view(self.Y[:, :, :t], (TILE, TILE, nb, tw, c_out)))            # (j, i, nb, TW, C_out)
        return v


class WinogradConv:
    """3x3 'same' convolutions of padded images with pre-transformed kernels.

    A padded input is (4 TH + 2, 4 TW + 2, C_in) with a zero border of one pixel
    (and zeros past the image when H or W is not a multiple of 4); the output
    region is (4 TH, 4 TW, C_out), of which the caller uses [:H, :W].

    threads: number of worker threads (>= 1). band_bytes: target size of one
    band's Winograd-domain matrices, which sets how many tile rows a band holds.
    """

    def __init__(self, threads=1, band_bytes=3 << 20):
        self.threads = max(1, int(threads))
        self.band_bytes = band_bytes
        self._workers = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._local = threading.local()

    def close(self):
        if self._workers is not None:
            self._workers.shutdown()
            self._workers = None

    def map_rows(self, fn, n_rows, rows_per_band):
        """Call fn(r0, r1) for bands of rows covering 0..n_rows, spread over the worker threads.

        For the cheap memory-bound layers (pooling and its backward): small bands keep
        each layer function's temporaries in cache, and two threads share the work.
        """
        rows = max(1, min(rows_per_band, -(-n_rows // self.threads)))
        bands = [(r, min(r + rows, n_rows)) for r in range(0, n_rows, rows)]
        self._run_bands(lambda band: fn(*band), bands)

    def conv_direct(self, xp, w, out, bias=None, relu=False, mask_out=None):
        """The same convolution as conv(), without Winograd, for layers with 3 channels on one side.

        VGG19's conv1_1 (3 -> 64) and its backward (64 -> 3): with so few channels a
        Winograd product has K or N = 3 and the transforms cost more than they save.
        xp: (4 TH + 2, 4 TW + 2, C_in) zero-padded; w: (3, 3, C_in, C_out); out: (4 TH, 4 TW, C_out).
        C_in <= C_out: im2col of the band (9 C_in columns) times w, as layers.conv_forward.
        C_in > C_out: Q = w @ x^T arranged (9 C_out, pixels), then each output pixel sums the 9
        entries of Q that its 3x3 neighbours sent it: the product has only 9 C_out rows. Q is
        kept as 9 C_out image planes so that those sums are shifted adds of whole rows (with
        C_out = 3 innermost they would run 3 floats at a time: 56 vs 41 ms at 512 px, one thread).
        mask_out: as in conv().
        """
        c_in, c_out = w.shape[2], w.shape[3]
        rows, cols = out.shape[0], out.shape[1]
        wp = xp.shape[1]
        if c_in <= c_out:
            w2 = np.ascontiguousarray(w.reshape(9 * c_in, c_out), xp.dtype)

            def band(r0, r1):
                patches = sliding_window_view(xp[r0:r1 + 2, :cols + 2], (3, 3), axis=(0, 1))  # (nb, W, C_in, 3, 3)
                cols2d = patches.transpose(0, 1, 3, 4, 2).reshape(-1, 9 * c_in)             # (nb W, 9 C_in), (kh, kw, c)
                res = (cols2d @ w2).reshape(r1 - r0, cols, c_out)
                if bias is not None:
                    res += bias
                if relu:
                    np.maximum(res, 0, out=res)
                out[r0:r1] = res
                if mask_out is not None and r0 < mask_out.shape[0]:   # rows past the image: no mask
                    hh = min(r1, mask_out.shape[0]) - r0
                    np.greater(res[:hh, :mask_out.shape[1]], 0, out=mask_out[r0:r0 + hh])
        else:
            w2 = np.ascontiguousarray(w.transpose(0, 1, 3, 2).reshape(9 * c_out, c_in), xp.dtype)  # rows (kh, kw, o)

            def band(r0, r1):
                n = r1 - r0
                q = (w2 @ xp[r0:r1 + 2].reshape(-1, c_in).T).reshape(3, 3, c_out, n + 2, wp)  # (kh, kw, o, rows, Wp)
                acc = q[0, 0, :, 0:n, 0:cols].copy()                                          # (o, n, W)
                for kh in range(3):
                    for kw in range(3):
                        if kh or kw:
                            acc += q[kh, kw, :, kh:kh + n, kw:kw + cols]   # out[i, j] += x[i+kh, j+kw] w[kh, kw]
                dst = out[r0:r1]
                dst[...] = acc.transpose(1, 2, 0)                          # (n, W, o)
                if bias is not None:
                    dst += bias
                if relu:
                    np.maximum(dst, 0, out=dst)
                if mask_out is not None and r0 < mask_out.shape[0]:   # rows past the image: no mask
                    hh = min(r1, mask_out.shape[0]) - r0
                    np.greater(dst[:hh, :mask_out.shape[1]], 0, out=mask_out[r0:r0 + hh])

        self.map_rows(band, rows, max(1, (MIN_TILES * TILE * TILE) // cols))
        return out

    def _scratch(self, nb, tw, wp, c_in, c_out, dtype):
        """This thread's band buffers. One scratch array per thread and dtype, grown to the largest band
        seen, so memory stays at one band per thread whatever the number of layers and sizes.
        The views of each band shape are kept (carving them costs ~0.5 ms of Python, which
        holds the GIL: 0.1 s per objective evaluation at 512 px), until the array grows."""
        local = self._local
        if getattr(local, "scratch", None) is None:
            local.scratch, local.views = {}, {}
        key = (nb, tw, wp, c_in, c_out, np.dtype(dtype))
        s = local.views.get(key)
        if s is not None:
            return s

        def alloc(n):
            if dtype not in local.scratch or local.scratch[dtype].size < n:
                local.scratch[dtype] = None                 # free the old one first
                local.views = {k: v for k, v in local.views.items() if k[-1] != np.dtype(dtype)}
                local.scratch[dtype] = np.empty(n, dtype)   # (views of the old array are dropped above)
            return local.scratch[dtype][:n]

        s = local.views[key] = _Scratch(nb, tw, wp, c_in, c_out, alloc)
        return s

    def _band_rows(self, th, tw, c_in, c_out):
        """Tile rows per band: about band_bytes of float32 V and M (twice in float64), at least MIN_TILES tiles per
        product (small products run far below the BLAS peak), and enough bands for every thread.
        With 512 channels, half as many tiles: a (128, 512) @ (512, 512) product is already large,
        and these layers' bands would otherwise set the size of every thread's buffers (90 MB)."""
        per_row = 36 * tw * (c_in + c_out) * 4
        min_tiles = MIN_TILES // 2 if max(c_in, c_out) >= 512 else MIN_TILES
        nb = max(self.band_bytes // per_row, -(-min_tiles // tw), 1)
        return min(nb, -(-th // self.threads))   # ceil(th / threads): no thread idle

    def conv(self, xp, U, out, bias=None, relu=False, add=None, mask_from=None, mask_out=None):
        """out = conv3x3(xp) [+ bias] [then max(., 0)], tile by tile.

        xp: (4 TH + 2, 4 TW + 2, C_in) zero-padded input; U: (36, C_in, C_out) from
        transform_kernel; out: (4 TH, 4 TW, C_out) array or view, overwritten.
        add, mask_from: optional, for the backward pass: on the image part (H, W, C_out),
        out += add, then out *= mask (a ReLU's backward, layers.relu_backward), done band
        by band while the band is still in cache. add: an (H, W, C_out) array, or a
        function add(r0, r1) giving rows r0..r1 of it. mask_from: a bool (H, W, C_out)
        mask, or the ReLU's output (mask = mask_from > 0). Both are read before the band
        is written (an add slice that views out is copied first), so they may share memory
        with out; a bool mask_from may not.
        mask_out: optional bool (H, W, C_out), set to (out > 0) on the image part (forward
        pass: the mask of this ReLU that the backward pass needs, made while in cache).
        """
        th, tw = (xp.shape[0] - 2) // TILE, (xp.shape[1] - 2) // TILE
        c_in, c_out = U.shape[1], U.shape[2]
        if out.shape != (TILE * th, TILE * tw, c_out):
            raise ValueError(f"out has shape {out.shape}; xp {xp.shape} and U {U.shape} need "
                             f"{(TILE * th, TILE * tw, c_out)}")
        nb = self._band_rows(th, tw, c_in, c_out)
        bands = [(r, min(r + nb, th)) for r in range(0, th, nb)]
        ref = next((a for a in (mask_from, mask_out) if a is not None), None)   # gives the image's (H, W)
        if add is not None and mask_from is None:
            raise ValueError("add comes with a ReLU's mask, mask_from (the backward pass)")
        if add is not None and not callable(add):
            arr = add
            add = lambda r0, r1: arr[r0:r1]   # noqa: E731

        def run(band):
            if ref is not None:   # the image rows of this band of tiles
                r0, r1 = TILE * band[0], min(TILE * band[1], ref.shape[0])
                # Read before out is written: they may share memory (a slice is only a view, so copy it then).
                extra = add(r0, r1) if add is not None else None
                if extra is not None and np.may_share_memory(extra, out):
                    extra = extra.copy()
                if mask_from is not None:
                    m = relu_mask(mask_from[r0:r1])
            self._band(xp, U, out, bias, relu, band[0], band[1],
                       self._scratch(nb, tw, xp.shape[1], c_in, c_out, xp.dtype))
            if ref is not None:
                part = out[r0:r1, :ref.shape[1]]
                if extra is not None:
                    np.add(part, extra, out=part)
                if mask_from is not None:
                    np.multiply(part, m, out=part)   # layers.relu_backward
                if mask_out is not None:
                    np.greater(part, 0, out=mask_out[r0:r1])

        self._run_bands(run, bands)
        return out

    def _run_bands(self, fn, bands):
        """fn(band) for every band: on the worker threads with single-threaded BLAS each, or,
        when there is one band (or one thread), here with BLAS using all `threads` cores."""
        if self._workers is None or len(bands) == 1:
            with T.blas_threads(self.threads):
                for band in bands:
                    fn(band)
        else:
            with T.blas_threads(1):
                list(self._workers.map(fn, bands))

    @staticmethod
    def _band(xp, U, out, bias, relu, r0, r1, s):
        """Tile rows r0..r1 of the convolution, with the buffers of Scratch s (views: s.views)."""
        nb = r1 - r0
        tw = (xp.shape[1] - 2) // TILE
        c_out = U.shape[2]
        v = s.views(nb)
        bt, at = _bt_at(xp.dtype)
        # 1) V = B^T d B for every tile of the band.
        input_transform(xp[TILE * r0:], nb, bt, v)
        # 2) The 36 channel sums, one matrix product each: (t, C_in) @ (C_in, C_out).
        np.matmul(v["V"], U, out=v["M"])                                         # (36, t, C_out)
        # 3) A^T M A. Columns first: Z[j, p] = sum_q AT[j, q] M[p, q], for each p one product
        #    AT @ (M[p, 0..5] as six vectors of t C_out).
        np.matmul(at, v["M66"], out=v["Zv"])                                     # (p, j, t C_out)
        #    then rows: Y[j, i] = sum_p AT[i, p] Z[j, p], for each j one product AT @ Z[j].
        np.matmul(at, v["Zj"], out=v["Yj"])                                      # (j, i, t C_out)
        if bias is not None:   # on the tiles while in cache: no column of A^T is all ones (1 is not a point),
            np.add(v["Y"], bias, out=v["Y"])   # so no single M[p, q] reaches every output once
        # 4) Scatter the 4x4 tiles into the image (pixel (4 ii + i, 4 jj + j) is Y[j, i, ii, jj]),
        #    applying the ReLU on the way: one pass.
        # copy=False: a view or an error, never a silent copy that would drop the result
        dst = np.reshape(out[TILE * r0: TILE * r1], (nb, TILE, tw, TILE, c_out), copy=False)  # (ii, i, jj, j, o)
        dst = dst.transpose(3, 1, 0, 2, 4)                                       # (j, i, nb, TW, C_out)
        if relu:
            np.maximum(v["Y"], 0, out=dst)
        else:
            np.copyto(dst, v["Y"])
