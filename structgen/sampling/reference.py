"""Plain-Python reference implementations of the kernels in :mod:`structgen.sampling.kernels`.

Each function has the same signature and result as its kernel but is written for clarity (full
sorts, Python loops, ``math``), so the tests can check the kernels against it. Also holds
:func:`awrs_reference`, a direct transcription of adaptive weighted rejection sampling over explicit
probabilities, used by the tests as an independent oracle for the sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from structgen.sampling.kernels import STATUS_NAN, STATUS_OK, STATUS_POS_INF


def _allowed(bitmask: np.ndarray, token: int) -> bool:
    return bool((int(bitmask[token >> 5]) >> (token & 31)) & 1)


def tempered_scores(logits: np.ndarray, inv_temp: float, out: np.ndarray) -> int:
    """Reference of :func:`kernels.tempered_scores`."""
    n = min(len(logits), len(out))
    for i in range(n):
        x = float(logits[i])
        if math.isnan(x):
            return STATUS_NAN
        if x == math.inf:
            return STATUS_POS_INF
        out[i] = x * inv_temp
    out[n:] = -math.inf
    return STATUS_OK


def apply_top_k(scores: np.ndarray, k: int) -> None:
    """Reference of :func:`kernels.apply_top_k` (full sort)."""
    finite = sorted((float(s) for s in scores if s > -math.inf), reverse=True)
    if k <= 0 or len(finite) <= k:
        return
    threshold = finite[k - 1]
    for i in range(len(scores)):
        if scores[i] < threshold:
            scores[i] = -math.inf


def top_p_threshold(scores: np.ndarray, top_p: float) -> float:
    """Reference of :func:`kernels.top_p_threshold` (full sort)."""
    finite = [float(s) for s in scores if s > -math.inf]
    if not finite or top_p >= 1.0:
        return -math.inf
    best = max(finite)
    total = 0.0
    for s in finite:
        total += math.exp(s - best)
    target = top_p * total
    cumulative = 0.0
    for s in sorted(finite, reverse=True):
        cumulative += math.exp(s - best)
        if cumulative >= target:
            return s
    return -math.inf


def apply_threshold(scores: np.ndarray, threshold: float) -> None:
    """Reference of :func:`kernels.apply_threshold`."""
    for i in range(len(scores)):
        if scores[i] < threshold:
            scores[i] = -math.inf


def log_sum_exp(scores: np.ndarray) -> float:
    """Reference of :func:`kernels.log_sum_exp`."""
    finite = [float(s) for s in scores if s > -math.inf]
    if not finite:
        return -math.inf
    best = max(finite)
    total = 0.0
    for s in finite:
        total += math.exp(s - best)
    return best + math.log(total)


def masked_distribution(
    scores: np.ndarray, bitmask: np.ndarray, ids_out: np.ndarray, cumulative_out: np.ndarray
) -> tuple[int, float, float]:
    """Reference of :func:`kernels.masked_distribution`."""
    finite = [i for i in range(len(scores)) if scores[i] > -math.inf]
    if not finite:
        return 0, -math.inf, -math.inf
    best = max(float(scores[i]) for i in finite)
    allowed = [i for i in finite if _allowed(bitmask, i)]
    other = 0.0
    for i in finite:
        if not _allowed(bitmask, i):
            other += math.exp(scores[i] - best)
    if not allowed:
        return 0, -math.inf, best + math.log(other)
    best_allowed = max(float(scores[i]) for i in allowed)
    running = 0.0
    for k, i in enumerate(allowed):
        running += math.exp(scores[i] - best_allowed)
        ids_out[k] = i
        cumulative_out[k] = running
    total = other + running * math.exp(best_allowed - best)
    return len(allowed), best_allowed + math.log(running), best + math.log(total)


def pick_cumulative(cumulative: np.ndarray, n: int, u: float) -> int:
    """Reference of :func:`kernels.pick_cumulative` (linear search)."""
    x = u * cumulative[n - 1]
    return next((j for j in range(n) if cumulative[j] > x), n - 1)


def masked_sample(scores: np.ndarray, bitmask: np.ndarray, u: float) -> tuple[int, float]:
    """Reference of :func:`kernels.masked_sample`."""
    ids = np.empty(len(scores), dtype=np.int64)
    cumulative = np.empty(len(scores))
    k, log_allowed, _ = masked_distribution(scores, bitmask, ids, cumulative)
    if k == 0:
        return -1, -math.inf
    return int(ids[pick_cumulative(cumulative, k, u)]), log_allowed


def masked_argmax(logits: np.ndarray, size: int, bitmask: np.ndarray) -> tuple[int, int, int]:
    """Reference of :func:`kernels.masked_argmax`."""
    n = min(len(logits), size)
    values = [float(x) for x in logits[:n]]
    if any(math.isnan(x) for x in values):
        return -1, -1, STATUS_NAN
    if any(x == math.inf for x in values):
        return -1, -1, STATUS_POS_INF
    finite = [i for i in range(n) if values[i] > -math.inf]
    allowed = [i for i in finite if _allowed(bitmask, i)]
    # min over (-value, id) picks the highest value, then the lowest id.
    best_overall = min(finite, key=lambda i: (-values[i], i)) if finite else -1
    best_allowed = min(allowed, key=lambda i: (-values[i], i)) if allowed else -1
    return best_allowed, best_overall, STATUS_OK


def support_cumulative(
    scores: np.ndarray,
    candidate: np.ndarray,
    ids_out: np.ndarray,
    values_out: np.ndarray,
    weights_out: np.ndarray,
    cumulative_out: np.ndarray,
) -> tuple[int, float, float]:
    """Reference of :func:`kernels.support_cumulative`."""
    finite = [i for i in range(len(scores)) if scores[i] > -math.inf]
    if not finite:
        return 0, -math.inf, -math.inf
    best = max(float(scores[i]) for i in finite)
    total = 0.0
    running = 0.0
    m = 0
    for i in finite:
        e = math.exp(scores[i] - best)
        total += e
        if candidate[i]:
            running += e
            ids_out[m], values_out[m], weights_out[m], cumulative_out[m] = i, scores[i], e, running
            m += 1
    return m, best, best + math.log(total)


def build_cumulative(
    values: np.ndarray, removed: np.ndarray, weights: np.ndarray, cumulative: np.ndarray
) -> float:
    """Reference of :func:`kernels.build_cumulative`."""
    left = [float(values[i]) for i in range(len(values)) if not removed[i]]
    ref = max(left) if left else -math.inf
    total = 0.0
    for i in range(len(values)):
        weights[i] = 0.0 if removed[i] or ref == -math.inf else math.exp(values[i] - ref)
        total += weights[i]
        cumulative[i] = total
    return ref


def draw_candidate(
    weights: np.ndarray,
    cumulative: np.ndarray,
    removed: np.ndarray,
    shift: np.ndarray,
    n_shift: int,
    remaining: float,
    u: float,
) -> int:
    """Reference of :func:`kernels.draw_candidate` (same arithmetic, linear search)."""
    m = len(weights)
    if m == 0:
        return -1
    x = u * remaining
    for r in shift[:n_shift]:
        start = cumulative[r - 1] if r > 0 else 0.0
        if start > x:
            break
        x += weights[r]
    found = next((i for i in range(m) if cumulative[i] > x), m - 1)
    for pos in list(range(found, m)) + list(range(found, -1, -1)):
        if not removed[pos] and weights[pos] != 0.0:
            return pos
    return -1


def bits_at(bitmask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Reference of :func:`kernels.bits_at`."""
    return np.array([_allowed(bitmask, int(i)) for i in ids], dtype=bool)


