"""numba kernels shared by the samplers.

Every kernel is a small pure function over numpy arrays; :mod:`structgen.sampling.reference` holds
a plain-Python twin of each one that the tests compare against. Random numbers are drawn by the
caller (``numpy.random.Generator``) and passed in, so a kernel's output is a deterministic function
of its inputs.

Conventions. ``scores`` are float64 log-weights (logits divided by the temperature) of length
``vocab.size``; ``-inf`` marks a token outside the proposal's support (filtered out by top-k/top-p,
or with no logit). Bitmasks use the int32 layout of :mod:`structgen.bitmask`. Ties between equal
scores are always broken towards the lower token id.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Status codes of tempered_scores / masked_argmax.
STATUS_OK = 0
STATUS_NAN = 1
STATUS_POS_INF = 2


@njit(cache=True)
def tempered_scores(logits: np.ndarray, inv_temp: float, out: np.ndarray) -> int:
    """Fill ``out`` (length ``V``) with ``logits * inv_temp`` in float64; ids past the logits get -inf.

    Logits wider than ``out`` are cut: their extra columns are not tokens of the vocabulary.
    Returns ``STATUS_NAN`` / ``STATUS_POS_INF`` when a logit is NaN / +inf (``out`` is then
    unspecified), ``STATUS_OK`` otherwise.
    """
    n = min(logits.shape[0], out.shape[0])
    for i in range(n):
        x = np.float64(logits[i])
        if np.isnan(x):
            return STATUS_NAN
        if x == np.inf:
            return STATUS_POS_INF
        out[i] = x * inv_temp
    for i in range(n, out.shape[0]):
        out[i] = -np.inf
    return STATUS_OK


@njit(cache=True)
def apply_top_k(scores: np.ndarray, k: int) -> None:
    """Keep the ``k`` highest finite scores (plus ties with the k-th), set the others to -inf."""
    count = 0
    for i in range(scores.shape[0]):
        if scores[i] > -np.inf:
            count += 1
    if k <= 0 or count <= k:
        return
    finite = np.empty(count, dtype=np.float64)
    j = 0
    for i in range(scores.shape[0]):
        if scores[i] > -np.inf:
            finite[j] = scores[i]
            j += 1
    threshold = np.partition(finite, count - k)[count - k]
    for i in range(scores.shape[0]):
        if scores[i] < threshold:
            scores[i] = -np.inf


# Nucleus search histogram: bins of 1/64 nat below the best score, plus one bin for the tail.
_TOP_P_BINS = 4096
_TOP_P_SPAN = 64.0


@njit(cache=True)
def _top_p_bin(best: float, value: float) -> int:
    b = (best - value) * (_TOP_P_BINS / _TOP_P_SPAN)
    return _TOP_P_BINS if b >= _TOP_P_BINS else int(b)


@njit(cache=True)
def top_p_threshold(scores: np.ndarray, top_p: float) -> float:
    """The smallest score kept by nucleus filtering at ``top_p``.

    Kept tokens are the shortest prefix of the tokens sorted by decreasing probability whose mass
    reaches ``top_p`` of the (finite) total, extended to every token tied with its last element.
    No full sort: one pass with the ``exp`` histograms the mass by score (bins of 1/64 nat below
    the best score, the last bin holding the tail), the bins are scanned from the top to the one
    where the mass crosses the target, and only that bin's tokens are sorted.
    Returns -inf when every finite token is kept (or none is finite).
    """
    best = -np.inf
    for i in range(scores.shape[0]):
        if scores[i] > best:
            best = scores[i]
    if best == -np.inf or top_p >= 1.0:
        return -np.inf
    mass = np.zeros(_TOP_P_BINS + 1, dtype=np.float64)
    total = 0.0
    for i in range(scores.shape[0]):
        s = scores[i]
        if s > -np.inf:
            e = np.exp(s - best)
            total += e
            mass[_top_p_bin(best, s)] += e
    target = top_p * total
    above = 0.0
    crossing = -1
    for b in range(_TOP_P_BINS + 1):
        if above + mass[b] >= target:
            crossing = b
            break
        above += mass[b]
    if crossing < 0:
        return -np.inf  # rounding kept the sum just below the target: keep everything
    n = 0
    for i in range(scores.shape[0]):
        if scores[i] > -np.inf and _top_p_bin(best, scores[i]) == crossing:
            n += 1
    inside = np.empty(n, dtype=np.float64)
    n = 0
    for i in range(scores.shape[0]):
        if scores[i] > -np.inf and _top_p_bin(best, scores[i]) == crossing:
            inside[n] = scores[i]
            n += 1
    inside = np.sort(inside)[::-1]
    for k in range(n):
        above += np.exp(inside[k] - best)
        if above >= target:
            return inside[k]
    return inside[n - 1]


@njit(cache=True)
def apply_threshold(scores: np.ndarray, threshold: float) -> None:
    """Set every score below ``threshold`` to -inf."""
    for i in range(scores.shape[0]):
        if scores[i] < threshold:
            scores[i] = -np.inf


@njit(cache=True)
def log_sum_exp(scores: np.ndarray) -> float:
    """``log(sum(exp(scores)))`` over the finite scores; -inf when there are none."""
    best = -np.inf
    for i in range(scores.shape[0]):
        if scores[i] > best:
            best = scores[i]
    if best == -np.inf:
        return -np.inf
    total = 0.0
    for i in range(scores.shape[0]):
        if scores[i] > -np.inf:
            total += np.exp(scores[i] - best)
    return best + np.log(total)


@njit(cache=True)
def _bit(bitmask: np.ndarray, token: int) -> bool:
    return (bitmask[token >> 5] >> (token & 31)) & 1 == 1


@njit(cache=True)
def masked_distribution(
    scores: np.ndarray, bitmask: np.ndarray, ids_out: np.ndarray, cumulative_out: np.ndarray
) -> tuple[int, float, float]:
    """The proposal restricted to the allowed tokens, with one ``exp`` per finite score.

    Writes the allowed ids with a finite score (ascending) to ``ids_out`` and the running sum of
    their weights ``exp(score - best_allowed)`` to ``cumulative_out``. Returns ``(n_allowed,
    log_allowed, log_total)``: the logs of the allowed mass and of the whole finite mass. Each
    sum has its own reference point, so a tiny allowed mass is not lost next to a large total.
    """
    n = scores.shape[0]
    best = -np.inf
    best_allowed = -np.inf
    for i in range(n):
        s = scores[i]
        if s > best:
            best = s
        if s > best_allowed and _bit(bitmask, i):
            best_allowed = s
    if best == -np.inf:
        return 0, -np.inf, -np.inf
    other = 0.0
    allowed = 0.0
    k = 0
    for i in range(n):
        s = scores[i]
        if s == -np.inf:
            continue
        if _bit(bitmask, i):
            allowed += np.exp(s - best_allowed)
            ids_out[k] = i
            cumulative_out[k] = allowed
            k += 1
        else:
            other += np.exp(s - best)
    if k == 0:
        return 0, -np.inf, best + np.log(other)
    total = other + allowed * np.exp(best_allowed - best)
    return k, best_allowed + np.log(allowed), best + np.log(total)


@njit(cache=True)
def pick_cumulative(cumulative: np.ndarray, n: int, u: float) -> int:
    """Inverse CDF: the first index ``j < n`` with ``cumulative[j] > u * cumulative[n - 1]``."""
    x = u * cumulative[n - 1]
    lo = 0
    hi = n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def masked_sample(scores: np.ndarray, bitmask: np.ndarray, u: float) -> tuple[int, float]:
    """Sample from ``exp(scores)`` restricted to the allowed tokens, by inverse CDF at ``u`` in [0, 1).

    Returns ``(token, log_mass)`` where ``log_mass`` is the log of the allowed unnormalized mass
    ``sum(exp(scores[allowed]))``; ``(-1, -inf)`` when no allowed token has a finite score.
    """
    ids = np.empty(scores.shape[0], dtype=np.int64)
    cumulative = np.empty(scores.shape[0], dtype=np.float64)
    k, log_allowed, _ = masked_distribution(scores, bitmask, ids, cumulative)
    if k == 0:
        return -1, -np.inf
    return ids[pick_cumulative(cumulative, k, u)], log_allowed


@njit(cache=True)
def masked_argmax(logits: np.ndarray, size: int, bitmask: np.ndarray) -> tuple[int, int, int]:
    """Greedy choice: ``(best_allowed, best_overall, status)`` over ids ``< min(len(logits), size)``.

    ``best_allowed`` is the allowed id with the highest logit (-1 if every allowed logit is -inf),
    ``best_overall`` the id with the highest logit regardless of the mask (-1 if all are -inf).
    Ties go to the lowest id. ``status`` is ``STATUS_NAN``/``STATUS_POS_INF`` on bad logits.
    """
    n = min(logits.shape[0], size)
    best_allowed = -1
    best_allowed_value = -np.inf
    best_overall = -1
    best_overall_value = -np.inf
    for i in range(n):
        x = np.float64(logits[i])
        if np.isnan(x):
            return -1, -1, STATUS_NAN
        if x == np.inf:
            return -1, -1, STATUS_POS_INF
        if x > best_overall_value:
            best_overall_value = x
            best_overall = i
        if x > best_allowed_value and _bit(bitmask, i):
            best_allowed_value = x
            best_allowed = i
    return best_allowed, best_overall, STATUS_OK


@njit(cache=True)
def support_cumulative(
    scores: np.ndarray,
    candidate: np.ndarray,
    ids_out: np.ndarray,
    values_out: np.ndarray,
    weights_out: np.ndarray,
    cumulative_out: np.ndarray,
) -> tuple[int, float, float]:
    """The support of the proposal among the candidate tokens, in one ``exp`` pass.

    Writes the candidate ids with a finite score (ascending), their scores, their weights
    ``exp(score - best)`` (``best`` the maximum finite score, candidate or not) and the running
    sum of those weights. Returns ``(m, best, log_total)`` with ``log_total`` the log of the whole
    finite mass (non-candidates included).
    """
    best = -np.inf
    for i in range(scores.shape[0]):
        if scores[i] > best:
            best = scores[i]
    if best == -np.inf:
        return 0, -np.inf, -np.inf
    total = 0.0
    running = 0.0
    m = 0
    for i in range(scores.shape[0]):
        s = scores[i]
        if s == -np.inf:
            continue
        e = np.exp(s - best)
        total += e
        if candidate[i]:
            ids_out[m] = i
            values_out[m] = s
            weights_out[m] = e
            running += e
            cumulative_out[m] = running
            m += 1
    return m, best, best + np.log(total)


@njit(cache=True)
def build_cumulative(
    values: np.ndarray, removed: np.ndarray, weights: np.ndarray, cumulative: np.ndarray
) -> float:
    """Weights ``exp(values - max)`` of the positions not removed (0 for removed ones) and their cumsum.

    The reference point is the maximum over the positions left, so the weights stay representable
    however much mass was removed before. Returns that reference point (-inf if nothing is left).
    """
    m = values.shape[0]
    ref = -np.inf
    for i in range(m):
        if not removed[i] and values[i] > ref:
            ref = values[i]
    total = 0.0
    for i in range(m):
        if removed[i] or ref == -np.inf:
            weights[i] = 0.0
        else:
            weights[i] = np.exp(values[i] - ref)
        total += weights[i]
        cumulative[i] = total
    return ref


@njit(cache=True)
def draw_candidate(
    weights: np.ndarray,
    cumulative: np.ndarray,
    removed: np.ndarray,
    shift: np.ndarray,
    n_shift: int,
    remaining: float,
    u: float,
) -> int:
    """Draw a position with probability proportional to ``weights`` among those not removed.

    ``cumulative`` is the cumsum of ``weights`` when it was built; ``shift[:n_shift]`` (ascending)
    are the positions removed since then, whose weights are still counted in ``cumulative``;
    ``remaining`` is the mass left. The uniform ``u`` in [0, 1) is mapped to ``u * remaining`` in
    the space with the removed intervals collapsed, then back to the original axis by stepping
    over each removed interval that starts at or before it; a binary search finds the position.
    Returns -1 when nothing is left.
    """
    m = weights.shape[0]
    x = u * remaining
    for j in range(n_shift):
        r = shift[j]
        start = cumulative[r - 1] if r > 0 else 0.0
        if start <= x:
            x += weights[r]
        else:
            break
    lo = 0
    hi = m - 1
    if m == 0:
        return -1
    if x >= cumulative[m - 1]:
        lo = m - 1
    else:
        while lo < hi:
            mid = (lo + hi) // 2
            if cumulative[mid] > x:
                hi = mid
            else:
                lo = mid + 1
    # Rounding can land on a removed or zero-weight position: take the nearest valid one.
    pos = lo
    while pos < m and (removed[pos] or weights[pos] == 0.0):
        pos += 1
    if pos < m:
        return pos
    pos = lo
    while pos >= 0 and (removed[pos] or weights[pos] == 0.0):
        pos -= 1
    return pos


@njit(cache=True)
def bits_at(bitmask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether each id in ``ids`` is set in the bitmask row."""
    out = np.empty(ids.shape[0], dtype=np.bool_)
    for j in range(ids.shape[0]):
        out[j] = _bit(bitmask, ids[j])
    return out


