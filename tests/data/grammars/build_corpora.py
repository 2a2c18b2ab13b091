"""Rebuild the grammar test corpora in this folder (deterministic; run from the repository root).

    python tests/data/grammars/build_corpora.py

* ``json.jsonl``: valid test instances of JSONSchemaBench (``../shared/data/jsonschemabench``),
  serialized compactly, with Python's default separators or indented, chosen by a seeded RNG.
* ``csv.jsonl``: tables built from JSONSchemaBench instances that are lists of flat objects (written
  with Python's ``csv`` module: real quoting of commas, quotes and line breaks), the first lines of
  two public-data CSV files shipped with Debian's ``distro-info-data`` and matplotlib's sample data
  when present on the machine, and a few hand-written edge cases.
* ``arithmetic.jsonl``: hand-written expressions plus seeded random ones.
* ``python.jsonl``: top-level functions and classes of CPython standard library modules, kept when
  the ``python`` grammar subset covers them (the script prints the coverage) and ``ast.parse``
  accepts them.
* ``sql_queries.sql`` is hand-written and not rebuilt here; the ``lark`` corpus is the shipped
  ``grammars/*.lark`` files plus Lark's own grammar files, read by the tests directly.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import random
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = REPO / ".." / "shared" / "data" / "jsonschemabench"


def _write(name: str, rows: list[dict]) -> None:
    with open(HERE / name, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} sentences")


def _bench_instances() -> list[tuple[str, object]]:
    out = []
    for path in sorted(SHARED.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                entry = json.loads(line)
                for k, test in enumerate(entry.get("tests", [])):
                    if test.get("valid"):
                        out.append((f"{path.name.split('.')[0]}/{entry['id']}/{k}", test["data"]))
    return out


def build_json(instances: list[tuple[str, object]]) -> None:
    rng = random.Random(1234)
    by_group: dict[str, list[tuple[str, object]]] = {}
    for ident, data in instances:
        by_group.setdefault(ident.split("/")[0], []).append((ident, data))
    rows = []
    for group in sorted(by_group):
        items = by_group[group]
        rng.shuffle(items)
        taken = 0
        for ident, data in items:
            style = rng.choice(["compact", "default", "indent"])
            if style == "compact":
                text = json.dumps(data, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
            elif style == "default":
                text = json.dumps(data, ensure_ascii=rng.random() < 0.5)
            else:
                text = json.dumps(data, indent=2, ensure_ascii=rng.random() < 0.5)
            if not 2 <= len(text) <= 1200 or not isinstance(data, (dict, list)):
                continue
            rows.append({"id": ident, "text": text})
            taken += 1
            if taken == 8:
                break
    _write("json.jsonl", rows)


def _flat_tables(instances: list[tuple[str, object]]) -> list[tuple[str, list[dict]]]:
    tables = []
    for ident, data in instances:
        if not (
            isinstance(data, list) and 2 <= len(data) <= 30 and all(isinstance(r, dict) and r for r in data)
        ):
            continue
        if not all(isinstance(v, (str, int, float, bool)) or v is None for r in data for v in r.values()):
            continue
        tables.append((ident, data))
    return tables


def build_csv(instances: list[tuple[str, object]]) -> None:
    rng = random.Random(99)
    rows = []
    tables = _flat_tables(instances)
    rng.shuffle(tables)
    for ident, data in tables[:20]:
        header = sorted({k for r in data for k in r})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator=rng.choice(["\n", "\r\n"]))
        writer.writerow(header)
        for record in data:
            writer.writerow(["" if record.get(k) is None else record.get(k) for k in header])
        text = buf.getvalue()
        if rng.random() < 0.5:
            text = text.rstrip("\r\n")
        if len(text) <= 3000:
            rows.append({"id": f"jsonschemabench/{ident}", "text": text})
    public = [
        ("distro-info-data/ubuntu.csv", Path("/usr/share/distro-info/ubuntu.csv")),
        ("distro-info-data/debian.csv", Path("/usr/share/distro-info/debian.csv")),
        (
            "matplotlib/sample_data/msft.csv",
            Path(sysconfig.get_paths()["purelib"]) / "matplotlib" / "mpl-data" / "sample_data" / "msft.csv",
        ),
    ]
    for ident, path in public:
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:30]
            rows.append({"id": ident, "text": "".join(lines)})
    handwritten = [
        'name,quote,year\n"Knuth, Donald","Premature optimization is the root of all evil.",1974\n',
        'id,comment\n1,"She said ""hi"" and left"\n2,""\n3,\n',
        'a,b,c\n1,,3\n,,\n"x\ny",2,"multi\r\nline"\n',
        "city,population\r\nParis,2148000\r\nBerlin,3645000\r\nMadrid,3223000",
        'x\n"only quoted"\nplain\n',
        "single field, with spaces ,and trailing space \n",
    ]
    for k, text in enumerate(handwritten):
        rows.append({"id": f"handwritten/{k}", "text": text})
    _write("csv.jsonl", rows)


ARITHMETIC = [
    "1 + 2",
    "3 * (4 + 5)",
    "-x ** 2",
    "2 ** 3 ** 2",
    "a / b // c % d",
    "sqrt(x * x + y * y)",
    "max(a, b, 0) - min(c, d)",
    "(1.5e3 + .25) * 4.",
    "f()",
    "--+-1",
    "((((x))))",
    "pi * r ** 2",
    "(a + b) * (a - b) / (a * a - b * b)",
    "1e-9 + 2E+10",
    "log(x) / log(2)",
    "x*y+z",
    "\t(3 + 4)\t* 5",
    "atan2(y, x) * 180 / pi",
    "n * (n + 1) // 2",
    "0.1 + 0.2",
    "hypot(3, 4)",
    "-(-(-a))",
    "2 * x ** -1",
    "sum_(i, 1, n)",
    "a % b + c % d",
    "1000000",
    "exp(-t / tau) * cos(omega * t + phi)",
    "abs(x - y) / max(abs(x), abs(y), 1e-12)",
    "x1 + x2 + x3 + x4 + x5",
    "g(h(i(j(1))))",
]


def _random_expr(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.25:
        choice = rng.random()
        if choice < 0.45:
            return str(rng.choice([rng.randint(0, 999), round(rng.uniform(0, 100), rng.randint(1, 3))]))
        if choice < 0.8:
            return rng.choice(["x", "y", "z", "alpha", "beta_2", "n", "total", "rate"])
        args = ", ".join(_random_expr(rng, depth - 1) for _ in range(rng.randint(0, 3)))
        return f"{rng.choice(['f', 'sin', 'max', 'clamp'])}({args})"
    kind = rng.random()
    if kind < 0.15:
        return f"-{_random_expr(rng, depth - 1)}"
    if kind < 0.3:
        return f"({_random_expr(rng, depth - 1)})"
    op = rng.choice(["+", "-", "*", "/", "//", "%", "**"])
    sep = rng.choice([" ", "", " "])
    return f"{_random_expr(rng, depth - 1)}{sep}{op}{sep}{_random_expr(rng, depth - 1)}"


def build_arithmetic() -> None:
    rng = random.Random(7)
    rows = [{"id": f"handwritten/{k}", "text": t} for k, t in enumerate(ARITHMETIC)]
    for k in range(70):
        rows.append({"id": f"random/{k}", "text": _random_expr(rng, rng.randint(1, 5))})
    _write("arithmetic.jsonl", rows)


PYTHON_MODULES = [
    "bisect",
    "colorsys",
    "fnmatch",
    "heapq",
    "keyword",
    "textwrap",
    "shlex",
    "posixpath",
    "genericpath",
    "statistics",
    "base64",
    "difflib",
    "glob",
    "copy",
    "json/encoder",
    "json/decoder",
    "html/__init__",
    "string",
    "reprlib",
    "operator",
]


def build_python() -> None:
    sys.path.insert(0, str(REPO))
    from structgen.compilers.grammar import compile_grammar
    from structgen.vocabulary import Vocabulary

    vocab = Vocabulary.from_token_bytes([bytes([b]) for b in range(256)], [256], size=257)
    automaton = compile_grammar("python", vocab).automaton
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    total = 0
    for module in PYTHON_MODULES:
        path = stdlib / f"{module}.py"
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines(keepends=True)
        tree = ast.parse(source)
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            text = "".join(lines[first - 1 : node.end_lineno])
            if len(text) > 2500:
                continue
            total += 1
            ast.parse(text)
            state = automaton.advance_bytes(automaton.initial_state(), text.encode("utf-8"))
            if state is not None and automaton.is_accepting(state):
                rows.append(
                    {
                        "id": f"cpython-{sys.version_info[0]}.{sys.version_info[1]}/{module}.py:{node.name}",
                        "text": text,
                    }
                )
    print(f"python: the subset covers {len(rows)} of {total} top-level definitions (<= 2500 chars)")
    _write("python.jsonl", rows)


if __name__ == "__main__":
    bench = _bench_instances()
    build_json(bench)
    build_csv(bench)
    build_arithmetic()
    build_python()
