"""The printed-output comparison of the docs and seed tests: numbers within a float tolerance,
the text around them exactly."""

from __future__ import annotations

import pytest
from printed import numbers_close, printed_equal, prints_number


@pytest.mark.parametrize(
    "got, want",
    [
        ("0.16711359", "0.16711357"),  # float32 summation order (docs/guide/nn.md on AVX-512)
        ("loss 0.16711359 at step 3", "loss 0.16711357 at step 3"),
        ("[0.1671136  2.5       ]", "[0.16711359 2.5       ]"),  # numpy's column padding follows the digits
        (
            "Tensor(shape=[1], dtype=Float32, value= [ 2.15359993e+01])",
            "Tensor(shape=[1], dtype=Float32, value= [ 2.15359985e+01])",
        ),
        ("0.30000000000000004", "0.3000000000000001"),  # float64 repr, last bits
        ("-0.", "0."),
        ("nan inf", "nan inf"),
    ],
)
def test_last_bit_differences_are_equal(got, want):
    assert printed_equal(got, want)


@pytest.mark.parametrize(
    "got, want",
    [
        ("2.7", "2.8"),  # a real difference, whatever the digits printed
        ("0.1671", "0.1672"),
        ("0.30000000000000004", "0.30000000001"),
        ("Tensor(shape=[2], dtype=Float32)", "Tensor(shape=[3], dtype=Float32)"),  # integers exactly
        ("nn.md:235", "nn.md:236"),
        ("loss 0.5", "gain 0.5"),  # the text exactly
        ("[1. 2.]", "[1. 2. 3.]"),
        ("a\nb", "a"),
        ("nan", "0.5"),
        ("1e-07", "0.0"),
    ],
)
def test_real_differences_are_not(got, want):
    assert not printed_equal(got, want)


def test_numbers_close_float32_resolution():
    assert numbers_close("1.0000001", "1.0000002")  # one float32 ulp apart
    assert not numbers_close("1.00001", "1.00002")
    assert numbers_close("3", "3") and not numbers_close("3", "4")


def test_prints_number():
    assert prints_number("dx = [[4.51 2.6999998]], dz = [21.535997]", 21.536)
    assert prints_number("[ 4.5099998e+00]", 4.51)
    assert not prints_number("[21.5]", 21.536)
    assert not prints_number("float32", 32.0)
