"""Lark grammars shipped with structgen: ``names()``, ``path(name)``, ``load(name)``.

``compile_grammar("sql", vocab)`` accepts these names directly.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def names() -> tuple[str, ...]:
    """Names of the shipped grammars (file stems of ``grammars/*.lark``), sorted."""
    return tuple(sorted(p.stem for p in _HERE.glob("*.lark")))


def path(name: str) -> Path:
    """Path of the shipped grammar ``name``; raises ``KeyError`` for an unknown name."""
    candidate = _HERE / f"{name}.lark"
    if "/" in name or "\\" in name or not candidate.is_file():
        raise KeyError(f"no shipped grammar named {name!r}; available: {', '.join(names())}")
    return candidate


def load(name: str) -> str:
    """Text of the shipped grammar ``name``."""
    return path(name).read_text(encoding="utf-8")
