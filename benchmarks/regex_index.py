"""Regex constraints: compile time and per-token mask time, structgen next to outlines-core and llguidance.

For each regex and vocabulary it measures, in one process and one run:

- compile: pattern to a constraint ready to give masks for every state (structgen: byte DFA and the
  full token index; outlines-core: ``Index``; llguidance: matcher creation, which is lazy, so its
  figure excludes most of the work that it defers to mask time);
- first mask: compile plus the first mask (time to first mask);
- mask p50/p99: filling a bitmask at every step of walking a matching example, token by token.

Peers are optional (``pip install -e .[bench]``); missing ones are reported as such.

    python benchmarks/regex_index.py [--vocab smollm2 llama3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from functools import partial
from itertools import product

import numpy as np

from structgen.automata.regex import regex_to_byte_dfa, regex_to_fsm
from structgen.bitmask import bitmask_words
from structgen.compilers.regex import compile_regex
from structgen.tokenizers import load_tokenizer, load_vocabulary

STRING = r'"[^"\\\x00-\x1f]{0,30}"'
FIELD_TYPES = [STRING, r"-?(0|[1-9]\d{0,9})", r"(true|false)", r"-?\d+\.\d{1,6}"]
FIELD_EXAMPLES = ['"Alice Smith"', "1024", "true", "3.14"]
ADJECTIVES = [
    "amber", "brisk", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly",
    "keen", "lofty", "mellow", "noble", "olive", "proud", "quiet", "rapid", "silent", "tidy",
]  # fmt: skip
NOUNS = [
    "river", "stone", "cloud", "falcon", "meadow", "harbor", "lantern", "orchard", "summit", "valley",
    "canyon", "forest", "glacier", "island", "jungle", "lagoon", "marsh", "prairie", "reef", "tundra",
    "beacon", "cellar", "garden", "mill", "tower",
]  # fmt: skip
ENUM = [f"{a}-{n}" for a, n in product(ADJECTIVES, NOUNS)]


def _object_regex(fields: int) -> tuple[str, str]:
    parts, example = [], []
    for i in range(fields):
        kind = i % len(FIELD_TYPES)
        parts.append(f'"field_{i}": {FIELD_TYPES[kind]}')
        example.append(f'"field_{i}": {FIELD_EXAMPLES[kind]}')
    return r"\{" + ", ".join(parts) + r"\}", "{" + ", ".join(example) + "}"


OBJECT_REGEX, OBJECT_EXAMPLE = _object_regex(40)

CASES: list[tuple[str, str, str]] = [
    ("email", r"[a-zA-Z0-9._%+-]{1,64}@[a-zA-Z0-9-]{1,63}(\.[a-zA-Z0-9-]{1,63}){0,4}\.[a-zA-Z]{2,24}",
     "jane.doe+news@mail.example.co.uk"),
    ("iso8601", r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?"
     r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)", "2024-02-29T13:45:07.123+05:30"),
    ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
     "123e4567-e89b-42d3-a456-426614174000"),
    ("ipv4", r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", "192.168.254.17"),
    ("phone", r"(\+\d{1,3}[ -]?)?(\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}", "+1 (415) 555-0132"),
    ("enum500", "(" + "|".join(ENUM) + ")", "quiet-lagoon"),
    ("object40", OBJECT_REGEX, OBJECT_EXAMPLE),
]  # fmt: skip


def _median_seconds(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


class Structgen:
    """structgen: compile_regex and Matcher.fill_bitmask."""

    name = "structgen"

    def __init__(self, vocab_name: str) -> None:
        self.vocab = load_vocabulary(vocab_name)

    def compile(self, pattern: str):
        # Clear the pattern caches so every repetition pays the full compile.
        regex_to_fsm.cache_clear()
        regex_to_byte_dfa.cache_clear()
        return compile_regex(pattern, self.vocab)

    def walk(self, compiled, ids: list[int]) -> list[float]:
        matcher = compiled.matcher()
        out = np.zeros((1, bitmask_words(self.vocab.size)), dtype=np.int32)
        times = []
        for token_id in [*ids, None]:
            start = time.perf_counter()
            matcher.fill_bitmask(out, 0)
            times.append(time.perf_counter() - start)
            if token_id is not None:
                matcher.advance(token_id)
        assert matcher.is_accepting()
        return times


class OutlinesCore:
    """outlines-core: Index construction and Guide.write_mask_into."""

    name = "outlines-core"

    def __init__(self, vocab_name: str) -> None:
        import outlines_core

        self.oc = outlines_core
        vocab = load_vocabulary(vocab_name)
        by_bytes: dict[bytes, list[int]] = {}
        for token_id, data in enumerate(vocab.token_bytes):
            if vocab.is_text_token(token_id):
                by_bytes.setdefault(data, []).append(token_id)
        self.size = vocab.size
        self.vocabulary = outlines_core.Vocabulary(vocab.eos_token_ids[0], by_bytes)

    def compile(self, pattern: str):
        return self.oc.Index(pattern, self.vocabulary)

    def walk(self, compiled, ids: list[int]) -> list[float]:
        guide = self.oc.Guide(compiled)
        out = np.zeros(bitmask_words(self.size), dtype=np.int32)
        times = []
        for token_id in [*ids, None]:
            start = time.perf_counter()
            guide.write_mask_into(out.ctypes.data, out.shape[0], 4)
            times.append(time.perf_counter() - start)
            if token_id is not None:
                guide.advance(token_id, return_tokens=False)
        return times


class LLGuidance:
    """llguidance: LLMatcher over a regex grammar and fill_next_token_bitmask."""

    name = "llguidance"

    def __init__(self, vocab_name: str) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.numpy

        self.llg = llguidance
        self.fill = llguidance.numpy.fill_next_token_bitmask
        self.tokenizer = llguidance.hf.from_tokenizer(load_tokenizer(vocab_name))
        self.size = load_vocabulary(vocab_name).size

    def compile(self, pattern: str):
        grammar = self.llg.LLMatcher.grammar_from_regex(pattern)
        matcher = self.llg.LLMatcher(self.tokenizer, grammar)
        if matcher.is_error():
            raise RuntimeError(matcher.get_error())
        return grammar

    def walk(self, compiled, ids: list[int]) -> list[float]:
        matcher = self.llg.LLMatcher(self.tokenizer, compiled)
        out = np.zeros((1, bitmask_words(self.size)), dtype=np.int32)
        times = []
        for token_id in [*ids, None]:
            start = time.perf_counter()
            self.fill(matcher, out, 0)
            times.append(time.perf_counter() - start)
            if token_id is not None:
                matcher.consume_token(token_id)
        return times


def _engines(vocab_name: str) -> tuple[list, list[str]]:
    engines, missing = [Structgen(vocab_name)], []
    for cls in (OutlinesCore, LLGuidance):
        try:
            engines.append(cls(vocab_name))
        except ImportError:
            missing.append(cls.name)
    return engines, missing


def run(vocab_names: list[str], repeat: int) -> list[dict]:
    """Measure every case on every vocabulary; returns one row per (vocab, case, engine)."""
    rows = []
    for vocab_name in vocab_names:
        tokenizer = load_tokenizer(vocab_name)
        engines, missing = _engines(vocab_name)
        if missing:
            print(f"[{vocab_name}] not installed, skipped: {', '.join(missing)}")
        # Warm-up: JIT compilation and lazy imports are not part of any figure.
        for engine in engines:
            engine.walk(engine.compile(r"[ab]{2}"), tokenizer.encode("ab", add_special_tokens=False))
        for case, pattern, example in CASES:
            ids = tokenizer.encode(example, add_special_tokens=False)
            for engine in engines:
                try:
                    compile_s, compiled = _median_seconds(partial(engine.compile, pattern), repeat)
                    first = engine.walk(compiled, ids)
                    steps = np.array(engine.walk(compiled, ids) + engine.walk(compiled, ids)) * 1e6
                except Exception as exc:  # a peer failing on a case is a result, not a crash
                    rows.append(dict(vocab=vocab_name, case=case, engine=engine.name, error=str(exc)[:80]))
                    continue
                rows.append(
                    dict(
                        vocab=vocab_name,
                        case=case,
                        engine=engine.name,
                        compile_ms=compile_s * 1e3,
                        ttfm_ms=(compile_s + first[0]) * 1e3,
                        mask_p50_us=float(np.percentile(steps, 50)),
                        mask_p99_us=float(np.percentile(steps, 99)),
                        tokens=len(ids),
                    )
                )
    return rows


def print_table(rows: list[dict]) -> None:
    """One line per (vocab, case, engine), with ratios to outlines-core."""
    header = (
        f"{'vocab':8} {'case':9} {'engine':13} {'compile ms':>11} {'TTFM ms':>9} {'mask p50 us':>12} "
        f"{'mask p99 us':>12} {'compile/oc':>10} {'p50/oc':>7}"
    )
    print(header)
    print("-" * len(header))
    by_key = {(r["vocab"], r["case"], r["engine"]): r for r in rows}
    for r in rows:
        if "error" in r:
            print(f"{r['vocab']:8} {r['case']:9} {r['engine']:13} error: {r['error']}")
            continue
        oc = by_key.get((r["vocab"], r["case"], "outlines-core"))
        ratio_c = ratio_m = "-"
        if oc and "error" not in oc:
            ratio_c = f"{r['compile_ms'] / oc['compile_ms']:.2f}"
            ratio_m = f"{r['mask_p50_us'] / oc['mask_p50_us']:.2f}"
        print(
            f"{r['vocab']:8} {r['case']:9} {r['engine']:13} {r['compile_ms']:11.2f} {r['ttfm_ms']:9.2f} "
            f"{r['mask_p50_us']:12.1f} {r['mask_p99_us']:12.1f} {ratio_c:>10} {ratio_m:>7}"
        )
    ours = [r for r in rows if r["engine"] == "structgen" and "error" not in r]
    ratios_c, ratios_m = [], []
    for r in ours:
        oc = by_key.get((r["vocab"], r["case"], "outlines-core"))
        if oc and "error" not in oc:
            ratios_c.append(r["compile_ms"] / oc["compile_ms"])
            ratios_m.append(r["mask_p50_us"] / oc["mask_p50_us"])
    if ratios_c:
        print(
            f"\nstructgen / outlines-core, median over cases: compile {np.median(ratios_c):.2f}x "
            f"(target <= 2), mask p50 {np.median(ratios_m):.2f}x (target <= 1); "
            f"worst compile {max(ratios_c):.2f}x, worst mask p50 {max(ratios_m):.2f}x"
        )


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", nargs="+", default=["smollm2", "llama3"])
    parser.add_argument("--repeat", type=int, default=3, help="compile repetitions (median is reported)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = run(args.vocab, args.repeat)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
