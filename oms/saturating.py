"""Saturating int64 arithmetic for the Numba kernels, and its plain-Python twin.

A kernel's figures are sums and products of quantities, prices and money; int64 wraps
silently in Numba, so a product past it would pass a limit it breaches. Here a result
beyond +-MAX_FIGURE stops there instead: above every limit (limits are at most
MAX_MONEY), so an order whose figure is out of range is refused, never waved through.
Operands are at most MAX_FIGURE in size, so no step leaves int64. The twins compute the
same with Python integers: `clamp` after each step gives exactly what the kernels give.

Saturating steps branch, and a loop of them does not vectorize (25x slower over a row of
positions). So a kernel first bounds its sum from the largest terms (`fits`, `largest`):
when no step can leave the range, plain operations give the same result, fast. `plus`,
`times` and `scaled` take that as a literal flag (`numba.literally` in the loop's
function): one body, compiled once for each.
"""
from __future__ import annotations

from numba import njit

from oms.fixed import MAX_FIGURE


@njit(cache=True, inline="always")
def sat_add(a, b):
    if b > 0 and a > MAX_FIGURE - b:
        return MAX_FIGURE
    if b < 0 and a < -MAX_FIGURE - b:
        return -MAX_FIGURE
    return a + b


_SMALL = 1 << 31  # factors under it have a product under MAX_FIGURE: no division needed


@njit(cache=True, inline="always")
def sat_mul(a, b):
    if -_SMALL < a < _SMALL and -_SMALL < b < _SMALL:
        return a * b
    if a == 0 or b == 0:
        return 0
    if abs(a) > MAX_FIGURE // abs(b):
        return MAX_FIGURE if (a > 0) == (b > 0) else -MAX_FIGURE
    return a * b


@njit(cache=True)
def mul_div(x, m, d):
    """floor(x * m / d), exact however large x * m is (0 <= m, 1 <= d < 2**62), saturating."""
    if abs(x) <= MAX_FIGURE // max(m, 1):
        return x * m // d
    ax = abs(x)
    q, r = ax // d, ax % d  # x*m/d = q*m + r*m/d, r < d
    whole = sat_mul(q, m)
    # r*m/d by long multiplication over the bits of m: h*d + low = r * (the bits so far), low < d
    h, low = 0, 0
    for bit in range(62, -1, -1):
        h, low = 2 * h, 2 * low
        if low >= d:
            h, low = h + 1, low - d
        if m >> bit & 1:
            low += r
            if low >= d:
                h, low = h + 1, low - d
    total = sat_add(whole, h)
    return max(-total - (low > 0), -MAX_FIGURE) if x < 0 else total


@njit(cache=True, inline="always")
def ceil_bps(x, base):
    """ceil(x * 10000 / base): x as basis points of base (base >= 1), saturating."""
    return -mul_div(-x, 10000, base)


@njit(cache=True, inline="always")
def plus(a, b, plain):
    return a + b if plain else sat_add(a, b)


@njit(cache=True, inline="always")
def times(a, b, plain):
    return a * b if plain else sat_mul(a, b)


@njit(cache=True, inline="always")
def scaled(x, m, d, plain):
    return x * m // d if plain else mul_div(x, m, d)


@njit(cache=True)
def largest(x):
    """The largest |value| of an array (of any shape)."""
    big = 0
    for v in x.ravel():
        big = max(big, abs(v))
    return big


@njit(cache=True, inline="always")
def fits(n, size, factor):
    """Whether n terms, each at most `size` times at most `factor`, sum within MAX_FIGURE."""
    return size <= MAX_FIGURE // max(factor, 1) // max(n, 1)


# ---------------------------------------------------------------------- Python twins
def clamp(x: int) -> int:
    return max(-MAX_FIGURE, min(MAX_FIGURE, x))


def sat_sum(values) -> int:
    """A sum saturated at every step, in order, as a kernel's loop adds."""
    total = 0
    for v in values:
        total = clamp(total + v)
    return total
