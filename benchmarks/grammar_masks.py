"""Grammar constraints: compile time, time to first mask and mask time, structgen next to llguidance.

For every shipped grammar (``grammars/*.lark``) and vocabulary, both libraries compile the same
Lark grammar, then follow the same token sequences -- corpus sentences of
``tests/data/grammars`` tokenized by the model's tokenizer -- computing the full token mask before
every token. Printed: compile time (the grammar text to a ready constraint; structgen's front-end
and regex caches are cleared first, the vocabulary's token trie and llguidance's tokenizer are
built beforehand, once), time to first mask (compile + first mask), mask time p50/p99/max over all
positions, the p50 ratio structgen/llguidance, and how many masks were bit-for-bit equal.

llguidance does not support Lark templates, so for ``python`` it gets the template-expanded BNF
that structgen's front end produces (same language). The two libraries' lexers differ in details
(structgen reserves keywords, see structgen.compilers.lark_frontend), so a few masks may differ.

    python benchmarks/grammar_masks.py                      # all grammars, smollm2 and llama3
    python benchmarks/grammar_masks.py --vocab smollm2 --grammars json sql --sentences 10
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grammars  # noqa: E402
from structgen.automata import regex as sg_regex  # noqa: E402
from structgen.automata.cfg import ContextFreeGrammar  # noqa: E402
from structgen.automata.token_trie import TokenTrie  # noqa: E402
from structgen.bitmask import allocate_token_bitmask  # noqa: E402
from structgen.compilers import lark_frontend  # noqa: E402
from structgen.compilers.grammar import compile_grammar  # noqa: E402
from structgen.tokenizers import load_tokenizer, load_vocabulary  # noqa: E402

DATA = REPO / "tests" / "data" / "grammars"
WARM_UP_GRAMMAR = r"""
start: item+
item: "(" item* ")" | WORD | NUMBER | STRING | "alpha" | "beta" | "gamma" | "delta" | "epsilon"
WORD: /[a-z]+/
NUMBER: /[0-9]+/
STRING: /"[^"]*"/ | /'[^']*'/
%ignore " "
"""
WARM_UP_TEXT = "(alpha (beta 12 (gamma x) delta) " * 40 + "(" * 150 + "epsilon" + ")" * 150
WARM_UP_TEXT += " 'a' \"b\"" * 20


def load_corpus(name: str) -> list[str]:
    """Corpus sentences of a shipped grammar (the files the tests use)."""
    if name == "sql":
        text = (DATA / "sql_queries.sql").read_text(encoding="utf-8").split("\n\n", 1)[1]
        return [b.strip() for b in text.split("\n-- ;;\n")]
    if name == "lark":
        import lark

        files = [grammars.path(n) for n in grammars.names()]
        files += sorted((Path(lark.__file__).parent / "grammars").glob("*.lark"))
        return [f.read_text(encoding="utf-8") for f in files]
    lines = (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def cfg_to_lark(cfg: ContextFreeGrammar) -> str:
    """The BNF of ``cfg`` as Lark text (for parsers without template support)."""

    def rule_name(n: str) -> str:
        return "r_" + re.sub(r"[^a-z0-9_]", "_", n.lower())

    def term_name(n: str) -> str:
        return "T_" + re.sub(r"[^A-Z0-9_]", "_", n.upper())

    lines = [f"start: {rule_name(cfg.start)}"]
    by_lhs: dict[str, list[tuple[str, ...]]] = {}
    for prod in cfg.productions:
        by_lhs.setdefault(prod.lhs, []).append(prod.rhs)
    for lhs, alternatives in by_lhs.items():
        alts = []
        for rhs in alternatives:
            syms = [term_name(s) if s in cfg.terminals else rule_name(s) for s in rhs]
            alts.append(" ".join(syms) if syms else "")
        lines.append(f"{rule_name(lhs)}: " + " | ".join(alts))
    for name, term in cfg.terminals.items():
        if term.is_literal:
            lines.append(f"{term_name(name)}: {json.dumps(term.pattern)}")
        else:
            body = re.sub(r"(?<!\\)/", r"\\/", term.pattern)
            lines.append(f"{term_name(name)}: /{body}/")
    lines.extend(f"%ignore {term_name(n)}" for n in cfg.ignore)
    return "\n".join(lines) + "\n"


def percentiles(values: list[float]) -> tuple[float, float, float]:
    arr = np.array(values) * 1e6
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.max())


def clear_structgen_caches() -> None:
    lark_frontend.load_lark.cache_clear()
    sg_regex.regex_to_fsm.cache_clear()
    sg_regex.regex_to_byte_dfa.cache_clear()


def bench(name: str, vocab_name: str, args, tokenizer, vocab, llt) -> dict:
    from llguidance import LLMatcher
    from llguidance.numpy import fill_next_token_bitmask

    text = grammars.load(name)
    # --- compile + first mask ---
    clear_structgen_caches()
    gc.collect()
    t0 = time.perf_counter()
    constraint = compile_grammar(name, vocab, cache=False)
    t1 = time.perf_counter()
    matcher = constraint.matcher()
    mask = allocate_token_bitmask(1, vocab.size)
    matcher.fill_bitmask(mask, 0)
    t2 = time.perf_counter()
    sg_compile, sg_ttfm = t1 - t0, t2 - t0

    lark_text = text
    if LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(text), llt):
        lark_text = cfg_to_lark(lark_frontend.load_lark(text, name=name).cfg)
    t0 = time.perf_counter()
    llg_grammar = LLMatcher.grammar_from_lark(lark_text)
    llm = LLMatcher(llt, llg_grammar, log_level=0)
    t1 = time.perf_counter()
    llg_mask = allocate_token_bitmask(1, vocab.size)
    fill_next_token_bitmask(llm, llg_mask, 0)
    t2 = time.perf_counter()
    llg_compile, llg_ttfm = t1 - t0, t2 - t0
    if llm.is_error():
        raise RuntimeError(f"llguidance cannot compile {name}: {llm.get_error()}")

    # --- masks along corpus sentences ---
    sg_times: list[float] = []
    llg_times: list[float] = []
    equal = 0
    llg_refused = 0
    for sentence in load_corpus(name)[: args.sentences]:
        ids = list(tokenizer.encode(sentence, add_special_tokens=False))[: args.max_tokens]
        m = constraint.matcher()
        llm = LLMatcher(llt, llg_grammar, log_level=0)
        llg_ok = True
        for token in ids:
            t0 = time.perf_counter()
            m.fill_bitmask(mask, 0)
            sg_times.append(time.perf_counter() - t0)
            if llg_ok:
                t0 = time.perf_counter()
                fill_next_token_bitmask(llm, llg_mask, 0)
                llg_times.append(time.perf_counter() - t0)
                equal += bool(np.array_equal(mask, llg_mask))
                llg_ok = llm.consume_token(token) and not llm.is_error()
                llg_refused += not llg_ok
            m.advance(token)
    return {
        "grammar": name,
        "vocab": vocab_name,
        "sg_compile": sg_compile,
        "llg_compile": llg_compile,
        "sg_ttfm": sg_ttfm,
        "llg_ttfm": llg_ttfm,
        "sg": percentiles(sg_times),
        "llg": percentiles(llg_times) if llg_times else (float("nan"),) * 3,
        "masks": len(sg_times),
        "equal": equal,
        "compared": len(llg_times),
        "llg_refused": llg_refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", nargs="+", default=["smollm2", "llama3"])
    parser.add_argument("--grammars", nargs="+", default=list(grammars.names()))
    parser.add_argument("--sentences", type=int, default=20, help="corpus sentences per grammar")
    parser.add_argument("--max-tokens", type=int, default=400, help="tokens per sentence at most")
    args = parser.parse_args()

    import llguidance
    import llguidance.hf

    rows = []
    for vocab_name in args.vocab:
        tokenizer = load_tokenizer(vocab_name)
        vocab = load_vocabulary(vocab_name)
        TokenTrie.for_vocab(vocab)
        llt = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab.size, eos_token=list(vocab.eos_token_ids))
        # Warm up both libraries (imports, numba's compiled kernels, the growth of their tables)
        # on another grammar: deep nesting of many keywords.
        warm = compile_grammar(WARM_UP_GRAMMAR, vocab, cache=False).matcher()
        for token in tokenizer.encode(WARM_UP_TEXT, add_special_tokens=False):
            warm.mask()
            warm.advance(token)
        llguidance.LLMatcher(llt, llguidance.LLMatcher.grammar_from_lark('start: "x"+'), log_level=0)
        for name in args.grammars:
            row = bench(name, vocab_name, args, tokenizer, vocab, llt)
            rows.append(row)
            print(f"done {name}/{vocab_name}: {row['masks']} masks", file=sys.stderr)

    print()
    print(
        f"{'grammar':<11} {'vocab':<8} {'compile ms':>15} {'first mask ms':>15} "
        f"{'mask p50 us':>17} {'mask p99 us':>17} {'mask max us':>19} {'p50 x':>6} {'masks':>6} {'equal':>6}"
    )
    pair = "{:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}".format(*["sg", "llg"] * 5)
    print(f"{'':<11} {'':<8} {pair}")
    ratios = []
    for r in rows:
        ratio = r["sg"][0] / r["llg"][0] if r["llg"][0] else float("nan")
        ratios.append(ratio)
        print(
            f"{r['grammar']:<11} {r['vocab']:<8} {r['sg_compile'] * 1e3:7.1f} {r['llg_compile'] * 1e3:7.1f} "
            f"{r['sg_ttfm'] * 1e3:7.1f} {r['llg_ttfm'] * 1e3:7.1f} {r['sg'][0]:8.1f} {r['llg'][0]:8.1f} "
            f"{r['sg'][1]:8.1f} {r['llg'][1]:8.1f} {r['sg'][2]:9.0f} {r['llg'][2]:9.0f} {ratio:6.2f} "
            f"{r['masks']:6d} {r['equal'] / max(r['compared'], 1):6.1%}"
        )
    print(f"\nmedian p50 ratio structgen/llguidance: {float(np.nanmedian(ratios)):.2f}")
    refused = [f"{r['grammar']}/{r['vocab']}: {r['llg_refused']}" for r in rows if r["llg_refused"]]
    if refused:
        print("sentences llguidance refused (its lexing differs):", ", ".join(refused))


if __name__ == "__main__":
    main()
