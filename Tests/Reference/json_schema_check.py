"""Checks documents a grammar produced against their schemas with the `jsonschema` package.

Input (stdin): JSON lines {"schema": ..., "document": "<text>"}. Each document must parse with
Python's strict json module (no NaN, no duplicate-key tricks) and validate against its schema
(Draft 2020-12). Prints {"checked": N, "failures": [...]} as JSON.
"""
import json
import sys

import jsonschema


def reject_constant(name):
    raise ValueError(f"non-standard constant {name}")


def main():
    failures = []
    checked = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        checked += 1
        try:
            value = json.loads(case["document"], parse_constant=reject_constant)
            jsonschema.validate(value, case["schema"], cls=jsonschema.Draft202012Validator)
        except Exception as error:  # every failure is reported with its case
            failures.append({"document": case["document"], "schema": case["schema"], "error": str(error)[:300]})
    json.dump({"checked": checked, "failures": failures[:20]}, sys.stdout)


if __name__ == "__main__":
    main()