def split_cumulative(
    weights: np.ndarray,
    excluded: np.ndarray,
    allowed: np.ndarray,
    cumulative_allowed: np.ndarray,
    cumulative_refused: np.ndarray,
) -> tuple[float, float]:
    """Reference of :func:`kernels.split_cumulative`."""
    a = d = 0.0
    for i in range(len(weights)):
        if not excluded[i]:
            if allowed[i]:
                a += weights[i]
            else:
                d += weights[i]
        cumulative_allowed[i], cumulative_refused[i] = a, d
    return a, d


def pick_interval(cumulative: np.ndarray, u: float) -> int:
    """Reference of :func:`kernels.pick_interval`."""
    x = u * cumulative[-1]
    j = next((k for k in range(len(cumulative)) if cumulative[k] > x), len(cumulative) - 1)
    while j > 0 and cumulative[j] == cumulative[j - 1]:
        j -= 1
    return j


def mark_events(cumulative_refused: np.ndarray, excluded: np.ndarray, uniforms: np.ndarray) -> int:
    """Reference of :func:`kernels.mark_events`."""
    hit = 0
    for u in uniforms:
        j = pick_interval(cumulative_refused, u)
        if not excluded[j]:
            excluded[j] = True
            hit += 1
    return hit


def mark_bernoulli(
    weights: np.ndarray, excluded: np.ndarray, allowed: np.ndarray, scale: float, uniforms: np.ndarray
) -> int:
    """Reference of :func:`kernels.mark_bernoulli`."""
    hit = 0
    for i in range(len(weights)):
        if not excluded[i] and not allowed[i] and uniforms[i] < -math.expm1(-weights[i] * scale):
            excluded[i] = True
            hit += 1
    return hit


