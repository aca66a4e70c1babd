"""Checks `speculate serve` on a coder model (Qwen2.5-Coder: FIM tokens, the <tool_call> format)
through the official `openai` client: tool calls (auto, required, named, streamed, and a round
trip with the tool's answer), fill-in-the-middle (`suffix`, and llama-server's /infill), each
equal under every strategy to plain decoding of the same request.

Usage: coder_client.py BASE_URL KEY MODEL
Prints one JSON report {"passed": [...], "failures": [...]} and exits 1 if any check failed.
"""
import json
import sys
import urllib.request

import jsonschema
import openai

base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)
failures, passed = [], []
# Plain decoding against `auto` (n-gram lookup with the model's drafts where it has a pairing):
# every strategy runs on SmolLM2 in server_client.py; CI's budget keeps this one to two.
strategies = [["none"], ["auto"]]


def check(name, condition, detail=""):
    (passed if condition else failures).append(name if condition else f"{name}: {detail}")
    print(("ok   " if condition else "FAIL ") + name, file=sys.stderr, flush=True)


def speculate(strategy):
    return {"speculate": {"proposers": strategy}}


weather = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
clock = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
question = [{"role": "user", "content": "What is the weather in Paris right now, in celsius?"}]


def calls_of(message):
    return [(c.function.name, json.loads(c.function.arguments)) for c in (message.tool_calls or [])]


# --- tool_choice auto: the model calls the weather tool; every strategy gives the same call
answers = {}
for strategy in strategies:
    reply = client.chat.completions.create(model=model, messages=question, tools=[weather, clock], temperature=0,
                                           max_tokens=80, extra_body=speculate(strategy)).choices[0]
    answers[json.dumps(strategy)] = (reply.finish_reason, calls_of(reply.message), reply.message.content)
plain = answers[json.dumps(["none"])]
check("auto: a get_weather call", plain[0] == "tool_calls" and plain[1] and plain[1][0][0] == "get_weather"
      and plain[1][0][1].get("city") == "Paris", plain)
check("auto: every strategy equals plain", all(a == plain for a in answers.values()), answers)

# --- required and named: constrained to the tool's schema, valid for jsonschema, equal to plain
for choice in ["required", {"type": "function", "function": {"name": "get_time"}}]:
    results = []
    for strategy in strategies:
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Tell me a joke."}],
                                               tools=[weather, clock], tool_choice=choice, temperature=0, max_tokens=80,
                                               extra_body=speculate(strategy)).choices[0]
        results.append((reply.finish_reason, calls_of(reply.message)))
    finish, calls = results[0]
    valid = finish == "tool_calls" and len(calls) == 1
    if valid:
        tool = next(t for t in (weather, clock) if t["function"]["name"] == calls[0][0])
        try:
            jsonschema.validate(calls[0][1], tool["function"]["parameters"])
        except jsonschema.ValidationError:
            valid = False
        if isinstance(choice, dict):
            valid = valid and calls[0][0] == "get_time"
    check(f"tool_choice {json.dumps(choice)}: one valid call", valid, results[0])
    check(f"tool_choice {json.dumps(choice)}: every strategy equals plain", all(r == results[0] for r in results), results)

# --- streamed: the deltas add up to the same call
stream = client.chat.completions.create(model=model, messages=question, tools=[weather, clock], temperature=0,
                                        max_tokens=80, stream=True, extra_body=speculate(["auto"]))
streamed_calls, finish, content = {}, None, ""
for chunk in stream:
    if not chunk.choices:
        continue
    delta = chunk.choices[0].delta
    content += delta.content or ""
    for call in delta.tool_calls or []:
        entry = streamed_calls.setdefault(call.index, {"name": "", "arguments": ""})
        entry["name"] += call.function.name or ""
        entry["arguments"] += call.function.arguments or ""
    finish = chunk.choices[0].finish_reason or finish
streamed = [(c["name"], json.loads(c["arguments"])) for _, c in sorted(streamed_calls.items())]
check("streamed: the same call, finish tool_calls, no <tool_call> text",
      finish == "tool_calls" and streamed == plain[1] and "<tool_call>" not in content, (finish, streamed, content))

# --- round trip: the tool's answer goes back; the model answers in text
first = client.chat.completions.create(model=model, messages=question, tools=[weather, clock], temperature=0,
                                       max_tokens=80).choices[0].message
history = question + [{"role": "assistant", "content": first.content,
                       "tool_calls": [c.model_dump() for c in first.tool_calls]},
                      {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": json.dumps({"temperature": 18, "sky": "cloudy"})}]
finals = []
for strategy in strategies:
    reply = client.chat.completions.create(model=model, messages=history, tools=[weather, clock], temperature=0,
                                           max_tokens=60, extra_body=speculate(strategy)).choices[0]
    finals.append((reply.finish_reason, reply.message.content))
check("round trip: an answer in text that uses the tool's result",
      finals[0][0] in ("stop", "length") and finals[0][1] and "18" in finals[0][1], finals[0])
check("round trip: every strategy equals plain", all(f == finals[0] for f in finals), finals)

# --- fill-in-the-middle: suffix on completions and /infill, every strategy equal to plain
prefix = "def mean(values):\n    \"\"\"Return the arithmetic mean of a list of numbers.\"\"\"\n    "
suffix = "\n\n\nprint(mean([1, 2, 3]))\n"
middles = []
for strategy in strategies:
    choice = client.completions.create(model=model, prompt=prefix, suffix=suffix, max_tokens=40, temperature=0,
                                       extra_body=speculate(strategy)).choices[0]
    middles.append(choice.text)
check("suffix: a middle that computes the mean", "sum(" in middles[0] and "len(" in middles[0], middles[0])
check("suffix: every strategy equals plain", all(m == middles[0] for m in middles), middles)
request = urllib.request.Request(base + "/infill", method="POST", data=json.dumps(
    {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 40, "temperature": 0,
     "speculate": {"proposers": ["auto"]}}).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
with urllib.request.urlopen(request, timeout=300) as response:
    infill = json.loads(response.read())
check("/infill: the same middle", infill.get("content") == middles[0], infill)

json.dump({"passed": passed, "failures": failures}, sys.stdout, indent=1)
sys.exit(1 if failures else 0)
