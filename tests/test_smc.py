"""Sequential Monte Carlo: unbiased marginal likelihood on a toy Markov model, ancestry, bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_sampling_helpers import assert_mean

from structgen.compilers.regex import compile_regex
from structgen.matcher import Matcher
from structgen.sampling.base import SamplingParams
from structgen.sampling.mask import MaskSampler
from structgen.sampling.rejection import RejectionSampler
from structgen.sampling.smc import SequentialMonteCarlo, effective_sample_size
from structgen.vocabulary import Vocabulary

TOKENS = [None, b"a", b"b", b"c", b"ab", b"ba", b"x", None]
VOCAB = Vocabulary.from_token_bytes(TOKENS, [0], name="markov")
PATTERN = "(ab|c)+a?"
MAX_TOKENS = 5


class MarkovModel:
    """Logits depend on the last token only (row 0 of ``table`` starts); records every call."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.table = (rng.normal(size=(VOCAB.size + 1, VOCAB.size)) * 1.2).astype(np.float32)
        self.calls: list[tuple[list[list[int]], np.ndarray | None]] = []

    def row(self, prefix: list[int]) -> np.ndarray:
        return self.table[0 if not prefix else prefix[-1] + 1]

    def __call__(self, token_ids: list[list[int]], parents: np.ndarray | None) -> np.ndarray:
        self.calls.append(([list(t) for t in token_ids], None if parents is None else parents.copy()))
        return np.stack([self.row(t) for t in token_ids])


def exact_marginal(model: MarkovModel, matcher: Matcher, params: SamplingParams) -> float:
    """Probability that every token until EOS or MAX_TOKENS is allowed, by enumeration."""
    assert params.top_k == 0 and params.top_p == 1.0

    def walk(prefix: list[int]) -> float:
        scores = model.row(prefix).astype(np.float64) / params.temperature
        q = np.exp(scores - scores.max())
        q /= q.sum()
        total = 0.0
        for token in np.flatnonzero(matcher.mask()):
            token = int(token)
            if token in VOCAB.eos_token_ids or len(prefix) + 1 == MAX_TOKENS:
                total += q[token]
            else:
                matcher.advance(token)
                total += q[token] * walk([*prefix, token])
                matcher.rollback()
        return total

    return walk([])


@pytest.mark.parametrize(
    ("sampler", "ess_threshold", "resampling"),
    [
        (RejectionSampler(), 1.0, "systematic"),  # resample after every step
        (RejectionSampler(max_checks=1), 0.5, "multinomial"),  # AWRS through the mask fallback
        (MaskSampler(), 1.0, "multinomial"),
        (RejectionSampler(SamplingParams(temperature=1.5)), 0.0, "systematic"),  # never resample
    ],
)
def test_marginal_likelihood_is_unbiased(sampler, ess_threshold: float, resampling: str) -> None:
    model = MarkovModel(seed=1)
    constraint = compile_regex(PATTERN, VOCAB)
    z = exact_marginal(model, constraint.matcher(), sampler.params)
    assert 0.001 < z < 0.5
    smc = SequentialMonteCarlo(
        constraint,
        model,
        n_particles=4,
        sampler=sampler,
        ess_threshold=ess_threshold,
        resampling=resampling,
        max_tokens=MAX_TOKENS,
    )
    rng = np.random.default_rng(7)
    results = [smc.run(rng) for _ in range(300)]
    assert_mean(np.exp([r.log_marginal_likelihood for r in results]), z)
    if ess_threshold == 1.0:
        assert sum(r.n_resamples for r in results) > 300
    if ess_threshold == 0.0:
        assert all(r.n_resamples == 0 for r in results)