def sum_weights(weights: np.ndarray, excluded: np.ndarray) -> float:
    """Reference of :func:`kernels.sum_weights`."""
    total = 0.0
    for w, e in zip(weights, excluded, strict=True):
        if not e:
            total += w
    return total


def gumbel_rejection_run(
    values: np.ndarray, excluded: np.ndarray, allowed: np.ndarray, uniforms: np.ndarray
) -> tuple[int, int]:
    """An independent oracle for the sampler's simulated run: walk the whole Gumbel order.

    Sorting the positions not excluded by ``values - log(-log(u))`` gives a draw without
    replacement proportional to ``exp(values)``; the run stops at the first allowed position and
    refuses (marks excluded) every position before it. Returns ``(accepted, n_refused)``.
    """
    keys = {
        i: float(values[i]) - math.log(-math.log(uniforms[i])) for i in range(len(values)) if not excluded[i]
    }
    n_refused = 0
    for i in sorted(keys, key=lambda i: -keys[i]):
        if allowed[i]:
            return i, n_refused
        excluded[i] = True
        n_refused += 1
    return -1, n_refused


def top_order(logits: np.ndarray, size: int, k: int) -> np.ndarray:
    """Reference of :func:`kernels.top_order` (full sort)."""
    n = min(len(logits), size)
    finite = [i for i in range(n) if logits[i] > -math.inf]
    return np.array(sorted(finite, key=lambda i: (-float(logits[i]), i))[:k], dtype=np.int64)


def awrs_reference(
    probs: np.ndarray, accepts: Callable[[int], bool], rng: np.random.Generator
) -> tuple[int, float, int]:
    """Adaptive weighted rejection sampling over explicit probabilities, written as directly as possible.

    Run 1 draws tokens without replacement (renormalizing after each refusal) until one is
    accepted: that token is the sample. Run 2 starts again from the distribution with run 1's
    refusals removed and draws until a token is accepted, removing its own refusals. With
    ``R1`` the tokens refused in run 1 and ``n`` all refusals of both runs, the weight
    ``(1 - p(R1)) / (n + 1)`` is an unbiased estimate of the allowed mass (Lipkin et al. 2025).
    Returns ``(token, weight, checks)``; ``(-1, 0.0, checks)`` if nothing is allowed.
    """
    p = np.array(probs, dtype=np.float64)
    known: dict[int, bool] = {}
    checks = 0

    def check(token: int) -> bool:
        nonlocal checks
        if token not in known:
            checks += 1
            known[token] = accepts(token)
        return known[token]

    removed = np.zeros(len(p), dtype=bool)
    sample = -1
    n_rejected = 0
    mass_left_after_run1 = 0.0
    for run in range(2):
        while True:
            w = np.where(removed, 0.0, p)
            if w.sum() <= 0:
                return -1, 0.0, checks
            token = int(rng.choice(len(p), p=w / w.sum()))
            if check(token):
                break
            removed[token] = True
            n_rejected += 1
        if run == 0:
            sample = token
            mass_left_after_run1 = float(p[~removed].sum())
    return sample, mass_left_after_run1 / (n_rejected + 1), checks


def systematic_resample(weights: np.ndarray, u: float) -> np.ndarray:
    """Reference of :func:`kernels.systematic_resample`."""
    n = len(weights)
    cumulative = np.cumsum(weights)
    out = []
    for i in range(n):
        point = (i + u) / n
        j = next((k for k in range(n) if cumulative[k] > point), n - 1)
        while weights[j] == 0.0 and j > 0:
            j -= 1
        out.append(j)
    return np.array(out, dtype=np.int64)


def multinomial_resample(weights: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Reference of :func:`kernels.multinomial_resample`."""
    n = len(weights)
    cumulative = np.cumsum(weights)
    out = []
    for u in uniforms:
        point = u * cumulative[-1]
        j = next((k for k in range(n) if cumulative[k] > point), n - 1)
        while weights[j] == 0.0 and j < n - 1:
            j += 1
        while weights[j] == 0.0 and j > 0:
            j -= 1
        out.append(j)
    return np.array(out, dtype=np.int64)
