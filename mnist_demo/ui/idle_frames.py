"""Keep an idle page idle: stop Gradio's status trackers drawing frames nobody can see.

Gradio 6.31's status tracker (the loader and elapsed-time counter of every component) runs
two `requestAnimationFrame` loops while its status is "pending" and never stops them when it
is unmounted: the page's own "Loading..." tracker is pending when the app mounts, so every
open tab draws 60-120 animation frames a second forever, and each poll of the Train tab
starts one more loop per output whose progress is hidden. Measured with headless Chromium
on this 2-core machine (BENCHMARKS.md, ninth session): a page with one Markdown costs
0.085-0.087 of a core idle (a static page 0.004); our Train tab 0.11-0.13 idle and 0.21-0.25
while it watches a run. With the script below: 0.03-0.04 idle, 0.15-0.18 watching.

The script wraps `requestAnimationFrame`: while no tracker on the page is both visible and
busy, a frame callback whose chain began in Gradio's status tracker is not run. The
tracker's elapsed-time loop just ends (a hidden counter); Svelte's one shared animation loop
(the loader's springs, and any other spring that joined it) is held and handed back to the
browser as soon as a tracker is shown busy, so a loader that can be seen still moves. It
must run before Gradio's modules capture the function, so `PageScript` writes it into the
HTML page ahead of them (Blocks' `head` is added later, by Gradio's own script).
If a Gradio version renames the tracker's module the script does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

IDLE_FRAMES_JS = """(() => {
  const native = window.requestAnimationFrame.bind(window);
  const parked = [];  // Svelte's shared animation loop, held while no tracker is shown busy
  let inherited = false;
  const shownBusy = () => document.querySelector(
    '[data-testid="status-tracker"]:not(.hide) .progress-text') !== null;
  new MutationObserver(() => {
    if (parked.length && shownBusy()) parked.splice(0).forEach((run) => native(run));
  }).observe(document.documentElement,
    {subtree: true, childList: true, attributes: true, attributeFilter: ["class"]});
  window.requestAnimationFrame = function (callback) {
    const stack = (new Error().stack || "").split("\\n");
    const timer = /statustracker/.test(stack[2] || "");  // the tracker's elapsed-time loop
    const tracker = timer || inherited || /statustracker/.test(stack.join(""));
    const run = (time) => {
      if (tracker && !shownBusy()) {
        if (!timer) parked.push(run);  // a spring's loop: other springs wait on it
        return;
      }
      const outer = inherited;
      inherited = tracker;
      try { callback(time); } finally { inherited = outer; }
    };
    return native(run);
  };
})();"""

MODULE_SCRIPT = b'<script type="module"'


def with_script(page: bytes, script: str) -> bytes:
    """The HTML `page` with `<script>script</script>` before its first module script
    (unchanged when it has none: not a Gradio page)."""
    at = page.find(MODULE_SCRIPT)
    if at < 0:
        return page
    return page[:at] + b"<script>" + script.encode() + b"</script>" + page[at:]


class PageScript:
    """ASGI middleware: add `script` to every HTML page served, before Gradio's modules."""

    def __init__(self, app: Any, script: str = IDLE_FRAMES_JS) -> None:
        self.app, self.script = app, script

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return await self.app(scope, receive, send)
        start: dict | None = None
        body: list[bytes] = []

        async def rewrite(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    start = message  # held back until the whole page is here
                    return
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = with_script(b"".join(body), self.script)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, rewrite)
