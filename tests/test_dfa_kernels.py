"""numba DFA kernels (trimming, Hopcroft minimization) against their plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest

from structgen.automata import kernels, reference


def _random_dfa(rng: np.random.Generator, n: int, width: int, density: float):
    table = rng.integers(0, n, size=(n, width)).astype(np.int32)
    table[rng.random((n, width)) > density] = -1
    accepting = rng.random(n) < 0.3
    return table, accepting


def _same_partition(a, b) -> bool:
    pairs = set(zip(a, b, strict=True))
    return len(pairs) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("seed", range(30))
def test_useful_states_matches_reference(seed):
    rng = np.random.default_rng(seed)
    table, accepting = _random_dfa(rng, int(rng.integers(1, 40)), 4, 0.3)
    expected = reference.useful_states(table.tolist(), accepting.tolist(), 0)
    assert kernels.useful_states(table, accepting, 0).tolist() == expected


@pytest.mark.parametrize("seed", range(30))
def test_hopcroft_matches_moore(seed):
    rng = np.random.default_rng(seed)
    table, accepting = _random_dfa(rng, int(rng.integers(1, 60)), int(rng.integers(1, 5)), 0.6)
    block, count = kernels.equivalence_classes(table, accepting)
    expected = reference.equivalence_classes(table.tolist(), accepting.tolist())
    assert _same_partition(block.tolist(), expected)
    # States equivalent to the dead sink share its block, numbered ``count``; the rest are 0..count-1.
    assert set(block.tolist()) - {count} == set(range(count))
