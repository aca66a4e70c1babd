"""Renders conversations with chat templates in Jinja2, as Hugging Face `transformers` runs them
(a sandboxed environment with trim_blocks and lstrip_blocks, `raise_exception`, loop controls):
the reference for Speculate's own renderings of the chat formats.

usage: chat_template_reference.py INPUT.json OUTPUT.json

INPUT: {"templates": {name: template text or "gguf:PATH" (the file's tokenizer.chat_template)
                      or "llama.cpp:FILE" (models/templates/FILE of llama.cpp, see below)},
        "conversations": [[{"role", "content"}, ...] or {"messages": [...], "tools": [...]}, ...],
        "date_string": "26 Jul 2024"}
OUTPUT: {name: {"template": text, "renders": [text, or null where the template refuses the
        conversation (raise_exception)]}}

Templates are rendered with bos_token "" (Speculate adds the beginning-of-sequence token as a
token, where the file says), eos_token "</s>" and add_generation_prompt true. llama.cpp's
collection of model templates comes from the source tree PyPI's llama-cpp-python sdist vendors
(pinned by version and sha256, downloaded once into ~/.cache/speculate/reference).
"""
import hashlib
import json
import os
import sys
import tarfile
import urllib.request

import jinja2
import jinja2.ext
import jinja2.sandbox

SDIST = ("https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
         "llama_cpp_python-0.3.36.tar.gz")
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
CACHE = os.path.expanduser("~/.cache/speculate/reference/llama-cpp-templates")


def llama_cpp_template(name):
    path = os.path.join(CACHE, name)
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        archive = os.path.join(CACHE, "sdist.tar.gz")
        urllib.request.urlretrieve(SDIST, archive)
        with open(archive, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != SDIST_SHA256:
            sys.exit(f"llama-cpp-python sdist sha256 {digest}, expected {SDIST_SHA256}")
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if "/vendor/llama.cpp/models/templates/" in member.name and member.name.endswith(".jinja"):
                    with open(os.path.join(CACHE, os.path.basename(member.name)), "wb") as out:
                        out.write(tar.extractfile(member).read())
        os.remove(archive)
    with open(path, encoding="utf-8") as f:
        return f.read()


def gguf_template(path):
    from gguf_light import GGUFFile
    return GGUFFile(path).metadata["tokenizer.chat_template"]


class Refused(Exception):
    pass


def raise_exception(message):
    raise Refused(message)


def main():
    request = json.load(open(sys.argv[1]))
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    # Hugging Face's tojson: json.dumps with its default separators, keys in order, no escaping.
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    output = {}
    for name, source in request["templates"].items():
        if source.startswith("gguf:"):
            text = gguf_template(source[len("gguf:"):])
        elif source.startswith("llama.cpp:"):
            text = llama_cpp_template(source[len("llama.cpp:"):])
        else:
            text = source
        template = env.from_string(text)
        renders = []
        for conversation in request["conversations"]:
            messages, tools = (conversation["messages"], conversation.get("tools")) if isinstance(conversation, dict) \
                else (conversation, None)
            try:
                renders.append(template.render(
                    messages=messages, tools=tools, bos_token="", eos_token="</s>", add_generation_prompt=True,
                    date_string=request.get("date_string", "26 Jul 2024")))
            except Refused:
                renders.append(None)
        output[name] = {"template": text, "renders": renders}
    json.dump(output, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