@njit(cache=True)
def split_cumulative(
    weights: np.ndarray,
    excluded: np.ndarray,
    allowed: np.ndarray,
    cumulative_allowed: np.ndarray,
    cumulative_refused: np.ndarray,
) -> tuple[float, float]:
    """Running sums of the weights of the allowed and of the refused positions not excluded.

    Positions outside a class (or excluded) add nothing, so they have a zero-width interval in
    that class's sums. Returns the two totals ``(allowed_mass, refused_mass)``.
    """
    a = 0.0
    d = 0.0
    for i in range(weights.shape[0]):
        if not excluded[i]:
            if allowed[i]:
                a += weights[i]
            else:
                d += weights[i]
        cumulative_allowed[i] = a
        cumulative_refused[i] = d
    return a, d


@njit(cache=True)
def pick_interval(cumulative: np.ndarray, u: float) -> int:
    """Inverse CDF over running sums with zero-width entries: the position whose interval holds
    ``u * total``; never a zero-width position (rounding at the top steps back to the last one)."""
    m = cumulative.shape[0]
    j = pick_cumulative(cumulative, m, u)
    while j > 0 and cumulative[j] == cumulative[j - 1]:
        j -= 1
    return j


@njit(cache=True)
def mark_events(cumulative_refused: np.ndarray, excluded: np.ndarray, uniforms: np.ndarray) -> int:
    """Assign one Poisson event per uniform to a refused position (proportionally to its weight)
    and exclude every position hit; returns how many distinct positions were hit."""
    hit = 0
    for k in range(uniforms.shape[0]):
        j = pick_interval(cumulative_refused, uniforms[k])
        if not excluded[j]:
            excluded[j] = True
            hit += 1
    return hit


