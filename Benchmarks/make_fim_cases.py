"""Writes fill-in-the-middle cases cut from the Python standard library (Benchmarks/fim.jsonl).

Each case removes one function's body: the prefix is the source before the body (its `def`
line and docstring kept), the suffix the source after it, each cut to a window so that prefix
and suffix together are about the sizes editors send (~1,200 to 6,000 characters, roughly 300
to 1,500 tokens). Functions are taken in a fixed order from fixed modules, with bodies of 3 to
25 lines, so the set is the same on every machine with the same Python.

usage: make_fim_cases.py [COUNT] > Benchmarks/fim.jsonl
"""
import ast
import importlib
import inspect
import json
import sys

MODULES = ["textwrap", "shlex", "fnmatch", "difflib", "argparse", "configparser", "csv", "json.decoder",
           "json.encoder", "pathlib", "statistics", "string", "calendar", "heapq", "bisect", "ipaddress",
           "urllib.parse", "email.utils", "html", "gettext", "glob", "tempfile", "shutil", "zipfile", "tarfile"]


def cases(count):
    found = []
    for name in MODULES:
        source = inspect.getsource(importlib.import_module(name))
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        per_module = 0
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or per_module >= 3:
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]  # keep the docstring in the prefix
            if not body:
                continue
            first, last = body[0].lineno - 1, node.end_lineno
            if not 3 <= last - first <= 25:
                continue
            start = offsets[first]
            end = offsets[last]
            prefix = source[max(0, start - 4000):start]
            suffix = source[end:end + 2000]
            # Start the prefix at a line boundary.
            if start > 4000:
                prefix = prefix[prefix.find("\n") + 1:]
            found.append({"category": name, "prefix": prefix, "suffix": suffix,
                          "middle": source[start:end], "function": node.name})
            per_module += 1
            if len(found) == count:
                return found
    return found


if __name__ == "__main__":
    for case in cases(int(sys.argv[1]) if len(sys.argv) > 1 else 50):
        print(json.dumps(case))
