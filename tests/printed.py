"""Compare printed output that contains floating-point numbers, never digit for digit.

CPUs differ in the last bits of float results (numpy's SIMD summation order, BLAS kernels),
and a last-bit difference changes the printed digits. ``printed_equal`` splits the texts into
the numbers they print and the text around them: the text must match exactly (up to the width
of runs of spaces, which numpy pads to align array columns), integers must be equal, and floats
equal within a few float32 ulps when printed with at most 9 significant digits (numpy's float32
output, or fewer digits), else within a few float64 ulps.

Imported by the docs and seed tests (``from printed import printed_equal``; ``tests/`` is on the
test path through its ``conftest.py``).
"""

from __future__ import annotations

import difflib
import math
import re

# A number standing on its own: not a part of an identifier (float32, t0) or of a longer number.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")

RTOL_FLOAT32 = 1e-6  # about 8 float32 ulps
RTOL_FLOAT64 = 1e-12


def _significant_digits(s: str) -> int:
    mantissa = re.split(r"[eE]", s)[0].lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0")) or 1


def _is_int(s: str) -> bool:
    return not any(c in s for c in ".eE")


def numbers_close(a: str, b: str) -> bool:
    """Whether two printed numbers are equal (integers) or close (floats)."""
    if _is_int(a) and _is_int(b):
        return int(a) == int(b)
    x, y = float(a), float(b)
    rtol = RTOL_FLOAT32 if min(_significant_digits(a), _significant_digits(b)) <= 9 else RTOL_FLOAT64
    return math.isclose(x, y, rel_tol=rtol, abs_tol=0.0)


def _skeleton(line: str) -> str:
    # numpy pads array elements to a common width, so the spaces next to brackets depend on the
    # digits printed: ``[0.84147096 0.9092974 ]`` and ``[0.841471  0.9092974]`` match
    line = re.sub(r"[ \t]+", " ", NUMBER.sub("#", line))
    return re.sub(r" ?([\[\]]) ?", r"\1", line).strip()


def printed_equal(got: str, want: str) -> bool:
    """Whether ``got`` prints what ``want`` does, line by line: the same text around the numbers
    and numbers within a float tolerance."""
    g, w = got.split("\n"), want.split("\n")
    if len(g) != len(w):
        return False
    for a, b in zip(g, w):
        if _skeleton(a) != _skeleton(b):
            return False
        na, nb = NUMBER.findall(a), NUMBER.findall(b)
        if len(na) != len(nb) or not all(numbers_close(x, y) for x, y in zip(na, nb)):
            return False
    return True


def prints_number(text: str, value: float, rtol: float = RTOL_FLOAT32) -> bool:
    """Whether ``text`` prints a number within ``rtol`` of ``value``."""
    return any(math.isclose(float(n), value, rel_tol=rtol) for n in NUMBER.findall(text))


def printed_diff(got: str, want: str, what: str = "printed") -> str:
    """A unified diff of the lines of ``want`` and ``got`` that differ beyond the tolerance."""
    g, w = got.split("\n"), want.split("\n")
    if len(g) == len(w):  # show only the lines that differ beyond the tolerance
        g = [a if not printed_equal(a, b) else b for a, b in zip(g, w)]
    return "\n".join(difflib.unified_diff(w, g, "expected", what, lineterm="", n=2))
