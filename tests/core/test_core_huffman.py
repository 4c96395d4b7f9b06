import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcu_dc.core import huffman
from mcu_dc.errors import ConfigError, FormatError

streams = st.lists(st.integers(0, 40), min_size=0, max_size=400)


def unlimited_huffman_cost(freqs: np.ndarray) -> int:
    """Total coded bits of a classic (unbounded) Huffman code, computed independently."""
    f = [int(x) for x in freqs if x > 0]
    if len(f) <= 1:
        return sum(f)
    heapq.heapify(f)
    cost = 0
    while len(f) > 1:
        a, b = heapq.heappop(f), heapq.heappop(f)
        cost += a + b
        heapq.heappush(f, a + b)
    return cost


@given(streams, st.integers(6, 15))
@settings(max_examples=200, deadline=None)
def test_round_trip_any_stream(symbols, max_len):
    s = np.array(symbols, dtype=np.int64)
    table = huffman.build_table(s, 41, max_len)
    data, n_bits = huffman.encode(s, table)
    assert len(data) == (n_bits + 7) // 8
    out = huffman.decode(data, n_bits, table.counts, table.symbols, len(s))
    assert out.tolist() == symbols


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=300), st.integers(1, 15))
@settings(max_examples=200, deadline=None)
def test_canonical_properties(freqs, max_len):
    freqs = np.array(freqs)
    if len(freqs) > (1 << max_len):
        with pytest.raises(ConfigError):
            huffman.code_lengths(freqs, max_len)
        return
    table = huffman.canonical_table(huffman.code_lengths(freqs, max_len))
    assert table.max_len <= max_len
    assert table.kraft_sum() <= 1.0
    if len(freqs) > 1:
        assert table.kraft_sum() == 1.0  # optimal codes are complete
    # prefix-free: no code is a prefix of another
    items = sorted((int(table.lengths[i]), int(table.codes[i])) for i in range(len(freqs)))
    for i, (la, ca) in enumerate(items):
        for lb, cb in items[i + 1 :]:
            assert (cb >> (lb - la)) != ca


@given(st.lists(st.integers(1, 1000), min_size=2, max_size=60))
@settings(max_examples=150, deadline=None)
def test_package_merge_is_optimal_when_limit_is_loose(freqs):
    freqs = np.array(freqs)
    lengths = huffman.code_lengths(freqs, 15)
    if lengths.max() < 15:  # the limit did not bind: must equal classic Huffman
        assert int((lengths * freqs).sum()) == unlimited_huffman_cost(freqs)


def test_limit_binds_and_costs_little():
    freqs = np.array([2**i for i in range(20)])  # Fibonacci-like skew wants 19-bit codes
    unlimited = unlimited_huffman_cost(freqs)
    lengths = huffman.code_lengths(freqs, 8)
    assert lengths.max() == 8
    assert int((lengths * freqs).sum()) >= unlimited


def test_single_symbol_gets_one_bit():
    table = huffman.build_table(np.array([3, 3, 3]), 5, 12)
    assert table.lengths.tolist() == [0, 0, 0, 1, 0]
    data, n = huffman.encode(np.array([3, 3, 3]), table)
    assert n == 3 and data == b"\x00"


def test_lut_agrees_with_codes():
    s = np.random.default_rng(0).geometric(0.2, size=2000) % 30
    table = huffman.build_table(s, 30, 12)
    lut = table.lut(6)
    for sym in table.symbols:
        length, code = int(table.lengths[sym]), int(table.codes[sym])
        if length <= 6:
            entry = int(lut[code << (6 - length)])
            assert entry == (length << 12) | int(sym)
    assert (lut == 0).sum() > 0 or table.max_len <= 6


def test_corrupt_stream_is_reported():
    table = huffman.build_table(np.array([0, 1, 1, 2]), 3, 4)
    data, n = huffman.encode(np.array([0, 1, 1, 2]), table)
    with pytest.raises(FormatError):
        huffman.decode(data, n - 1, table.counts, table.symbols, 4)
