"""Per-token cost of the samplers on the default model: AWRS vs full mask vs unconstrained.

For each constraint the script decodes with the default model (SmolLM2-135M-Instruct, CPU, KV
cache) and, at every step, runs every sampler on the *same* logits and matcher state:

- ``uncon``: unconstrained sampling (temperature/top-k/top-p proposal, inverse CDF);
- ``mask``: :class:`MaskSampler` (full bitmask + masked sampling);
- ``awrs``: :class:`RejectionSampler` with the weight estimate (what SMC uses);
- ``awrs-nw``: :class:`RejectionSampler` without the weight run (plain generation).

Each call is repeated ``--repeats`` times and the step's median kept; the table shows medians and
p99 over steps, the model forward time, and AWRS's ``matcher.accepts`` calls per token (mean,
p99, as a % of the vocabulary) and how often it fell back to the mask. The sequence advances with
the AWRS token (distributed exactly as the mask sampler's). Every token is sampled (no forced-token
shortcut), so the numbers are per sampled token.

    python benchmarks/awrs.py                          # regex cases
    python benchmarks/awrs.py --schemas Github_easy:3  # plus 3 JSONSchemaBench schemas

JSON Schema cases need ``structgen.compilers.json_schema.compile_json_schema``; when it is missing
they are listed as skipped with the import error, not run.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from structgen.generate import build_constraint, encode_prompt  # noqa: E402
from structgen.matcher import Matcher  # noqa: E402
from structgen.models import resolve_model  # noqa: E402
from structgen.sampling import kernels  # noqa: E402
from structgen.sampling.base import SamplingParams  # noqa: E402
from structgen.sampling.mask import MaskSampler, check_logits, filtered_scores  # noqa: E402
from structgen.sampling.rejection import RejectionSampler  # noqa: E402

SHARED = REPO / ".." / "shared"
BENCH = SHARED / "data" / "jsonschemabench"


@dataclass(frozen=True)
class Case:
    """One constraint to benchmark: ``kind`` is a keyword of ``build_constraint`` (regex/schema/grammar)."""

    name: str
    kind: str
    source: Any
    prompt: str


def schema_case(group: str, index: int) -> Case:
    """Schema ``index`` of a JSONSchemaBench group file, as a case."""
    path = BENCH / f"{group}.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for i, line in enumerate(lines):
            if i == index:
                record = json.loads(line)
                prompt = "Reply with one JSON object that follows this JSON Schema:\n" + json.dumps(
                    record["schema"]
                )
                return Case(f"{group}#{index}", "schema", record["schema"], prompt[:2000])
    raise IndexError(f"{path} has fewer than {index + 1} schemas")


# One line per case. Schema cases: schema_case("Github_easy", 0), ...
CASES = [
    Case("date", "regex", r"\d{4}-\d{2}-\d{2}", "What is the date of the first moon landing? ISO format."),
    Case("phone", "regex", r"\(\d{3}\) \d{3}-\d{4}", "Give a US phone number."),
    Case(
        "email", "regex", r"[a-z0-9._]{1,20}@[a-z0-9]{1,15}\.(com|org|net)", "Write an email address for Ada."
    ),
    Case(
        "person-json",
        "regex",
        r'\{"name": "[A-Z][a-z]{1,15} [A-Z][a-z]{1,15}", "age": [1-9][0-9]?, "city": "[A-Za-z ]{2,20}"\}',
        "Describe a famous scientist as JSON with name, age and city.",
    ),
    Case("sentence", "regex", r"[A-Z][a-z]+( [a-z]+){5,20}\.", "Describe the sea in one sentence."),
    Case("digits-free", "regex", r"[^0-9]{20,200}", "Tell me a short story about a robot."),
]


class CachedLM:
    """Minimal KV-cached forward over one sequence."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: Any = None
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_last = "logits_to_keep" in params

    @torch.inference_mode()
    def forward(self, ids: list[int]) -> np.ndarray:
        kwargs: dict[str, Any] = {self.cache_arg: self.cache, "use_cache": True}
        if self.keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=torch.tensor([ids], dtype=torch.long), **kwargs)
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.logits[0, -1, :].float().numpy()


def sample_unconstrained(
    logits: np.ndarray, size: int, params: SamplingParams, rng: np.random.Generator
) -> int:
    """The unconstrained baseline with the samplers' own kernels: same proposal, inverse CDF."""
    logits = check_logits(logits)
    scores = filtered_scores(logits, size, params)
    everything = _ALL.get(size)
    if everything is None:
        everything = _ALL[size] = np.ones(size, dtype=np.bool_)
    ids = np.empty(size, dtype=np.int64)
    values, weights, cumulative = (np.empty(size) for _ in range(3))
    m, _, _ = kernels.support_cumulative(scores, everything, ids, values, weights, cumulative)
    return int(ids[kernels.pick_cumulative(cumulative, m, rng.random())])


_ALL: dict[int, np.ndarray] = {}


