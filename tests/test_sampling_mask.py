"""MaskSampler: exact constrained sampling from the full bitmask."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_sampling_helpers import (
    abc_constraint,
    assert_distribution,
    digits_constraint,
    filtered_probs,
    random_logits,
    toy_vocab,
)

from structgen.sampling.base import SamplingParams
from structgen.sampling.mask import MaskSampler, NoAllowedTokenError, candidate_mask
from structgen.vocabulary import Vocabulary

VOCAB = toy_vocab()


def _draw(sampler: MaskSampler, logits: np.ndarray, matcher, n: int, seed: int) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    results = [sampler.sample(logits, matcher, rng) for _ in range(n)]
    return np.array([r.token_id for r in results]), results


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(),
        SamplingParams(temperature=0.6),
        SamplingParams(temperature=1.7, top_k=40),
        SamplingParams(temperature=1.3, top_p=0.8),
        SamplingParams(top_k=100, top_p=0.95),
    ],
)
def test_samples_follow_the_filtered_constrained_distribution(params: SamplingParams) -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 1, scale=1.5)
    allowed = matcher.mask()
    proposal = filtered_probs(logits, params.temperature, params.top_k, params.top_p)
    mass = proposal[allowed].sum()
    target = np.where(allowed, proposal, 0.0) / mass
    tokens, results = _draw(MaskSampler(params), logits, matcher, 4000, seed=7)
    assert_distribution(tokens, target)
    # The weight is the exact log allowed mass under the filtered proposal.
    assert results[0].log_weight == pytest.approx(math.log(mass), abs=1e-9)
    assert all(r.mask_fallback and r.checks == 0 for r in results)


def test_top_k_and_top_p_are_respected() -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 2)
    for params in (SamplingParams(top_k=30), SamplingParams(top_p=0.5), SamplingParams(top_k=60, top_p=0.9)):
        support = filtered_probs(logits, 1.0, params.top_k, params.top_p) > 0
        tokens, _ = _draw(MaskSampler(params), logits, matcher, 300, seed=3)
        assert support[tokens].all()
        assert matcher.mask()[tokens].all()


def test_greedy_picks_the_best_allowed_token() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 4)
    allowed = matcher.mask()
    best = int(np.flatnonzero(allowed)[np.argmax(logits[allowed])])
    got = MaskSampler(SamplingParams(temperature=0)).sample(logits, matcher, np.random.default_rng(0))
    assert got.token_id == best
    # The unconstrained argmax is refused here, so the point-mass proposal gives weight 0.
    assert not allowed[int(np.argmax(logits))] and got.log_weight == -math.inf
    logits[best] = logits.max() + 1
    got = MaskSampler(SamplingParams(temperature=0)).sample(logits, matcher, np.random.default_rng(0))
    assert got.token_id == best and got.log_weight == 0.0


def test_greedy_ties_go_to_the_lowest_id() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    logits = np.zeros(VOCAB.size, dtype=np.float32)
    allowed = np.flatnonzero(matcher.mask())
    got = MaskSampler(SamplingParams(temperature=0)).sample(logits, matcher, np.random.default_rng(0))
    assert got.token_id == allowed[0]


def test_wider_and_narrower_logits() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    allowed = np.flatnonzero(matcher.mask())
    rng = np.random.default_rng(0)
    # Extra columns past vocab.size are not tokens: huge values there are ignored.
    wide = np.concatenate([random_logits(VOCAB, 5), np.full(50, 100.0, dtype=np.float32)])
    got = MaskSampler().sample(wide, matcher, rng)
    assert got.token_id in allowed
    exact = filtered_probs(wide[: VOCAB.size])
    assert got.log_weight == pytest.approx(math.log(exact[allowed].sum()))
    # Ids past a narrower logits row have no score and are never drawn.
    narrow = random_logits(VOCAB, 6)[: int(allowed[2])]
    for _ in range(50):
        assert MaskSampler().sample(narrow, matcher, rng).token_id in allowed[:2]
    with pytest.raises(NoAllowedTokenError):
        MaskSampler().sample(narrow[: int(allowed[0])], matcher, rng)


def test_relaxed_when_filters_leave_nothing_allowed() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 8)
    allowed = matcher.mask()
    logits[allowed] -= 50  # nothing allowed survives top-k
    tokens, results = _draw(MaskSampler(SamplingParams(top_k=5)), logits, matcher, 2000, seed=1)
    assert all(r.log_weight == -math.inf for r in results)
    target = np.where(allowed, filtered_probs(logits), 0.0)
    assert_distribution(tokens, target / target.sum())


def test_bad_logits_raise() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    rng = np.random.default_rng(0)
    logits = random_logits(VOCAB, 9)
    logits[3] = np.nan
    for params in (SamplingParams(), SamplingParams(temperature=0)):
        with pytest.raises(ValueError, match="NaN"):
            MaskSampler(params).sample(logits, matcher, rng)
    with pytest.raises(ValueError, match="1-D"):
        MaskSampler().sample(np.zeros((2, VOCAB.size), dtype=np.float32), matcher, rng)
    everything_refused = np.full(VOCAB.size, -np.inf, dtype=np.float32)
    for params in (SamplingParams(), SamplingParams(temperature=0)):
        with pytest.raises(NoAllowedTokenError):
            MaskSampler(params).sample(everything_refused, matcher, rng)


def test_eos_is_sampled_when_allowed() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    matcher.advance(VOCAB.token_bytes.index(b"c"))
    logits = random_logits(VOCAB, 10)
    got = MaskSampler().sample(logits, matcher, np.random.default_rng(0))
    assert got.token_id == VOCAB.eos_token_ids[0]
    p = filtered_probs(logits)
    assert got.log_weight == pytest.approx(math.log(p[0]))


def test_candidate_mask() -> None:
    vocab = Vocabulary.from_token_bytes([None, b"a", b"", None, b"bc"], [3], size=6)
    assert candidate_mask(vocab).tolist() == [False, True, False, True, True, False]
    assert candidate_mask(vocab) is candidate_mask(vocab)


def test_toy_automata_agree_with_the_regex_compiler() -> None:
    from test_sampling_helpers import toy_abc_constraint, toy_digits_constraint

    for toy, compiled in ((toy_abc_constraint, abc_constraint), (toy_digits_constraint, digits_constraint)):
        a, b = toy(VOCAB).matcher(), compiled(VOCAB).matcher()
        for token in (None, *range(VOCAB.size)):
            if token is not None:
                if not a.accepts(token):
                    continue
                a.advance(token)
                b.advance(token)
            assert np.array_equal(a.mask(), b.mask())
            if token is not None:
                a.rollback()
                b.rollback()
