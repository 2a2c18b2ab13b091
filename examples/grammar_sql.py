"""Generate SQLite SELECT statements constrained by the shipped SQL grammar (grammars/sql.lark).

The constraint is compiled once for SmolLM2's vocabulary; every generated statement is then parsed
by Lark's own parser with the same grammar, as a check.

Run: python examples/grammar_sql.py
"""

from __future__ import annotations

import time

import lark

import grammars
from structgen.compilers.grammar import compile_grammar
from structgen.generate import generate
from structgen.tokenizers import load_vocabulary

PROMPTS = [
    "Write an SQL query listing the names and emails of customers from Brazil, sorted by last name.",
    "Write an SQL query that counts the orders per customer and keeps customers with more than 5 orders.",
    "Write an SQL query returning the 10 most expensive products with their category name.",
]


def main() -> None:
    """Compile the grammar, show what it allows first, then generate and check a few queries."""
    vocab = load_vocabulary("smollm2")
    start = time.perf_counter()
    constraint = compile_grammar("sql", vocab)
    matcher = constraint.matcher()
    allowed = matcher.mask()
    elapsed = time.perf_counter() - start
    first = sorted(vocab.token_bytes[t] for t in allowed.nonzero()[0] if vocab.token_bytes[t])[:12]
    print(
        f"SQL grammar compiled for {vocab.name} ({vocab.size} ids) with first mask in {elapsed * 1000:.0f} ms"
    )
    print(f"{int(allowed.sum())} tokens may start a statement, e.g. {first}")

    parser = lark.Lark(grammars.load("sql"), parser="lalr", lexer="basic")
    for prompt in PROMPTS:
        result = generate(prompt, grammar="sql", temperature=0.0, max_new_tokens=96)
        s = result.stats
        print(f"\n{prompt}\n  -> {result.text!r}")
        print(
            f"     {s['tokens']} tokens ({s['forced_tokens']} forced), stopped: {s['stopped']}, "
            f"complete: {result.complete}, model {s['model_seconds']:.2f} s, "
            f"constraint {s['constraint_seconds'] * 1000:.0f} ms"
        )
        if result.complete:
            parser.parse(result.text)  # raises if the output were not a statement of the grammar
            print("     Lark parses it: ok")


if __name__ == "__main__":
    main()