def timed(repeats: int, fn: Any, *fn_args: Any) -> tuple[float, list[Any]]:
    """Median seconds of ``repeats`` calls ``fn(*fn_args)`` and their results."""
    seconds, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results.append(fn(*fn_args))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), results


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def run_case(case: Case, loaded: Any, params: SamplingParams, args: argparse.Namespace) -> dict[str, Any]:
    """Decode ``args.tokens`` tokens of one case, timing every sampler at every step."""
    vocab = loaded.vocab
    start = time.perf_counter()
    constraint, _ = build_constraint(vocab, **{case.kind: case.source})
    compile_seconds = time.perf_counter() - start
    matcher: Matcher = constraint.matcher()
    rng = np.random.default_rng(args.seed)
    awrs = RejectionSampler(params, max_checks=args.max_checks)
    awrs_nw = RejectionSampler(params, max_checks=args.max_checks, estimate_weight=False)
    mask = MaskSampler(params)
    lm = CachedLM(loaded.model)
    pending = encode_prompt(loaded.tokenizer, case.prompt, True)
    rows: dict[str, list[float]] = {k: [] for k in ("forward", "uncon", "mask", "awrs", "awrs-nw")}
    checks: list[int] = []
    fallbacks = 0
    generated: list[int] = []
    for _ in range(args.tokens):
        start = time.perf_counter()
        logits = lm.forward(pending)
        rows["forward"].append(time.perf_counter() - start)
        t, results = timed(args.repeats, awrs.sample, logits, matcher, rng)
        rows["awrs"].append(t)
        checks.extend(r.checks for r in results)
        fallbacks += sum(r.mask_fallback for r in results)
        token = results[0].token_id
        rows["awrs-nw"].append(timed(args.repeats, awrs_nw.sample, logits, matcher, rng)[0])
        rows["mask"].append(timed(args.repeats, mask.sample, logits, matcher, rng)[0])
        rows["uncon"].append(timed(args.repeats, sample_unconstrained, logits, vocab.size, params, rng)[0])
        if token in vocab.eos_token_ids:
            break
        matcher.advance(token)
        generated.append(token)
        pending = [token]
        if matcher.is_finished():
            break
    text = vocab.decode(generated).decode("utf-8", errors="replace")
    return {
        "case": case.name,
        "kind": case.kind,
        "tokens": len(rows["forward"]),
        "compile_s": compile_seconds,
        "text": text,
        "median_us": {k: 1e6 * statistics.median(v) for k, v in rows.items()},
        "p99_us": {k: 1e6 * p99(v) for k, v in rows.items()},
        "checks_mean": float(np.mean(checks)),
        "checks_p99": p99([float(c) for c in checks]),
        "checks_pct_vocab": 100.0 * float(np.mean(checks)) / vocab.size,
        "fallback_pct": 100.0 * fallbacks / max(len(checks), 1),
    }


def parse_schemas(spec: str) -> list[Case]:
    """``GROUP:N,GROUP:N`` -> the first N schemas of each group."""
    cases = []
    for part in filter(None, spec.split(",")):
        group, _, count = part.partition(":")
        cases.extend(schema_case(group, i) for i in range(int(count or 1)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=32, help="tokens decoded per case")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per sampler per step")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-checks", type=int, default=32, help="AWRS check budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--schemas", default="", help="JSONSchemaBench cases, e.g. Github_easy:3,Kubernetes:2"
    )
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "out" / "awrs.json")
    args = parser.parse_args()

    cases = list(CASES)
    skipped: list[str] = []
    if args.schemas:
        try:
            from structgen.compilers.json_schema import compile_json_schema  # noqa: F401
        except ImportError as exc:
            skipped.append(f"JSON Schema cases {args.schemas!r}: {exc}")
        else:
            if not BENCH.is_dir():
                skipped.append(f"JSON Schema cases: {BENCH} not found")
            else:
                cases += parse_schemas(args.schemas)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.name in wanted]

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    start = time.perf_counter()
    loaded = resolve_model(None)
    print(f"model loaded in {time.perf_counter() - start:.1f}s; vocabulary {loaded.vocab.size} ids; {params}")
    # Warm numba and the model once so the first case does not pay for compilation.
    run_case(
        Case("warmup", "regex", r"[a-z]{1,4}", "Say hi."),
        loaded,
        params,
        argparse.Namespace(**{**vars(args), "tokens": 2, "repeats": 1}),
    )

    results = []
    for case in cases:
        results.append(run_case(case, loaded, params, args))
        r = results[-1]
        print(f"  {r['case']}: {r['tokens']} tokens, {r['text'][:70]!r}", flush=True)

    header = (
        f"{'case':<16}{'tok':>4}{'fwd ms':>9}{'uncon us':>10}{'mask us':>9}{'awrs us':>9}{'awrs p99':>10}"
        f"{'nw us':>8}{'chk mean':>9}{'chk p99':>8}{'chk %V':>8}{'fallb %':>8}{'awrs/fwd':>9}{'mask/fwd':>9}"
    )
    print("\nper sampled token (medians over steps of the median of repeats; p99 over steps)")
    print(header)
    print("-" * len(header))
    for r in results:
        m, q = r["median_us"], r["p99_us"]
        print(
            f"{r['case'][:15]:<16}{r['tokens']:>4}{m['forward'] / 1e3:>9.2f}{m['uncon']:>10.0f}"
            f"{m['mask']:>9.0f}{m['awrs']:>9.0f}{q['awrs']:>10.0f}{m['awrs-nw']:>8.0f}{r['checks_mean']:>9.2f}"
            f"{r['checks_p99']:>8.1f}{r['checks_pct_vocab']:>8.4f}{r['fallback_pct']:>8.1f}"
            f"{m['awrs'] / m['forward']:>9.3f}{m['mask'] / m['forward']:>9.3f}"
        )
    for line in skipped:
        print(f"skipped: {line}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"params": vars(args) | {"json": str(args.json)}, "results": results}, indent=1)
    )
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
