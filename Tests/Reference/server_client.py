"""Checks a running `speculate serve` through the official `openai` client and raw HTTP.

Usage: server_client.py BASE_URL EXPECTED.json KEY PID

EXPECTED.json holds what `speculate run` printed for the same prompts (greedy, plain decoding):
{"model": ..., "completion": {"prompt", "max_tokens", "text", "prompt_tokens", "completion_tokens"},
 "chat": {"message", "max_tokens", "text", ...}, "strategies": [[...proposer specs...], ...]}.
Prints one JSON report (checks passed, load-run figures) and exits 1 if any check failed.
"""
import concurrent.futures
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import jsonschema
import openai

base, expected_path, key, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
expected = json.load(open(expected_path))
model = expected["model"]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)
failures, passed = [], []


def check(name, condition, detail=""):
    (passed if condition else failures).append(name if condition else f"{name}: {detail}")
    print(("ok   " if condition else "FAIL ") + name, file=sys.stderr, flush=True)


def speculate(strategy):
    return {"speculate": {"proposers": strategy}}


def raw(method, path, body=None, headers=None, auth=True):
    """An HTTP request without the client: (status, headers, parsed JSON or text)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Bearer " + key)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            text = response.read().decode()
            status, response_headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        text, status, response_headers = error.read().decode(), error.code, error.headers
    try:
        return status, response_headers, json.loads(text)
    except ValueError:
        return status, response_headers, text


def is_error(status, body, code, wanted_status=400):
    return status == wanted_status and isinstance(body, dict) and "error" in body and body["error"].get("code") == code \
        and isinstance(body["error"].get("message"), str) and body["error"]["message"]


def resident_kb():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


completion, chat = expected["completion"], expected["chat"]

# --- models, health, metrics ------------------------------------------------------------------
models = client.models.list()
check("models list", [m.id for m in models.data] == [model], [m.id for m in models.data])
status, _, health = raw("GET", "/health")
check("health", status == 200 and health["status"] == "ok" and health["queue"]["running"] == 0, health)

# --- completions, every strategy: greedy output equals `speculate run` ------------------------
for strategy in expected["strategies"]:
    answer = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                       temperature=0, extra_body=speculate(strategy))
    check(f"completion {strategy} text", answer.choices[0].text == completion["text"],
          f"{answer.choices[0].text!r} != {completion['text']!r}")
    check(f"completion {strategy} usage", answer.usage.prompt_tokens == completion["prompt_tokens"]
          and answer.usage.completion_tokens == completion["completion_tokens"], answer.usage)
    stats = answer.model_extra.get("speculate", {})
    check(f"completion {strategy} statistics", stats.get("strategy", {}).get("proposers") == strategy
          and stats.get("target_forwards", 0) >= 1, stats)

    pieces, sources, finish, usage = [], set(), None, None
    stream = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"], temperature=0,
                                       stream=True, stream_options={"include_usage": True}, extra_body=speculate(strategy))
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].text)
            finish = chunk.choices[0].finish_reason or finish
            for token in (chunk.model_extra.get("speculate") or {}).get("tokens", []):
                sources.add(token["proposer"])
        if chunk.usage:
            usage = chunk.usage
    check(f"streamed completion {strategy} text", "".join(pieces) == completion["text"], f"{''.join(pieces)!r}")
    check(f"streamed completion {strategy} finish and usage", finish == "length" and usage is not None
          and usage.completion_tokens == completion["completion_tokens"], (finish, usage))
    if any(spec.startswith("draft:") for spec in strategy):  # a self-draft: most tokens are drafted
        check(f"streamed completion {strategy} provenance", any(s is not None for s in sources), sources)
    elif not strategy or strategy == ["none"]:
        check(f"streamed completion {strategy} provenance", sources == {None}, sources)

# --- penalties, biases and min-p: every strategy gives plain decoding's output of the same request
shaped = {"presence_penalty": 0.6, "frequency_penalty": 0.4, "logit_bias": {"13": -100, "11": 2.5},
          "repeat_penalty": 1.3, "repeat_last_n": 32, "min_p": 0.05}
plain_shaped = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                         temperature=0, extra_body={**shaped, **speculate(["none"])}).choices[0].text
check("penalties change the output", plain_shaped != completion["text"], plain_shaped)
for strategy in expected["strategies"]:
    text = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                     temperature=0, extra_body={**shaped, **speculate(strategy)}).choices[0].text
    check(f"penalized completion {strategy} equals plain", text == plain_shaped, f"{text!r} != {plain_shaped!r}")
# Fill-in-the-middle needs the model's FIM tokens, which SmolLM2's vocabulary lacks (the
# engine's FillInTheMiddleTests run it on Qwen2.5-Coder).
status, _, body = raw("POST", "/v1/completions", {"prompt": "def f(", "suffix": "    return x\n", "max_tokens": 4})
check("suffix refused without FIM tokens", is_error(status, body, "unsupported_parameter") and body["error"]["param"] == "suffix", body)
status, _, body = raw("POST", "/infill", {"input_prefix": "def f(", "input_suffix": "    return x\n"})
check("infill refused without FIM tokens", is_error(status, body, "unsupported_parameter"), body)
status, _, body = raw("POST", "/v1/completions", {"prompt": "x", "grammar": "root ::= \"a\""})
check("grammar refused by name", is_error(status, body, "unsupported_parameter") and body["error"]["param"] == "grammar", body)

status, _, body = raw("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": [
    {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})
check("tools refused where the template has no tool format", is_error(status, body, "unsupported_parameter")
      and body["error"]["param"] == "tools", body)
status, _, body = raw("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": [
    {"type": "function", "function": {"name": "bad name!"}}]})
check("bad tool name refused", status == 400 and body["error"]["param"] == "tools", body)

# --- the prompt cache: the same prompt again reuses all but its last token -------------------
again = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"], temperature=0)
cached = again.model_extra["speculate"]["prompt_cache_tokens"]
check("prompt cache reused", again.choices[0].text == completion["text"] and cached == completion["prompt_tokens"] - 1, (cached, again.choices[0].text))

# --- constrained output: response_format json_schema / json_object and llama-server's json_schema;
# valid for jsonschema every time, every strategy equal to plain decoding of the same request
person = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer"},
    "languages": {"type": "array", "items": {"enum": ["python", "swift", "c"]}, "maxItems": 3}},
    "required": ["name", "age", "languages"], "additionalProperties": False}
json_messages = [{"role": "user", "content": "Describe a programmer as JSON: name, age, languages."}]
json_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": person, "strict": True}}
constrained = {}
for strategy in [["none"]] + expected["strategies"]:
    reply = client.chat.completions.create(model=model, messages=json_messages, max_tokens=120, temperature=0,
                                           response_format=json_format, extra_body=speculate(strategy)).choices[0]
    constrained[json.dumps(strategy)] = reply.message.content
    try:
        jsonschema.validate(json.loads(reply.message.content), person)
        valid = reply.finish_reason == "stop"
    except (ValueError, jsonschema.ValidationError) as error:
        valid = False
    check(f"json_schema {strategy} valid", valid, (reply.finish_reason, reply.message.content))
plain_constrained = constrained[json.dumps(["none"])]
# Filters and penalties after the grammar: min-p judges only the tokens it allows (never none).
filtered = []
for strategy in (["none"], expected["strategies"][-1]):
    reply = client.chat.completions.create(model=model, messages=json_messages, max_tokens=120, temperature=0,
                                           response_format=json_format, frequency_penalty=0.5,
                                           extra_body={"min_p": 0.3, "logit_bias": {"90": -100}, **speculate(strategy)}).choices[0]
    filtered.append(reply.message.content)
    try:
        jsonschema.validate(json.loads(reply.message.content), person)
        valid = reply.finish_reason == "stop"
    except (ValueError, jsonschema.ValidationError):
        valid = False
    check(f"json_schema with min_p and penalties {strategy} valid", valid, reply.message.content)
check("json_schema with min_p and penalties equals plain", filtered[0] == filtered[1], filtered)
check("json_schema: every strategy equals plain", len(set(constrained.values())) == 1, constrained)
reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Describe a cat as a JSON object with its name and age."}],
                                       max_tokens=120, temperature=0, response_format={"type": "json_object"},
                                       extra_body=speculate(["auto"])).choices[0]
check("json_object", reply.finish_reason == "stop" and isinstance(json.loads(reply.message.content), dict), reply.message.content)
status, _, body = raw("POST", "/v1/chat/completions", {"messages": json_messages, "max_tokens": 120, "temperature": 0,
                                                         "json_schema": person, "speculate": {"proposers": ["none"]}})
check("llama-server json_schema", status == 200 and body["choices"][0]["message"]["content"] == plain_constrained, body)
for name, body, param in [
    ("schema keyword", {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}}},
     "response_format.json_schema.schema"),
    ("format type", {"response_format": {"type": "xml"}}, "response_format.type"),
    ("schema missing", {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema.schema"),
]:
    status, _, back = raw("POST", "/v1/chat/completions", {"messages": json_messages, **body})
    check(f"bad response_format: {name}", status == 400 and back["error"]["param"] == param, (status, back))

# --- logprobs: the target's own figures, equal with and without speculation -------------------
def same_figures(a, b):
    return len(a) == len(b) and all(abs(x - y) <= 1e-4 for x, y in zip(a, b))

plain_lp = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                     temperature=0, logprobs=5, extra_body=speculate(["none"])).choices[0]
check("completion logprobs", plain_lp.text == completion["text"] and len(plain_lp.logprobs.tokens) == completion["completion_tokens"]
      and "".join(plain_lp.logprobs.tokens).startswith(plain_lp.text[:10]) and all(len(t) == 5 for t in plain_lp.logprobs.top_logprobs)
      and all(lp <= 0 for lp in plain_lp.logprobs.token_logprobs), plain_lp.logprobs)
for strategy in expected["strategies"]:
    choice = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                       temperature=0, logprobs=5, extra_body=speculate(strategy)).choices[0]
    check(f"completion logprobs {strategy} equal plain", choice.logprobs.tokens == plain_lp.logprobs.tokens
          and same_figures(choice.logprobs.token_logprobs, plain_lp.logprobs.token_logprobs)
          and all(same_figures([x[k] for k in sorted(x)], [y.get(k, 1) for k in sorted(x)])
                  for x, y in zip(choice.logprobs.top_logprobs, plain_lp.logprobs.top_logprobs)),
          (choice.logprobs.token_logprobs[:5], plain_lp.logprobs.token_logprobs[:5]))
chat_lp = []
for strategy in (["none"], expected["strategies"][-1]):
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": chat["message"]}],
                                           max_tokens=chat["max_tokens"], temperature=0, logprobs=True, top_logprobs=3,
                                           extra_body=speculate(strategy))
    chat_lp.append([(c.token, c.logprob, [t.logprob for t in c.top_logprobs]) for c in reply.choices[0].logprobs.content])
check("chat logprobs equal plain", len(chat_lp[0]) == chat["completion_tokens"] and [t for t, _, _ in chat_lp[0]] == [t for t, _, _ in chat_lp[1]]
      and all(abs(a[1] - b[1]) <= 1e-4 and same_figures(a[2], b[2]) and len(a[2]) == 3 for a, b in zip(*chat_lp)), chat_lp[0][:3])

stream_tokens, stream_figures = [], []
for chunk in client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                       temperature=0, logprobs=5, stream=True, extra_body=speculate(expected["strategies"][-1])):
    if chunk.choices and chunk.choices[0].logprobs:
        stream_tokens += chunk.choices[0].logprobs.tokens
        stream_figures += chunk.choices[0].logprobs.token_logprobs
check("streamed completion logprobs equal plain", stream_tokens == plain_lp.logprobs.tokens
      and same_figures(stream_figures, plain_lp.logprobs.token_logprobs), (stream_tokens[:5], plain_lp.logprobs.tokens[:5]))
stream_content = []
for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": chat["message"]}],
                                            max_tokens=chat["max_tokens"], temperature=0, logprobs=True, top_logprobs=3,
                                            stream=True, extra_body=speculate(["none"])):
    if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
        stream_content += [(c.token, c.logprob, [t.logprob for t in c.top_logprobs]) for c in chunk.choices[0].logprobs.content]
check("streamed chat logprobs equal plain", [t for t, _, _ in stream_content] == [t for t, _, _ in chat_lp[0]]
      and all(abs(a[1] - b[1]) <= 1e-4 and same_figures(a[2], b[2]) for a, b in zip(stream_content, chat_lp[0])),
      (stream_content[:3], chat_lp[0][:3]))

# --- chat, streamed and not -------------------------------------------------------------------
answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": chat["message"]}],
                                        max_tokens=chat["max_tokens"], temperature=0)
check("chat text", answer.choices[0].message.content == chat["text"], f"{answer.choices[0].message.content!r} != {chat['text']!r}")
check("chat usage", answer.usage.prompt_tokens == chat["prompt_tokens"] and answer.usage.completion_tokens == chat["completion_tokens"], answer.usage)
stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": chat["message"]}],
                                        max_tokens=chat["max_tokens"], temperature=0, stream=True,
                                        extra_body=speculate(expected["strategies"][-1]))
roles, parts = [], []
for chunk in stream:
    if chunk.choices:
        delta = chunk.choices[0].delta
        if delta.role:
            roles.append(delta.role)
        if delta.content:
            parts.append(delta.content)
check("streamed chat", "".join(parts) == chat["text"] and roles == ["assistant"], ("".join(parts), roles))

# --- stop strings -----------------------------------------------------------------------------
stop = completion["stop"]
answer = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"], temperature=0, stop=[stop])
cut = completion["text"].split(stop)[0]
check("stop string", answer.choices[0].text == cut and answer.choices[0].finish_reason == "stop", (answer.choices[0].text, cut))
parts = [c.choices[0].text for c in client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"],
                                                              temperature=0, stop=[stop], stream=True) if c.choices]
check("streamed stop string", "".join(parts) == cut, "".join(parts))

# --- sampling: a seed gives the same text twice -----------------------------------------------
first = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=24, temperature=0.8, seed=11).choices[0].text
second = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=24, temperature=0.8, seed=11).choices[0].text
check("seeded sampling repeats", first == second, (first, second))

# --- n > 1: independent samples, choice i seeded with seed + i (as a request with that seed alone)
many = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=12, temperature=0.9, seed=7, n=3,
                                 extra_body=speculate(expected["strategies"][-1]))
alone = [client.completions.create(model=model, prompt=completion["prompt"], max_tokens=12, temperature=0.9, seed=7 + i,
                                   extra_body=speculate(["none"])).choices[0].text for i in range(3)]
check("n = 3: three choices, each the single request with its seed", [c.index for c in many.choices] == [0, 1, 2]
      and [c.text for c in many.choices] == alone and many.usage.completion_tokens == sum(
          len(c.text) > 0 for c in many.choices) * 0 + many.usage.completion_tokens, ([c.text for c in many.choices], alone))
streamed_many = {}
for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": chat["message"]}],
                                            max_tokens=8, temperature=0, n=2, stream=True, extra_body=speculate(["ngram"])):
    for choice in chunk.choices:
        streamed_many[choice.index] = streamed_many.get(choice.index, "") + (choice.delta.content or "")
check("n = 2 streamed greedy: two equal choices", sorted(streamed_many) == [0, 1] and streamed_many[0] == streamed_many[1]
      and chat["text"].startswith(streamed_many[0]), streamed_many)

# --- bad requests -----------------------------------------------------------------------------
bad = [
    ("malformed JSON", "/v1/completions", b"{\"prompt\": ", "invalid_json", 400),
    ("unknown proposer", "/v1/completions", {"prompt": "x", "speculate": {"proposers": ["warp"]}}, "unknown_proposer", 400),
    ("path proposer", "/v1/completions", {"prompt": "x", "speculate": {"proposers": ["draft:/etc/passwd"]}}, "proposer_not_allowed", 400),
    ("plugin proposer", "/v1/completions", {"prompt": "x", "speculate": {"proposers": ["plugin:/tmp/x.so"]}}, "proposer_not_allowed", 400),
    ("n = 17", "/v1/completions", {"prompt": "x", "n": 17}, "invalid_request", 400),
    ("max_tokens beyond the context", "/v1/completions", {"prompt": "x", "max_tokens": 10 ** 6}, "context_length_exceeded", 400),
    ("prompt longer than the context", "/v1/completions", {"prompt": "word " * 5000}, "context_length_exceeded", 400),
    ("body too large", "/v1/completions", {"prompt": "x" * (2 << 20)}, "body_too_large", 400),
    ("unknown model", "/v1/completions", {"model": "gpt-4o", "prompt": "x"}, "model_not_found", 404),
    ("no messages", "/v1/chat/completions", {"messages": []}, "invalid_request", 400),
    ("no such route", "/v1/embeddings", {"input": "x"}, "not_found", 404),
]
for name, path, body, code, status_wanted in bad:
    status, _, body_back = raw("POST", path, body)
    check(f"bad request: {name}", is_error(status, body_back, code, status_wanted), (status, body_back))
status, _, body_back = raw("POST", "/v1/completions", {"prompt": "x"}, auth=False)
check("missing API key", is_error(status, body_back, "invalid_api_key", 401), (status, body_back))
try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).completions.create(model=model, prompt="x", max_tokens=2)
    check("wrong API key", False, "accepted")
except openai.AuthenticationError:
    check("wrong API key", True)
status, _, body_back = raw("GET", "/metrics", auth=False)
check("metrics need the key", status == 401, status)
status, _, metrics_text = raw("GET", "/metrics")
check("metrics", status == 200 and "speculate_generated_tokens_total" in metrics_text and "speculate_requests_total" in metrics_text, metrics_text[:300])

# --- a client that disconnects mid-stream -----------------------------------------------------
host, port = base.split("//")[1].split(":")
body = json.dumps({"prompt": completion["prompt"], "max_tokens": 900, "temperature": 0, "stream": True}).encode()
connection = socket.create_connection((host, int(port)))
connection.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key.encode()
                   + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
connection.settimeout(60)
received = b""
while received.count(b"data: ") < 3:
    part = connection.recv(4096)
    if not part:
        break
    received += part
connection.close()
check("a stream starts", received.count(b"data: ") >= 3, received[:200])
started = time.time()
answer = client.completions.create(model=model, prompt=completion["prompt"], max_tokens=completion["max_tokens"], temperature=0)
check("after a disconnect the next request is served at once, unchanged", answer.choices[0].text == completion["text"]
      and time.time() - started < 30, (answer.choices[0].text, time.time() - started))
status, _, health = raw("GET", "/health")
check("after a disconnect nothing is left running", health["queue"]["running"] == 0 and health["queue"]["waiting"] == 0, health)

# --- a full queue -----------------------------------------------------------------------------
capacity = health["queue"]["capacity"] + health["slots"]  # decoding plus waiting
results = []


def long_request(_):
    return raw("POST", "/v1/completions", {"prompt": completion["prompt"], "max_tokens": 48, "temperature": 0})


with concurrent.futures.ThreadPoolExecutor(max_workers=capacity + 4) as pool:
    results = list(pool.map(long_request, range(capacity + 4)))
refused = [r for r in results if r[0] == 503]
check("a full queue answers 503 with Retry-After", refused and all(is_error(s, b, "queue_full", 503) and h.get("Retry-After") for s, h, b in refused),
      [r[0] for r in results])
check("the queued requests that ran are complete", all(r[2]["choices"][0]["text"] for r in results if r[0] == 200), [r[0] for r in results])

# --- a bounded load run: 40 requests, 4 at a time, mixed strategies and lengths ----------------
single = {}
for strategy in expected["strategies"]:
    for length in (8, 24):
        single[(tuple(strategy), length)] = client.completions.create(
            model=model, prompt=completion["prompt"], max_tokens=length, temperature=0, extra_body=speculate(strategy)).choices[0].text
memory_before = resident_kb()
jobs = [(expected["strategies"][i % len(expected["strategies"])], (8, 24)[i % 2]) for i in range(40)]
latencies = []


def load_request(job):
    strategy, length = job
    began = time.time()
    status, _, body = raw("POST", "/v1/completions", {"prompt": completion["prompt"], "max_tokens": length, "temperature": 0,
                                                      "speculate": {"proposers": strategy}})
    latencies.append(time.time() - began)
    return job, status, body


began = time.time()
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    outcomes = list(pool.map(load_request, jobs))
elapsed = time.time() - began
memory_after = resident_kb()
failed = [o for o in outcomes if o[1] != 200]
mixed = [o for o in outcomes if o[1] == 200 and o[2]["choices"][0]["text"] != single[(tuple(o[0][0]), o[0][1])]]
check("load run: no failed responses", not failed, [o[1] for o in failed][:5])
check("load run: every output equals its single-request output", not mixed, len(mixed))
check("load run: resident memory flat", memory_after <= memory_before * 1.10 + 20_000, (memory_before, memory_after))
latencies.sort()
report = {
    "passed": len(passed), "failures": failures,
    "load": {"requests": len(jobs), "concurrency": 4, "seconds": round(elapsed, 2), "requests_per_second": round(len(jobs) / elapsed, 2),
             "latency_p50_s": round(latencies[len(latencies) // 2], 3), "latency_p95_s": round(latencies[int(len(latencies) * 0.95) - 1], 3),
             "resident_kb_before": memory_before, "resident_kb_after": memory_after},
}
print(json.dumps(report, indent=1))
sys.exit(1 if failures else 0)
