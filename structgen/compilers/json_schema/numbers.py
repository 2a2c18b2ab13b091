"""Regexes for JSON numbers: integer ranges (exact), plain numbers, and the non-negative half line.

Numbers are matched in JSON syntax. Integers are written without exponent; ``1.0`` (a number with a
zero fraction) is an integer in draft 2020-12, so integer regexes accept an optional ``.0+`` fraction.
"""

from __future__ import annotations

NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+\-]?[0-9]+)?"
NONNEGATIVE_NUMBER = r"(?:(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+\-]?[0-9]+)?|\-0(?:\.0+)?)"
INTEGER_FRACTION = r"(?:\.0+)?"


def _digits_range(lo: str, hi: str) -> str:
    """Regex for digit strings of equal length ``n`` whose value lies in ``[lo, hi]`` (inclusive)."""
    if lo == hi:
        return lo
    if set(lo) == {"0"} and set(hi) == {"9"}:
        return f"[0-9]{{{len(lo)}}}" if len(lo) > 1 else "[0-9]"
    if len(lo) == 1:
        return f"[{lo}-{hi}]" if lo != hi else lo
    # Common prefix.
    if lo[0] == hi[0]:
        return lo[0] + _digits_range(lo[1:], hi[1:])
    n = len(lo) - 1
    parts = []
    # lo[0] followed by lo[1:]..99..9
    parts.append(lo[0] + _digits_range(lo[1:], "9" * n))
    if int(hi[0]) - int(lo[0]) > 1:
        mid_lo, mid_hi = int(lo[0]) + 1, int(hi[0]) - 1
        first = str(mid_lo) if mid_lo == mid_hi else f"[{mid_lo}-{mid_hi}]"
        parts.append(first + f"[0-9]{{{n}}}")
    parts.append(hi[0] + _digits_range("0" * n, hi[1:]))
    return "(?:" + "|".join(parts) + ")"


def nonneg_range(lo: int, hi: int | None) -> str:
    """Regex for decimal representations (no leading zeros) of integers in ``[lo, hi]``, ``lo >= 0``."""
    assert lo >= 0
    if hi is not None and hi < lo:
        raise ValueError("empty range")
    parts = []
    lo_len = len(str(lo))
    if hi is None:
        # Numbers with lo's length and >= lo, then any longer number.
        lo_s = str(lo)
        if lo_len == 1:
            parts.append(f"[{lo}-9]" if lo < 9 else "9")
        else:
            parts.append(_digits_range(lo_s, "9" * lo_len))
        parts.append(f"[1-9][0-9]{{{lo_len},}}")
        return "(?:" + "|".join(parts) + ")"
    hi_len = len(str(hi))
    for length in range(lo_len, hi_len + 1):
        a = lo if length == lo_len else 10 ** (length - 1)
        b = hi if length == hi_len else 10**length - 1
        if length == 1:
            parts.append(str(a) if a == b else f"[{a}-{b}]")
        else:
            parts.append(_digits_range(str(a), str(b)))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def integer_range(lo: int | None, hi: int | None, *, zero_fraction: bool = True) -> str:
    """Regex (JSON syntax) for the integers in ``[lo, hi]`` (None: unbounded).

    ``zero_fraction``: also accept an optional ``.0+`` fraction, as drafts 6 and later do (drafts 3 and 4
    say ``1.0`` is not an integer).
    """
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("empty range")
    options = []
    # Non-negative part.
    if hi is None or hi >= 0:
        options.append(nonneg_range(max(lo, 0) if lo is not None else 0, hi))
    # Negative part: -k for k in [max(1, -hi), -lo].
    if lo is None or lo < 0:
        neg_lo = max(1, -hi) if hi is not None else 1
        neg_hi = -lo if lo is not None else None
        options.append("\\-" + nonneg_range(neg_lo, neg_hi))
    body = options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"
    return body + INTEGER_FRACTION if zero_fraction else body


_FRAC_ANY = r"(?:\.[0-9]+)?"
_FRAC_ZERO = r"(?:\.0+)?"
_FRAC_POSITIVE = r"\.[0-9]*[1-9][0-9]*"


def fraction_regexes(places: int | None) -> tuple[str, str | None]:
    """(any fraction, nonzero fraction or None) regexes; ``places``: at most that many decimals."""
    if places is None:
        return _FRAC_ANY, _FRAC_POSITIVE
    if places == 0:
        return _FRAC_ZERO, None
    any_frac = rf"(?:\.[0-9]{{1,{places}}}0*)?"
    positive = "|".join(f"0{{{j}}}[1-9][0-9]{{0,{places - j - 1}}}0*" for j in range(places))
    return any_frac, rf"\.(?:{positive})"


def _magnitudes(a: int, a_excl: bool, b: int | None, b_excl: bool, places: int | None = None) -> list[str]:
    """Regexes for plain decimals ``I`` / ``I.F`` (``I`` without leading zeros) with ``a <(=) y <(=) b``."""
    frac_any, frac_positive = fraction_regexes(places)
    parts = []
    if b is not None and a == b:
        return [] if a_excl or b_excl else [f"{a}{_FRAC_ZERO}"]
    if not a_excl:
        parts.append(f"{a}{frac_any}")
    elif frac_positive is not None:
        parts.append(f"{a}{frac_positive}")
    if b is None:
        parts.append(nonneg_range(a + 1, None) + frac_any)
        return parts
    if a + 1 <= b - 1:
        parts.append(nonneg_range(a + 1, b - 1) + frac_any)
    if not b_excl:
        parts.append(f"{b}{_FRAC_ZERO}")
    return parts


def decimal_range(
    lo: int | None, lo_excl: bool, hi: int | None, hi_excl: bool, places: int | None = None
) -> str | None:
    """Regex for plain decimal numbers (no exponent) ``x`` with ``lo <(=) x <(=) hi``, integer bounds.

    Returns None when no number qualifies. ``-0`` forms are not produced (``0`` is written plainly).
    """
    options = []
    # x >= 0 (or > 0).
    if hi is None or hi > 0 or (hi == 0 and not hi_excl):
        a, a_excl = (lo, lo_excl) if lo is not None and lo >= 0 else (0, False)
        options.extend(_magnitudes(a, a_excl, hi, hi_excl, places))
    # x < 0, written -y with y > 0.
    if lo is None or lo < 0:
        if hi is None or hi >= 0:
            a, a_excl = 0, True
        else:
            a, a_excl = -hi, hi_excl
        b = None if lo is None else -lo
        options.extend("\\-" + m for m in _magnitudes(a, a_excl, b, lo_excl, places))
    if not options:
        return None
    return "(?:" + "|".join(options) + ")"