def test_many_particles_concentrate_and_particles_are_valid() -> None:
    model = MarkovModel(seed=2)
    constraint = compile_regex(PATTERN, VOCAB)
    z = exact_marginal(model, constraint.matcher(), SamplingParams())
    result = SequentialMonteCarlo(constraint, model, n_particles=400, max_tokens=MAX_TOKENS).run(
        np.random.default_rng(0)
    )
    assert abs(result.log_marginal_likelihood - math.log(z)) < 0.15
    assert result.weights.sum() == pytest.approx(1.0)
    assert np.allclose(result.weights, np.exp(result.log_weights - np.logaddexp.reduce(result.log_weights)))
    for tokens, finished in zip(result.token_ids, result.finished, strict=True):
        matcher = constraint.matcher()
        matcher.consume(tokens)  # every particle is allowed by the constraint
        assert finished == (tokens[-1] == 0)
        assert finished or len(tokens) == MAX_TOKENS
    assert result.checks > 0 and len(result.ess_history) == result.steps


def test_parents_describe_the_resampling_ancestry() -> None:
    model = MarkovModel(seed=3)
    constraint = compile_regex(PATTERN, VOCAB)
    smc = SequentialMonteCarlo(constraint, model, n_particles=6, ess_threshold=1.0, max_tokens=MAX_TOKENS)
    result = smc.run(np.random.default_rng(1))
    assert model.calls[0][1] is None and result.n_resamples > 0
    resampled = 0
    for (before, _), (after, parents) in zip(model.calls, model.calls[1:], strict=False):
        if parents is None:
            assert all(a[: len(b)] == b for a, b in zip(after, before, strict=True))
            continue
        resampled += 1
        # Slot i continues particle parents[i] of the previous call, plus the token sampled since.
        for i, parent in enumerate(parents):
            assert after[i][: len(before[parent])] == before[parent]
            assert len(after[i]) <= len(before[parent]) + 1
    assert resampled > 0


def test_finished_particles_stop_sampling() -> None:
    model = MarkovModel(seed=4)
    model.table[:, 0] += 6.0  # EOS is likely as soon as it is allowed
    constraint = compile_regex("c", VOCAB)
    result = SequentialMonteCarlo(constraint, model, n_particles=5, max_tokens=10).run(
        np.random.default_rng(2)
    )
    assert result.finished.all() and result.steps == 2
    assert all(t == [3, 0] for t in result.token_ids)
    # Z = q(c | start) * q(EOS | c): deterministic because both steps have one allowed token.
    r0, r1 = model.row([]).astype(np.float64), model.row([3]).astype(np.float64)
    q0 = np.exp(r0 - np.logaddexp.reduce(r0))
    q1 = np.exp(r1 - np.logaddexp.reduce(r1))
    exact = math.log(q0[3] * q1[0])
    mask_result = SequentialMonteCarlo(constraint, model, n_particles=5, sampler=MaskSampler()).run(
        np.random.default_rng(2)
    )
    assert mask_result.log_marginal_likelihood == pytest.approx(exact, abs=1e-9)


def test_bad_arguments() -> None:
    constraint = compile_regex(PATTERN, VOCAB)
    model = MarkovModel(seed=5)
    with pytest.raises(ValueError, match="n_particles"):
        SequentialMonteCarlo(constraint, model, n_particles=0)
    with pytest.raises(ValueError, match="ess_threshold"):
        SequentialMonteCarlo(constraint, model, n_particles=2, ess_threshold=1.5)
    with pytest.raises(ValueError, match="resampling"):
        SequentialMonteCarlo(constraint, model, n_particles=2, resampling="stratified-ish")
    with pytest.raises(ValueError, match="shape"):
        SequentialMonteCarlo(constraint, lambda t, p: np.zeros((1, VOCAB.size)), n_particles=2).run(
            np.random.default_rng(0)
        )
    unweighted = RejectionSampler(estimate_weight=False)
    with pytest.raises(ValueError, match="weight"):
        SequentialMonteCarlo(constraint, model, n_particles=2, sampler=unweighted).run(
            np.random.default_rng(0)
        )
    assert effective_sample_size(np.array([0.0, 0.0, -np.inf])) == pytest.approx(2.0)
    assert effective_sample_size(np.array([-np.inf, -np.inf])) == 0.0
