import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mcu_dc.core.sparse import decode_relative, encode_relative
from mcu_dc.errors import ConfigError, FormatError


@st.composite
def masks(draw):
    rows = draw(st.integers(1, 12))
    fan_in = draw(st.integers(1, 90))
    k = draw(st.integers(1, 16))
    keep = draw(st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.integers(0, k, size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) >= keep] = -1
    if draw(st.booleans()) and rows > 1:
        a[draw(st.integers(0, rows - 1))] = -1  # an empty row
    return a, k


@given(masks(), st.integers(1, 8))
@settings(max_examples=300, deadline=None)
def test_round_trip_any_mask(mk, bits):
    a, k = mk
    r, s = encode_relative(a, bits, k)
    assert len(r) == len(s)
    assert r.max(initial=0) <= (1 << bits) - 1
    assert (s <= k).all()
    if len(s):
        assert s[-1] < k  # never ends on a filler
    fillers = s == k
    assert (r[fillers] == (1 << bits) - 1).all()
    assert (s < k).sum() == (a >= 0).sum()
    assert (decode_relative(r, s, *a.shape, k) == a).all()


def test_long_gap_uses_fillers():
    a = np.full((1, 100), -1, dtype=np.int16)
    a[0, 0] = 1
    a[0, 99] = 0
    r, s = encode_relative(a, 3, 2)  # R = 7, span 8: gap 98 = 12*8 + 2
    assert s.tolist() == [1] + [2] * 12 + [0]
    assert r.tolist() == [0] + [7] * 12 + [2]


def test_all_zero_layer_is_empty():
    r, s = encode_relative(np.full((3, 4), -1), 5, 4)
    assert len(r) == 0 and len(s) == 0
    assert (decode_relative(r, s, 3, 4, 4) == -1).all()


@given(hnp.arrays(np.int16, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=st.integers(-1, 2)))
def test_exact_gap_boundaries(a):
    for bits in (1, 2):
        r, s = encode_relative(a, bits, 3)
        assert (decode_relative(r, s, *a.shape, 3) == a).all()


def test_bad_width_and_overrun():
    with pytest.raises(ConfigError):
        encode_relative(np.zeros((2, 2)), 9, 2)
    with pytest.raises(FormatError):
        decode_relative(np.array([10]), np.array([0]), 2, 2, 2)
