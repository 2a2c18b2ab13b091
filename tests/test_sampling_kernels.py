"""The numba kernels of structgen.sampling equal their plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from structgen.bitmask import bool_to_bitmask
from structgen.sampling import kernels, reference


def _scores(rng: np.random.Generator, n: int, *, ties: bool = False, neg_inf: float = 0.1) -> np.ndarray:
    values = rng.normal(size=n) * 4
    if ties:
        values = np.round(values)  # many exact ties
    values[rng.random(n) < neg_inf] = -np.inf
    return values


CASES = [(n, ties, seed) for n in (1, 7, 300, 5000) for ties in (False, True) for seed in range(3)]


@pytest.mark.parametrize(("n", "ties", "seed"), CASES)
def test_filters_match_reference(n: int, ties: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = _scores(rng, n, ties=ties)
    for k in (1, 3, 50, n + 1):
        got, want = scores.copy(), scores.copy()
        kernels.apply_top_k(got, k)
        reference.apply_top_k(want, k)
        assert np.array_equal(got, want)
    for top_p in (0.01, 0.5, 0.9, 0.999, 1.0):
        assert kernels.top_p_threshold(scores, top_p) == reference.top_p_threshold(scores, top_p)
    assert kernels.log_sum_exp(scores) == pytest.approx(reference.log_sum_exp(scores), abs=1e-12)
    got, want = scores.copy(), scores.copy()
    kernels.apply_threshold(got, 0.5)
    reference.apply_threshold(want, 0.5)
    assert np.array_equal(got, want)


def test_top_p_keeps_the_shortest_prefix_reaching_the_mass() -> None:
    probs = np.array([0.05, 0.4, 0.3, 0.2, 0.05])
    scores = np.log(probs)
    # 0.4 + 0.3 = 0.7 < 0.75 <= 0.9: the nucleus is {1, 2, 3}; at 0.7 it is {1, 2}.
    assert kernels.top_p_threshold(scores, 0.75) == pytest.approx(math.log(0.2))
    assert kernels.top_p_threshold(scores, 0.7) == pytest.approx(math.log(0.3))
    # Ties with the last kept token are kept too.
    assert kernels.top_p_threshold(scores, 0.92) == pytest.approx(math.log(0.05))


def test_top_p_large_vocabulary_beyond_first_chunk() -> None:
    # A flat distribution needs most of the vocabulary: exercises the growing partial sort.
    rng = np.random.default_rng(5)
    scores = rng.normal(size=20_000) * 0.01
    assert kernels.top_p_threshold(scores, 0.95) == reference.top_p_threshold(scores, 0.95)


@pytest.mark.parametrize("seed", range(4))
def test_tempered_scores_and_masked_kernels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = 300
    for width in (size - 17, size, size + 40):
        logits = (rng.normal(size=width) * 3).astype(np.float32)
        logits[rng.random(width) < 0.05] = -np.inf
        got, want = np.empty(size), np.empty(size)
        assert kernels.tempered_scores(logits, 1 / 0.7, got) == reference.tempered_scores(
            logits, 1 / 0.7, want
        )
        assert np.array_equal(got, want)
        allowed = rng.random(size) < 0.3
        bitmask = bool_to_bitmask(allowed)
        for u in (0.0, 0.3, 0.999999):
            token, log_mass = kernels.masked_sample(got, bitmask, u)
            ref_token, ref_mass = reference.masked_sample(got, bitmask, u)
            assert token == ref_token
            assert log_mass == pytest.approx(ref_mass, abs=1e-12)
            assert token == -1 or allowed[token]
        buffers = [
            np.zeros(size, dtype=np.int64),
            np.zeros(size),
            np.zeros(size, dtype=np.int64),
            np.zeros(size),
        ]
        k, log_allowed, log_total = kernels.masked_distribution(got, bitmask, buffers[0], buffers[1])
        ref = reference.masked_distribution(got, bitmask, buffers[2], buffers[3])
        assert k == ref[0] and np.array_equal(buffers[0][:k], buffers[2][:k])
        assert np.allclose(buffers[1][:k], buffers[3][:k], rtol=1e-14)
        assert (log_allowed, log_total) == pytest.approx(ref[1:], abs=1e-12)
        finite = got > -np.inf
        assert log_total == pytest.approx(np.logaddexp.reduce(got[finite]), abs=1e-9)
        assert log_allowed == pytest.approx(np.logaddexp.reduce(got[finite & allowed]), abs=1e-9)
        for u in (0.0, 0.5, 0.999999):
            assert kernels.pick_cumulative(buffers[1], k, u) == reference.pick_cumulative(buffers[1], k, u)
        candidate = rng.random(size) < 0.8
        out1 = [np.zeros(size, dtype=np.int64), np.zeros(size), np.zeros(size), np.zeros(size)]
        out2 = [np.zeros(size, dtype=np.int64), np.zeros(size), np.zeros(size), np.zeros(size)]
        r1 = kernels.support_cumulative(got, candidate, *out1)
        r2 = reference.support_cumulative(got, candidate, *out2)
        assert r1[:2] == r2[:2] and r1[2] == pytest.approx(r2[2], abs=1e-12)
        for a, b in zip(out1, out2, strict=True):
            assert np.allclose(a[: r1[0]], b[: r1[0]], rtol=1e-14)
        assert np.array_equal(out1[0][: r1[0]], np.flatnonzero(candidate & finite))
        assert kernels.masked_argmax(logits, size, bitmask) == reference.masked_argmax(logits, size, bitmask)
        for k in (1, 5, 64, 10_000):
            assert np.array_equal(kernels.top_order(logits, size, k), reference.top_order(logits, size, k))


def test_bad_logits_are_reported() -> None:
    out = np.empty(4)
    for bad, status in ((np.nan, kernels.STATUS_NAN), (np.inf, kernels.STATUS_POS_INF)):
        logits = np.array([0.0, bad, 1.0], dtype=np.float32)
        assert kernels.tempered_scores(logits, 1.0, out) == status
        assert reference.tempered_scores(logits, 1.0, out) == status
        assert kernels.masked_argmax(logits, 4, np.array([-1], dtype=np.int32))[2] == status


@pytest.mark.parametrize("seed", range(5))
def test_without_replacement_kernels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = 200
    values = _scores(rng, m, neg_inf=0.0)
    removed = rng.random(m) < 0.2
    w1, c1, w2, c2 = (np.empty(m) for _ in range(4))
    assert kernels.build_cumulative(values, removed, w1, c1) == reference.build_cumulative(
        values, removed, w2, c2
    )
    assert np.array_equal(w1, w2) and np.array_equal(c1, c2)
    # Remove a few more positions without rebuilding, as the sampler does between rebuilds.
    shift = np.sort(rng.choice(np.flatnonzero(~removed), size=10, replace=False)).astype(np.int64)
    removed[shift] = True
    remaining = c1[-1] - w1[shift].sum()
    for u in rng.random(200):
        pos = kernels.draw_candidate(w1, c1, removed, shift, len(shift), remaining, u)
        assert pos == reference.draw_candidate(w1, c1, removed, shift, len(shift), remaining, u)
        assert not removed[pos] and w1[pos] > 0
    allowed = rng.random(m) < 0.1
    ca1, cd1, ca2, cd2 = (np.empty(m) for _ in range(4))
    got = kernels.split_cumulative(w1, removed, allowed, ca1, cd1)
    assert got == reference.split_cumulative(w1, removed, allowed, ca2, cd2)
    assert np.array_equal(ca1, ca2) and np.array_equal(cd1, cd2)
    for u in rng.random(20):
        j = kernels.pick_interval(cd1, u)
        assert j == reference.pick_interval(cd1, u) and not removed[j] and not allowed[j]
    events = rng.random(30)
    ex1, ex2 = removed.copy(), removed.copy()
    assert kernels.mark_events(cd1, ex1, events) == reference.mark_events(cd2, ex2, events)
    assert np.array_equal(ex1, ex2) and not (ex1 & ~removed & allowed).any()
    uniforms = rng.random(m)
    ex1, ex2 = removed.copy(), removed.copy()
    got = kernels.mark_bernoulli(w1, ex1, allowed, 3.0, uniforms)
    assert got == reference.mark_bernoulli(w1, ex2, allowed, 3.0, uniforms)
    assert np.array_equal(ex1, ex2)
    assert kernels.sum_weights(w1, ex1) == pytest.approx(reference.sum_weights(w1, ex1), rel=1e-14)
    bitmask = bool_to_bitmask(allowed)
    ids = rng.integers(0, m, size=50)
    assert np.array_equal(kernels.bits_at(bitmask, ids), reference.bits_at(bitmask, ids))


def test_draw_candidate_distribution() -> None:
    # Drawing on a fine grid of u must give each remaining position a share equal to its weight.
    values = np.log(np.array([0.1, 0.2, 0.3, 0.15, 0.25]))
    removed = np.zeros(5, dtype=bool)
    weights, cumulative = np.empty(5), np.empty(5)
    kernels.build_cumulative(values, removed, weights, cumulative)
    removed[[1, 3]] = True
    shift = np.array([1, 3], dtype=np.int64)
    remaining = cumulative[-1] - weights[1] - weights[3]
    grid = (np.arange(100_000) + 0.5) / 100_000
    counts = np.bincount(
        [kernels.draw_candidate(weights, cumulative, removed, shift, 2, remaining, u) for u in grid],
        minlength=5,
    )
    assert counts[1] == counts[3] == 0
    assert counts[[0, 2, 4]] / 100_000 == pytest.approx(np.array([0.1, 0.3, 0.25]) / 0.65, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_resampling_kernels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(12) * 0.5)
    weights[rng.random(12) < 0.3] = 0.0
    weights /= weights.sum()
    for u in (0.0, 0.5, 0.999999):
        got = kernels.systematic_resample(weights, u)
        assert np.array_equal(got, reference.systematic_resample(weights, u))
        assert np.all(weights[got] > 0)
        # Systematic resampling gives every particle floor or ceil of N * weight offspring.
        counts = np.bincount(got, minlength=12)
        assert np.all(np.abs(counts - 12 * weights) < 1 + 1e-9)
    uniforms = rng.random(12)
    got = kernels.multinomial_resample(weights, uniforms)
    assert np.array_equal(got, reference.multinomial_resample(weights, uniforms))
    assert np.all(weights[got] > 0)
