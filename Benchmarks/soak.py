#!/usr/bin/env python3
"""Long-generation soak (issue 17): 8,000-token greedy generations with several strategies.

For each strategy it runs `speculate run --ignore-eos --max-tokens N --progress-every W --json`
and reads the progress lines (tokens, seconds, tokens/s of the last window, resident memory).
It reports, per strategy: resident memory after warm-up and at the end, tokens/s per window,
and the per-token time against what attention's growth predicts (a linear fit of seconds per
token against context length: memory-bound attention reads every cached key and value once per
token, so the time per token should grow linearly, never faster); and whether the output equals
plain decoding's token for token.

    python3 Benchmarks/soak.py [--speculate .build/release/speculate] [--tokens 8000]
        [--target qwen2.5-coder-1.5b-instruct] [--strategy none --strategy ngram ...]
        [--json out.json]
"""
import argparse
import json
import subprocess
import sys
import time

PROMPT = ("Write a complete, well documented Python library for a small relational database: a SQL "
          "tokenizer, a recursive-descent parser, a query planner, B-tree storage with pages on disk, "
          "transactions with a write-ahead log, and a command-line shell. Give every module in full.")


def run(args, strategy):
    command = [args.speculate, "run", "--target", args.target, "--context", str(args.tokens + 512),
               "--ignore-eos", "--max-tokens", str(args.tokens), "--progress-every", str(args.window),
               "--json", "--chat", "--threads", str(args.threads)]
    for proposer in strategy.split("+"):
        command += ["--proposer", proposer]
    command.append(PROMPT)
    started = time.time()
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"{strategy}: speculate run failed ({process.returncode}):\n{process.stderr[-2000:]}")
    progress = [json.loads(line) for line in process.stderr.splitlines() if line.startswith("{")]
    record = json.loads(process.stdout.strip().splitlines()[-1])
    return {"strategy": strategy, "progress": progress, "tokens": record["tokens"], "kernels": record["kernels"],
            "prompt_tokens": record["prompt_tokens"],
            "tokens_per_second": record["statistics"]["tokens_per_second"], "wall_seconds": time.time() - started}


def linear_fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - slope * mx, slope


def summarize(result, plain_tokens):
    progress = result["progress"]
    windows = progress[1:]  # the first window includes warm-up
    # Seconds per token in each window, against the window's mean context length.
    xs = [result["prompt_tokens"] + p["tokens"] - 0.5 * (p["tokens"] - q["tokens"]) for q, p in zip(progress, windows)]
    ys = [1 / p["window_tokens_per_second"] for p in windows]
    intercept, slope = linear_fit(xs, ys)
    worst = max(abs(y - (intercept + slope * x)) / y for x, y in zip(xs, ys))
    # Curvature check: the fit on the first half predicts the last window.
    half = len(xs) // 2
    early_intercept, early_slope = linear_fit(xs[:half], ys[:half]) if half >= 2 else (intercept, slope)
    predicted_last = early_intercept + early_slope * xs[-1]
    resident = [p.get("resident_mb") for p in progress]
    return {
        "strategy": result["strategy"], "kernels": result["kernels"], "tokens": len(result["tokens"]),
        "tokens_per_second": result["tokens_per_second"],
        "first_window_tps": windows[0]["window_tokens_per_second"], "last_window_tps": windows[-1]["window_tokens_per_second"],
        "ms_per_token_fit": [intercept * 1000, slope * 1e6],  # ms at zero context, microseconds per context token
        "fit_worst_relative_error": worst,
        "last_window_vs_early_fit": ys[-1] / predicted_last,
        "resident_mb_after_warmup": resident[1], "resident_mb_end": resident[-1],
        "identical_to_plain": plain_tokens is None or result["tokens"] == plain_tokens,
        "windows": [[p["tokens"], round(p["window_tokens_per_second"], 2), round(p.get("resident_mb", 0), 1)] for p in progress],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speculate", default=".build/release/speculate")
    parser.add_argument("--target", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--tokens", type=int, default=8000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strategy", action="append",
                        help="proposers joined by '+', e.g. none, ngram, draft:qwen2.5-coder-0.5b-instruct, auto+draft:...")
    parser.add_argument("--json", help="write the summaries here")
    args = parser.parse_args()
    # At least eight windows, so that the fits of seconds per token have points to fit (a short
    # soak, as .ci/deep can ask for, would otherwise have one window past the warm-up).
    args.window = max(1, min(args.window, args.tokens // 8))
    strategies = args.strategy or ["none", "ngram", "draft:qwen2.5-coder-0.5b-instruct", "auto+draft:qwen2.5-coder-0.5b-instruct"]
    plain = None
    summaries = []
    for strategy in strategies:
        result = run(args, strategy)
        if strategy == "none":
            plain = result["tokens"]
        summary = summarize(result, plain)
        summaries.append(summary)
        print(json.dumps({k: v for k, v in summary.items() if k != "windows"}), flush=True)
    print("\n| strategy | tokens | tokens/s | first / last window | ms/token at 0 + µs per context token | last window vs early fit | resident MB (warm / end) | = plain |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s['strategy']} | {s['tokens']} | {s['tokens_per_second']:.1f} | {s['first_window_tps']:.1f} / {s['last_window_tps']:.1f} "
              f"| {s['ms_per_token_fit'][0]:.1f} + {s['ms_per_token_fit'][1]:.2f} | {s['last_window_vs_early_fit']:.2f} "
              f"| {s['resident_mb_after_warmup']:.0f} / {s['resident_mb_end']:.0f} | {'yes' if s['identical_to_plain'] else 'NO'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summaries, f, indent=1)
    if not all(s["identical_to_plain"] for s in summaries):
        sys.exit("some outputs differ from plain decoding")


if __name__ == "__main__":
    main()
