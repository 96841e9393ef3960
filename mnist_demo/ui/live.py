"""The Train tab's live view: the status line and the three charts, polled by the page itself.

A `gr.Timer` event costs the browser Gradio's whole event round trip on every poll (loading
states for each output, the component updates): a Train tab watching a run cost headless
Chromium 0.13-0.14 of a core that way, on the cores a local run trains on, and 0.085-0.095
with this page poll (numbers beside `TrainTab.poll`). Here one `gr.HTML` holds the status
line and the loss and accuracy charts (the throughput chart is a second, static `gr.HTML`
beside the figure), and its own script calls `TrainTab.poll` through Gradio's server
functions (a plain POST to /component_server) and writes the answer into those elements.
What changes once per epoch or per run (the figure, the downloads, the Draw tab's
re-scoring) still follows Gradio events, on a slower timer (`TrainTab.watch`).

The page keeps the tab's last key (what it has drawn; opaque to it) and sends it back, so
each poll answers only what moved; the server says how long to wait before the next one.
"""

from __future__ import annotations

import html
import re

# The elements the poll writes into (the ids are the ones the charts had as components). The
# throughput chart is a gr.HTML of its own, beside the tutorial's figure in the next row.
SKELETON = """<div id="status"></div>
<div class="chart-row"><div id="loss-plot"></div><div id="acc-plot"></div></div>"""
SPEED_SKELETON = '<div class="live-chart"></div>'
SPEED_CHART = "#speed-plot .live-chart"

# `element` and `server` are given by gr.HTML's js_on_load. A failed poll (the server
# restarting, a network blip) is retried at the idle pace; a hidden tab polls at that pace.
# Until every chart's element is mounted the key is not kept, so the next poll sends all of
# them again (the first poll can answer before the throughput chart's gr.HTML is mounted). A
# chart whose SVG did not change (an idle tab's charts when only the status line moved) is not
# rewritten: the browser would parse and lay it out again for nothing.
POLL_JS = """
const status = element.querySelector('#status');
const charts = () => [element.querySelector('#loss-plot'), element.querySelector('#acc-plot'),
  document.querySelector('%(speed)s')];
let key = null;
async function poll() {
  let wait = %(idle)s;
  try {
    const reply = await server.poll(key);
    wait = document.hidden ? Math.max(reply.every, %(idle)s) : reply.every;
    if (reply.status !== null) status.innerHTML = reply.status;
    const targets = charts();
    if (reply.charts && targets.includes(null)) {
      wait = Math.min(wait, 0.2);
    } else {
      key = reply.key ?? key;
      if (reply.charts) targets.forEach((chart, i) => {
        if (chart.__drawn !== reply.charts[i]) {
          chart.innerHTML = reply.charts[i];
          chart.__drawn = reply.charts[i];
        }
      });
    }
  } finally {
    setTimeout(poll, wait * 1000);
  }
}
poll();
"""


def poll_js(idle_seconds: float) -> str:
    """The page's poll loop, waiting `idle_seconds` after a failure or in a hidden tab."""
    return POLL_JS % {"idle": idle_seconds, "speed": SPEED_CHART}


def markdown_line_html(line: str) -> str:
    """HTML for one status line in the Markdown subset it uses: text and **bold**."""
    escaped = html.escape(line, quote=False)
    return "<p>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped) + "</p>"
