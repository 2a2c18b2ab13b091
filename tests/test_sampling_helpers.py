"""Shared fixtures for the sampler tests: a toy vocabulary, a toy DFA automaton and exact distributions.

The toy automaton is a byte DFA written out by hand, an oracle independent of the regex compiler
(the tests check that both give the same masks); most tests use ``compile_regex`` because its
masks are computed by numba and keep the statistical tests fast.
"""

from __future__ import annotations

import itertools

import numpy as np

from structgen.bitmask import set_token_bit
from structgen.compilers.regex import compile_regex
from structgen.matcher import Automaton, Constraint
from structgen.vocabulary import Vocabulary


class ToyDFAAutomaton(Automaton):
    """Token automaton over a hand-written byte DFA: ``delta[state][byte] -> state``.

    ``live`` states are those from which an accepting state is reachable; a token is allowed when
    every byte has a transition (the DFA given is already trimmed to live states).
    """

    def __init__(self, vocab: Vocabulary, delta: dict[int, dict[int, int]], accepting: set[int]) -> None:
        self.vocab = vocab
        self.delta = delta
        self.accepting = accepting

    def initial_state(self) -> int:
        return 0

    def next_state(self, state: int, token_id: int) -> int | None:
        data = self.vocab.token_bytes[token_id]
        for byte in data:
            state = self.delta.get(state, {}).get(byte)
            if state is None:
                return None
        return state

    def fill_token_bitmask(self, state: int, row: np.ndarray) -> None:
        for token_id in range(self.vocab.size):
            if self.vocab.is_text_token(token_id) and self.next_state(state, token_id) is not None:
                set_token_bit(row, token_id)

    def is_accepting(self, state: int) -> bool:
        return state in self.accepting

    def can_continue(self, state: int) -> bool:
        return bool(self.delta.get(state))


def toy_vocab(n_extra_special: int = 3) -> Vocabulary:
    """A vocabulary of ~300 tokens: every 1- and 2-byte string over ``abc`` plus digits and words.

    Id 0 is EOS, then some special ids, then text tokens; one empty token checks that empty
    tokens are never allowed.
    """
    tokens: list[bytes | None] = [None] * (1 + n_extra_special)
    alphabet = b"abcxyz0123456789 "
    for length in (1, 2):
        for combo in itertools.product(alphabet, repeat=length):
            tokens.append(bytes(combo))
    tokens.append(b"")
    return Vocabulary.from_token_bytes(tokens, [0], name="toy")


def toy_abc_constraint(vocab: Vocabulary) -> Constraint:
    """The language ``[ab]*c`` as a toy DFA: state 0 loops on a/b, c goes to accepting state 1."""
    delta = {0: {ord("a"): 0, ord("b"): 0, ord("c"): 1}, 1: {}}
    return Constraint(ToyDFAAutomaton(vocab, delta, {1}), source="[ab]*c")


def toy_digits_constraint(vocab: Vocabulary) -> Constraint:
    """The language ``[0-9]{1,3}``: states count the digits so far."""
    digits = {d: None for d in b"0123456789"}
    delta = {s: dict.fromkeys(digits, s + 1) for s in range(3)}
    delta[3] = {}
    return Constraint(ToyDFAAutomaton(vocab, delta, {1, 2, 3}), source="[0-9]{1,3}")


def abc_constraint(vocab: Vocabulary) -> Constraint:
    """``[ab]*c`` compiled by the regex compiler."""
    return compile_regex("[ab]*c", vocab)


def digits_constraint(vocab: Vocabulary) -> Constraint:
    """``[0-9]{1,3}`` compiled by the regex compiler."""
    return compile_regex("[0-9]{1,3}", vocab)


def random_logits(vocab: Vocabulary, seed: int, scale: float = 3.0) -> np.ndarray:
    """Fixed float32 logits over the vocabulary."""
    return (np.random.default_rng(seed).normal(size=vocab.size) * scale).astype(np.float32)


def exact_constrained(
    logits: np.ndarray, allowed: np.ndarray, temperature: float = 1.0
) -> tuple[np.ndarray, float]:
    """The exact constrained distribution and the allowed mass, from dense logits and a bool mask."""
    scores = logits.astype(np.float64) / temperature
    p = np.exp(scores - scores.max())
    p /= p.sum()
    mass = float(p[allowed].sum())
    target = np.where(allowed, p, 0.0) / mass
    return target, mass


def chi2_quantile(dof: int, z: float = 3.719) -> float:
    """Upper quantile of chi-squared with ``dof`` degrees of freedom (Wilson-Hilferty).

    The default ``z`` is the standard normal's 0.9999 quantile: a correct sampler fails a test
    at a fixed seed with probability 1e-4, which the fixed seed then makes deterministic.
    """
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * c**0.5) ** 3


def chi2_statistic(samples: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic of integer ``samples`` against ``probs``, pooling bins expected < 5.

    Samples outside the support of ``probs`` make the statistic infinite.
    """
    n = len(samples)
    counts = np.bincount(samples, minlength=len(probs)).astype(np.float64)
    if counts[probs == 0].sum() > 0:
        return float("inf"), 1
    expected = probs * n
    big = expected >= 5
    obs = list(counts[big])
    exp = list(expected[big])
    if (~big & (probs > 0)).any():
        obs.append(counts[~big].sum())
        exp.append(expected[~big].sum())
    obs_a, exp_a = np.array(obs), np.array(exp)
    return float(((obs_a - exp_a) ** 2 / exp_a).sum()), max(len(obs) - 1, 1)


def assert_distribution(samples: np.ndarray, probs: np.ndarray) -> None:
    """Chi-squared goodness of fit at the 1e-4 level."""
    stat, dof = chi2_statistic(np.asarray(samples), probs)
    assert stat < chi2_quantile(dof), f"chi2 {stat:.1f} with {dof} dof"


def assert_mean(values: np.ndarray, expected: float, z: float = 4.0) -> None:
    """The sample mean is within ``z`` standard errors of ``expected``."""
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - expected) <= z * se + 1e-12, (values.mean(), expected, se)


def filtered_probs(
    logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> np.ndarray:
    """The proposal by a direct full sort: temperature, then top-k, then top-p (ties kept)."""
    scores = logits.astype(np.float64) / temperature
    p = np.exp(scores - scores.max())
    p /= p.sum()
    if top_k:
        kth = np.sort(scores)[::-1][top_k - 1]
        p = np.where(scores >= kth, p, 0.0)
        p /= p.sum()
    if top_p < 1:
        order = np.sort(p)[::-1]
        cut = order[np.searchsorted(np.cumsum(order), top_p * p.sum())]
        p = np.where(p >= cut, p, 0.0)
        p /= p.sum()
    return p
