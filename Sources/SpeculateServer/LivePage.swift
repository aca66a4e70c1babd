/// The page at `/`: type a prompt, pick a strategy, and watch the tokens stream in, each
/// coloured by the proposer that drafted it (tokens the target produced itself stay plain),
/// with live acceptance figures. One static page, no build step, no external resources.
///
/// URL parameters fill the form (`prompt`, `proposers`, `tree`, `max_tokens`, `temperature`,
/// `mode`) and `autorun=1` starts at once; when a run ends, `body[data-state]` becomes `done`
/// (or `error`). The headless-browser test relies on both.
enum LivePage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Speculate</title>
        <style>
          body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1d1d1f; }
          h1 { font-size: 1.3rem; margin: 0 0 1rem; }
          form { display: grid; grid-template-columns: 9rem 1fr; gap: .45rem .8rem; align-items: center; }
          textarea { font: 14px ui-monospace, monospace; min-height: 6rem; }
          input, select, textarea, button { font-size: 14px; padding: .3rem; }
          button { grid-column: 2; justify-self: start; padding: .4rem 1.2rem; }
          #output { white-space: pre-wrap; font: 14px/1.5 ui-monospace, monospace; border: 1px solid #ccc; border-radius: 6px;
                    padding: .8rem; min-height: 8rem; margin-top: 1rem; }
          #legend span, #stats { font-size: 13px; }
          #legend span { margin-right: 1rem; padding: 0 .3rem; border-radius: 3px; }
          #stats { color: #555; margin-top: .5rem; }
          .error { color: #b00020; }
        </style>
        </head>
        <body data-state="idle">
        <h1>Speculate: speculative decoding, live</h1>
        <form id="form">
          <label for="mode">Endpoint</label>
          <select id="mode"><option value="chat">chat (/v1/chat/completions)</option><option value="completion">completion (/v1/completions)</option></select>
          <label for="prompt">Prompt</label>
          <textarea id="prompt">Write a Python function that checks whether a number is prime.</textarea>
          <label for="proposers">Proposers</label>
          <input id="proposers" placeholder="server default, or e.g. draft:qwen2.5-coder-0.5b-instruct, ngram, auto">
          <label for="tree">Tree</label>
          <input id="tree" placeholder="e.g. 2,2,1 (empty: chains)">
          <label for="max_tokens">Max tokens</label>
          <input id="max_tokens" type="number" min="1" value="128">
          <label for="temperature">Temperature</label>
          <input id="temperature" type="number" min="0" max="2" step="0.1" value="0">
          <label for="key">API key</label>
          <input id="key" type="password" placeholder="only if the server has --api-key">
          <button id="run" type="submit">Generate</button>
        </form>
        <div id="legend"></div>
        <div id="output" aria-live="polite"></div>
        <div id="stats"></div>
        <script>
        "use strict";
        const palette = ["#c8f0c8", "#cfe0ff", "#f3d0f3", "#c9f1f1", "#fbe7b5", "#f8cdcd"];
        const colours = new Map();
        const $ = (id) => document.getElementById(id);
        function colourOf(name) {
          if (!colours.has(name)) {
            colours.set(name, palette[colours.size % palette.length]);
            const tag = document.createElement("span");
            tag.textContent = name;
            tag.style.background = colours.get(name);
            $("legend").appendChild(tag);
          }
          return colours.get(name);
        }
        function tokenSpan(piece) {
          const span = document.createElement("span");
          span.className = "tok";
          span.textContent = piece.text;
          if (piece.proposer) {
            span.dataset.proposer = piece.proposer;
            span.style.background = colourOf(piece.proposer);
            span.title = "drafted by " + piece.proposer;
          } else {
            span.dataset.proposer = "";
          }
          return span;
        }
        function showStats(s, live) {
          if (!s) return;
          const parts = [];
          if (s.tokens_per_second !== undefined) parts.push(s.tokens_per_second.toFixed(1) + " tokens/s");
          if (s.tokens_per_forward !== undefined) parts.push(s.tokens_per_forward.toFixed(2) + " tokens per target forward");
          for (const p of s.proposers || []) {
            const rate = p.drafted ? (100 * p.accepted / p.drafted).toFixed(0) + "%" : "-";
            parts.push(p.name + ": " + p.accepted + "/" + p.drafted + " accepted (" + rate + ")");
          }
          if (s.prompt_cache_tokens) parts.push(s.prompt_cache_tokens + " prompt tokens from the cache");
          $("stats").textContent = (live ? "" : "done: ") + parts.join(" · ");
        }
        async function run() {
          const mode = $("mode").value, output = $("output");
          output.textContent = "";
          $("legend").textContent = "";
          colours.clear();
          document.body.dataset.state = "running";
          const body = { stream: true, max_tokens: Number($("max_tokens").value) || 128, temperature: Number($("temperature").value) || 0 };
          if (mode === "chat") body.messages = [{ role: "user", content: $("prompt").value }];
          else body.prompt = $("prompt").value;
          const speculate = {};
          const proposers = $("proposers").value.split(",").map((s) => s.trim()).filter((s) => s);
          if (proposers.length) speculate.proposers = proposers;
          if ($("tree").value.trim()) speculate.tree = $("tree").value.trim();
          if (Object.keys(speculate).length) body.speculate = speculate;
          const headers = { "Content-Type": "application/json" };
          if ($("key").value) headers.Authorization = "Bearer " + $("key").value;
          let counts = new Map(), drafted = 0, total = 0;
          try {
            const response = await fetch(mode === "chat" ? "/v1/chat/completions" : "/v1/completions", { method: "POST", headers, body: JSON.stringify(body) });
            if (!response.ok) {
              const error = await response.json().catch(() => ({}));
              throw new Error((error.error && error.error.message) || response.statusText);
            }
            const reader = response.body.getReader(), decoder = new TextDecoder();
            let buffer = "";
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              buffer += decoder.decode(value, { stream: true });
              let end;
              while ((end = buffer.indexOf("\n\n")) >= 0) {
                const event = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                if (!event.startsWith("data: ")) continue;
                const data = event.slice(6);
                if (data === "[DONE]") continue;
                const chunk = JSON.parse(data);
                if (chunk.error) throw new Error(chunk.error.message);
                const tokens = chunk.speculate && chunk.speculate.tokens;
                if (tokens) {
                  for (const piece of tokens) {
                    output.appendChild(tokenSpan(piece));
                    total += 1;
                    if (piece.proposer) { drafted += 1; counts.set(piece.proposer, (counts.get(piece.proposer) || 0) + 1); }
                  }
                  $("stats").textContent = total + " tokens, " + drafted + " drafted and accepted";
                } else if (chunk.speculate) {
                  showStats(chunk.speculate, false);
                }
              }
            }
            document.body.dataset.state = "done";
          } catch (error) {
            const line = document.createElement("div");
            line.className = "error";
            line.textContent = "error: " + error.message;
            output.appendChild(line);
            document.body.dataset.state = "error";
          }
        }
        $("form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
        const params = new URLSearchParams(location.search);
        for (const name of ["prompt", "proposers", "tree", "max_tokens", "temperature", "mode"]) {
          if (params.has(name)) $(name).value = params.get(name);
        }
        if (params.get("autorun") === "1") run();
        </script>
        </body>
        </html>
        """#
}
