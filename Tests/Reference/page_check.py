"""Loads the server's live page in headless Chromium (through the DevTools protocol), lets it
stream a completion, and checks the DOM: tokens arrived, drafted ones carry their proposer and a
colour, the legend and the final figures are shown. Saves a screenshot.

Usage: page_check.py BASE_URL CHROMIUM SCREENSHOT.png [KEY]
Prints a JSON report and exits 1 when a check fails.
"""
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import websocket

base, chromium, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
key = sys.argv[4] if len(sys.argv) > 4 else ""
query = urllib.parse.urlencode({"mode": "completion", "max_tokens": "32", "temperature": "0",
                                "proposers": "draft:smollm2-135m-instruct",
                                "prompt": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"})
profile = tempfile.mkdtemp(prefix="speculate-chromium-")
browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                            "--window-size=1100,900", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
report, failures = {}, []
try:
    # Chromium prints the DevTools address it bound on standard error.
    endpoint = None
    deadline = time.time() + 60
    while endpoint is None and time.time() < deadline:
        line = browser.stderr.readline()
        if "DevTools listening on" in line:
            endpoint = line.split("DevTools listening on ")[1].strip()
    if endpoint is None:
        raise SystemExit("chromium did not start its DevTools endpoint")
    port = urllib.parse.urlparse(endpoint).port
    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
    page = next(p for p in pages if p.get("type") == "page")
    socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
    counter = 0

    def call(method, **params):
        global counter
        counter += 1
        socket.send(json.dumps({"id": counter, "method": method, "params": params}))
        while True:
            message = json.loads(socket.recv())
            if message.get("id") == counter:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(expression):
        return call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    call("Page.enable")
    call("Page.navigate", url=f"{base}/?{query}")
    # Once loaded (the URL filled the form), type the key as a user would and press Generate.
    deadline = time.time() + 120
    clicked = False
    while time.time() < deadline:
        state = evaluate("document.readyState === 'complete' && document.body ? document.body.dataset.state : null")
        if state == "idle" and not clicked:
            evaluate(f"document.getElementById('key').value = {json.dumps(key)}; document.getElementById('run').click()")
            clicked = True
        if state in ("done", "error"):
            break
        time.sleep(0.2)
    dom = evaluate("""(() => {
        const tokens = [...document.querySelectorAll('#output span.tok')];
        return {
            state: document.body.dataset.state,
            tokens: tokens.length,
            text: tokens.map(t => t.textContent).join(''),
            drafted: tokens.filter(t => t.dataset.proposer).length,
            colouredDrafted: tokens.filter(t => t.dataset.proposer && t.style.background).length,
            plainColoured: tokens.filter(t => !t.dataset.proposer && t.style.background).length,
            proposers: [...new Set(tokens.map(t => t.dataset.proposer).filter(p => p))],
            legend: document.getElementById('legend').textContent,
            stats: document.getElementById('stats').textContent,
            error: (document.querySelector('#output .error') || {}).textContent || null,
        };
    })()""")
    report["dom"] = dom
    shot = call("Page.captureScreenshot", format="png")
    with open(screenshot, "wb") as out:
        out.write(base64.b64decode(shot["data"]))
    report["screenshot"] = screenshot
    checks = {
        "the run finished": dom["state"] == "done",
        "tokens streamed into the page": dom["tokens"] >= 8 and len(dom["text"]) > 10,
        "drafted tokens name their proposer": dom["drafted"] > 0 and dom["proposers"] == ["draft:smollm2-135m-instruct"],
        "drafted tokens are coloured, target tokens plain": dom["colouredDrafted"] == dom["drafted"] and dom["plainColoured"] == 0,
        "the legend names the proposer": "draft:smollm2-135m-instruct" in dom["legend"],
        "the final figures are shown": "tokens/s" in dom["stats"] and "accepted" in dom["stats"],
    }
    failures = [name for name, ok in checks.items() if not ok]
finally:
    browser.kill()
report["failures"] = failures
print(json.dumps(report, indent=1))
sys.exit(1 if failures else 0)
