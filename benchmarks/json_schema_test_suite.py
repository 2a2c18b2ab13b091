"""JSON-Schema-Test-Suite (draft 2020-12) through ``compile_json_schema``, token by token.

For every test case, the instance is serialized compactly and with ``indent=2`` (``ensure_ascii=False``),
tokenized with the SmolLM2 tokenizer and fed to a fresh matcher: a valid instance must be accepted token
by token and end accepting, an invalid one must be refused (some token refused, or not accepting at the
end). Prints a per-file pass table; ``--write`` records the counts in
``tests/data/json_schema_pass_counts.json`` (the floor the tests enforce).

    python benchmarks/json_schema_test_suite.py [--files ref,enum] [--masks] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
SUITE = SHARED / "data" / "json-schema-test-suite"
PASS_COUNTS = REPO / "tests" / "data" / "json_schema_pass_counts.json"
REMOTES_URI = "http://localhost:1234/"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from structgen.compilers.json_schema import compile_json_schema, registry_from_directory  # noqa: E402
from structgen.errors import ConstraintError  # noqa: E402
from structgen.vocabulary import Vocabulary  # noqa: E402


@dataclass
class FileResult:
    """Outcome of one test file."""

    name: str
    cases: int = 0
    passed: int = 0
    invalid_accepted: int = 0
    compile_errors: int = 0
    failures: list[str] = field(default_factory=list)


def serializations(data: Any) -> list[str]:
    """The compact and the indented JSON text of ``data``."""
    return [
        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        json.dumps(data, indent=2, ensure_ascii=False),
    ]


def run_tokens(constraint: Any, ids: Sequence[int], *, check_masks: bool) -> bool:
    """Whether the matcher takes every token of ``ids`` and then accepts (optionally checking masks)."""
    matcher = constraint.matcher()
    rng = random.Random(len(ids))
    for token_id in ids:
        if check_masks:
            mask = matcher.mask()
            # The actual token plus a sample of others: the mask must agree with accepts() on each.
            probe = [token_id, *rng.sample(range(constraint.vocab.size), 64)]
            probe += [int(t) for t in rng.sample(list(np.flatnonzero(mask)), min(16, int(mask.sum())))]
            for t in probe:
                if bool(mask[t]) != matcher.accepts(t):
                    raise AssertionError(f"mask and accepts() disagree on token {t}")
        if not matcher.accepts(token_id):
            return False
        matcher.advance(token_id)
    return matcher.is_accepting()


def run_file(
    path: Path,
    vocab: Vocabulary,
    encode: Callable[[str], Sequence[int]],
    registry: Any,
    *,
    check_masks: bool = False,
) -> FileResult:
    """Run every case of one suite file."""
    result = FileResult(path.stem)
    for group in json.loads(path.read_text(encoding="utf-8")):
        try:
            constraint = compile_json_schema(group["schema"], vocab, registry=registry, formats="annotate")
            error = None
        except ConstraintError as exc:
            constraint, error = None, exc
            result.compile_errors += 1
        for test in group["tests"]:
            result.cases += 1
            if constraint is None:
                accepted = [False]
            else:
                accepted = [
                    run_tokens(constraint, encode(text), check_masks=check_masks)
                    for text in serializations(test["data"])
                ]
            if test["valid"]:
                ok = all(accepted)
            else:
                ok = not any(accepted)
                if any(accepted):
                    result.invalid_accepted += 1
            if ok:
                result.passed += 1
            else:
                why = f" ({type(error).__name__}: {error})" if error else f" accepted={accepted}"
                result.failures.append(f"{group['description']} / {test['description']}{why}")
    return result


def suite_files(names: Sequence[str] | None = None) -> list[Path]:
    """The draft 2020-12 test files (optionally only those named)."""
    files = sorted((SUITE / "tests" / "draft2020-12").glob("*.json"))
    if names:
        files = [f for f in files if f.stem in names]
    return files


def remotes_registry() -> Any:
    """The suite's remotes/ served at http://localhost:1234/."""
    return registry_from_directory(SUITE / "remotes", REMOTES_URI)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the per-file pass table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="", help="comma-separated file stems (default: all)")
    parser.add_argument("--masks", action="store_true", help="also check every mask against accepts()")
    parser.add_argument("--write", action="store_true", help=f"record pass counts in {PASS_COUNTS.name}")
    parser.add_argument("--verbose", "-v", action="store_true", help="list failing cases")
    args = parser.parse_args(argv)
    if not SUITE.exists():
        print(f"test suite not found at {SUITE}", file=sys.stderr)
        return 2
    from structgen.tokenizers import load_tokenizer, load_vocabulary

    tokenizer = load_tokenizer("smollm2")
    vocab = load_vocabulary("smollm2")

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    registry = remotes_registry()
    names = [n for n in args.files.split(",") if n]
    results = []
    start = time.perf_counter()
    print(f"{'file':32s} {'pass':>5s} {'cases':>5s} {'%':>6s} {'inv.acc':>7s} {'errors':>6s}")
    for path in suite_files(names):
        r = run_file(path, vocab, encode, registry, check_masks=args.masks)
        results.append(r)
        print(
            f"{r.name:32s} {r.passed:5d} {r.cases:5d} {100 * r.passed / r.cases:6.1f} "
            f"{r.invalid_accepted:7d} "
            f"{r.compile_errors:6d}"
        )
        if args.verbose:
            for failure in r.failures:
                print(f"    FAIL {failure}")
    passed = sum(r.passed for r in results)
    cases = sum(r.cases for r in results)
    invalid = sum(r.invalid_accepted for r in results)
    print(
        f"{'TOTAL':32s} {passed:5d} {cases:5d} {100 * passed / max(cases, 1):6.1f} {invalid:7d} "
        f"{sum(r.compile_errors for r in results):6d}   ({time.perf_counter() - start:.1f} s)"
    )
    if args.write:
        counts = json.loads(PASS_COUNTS.read_text()) if PASS_COUNTS.exists() else {}
        counts.update({r.name: r.passed for r in results})
        PASS_COUNTS.write_text(json.dumps(dict(sorted(counts.items())), indent=2) + "\n")
        print(f"wrote {PASS_COUNTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
