"""Generate SQLite SELECT statements constrained by the shipped SQL grammar (grammars/sql.lark).

``structgen.generate(grammar="sql")`` compiles the constraint once for SmolLM2's vocabulary. Each
generated statement is then checked twice: by Lark's own parser with the same grammar, and by
SQLite itself -- ``EXPLAIN <statement>`` on an in-memory database with the schema the prompt shows,
which fails on a table or column the schema does not have.

Run: python examples/grammar_sql.py
"""

from __future__ import annotations

import sqlite3
import time

import lark

import grammars
import structgen
from structgen.compilers.grammar import compile_grammar
from structgen.tokenizers import load_vocabulary

SCHEMA = """\
CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL,
                       category_id INTEGER REFERENCES categories(id));
CREATE TABLE orders (id INTEGER PRIMARY KEY, product_id INTEGER REFERENCES products(id),
                     quantity INTEGER NOT NULL, order_date TEXT NOT NULL);
"""

QUESTIONS = [
    "lists the name and price of every product whose price is greater than 10.",
    "returns the names of all products in the category named 'Books'.",
    "counts the orders of each product, most ordered first.",
]


def sqlite_check(statement: str) -> str:
    """``"ok"`` when SQLite compiles ``statement`` against :data:`SCHEMA`, else SQLite's error."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        db.execute("EXPLAIN " + statement).fetchall()
        return "ok"
    except sqlite3.Error as exc:
        return f"rejected: {exc}"
    finally:
        db.close()


def main() -> None:
    """Compile the grammar, show what it allows first, then generate and check a few queries."""
    vocab = load_vocabulary("smollm2")
    start = time.perf_counter()
    constraint = compile_grammar("sql", vocab)
    allowed = constraint.matcher().mask()
    elapsed = time.perf_counter() - start
    first = sorted(vocab.token_bytes[t] for t in allowed.nonzero()[0] if vocab.token_bytes[t])[:12]
    print(
        f"SQL grammar compiled for {vocab.name} ({vocab.size} ids) with first mask in {elapsed * 1000:.0f} ms"
    )
    print(f"{int(allowed.sum())} tokens may start a statement, e.g. {first}")

    parser = lark.Lark(grammars.load("sql"), parser="lalr", lexer="basic")
    for question in QUESTIONS:
        prompt = f"Given this SQLite schema:\n{SCHEMA}\nWrite one SQL query that {question}"
        result = structgen.generate(prompt, grammar="sql", temperature=0.0, max_new_tokens=96)
        s = result.stats
        print(f"\n{question}\n  -> {result.text!r}")
        print(
            f"     {s['tokens']} tokens ({s['forced_tokens']} forced), stopped: {s['stopped']}, "
            f"complete: {result.complete}, model {s['model_seconds']:.2f} s, "
            f"constraint {s['constraint_seconds'] * 1000:.0f} ms"
        )
        if result.complete:
            parser.parse(result.text)  # raises if the output were not a statement of the grammar
            print(f"     Lark parses it: ok; SQLite EXPLAIN: {sqlite_check(result.text)}")
        else:
            print("     incomplete (no statement end within max_new_tokens): not checked")


if __name__ == "__main__":
    main()
