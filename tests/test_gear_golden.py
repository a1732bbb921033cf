"""The gear table is frozen: changing it changes every chunk id in every store."""

import hashlib

import numpy as np
import pytest

from engine.kernels import GEAR, generate_gear_table
from engine.kernels.gear import GEAR_CONTEXT

# SHA-256 of the 256 entries as little-endian uint64, frozen on 2026-11-26.
GOLDEN_SHA256 = "1284fb5240234765fedb081314f712a2bc335e24cb3e4e67df427733bbc811c3"


def test_gear_table_shape_and_type():
    assert GEAR.dtype == np.uint64
    assert GEAR.shape == (256,)
    assert len(set(GEAR.tolist())) == 256


def test_gear_table_golden_digest():
    assert hashlib.sha256(GEAR.astype("<u8").tobytes()).hexdigest() == GOLDEN_SHA256


def test_gear_table_spot_values():
    assert int(GEAR[0]) == 0xFA1771CBB8B4854C
    assert int(GEAR[255]) == 0xBCDE2488CBAA79EA


def test_gear_table_matches_documented_procedure():
    assert GEAR_CONTEXT == "mlops-engine gear table v1"
    np.testing.assert_array_equal(generate_gear_table(), GEAR)


def test_gear_table_is_read_only():
    with pytest.raises(ValueError):
        GEAR[0] = 1


def test_gear_bits_are_balanced():
    # Each bit position is set in about half the entries (binomial(256, 1/2): 128 +- 8).
    bits = (GEAR[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    counts = bits.sum(axis=0)
    assert counts.min() > 128 - 40 and counts.max() < 128 + 40