@njit(cache=True)
def mark_bernoulli(
    weights: np.ndarray, excluded: np.ndarray, allowed: np.ndarray, scale: float, uniforms: np.ndarray
) -> int:
    """Exclude each refused position not excluded with probability ``1 - exp(-weight * scale)``
    (decided by its uniform); returns how many were excluded."""
    hit = 0
    for i in range(weights.shape[0]):
        if excluded[i] or allowed[i]:
            continue
        x = weights[i] * scale
        # Past 40, 1 - exp(-x) rounds to exactly 1.0: skip the transcendental.
        if x > 40.0 or uniforms[i] < -np.expm1(-x):
            excluded[i] = True
            hit += 1
    return hit


@njit(cache=True)
def sum_weights(weights: np.ndarray, excluded: np.ndarray) -> float:
    """Sum of the weights of the positions not excluded."""
    total = 0.0
    for i in range(weights.shape[0]):
        if not excluded[i]:
            total += weights[i]
    return total


@njit(cache=True)
def top_order(logits: np.ndarray, size: int, k: int) -> np.ndarray:
    """The first ``k`` ids ``< min(len(logits), size)`` in decreasing-logit order, ties by increasing id.

    Ids with a -inf (or NaN) logit are left out. One pass keeping a sorted buffer of the best
    ``k``: after the first few thousand ids a new id rarely enters it, so this costs about one
    comparison per id instead of a sort.
    """
    n = min(logits.shape[0], size)
    values = np.empty(k, dtype=np.float64)
    ids = np.empty(k, dtype=np.int64)
    count = 0
    for i in range(n):
        x = np.float64(logits[i])
        if not x > -np.inf:
            continue
        if count == k and not x > values[k - 1]:
            continue
        # Ids arrive in increasing order, so an equal value already kept ranks first.
        pos = count if count < k else k - 1
        while pos > 0 and values[pos - 1] < x:
            pos -= 1
        last = count if count < k else k - 1
        for j in range(last, pos, -1):
            values[j] = values[j - 1]
            ids[j] = ids[j - 1]
        values[pos] = x
        ids[pos] = i
        if count < k:
            count += 1
    return ids[:count].copy()


