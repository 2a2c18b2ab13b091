"""`structgen generate --grammar sql` on the default model: the output is a statement that both the
shipped SQL grammar and SQLite itself (``EXPLAIN`` on a small schema) accept."""

from __future__ import annotations

import sqlite3

import pytest

from structgen.cli import main
from structgen.compilers.grammar import compile_grammar

SCHEMA = """\
CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL,
                       category_id INTEGER REFERENCES categories(id));
CREATE TABLE orders (id INTEGER PRIMARY KEY, product_id INTEGER REFERENCES products(id),
                     quantity INTEGER NOT NULL, order_date TEXT NOT NULL);
"""

PROMPT = (
    "Given this SQLite schema:\n"
    + SCHEMA
    + "\nWrite one SQL query that lists the name and price of every product whose price is greater than 10."
)


def explain(statement: str) -> list[tuple]:
    """SQLite's ``EXPLAIN`` of ``statement`` on an empty in-memory database with :data:`SCHEMA`."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        return db.execute("EXPLAIN " + statement).fetchall()
    finally:
        db.close()


def test_explain_rejects_unknown_columns() -> None:
    # The check below must be able to fail: a column the schema lacks is an error, not a plan.
    assert explain("SELECT name FROM products WHERE price > 10")
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        explain("SELECT title FROM products")


@pytest.mark.slow
def test_cli_grammar_sql_prints_a_statement_sqlite_accepts(default_model, capsys) -> None:
    argv = ["generate", "--grammar", "sql", "--temperature", "0", "--max-new-tokens", "64", "--quiet", PROMPT]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    statement = out[:-1]
    assert statement.strip(), "empty statement"

    # (a) the shipped grammar accepts the whole output
    vocab = default_model[2]
    automaton = compile_grammar("sql", vocab).automaton
    state = automaton.advance_bytes(automaton.initial_state(), statement.encode("utf-8"))
    assert state is not None and automaton.is_accepting(state), statement

    # (b) SQLite compiles it against the schema: real tables and columns only
    assert explain(statement), statement
