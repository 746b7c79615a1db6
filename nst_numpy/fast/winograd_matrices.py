"""The matrices of Winograd's F(4, 3): derived exactly from 5 interpolation points, and which points.

winograd.py uses them; tests/test_fastconv.py checks them (Lavin & Gray's matrices for 0, +-1, +-2, and a
correlation for any points).

Why it is correct (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural
Networks", section 4; the idea is Winograd's / Toom-Cook's):

1-D first. Four outputs of a 3-tap correlation, y_i = sum_k d[i + k] g[k]
(i = 0..3), read 6 inputs d[0..5]. Think of the *convolution* of the
polynomials g(t) (degree 2) and h(t) (degree 3): the product s(t) = g(t) h(t)
has degree 5, so it is fixed by 6 values. Evaluating both factors at 5 points
a_i and at "infinity" (the leading coefficient), multiplying the 6 pairs and
interpolating gives the convolution with 6 multiplications instead of 12. The
correlation we want is the transpose of that linear map, and transposing a
product of matrices reverses it:

    y = A^T [ (G g) * (B^T d) ]         (* = elementwise, 6 products)

with G (6x3) evaluating g, A^T (4x6) the transposed evaluation of h, and B^T
(6x6) the transposed interpolation. Interpolation is Lagrange's:
s(t) = sum_i s(a_i) L_i(t) + s_5 prod_j (t - a_j), where L_i(t) = prod_{j!=i}
(t - a_j) / prod_{j!=i} (a_i - a_j) is 1 at a_i and 0 at the other points, and
s_5 = g_2 h_3 is the product "at infinity". toom_cook() writes this out, exactly
(in fractions), for points a = p/q:
  row i of B^T:    the coefficients of t^0..t^5 of prod_{j!=i} (q_j t - p_j),
                   and of prod_j (q_j t - p_j) for infinity;
  column i of A^T: q^3 (1, a, a^2, a^3) = (q^3, q^2 p, q p^2, p^3); (0, 0, 0, 1);
  row i of G:      (1, a, a^2) / (q^3 prod_{j!=i} (q_j a - p_j)); (0, 0, 1) / prod_j q_j:
the Lagrange denominators and the factors q that make B^T and A^T integers.
Scaling row i of B^T (or column i of A^T) by c and row i of G by 1/c changes
nothing, so all fractions go into G, which is applied once per layer
(transform_kernel), and B^T and A^T hold small integers, exact in float32. For
the points 0, 1, -1, 2, -2 this gives Lavin & Gray's matrices (tested).

Which points (accuracy). Any 5 distinct points are exact; in float32 they differ.
Nearly all the error is the rounding of the 36 channel sums M[p, q]: with one stage
at a time in float32 and the rest in float64, a 256 -> 256 layer at the points
0, +-1, +-2 has a relative rms error of 2.6e-6 from the sums and 0.3-0.4e-6 from
each transform. In 1-D terms, product p, (G g)_p (B^T d)_p, is about |G[p]| |B^T[p]|
|g| |d| in size (row norms), and output i sums the products with weights A^T[i, p],
so it carries about k_i = sum_p |A^T[i, p]| |G[p]| |B^T[p]| times the rounding of
one; in 2-D, output (i, j) k_i k_j (Barabasz et al. 2018, "Error analysis and
improving the accuracy of Winograd convolution for deep neural networks", bound the
error by such norms). (sum_i k_i)^2 ranked the measured rms error of 7315 point sets
(0 and four of +-1, +-2, +-3, +-4, their reciprocals, +-3/2, +-2/3, +-4/3, +-3/4)
with correlation 0.99 (log-log):
  0, +-1, +-2    (Lavin & Gray)               1575
  0, +-1, +-1/2                               1575, the same measured error too: 1/a for
                 every a mirrors the algorithm (t -> 1/t reverses each polynomial, 0
                 and infinity trade places): the same arithmetic on a reversed tile
  0, +-1, 1/2, -2                             1186
  0, +-3/2, +-2/3                              832   (its own mirror; used here)
  best with 0 and 4 of p/q (p, q <= 8, <= 4)   778   (0, +-5/3, +-3/5: not worth it)
Measured (``rel_error`` against the float64 im2col reference, 12x12, ReLU-like inputs,
He weights): 0.41e-6 for a 64 -> 64 layer, 1.3e-6 for 256 -> 256, 0.84e-6 for 512 -> 512,
3-5x less than with 0, +-1, +-2 (1.9e-6, 4.2e-6, 3.8e-6); float32 im2col: 1.3-1.5e-7.
Bounded in tests/test_fastconv.py (the old points miss the bound). For the whole network,
tests/test_engine_vs_reference.py measures 0.1-0.6e-6 at the taps (was 0.7-1.8e-6) and
asserts 1e-4, a loose bound that the old points pass too.
1 is not a point, so no column of A^T is all ones: the bias goes on the output tiles.

"""
from fractions import Fraction
from math import prod

import numpy as np


def toom_cook(points):
    """(B^T (6, 6), G (6, 3), A^T (4, 6)), float64, of F(4, 3) for 5 distinct finite points and infinity.

    points: ints or Fractions p/q. Exact (in fractions) until the return; see the module docstring.
    """
    pts = [Fraction(a) for a in points]
    if len(pts) != 5 or len(set(pts)) != 5:   # not an assert: python -O would drop it
        raise ValueError(f"F(4, 3) needs 5 distinct finite points, got {points}")

    def vanishing_at(roots):   # coefficients t^0..t^5 of prod (q t - p) over the roots p/q
        c = [Fraction(1)]
        for r in roots:        # times (q t - p): coefficient k becomes q c[k-1] - p c[k]
            c = [r.denominator * c_up - r.numerator * c_k for c_up, c_k in zip([0] + c, c + [0])]
        return c + [0] * (6 - len(c))

    bt, g, at = [], [], []
    for i, a in enumerate(pts):
        others = pts[:i] + pts[i + 1:]
        q3 = a.denominator ** 3
        bt.append(vanishing_at(others))                                      # 0 at the other points
        g.append([a ** k / (q3 * prod(o.denominator * a - o.numerator for o in others)) for k in range(3)])
        at.append([q3 * a ** k for k in range(4)])                           # h at a, times q^3
    bt.append(vanishing_at(pts))                                             # infinity: the leading
    g.append([0, 0, Fraction(1, prod(o.denominator for o in pts))])          # coefficients g_2, h_3
    at.append([0, 0, 0, 1])
    return np.array(bt, float), np.array(g, float), np.array(at, float).T


# F(4x4, 3x3) at the points 0, 3/2, -3/2, 2/3, -2/3, infinity (see "Which points" above):
# BT = [[36,   0, -97,   0, 36,  0],   G = [[1/36, 0, 0],          AT = [[1,  8,   8, 27,  27, 0],
#       [ 0, -12,  -8,  27, 18,  0],         [ 4,  6,  9] / 4680,         [0, 12, -12, 18, -18, 0],
#       [ 0,  12,  -8, -27, 18,  0],         [ 4, -6,  9] / 4680,         [0, 18,  18, 12,  12, 0],
#       [ 0, -18, -27,   8, 12,  0],         [-9, -6, -4] / 4680,         [0, 27, -27,  8,  -8, 1]]
#       [ 0,  18, -27,  -8, 12,  0],         [-9,  6, -4] / 4680,
#       [ 0,  36,   0, -97,  0, 36]]         [0, 0, 1/36]]
POINTS = (0, Fraction(3, 2), Fraction(-3, 2), Fraction(2, 3), Fraction(-2, 3))
BT, G, AT = toom_cook(POINTS)