@njit(cache=True)
def systematic_resample(weights: np.ndarray, u: float) -> np.ndarray:
    """Systematic resampling: ancestor of slot ``i`` is where ``(i + u) / N`` falls in the CDF.

    ``weights`` are normalized; ``u`` is one uniform in [0, 1). Each particle gets ``floor`` or
    ``ceil`` of ``N * weight`` offspring, in expectation exactly ``N * weight``.
    """
    n = weights.shape[0]
    out = np.empty(n, dtype=np.int64)
    cumulative = weights[0]
    j = 0
    for i in range(n):
        point = (i + u) / n
        while cumulative <= point and j < n - 1:
            j += 1
            cumulative += weights[j]
        k = j
        # Rounding can leave the total just below a late point: never pick a zero-weight particle.
        while weights[k] == 0.0 and k > 0:
            k -= 1
        out[i] = k
    return out


@njit(cache=True)
def multinomial_resample(weights: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Multinomial resampling: ``N`` independent ancestors drawn by inverse CDF at ``uniforms``."""
    n = weights.shape[0]
    cumulative = np.cumsum(weights)
    out = np.empty(uniforms.shape[0], dtype=np.int64)
    for i in range(uniforms.shape[0]):
        point = uniforms[i] * cumulative[n - 1]
        lo = 0
        hi = n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cumulative[mid] > point:
                hi = mid
            else:
                lo = mid + 1
        # Skip zero-weight particles that rounding could land on.
        while weights[lo] == 0.0 and lo < n - 1:
            lo += 1
        while weights[lo] == 0.0 and lo > 0:
            lo -= 1
        out[i] = lo
    return out
