"""RejectionSampler (AWRS): exact samples, unbiased weights, greedy, filters, budget fallback."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from test_sampling_helpers import (
    abc_constraint,
    assert_distribution,
    assert_mean,
    chi2_quantile,
    digits_constraint,
    filtered_probs,
    random_logits,
    toy_abc_constraint,
    toy_vocab,
)

from structgen.compilers.regex import compile_regex
from structgen.errors import NoAllowedTokenError
from structgen.matcher import Matcher
from structgen.sampling import rejection
from structgen.sampling.base import SamplingParams
from structgen.sampling.reference import awrs_reference, gumbel_rejection_run
from structgen.sampling.rejection import RejectionSampler
from structgen.vocabulary import Vocabulary

VOCAB = toy_vocab()


class CountingMatcher(Matcher):
    """A matcher that counts ``accepts`` and ``fill_bitmask`` calls."""

    __slots__ = ("accepts_calls", "mask_calls")

    def __init__(self, matcher: Matcher) -> None:
        super().__init__(matcher._automaton, list(matcher._states))
        self.accepts_calls = 0
        self.mask_calls = 0

    def accepts(self, token_id: int) -> bool:
        self.accepts_calls += 1
        return super().accepts(token_id)

    def fill_bitmask(self, out: np.ndarray, row: int = 0) -> None:
        self.mask_calls += 1
        super().fill_bitmask(out, row)


def _draw(sampler: RejectionSampler, logits: np.ndarray, matcher: Matcher, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [sampler.sample(logits, matcher, rng) for _ in range(n)]


def _target(logits: np.ndarray, allowed: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, float]:
    proposal = filtered_probs(logits, params.temperature, params.top_k, params.top_p)
    mass = float(proposal[allowed].sum())
    return np.where(allowed, proposal, 0.0) / mass, mass


def _refusing_logits(matcher: Matcher, seed: int, shift: float) -> np.ndarray:
    """Logits where refused tokens are favoured by ``shift`` nats, so runs see several refusals."""
    logits = random_logits(VOCAB, seed, scale=1.0)
    logits[~matcher.mask()] += shift
    return logits


@pytest.mark.parametrize(
    ("params", "max_checks"),
    [
        (SamplingParams(), 32),
        (SamplingParams(temperature=0.7), 32),
        (SamplingParams(temperature=1.5, top_k=60), 32),
        (SamplingParams(top_p=0.9), 32),
        (SamplingParams(), 1),  # mostly through the mask fallback
    ],
)
def test_samples_and_weights_match_the_exact_constrained_distribution(
    params: SamplingParams, max_checks: int
) -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = _refusing_logits(matcher, 1, shift=0.5)
    target, mass = _target(logits, matcher.mask(), params)
    results = _draw(RejectionSampler(params, max_checks=max_checks), logits, matcher, 4000, seed=11)
    assert_distribution(np.array([r.token_id for r in results]), target)
    assert_mean(np.exp([r.log_weight for r in results]), mass)
    assert all(r.checks <= max_checks for r in results)
    if max_checks == 1:
        assert sum(r.mask_fallback for r in results) > len(results) // 2


def test_toy_automaton_small_allowed_mass() -> None:
    # Independent of the regex compiler, and the allowed mass is small (about 2%).
    matcher = toy_abc_constraint(VOCAB).matcher()
    logits = _refusing_logits(matcher, 2, shift=0.0)
    target, mass = _target(logits, matcher.mask(), SamplingParams())
    assert mass < 0.05
    results = _draw(RejectionSampler(max_checks=1000), logits, matcher, 3000, seed=5)
    assert_distribution(np.array([r.token_id for r in results]), target)
    assert_mean(np.exp([r.log_weight for r in results]), mass)


# --- Exact check of the estimator and of the implementation, by enumerating every run. -------------


def enumerate_awrs(probs: dict[int, float], allowed: set[int]) -> dict[tuple[int, float], float]:
    """Exact law of ``(token, Z_hat)`` for AWRS over normalized ``probs`` (token -> probability).

    Enumerates every first run (refusals, then the accepted token) and every weight run.
    """
    law: dict[tuple[int, float], float] = defaultdict(float)
    tokens = list(probs)

    def run(removed: frozenset[int], prob: float, on_accept) -> None:
        left = [t for t in tokens if t not in removed]
        total = sum(probs[t] for t in left)
        for t in left:
            q = probs[t] / total
            if t in allowed:
                on_accept(t, removed, prob * q)
            else:
                run(removed | {t}, prob * q, on_accept)

    def first_accepted(x: int, removed1: frozenset[int], prob1: float) -> None:
        numerator = 1.0 - sum(probs[t] for t in removed1)

        def second_accepted(_: int, removed: frozenset[int], prob: float) -> None:
            law[(x, round(numerator / (len(removed) + 1), 12))] += prob

        run(removed1, prob1, second_accepted)

    run(frozenset(), 1.0, first_accepted)
    return dict(law)


@pytest.mark.parametrize("seed", range(4))
def test_estimator_is_unbiased_and_properly_weighted_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(7) * 0.6)
    allowed = {t for t in range(7) if rng.random() < 0.4} or {0}
    law = enumerate_awrs(dict(enumerate(p)), allowed)
    assert sum(law.values()) == pytest.approx(1.0, abs=1e-12)
    z = float(sum(p[t] for t in allowed))
    assert sum(prob * w for (_, w), prob in law.items()) == pytest.approx(z, abs=1e-12)
    # Proper weighting: E[Z_hat 1{x = a}] = p(a) for every allowed a (Z times the target).
    for a in allowed:
        assert sum(prob * w for (x, w), prob in law.items() if x == a) == pytest.approx(p[a], abs=1e-12)
    # The first run's remaining mass 1 - p(R1) alone is biased upwards (it bounds Z from above):
    # the second run is what makes the estimate unbiased.
    refused = [t for t in range(7) if t not in allowed]
    if refused:
        assert _first_run_naive_mean(p, allowed) > z + 1e-9


def _first_run_naive_mean(p: np.ndarray, allowed: set[int]) -> float:
    def run(removed: frozenset[int], prob: float) -> float:
        left = [t for t in range(len(p)) if t not in removed]
        total = sum(p[t] for t in left)
        value = 0.0
        for t in left:
            if t in allowed:
                value += prob * p[t] / total * (1.0 - sum(p[r] for r in removed))
            else:
                value += run(removed | {t}, prob * p[t] / total)
        return value

    return run(frozenset(), 1.0)


def _tiny_case() -> tuple[Vocabulary, Matcher, np.ndarray]:
    tokens = [None, b"a", b"b", b"c", b"x", b"ab", b"ac", b"xa", b"cx", b"xx", None, b""]
    vocab = Vocabulary.from_token_bytes(tokens, [0], name="tiny")
    matcher = compile_regex("[ab]*c", vocab).matcher()
    logits = np.array([1.0, 0.2, -0.5, -1.0, 1.5, 0.0, -0.3, 1.2, 0.8, 0.5, 2.0, 3.0], dtype=np.float32)
    return vocab, matcher, logits


@pytest.mark.parametrize(
    ("max_checks", "poisson_limit"),
    [(0, 0.125), (0, 0.0), (0, math.inf), (1, 0.125), (2, 0.125), (32, 0.125)],
)
def test_implementation_matches_the_exact_law_of_token_and_weight(
    max_checks: int, poisson_limit: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # poisson_limit 0 / inf forces the simulated runs through Bernoulli / Poisson refusals.
    monkeypatch.setattr(rejection, "_POISSON_LIMIT", poisson_limit)
    vocab, matcher, logits = _tiny_case()
    q = filtered_probs(logits)
    candidates = [t for t in range(vocab.size) if vocab.is_text_token(t) or t in vocab.eos_token_ids]
    in_candidates = float(q[candidates].sum())
    allowed = {int(t) for t in np.flatnonzero(matcher.mask())}
    law = enumerate_awrs({t: q[t] / in_candidates for t in candidates}, allowed)
    # Special and empty tokens are pruned up front: their mass is outside Z.
    law = {(x, round(w * in_candidates, 10)): prob for (x, w), prob in law.items()}
    n = 6000
    results = _draw(RejectionSampler(max_checks=max_checks), logits, matcher, n, seed=max_checks)
    counts: dict[tuple[int, float], int] = defaultdict(int)
    for r in results:
        counts[(r.token_id, round(math.exp(r.log_weight), 10))] += 1
    assert set(counts) <= set(law), set(counts) - set(law)
    # Pearson's test over the outcomes, pooling the rare ones.
    observed, expected, pooled_o, pooled_e = [], [], 0.0, 0.0
    for key, prob in law.items():
        if prob * n >= 5:
            observed.append(counts.get(key, 0))
            expected.append(prob * n)
        else:
            pooled_o += counts.get(key, 0)
            pooled_e += prob * n
    observed.append(pooled_o)
    expected.append(pooled_e)
    o, e = np.array(observed), np.array(expected)
    stat = float(((o - e) ** 2 / e).sum())
    assert stat < chi2_quantile(len(o) - 1), (stat, len(o))
    assert any(r.mask_fallback for r in results) == (max_checks < 3)


def _first_run_law(
    p: dict[int, float], allowed: set[int], excluded: frozenset[int]
) -> dict[tuple[int, int], float]:
    """Exact law of (accepted position, refusals) of one rejection run over positions ``p``."""
    law: dict[tuple[int, int], float] = defaultdict(float)

    def run(removed: frozenset[int], prob: float) -> None:
        left = [t for t in p if t not in removed]
        total = sum(p[t] for t in left)
        for t in left:
            if t in allowed:
                law[(t, len(removed) - len(excluded))] += prob * p[t] / total
            else:
                run(removed | {t}, prob * p[t] / total)

    run(excluded, 1.0)
    return law


def _chi2_against(law: dict, counts: dict, n: int) -> tuple[float, int]:
    assert set(counts) <= set(law)
    o = np.array([counts.get(k, 0) for k in law], dtype=float)
    e = np.array([law[k] * n for k in law])
    big = e >= 5
    o = np.append(o[big], o[~big].sum())
    e = np.append(e[big], e[~big].sum())
    keep = e > 0
    return float(((o[keep] - e[keep]) ** 2 / e[keep]).sum()), int(keep.sum()) - 1


@pytest.mark.parametrize("poisson_limit", [0.0, math.inf])
def test_simulated_run_matches_the_exact_run_law(
    poisson_limit: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rejection, "_POISSON_LIMIT", poisson_limit)
    _, matcher, logits = _tiny_case()
    run = rejection._AWRSRun(RejectionSampler(), logits, matcher, np.random.default_rng(0))
    run._fallback()
    m = run.values.shape[0]
    p = {i: float(run.draws.weights[i]) for i in range(m)}
    allowed = {i for i in range(m) if run.allowed[i]}
    excluded = frozenset({int(np.flatnonzero(~run.allowed)[0])})
    law = _first_run_law(p, allowed, excluded)
    n = 6000
    counts: dict[tuple[int, int], int] = defaultdict(int)
    oracle: dict[tuple[int, int], int] = defaultdict(int)
    rng = np.random.default_rng(1)
    for _ in range(n):
        run.draws.removed[:] = False
        run.draws.removed[list(excluded)] = True
        counts[run._simulate_run()] += 1
        removed = np.zeros(m, dtype=bool)
        removed[list(excluded)] = True
        oracle[gumbel_rejection_run(run.values, removed, run.allowed, rng.random(m))] += 1
    for observed in (counts, oracle):
        stat, dof = _chi2_against(law, observed, n)
        assert stat < chi2_quantile(dof), (stat, dof)


def test_reference_transcription_agrees() -> None:
    vocab, matcher, logits = _tiny_case()
    q = filtered_probs(logits)
    candidates = np.array([vocab.is_text_token(t) or t in vocab.eos_token_ids for t in range(vocab.size)])
    z = float(q[matcher.mask()].sum())
    p = np.where(candidates, q, 0.0)
    rng = np.random.default_rng(3)
    weights = [awrs_reference(p / p.sum(), matcher.accepts, rng)[1] * p.sum() for _ in range(3000)]
    assert_mean(np.array(weights), z)


# --- Greedy, filters, bookkeeping. ----------------------------------------------------------------


def test_greedy_walks_to_the_best_allowed_token() -> None:
    matcher = CountingMatcher(abc_constraint(VOCAB).matcher())
    logits = random_logits(VOCAB, 4)
    allowed = matcher.mask()
    best = int(np.flatnonzero(allowed)[np.argmax(logits[allowed])])
    candidates = np.array([VOCAB.is_text_token(t) or t == 0 for t in range(VOCAB.size)])
    walked = int(np.sum(candidates & (logits > logits[best]))) + 1
    assert walked > 3
    greedy = SamplingParams(temperature=0)
    matcher.accepts_calls = 0
    got = RejectionSampler(greedy, max_checks=1000).sample(logits, matcher, np.random.default_rng(0))
    assert (got.token_id, got.checks, got.mask_fallback) == (best, walked, False)
    assert got.checks == matcher.accepts_calls
    assert got.log_weight == -math.inf  # the unconstrained argmax is refused
    # With a budget smaller than the walk it falls back to the mask and finds the same token.
    got = RejectionSampler(greedy, max_checks=3).sample(logits, matcher, np.random.default_rng(0))
    assert (got.token_id, got.checks, got.mask_fallback) == (best, 3, True)
    logits[best] = logits.max() + 1
    got = RejectionSampler(greedy).sample(logits, matcher, np.random.default_rng(0))
    assert (got.token_id, got.checks, got.log_weight) == (best, 1, 0.0)


def test_greedy_raises_when_nothing_allowed_is_finite() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 4)
    logits[matcher.mask()] = -np.inf
    for max_checks in (2, 1000):
        with pytest.raises(NoAllowedTokenError):
            RejectionSampler(SamplingParams(temperature=0), max_checks=max_checks).sample(
                logits, matcher, np.random.default_rng(0)
            )


def test_top_k_and_top_p_are_respected() -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 2)
    for params in (SamplingParams(top_k=30), SamplingParams(top_p=0.5), SamplingParams(top_k=60, top_p=0.9)):
        support = filtered_probs(logits, 1.0, params.top_k, params.top_p) > 0
        results = _draw(RejectionSampler(params), logits, matcher, 300, seed=3)
        tokens = np.array([r.token_id for r in results])
        assert support[tokens].all() and matcher.mask()[tokens].all()


def test_relaxed_when_filters_leave_nothing_allowed() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 8)
    allowed = matcher.mask()
    logits[allowed] -= 50
    results = _draw(RejectionSampler(SamplingParams(top_k=5)), logits, matcher, 2000, seed=1)
    assert all(r.log_weight == -math.inf and r.mask_fallback and r.checks <= 5 for r in results)
    target = np.where(allowed, filtered_probs(logits), 0.0)
    assert_distribution(np.array([r.token_id for r in results]), target / target.sum())


def test_checks_count_accepts_calls_and_budget_bounds_them() -> None:
    matcher = CountingMatcher(digits_constraint(VOCAB).matcher())
    logits = _refusing_logits(matcher, 3, shift=2.0)
    rng = np.random.default_rng(0)
    for max_checks in (0, 4, 32):
        sampler = RejectionSampler(max_checks=max_checks)
        for _ in range(200):
            matcher.accepts_calls = matcher.mask_calls = 0
            got = sampler.sample(logits, matcher, rng)
            assert got.checks == matcher.accepts_calls <= max_checks
            assert matcher.mask_calls == int(got.mask_fallback)


def test_without_weight_skips_the_second_run() -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = _refusing_logits(matcher, 3, shift=1.0)
    params = SamplingParams()
    target, _ = _target(logits, matcher.mask(), params)
    with_w = _draw(RejectionSampler(params), logits, matcher, 2000, seed=2)
    without = _draw(RejectionSampler(params, estimate_weight=False), logits, matcher, 2000, seed=2)
    assert all(math.isnan(r.log_weight) for r in without)
    assert_distribution(np.array([r.token_id for r in without]), target)
    assert sum(r.checks for r in without) < sum(r.checks for r in with_w)


def test_eos_is_an_ordinary_candidate() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    matcher.advance(VOCAB.token_bytes.index(b"c"))
    logits = random_logits(VOCAB, 10)
    results = _draw(RejectionSampler(), logits, matcher, 500, seed=0)
    assert all(r.token_id == 0 for r in results)
    assert_mean(np.exp([r.log_weight for r in results]), float(filtered_probs(logits)[0]))


def test_wider_and_narrower_logits() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    allowed = np.flatnonzero(matcher.mask())
    rng = np.random.default_rng(0)
    wide = np.concatenate([random_logits(VOCAB, 5), np.full(50, 100.0, dtype=np.float32)])
    assert RejectionSampler().sample(wide, matcher, rng).token_id in allowed
    narrow = random_logits(VOCAB, 6)[: int(allowed[2])]
    for _ in range(50):
        assert RejectionSampler().sample(narrow, matcher, rng).token_id in allowed[:2]
    with pytest.raises(NoAllowedTokenError):
        RejectionSampler().sample(narrow[: int(allowed[0])], matcher, rng)
    with pytest.raises(ValueError, match="NaN"):
        RejectionSampler().sample(np.full(VOCAB.size, np.nan, dtype=np.float32), matcher, rng)
    with pytest.raises(ValueError, match="max_checks"):
        RejectionSampler(max_checks=-1)


def test_peaked_model_keeps_precision() -> None:
    # A refused token holds all but ~1e-30 of the mass: the rebuild keeps the rest representable.
    matcher = abc_constraint(VOCAB).matcher()
    logits = np.full(VOCAB.size, -1e4, dtype=np.float32)
    x = VOCAB.token_bytes.index(b"x")
    a, c = VOCAB.token_bytes.index(b"a"), VOCAB.token_bytes.index(b"c")
    logits[[x, a, c]] = [70.0, 0.0, math.log(3.0)]
    results = _draw(RejectionSampler(), logits, matcher, 2000, seed=4)
    tokens = np.array([r.token_id for r in results])
    assert set(tokens.tolist()) == {a, c}
    assert abs((tokens == c).mean() - 0.75) < 0.05
    # Almost surely the run refuses x, then accepts; the weight run accepts at once: n = 1 and
    # Z_hat = (1 - q(x)) / 2 = Z / 2, whose numerator is ~1e-30 and must not be computed as 1 - q(x).
    # (The rare first-draw acceptance, probability Z, carries the other half of E[Z_hat].)
    expected = math.log(4.0) - 70.0 - math.log(2.0)
    assert all(r.log_weight == pytest.approx(expected, abs=1e-6) for r in results)
