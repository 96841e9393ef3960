"""A plain HTML canvas for drawing digits: every pen-up sends the drawing as a PNG data URL.

Undo (the button, or Ctrl/Cmd+Z while the pad is on screen) takes back the last stroke: the
pad keeps its strokes and redraws the rest, then sends the drawing as after any stroke.

Why not gr.Sketchpad: in Gradio 6.31 its change event fires for the first stroke only when a
gr.Timer runs on the page, and not at all after a clear (seen in our browser test), while the
Draw tab needs a prediction after every stroke and a timer for live weights. This canvas has
one job, works with mouse, pen and touch, and its brush is sized for 28x28 downsampling.
"""

from __future__ import annotations

import gradio as gr

SIDE = 280  # canvas pixels: 10x MNIST, downsampled by the sketch module
BRUSH = 20  # px at 280: MNIST pen strokes are ~2 px of a 20 px digit box

TEMPLATE = f"""
<div class="drawpad">
  <canvas width="{SIDE}" height="{SIDE}" aria-label="Drawing area: draw one digit"></canvas>
  <div class="drawpad-bar">
    <span class="drawpad-hint">Draw one digit, big, in the middle</span>
    <span class="drawpad-buttons">
      <button type="button" class="undo" title="Undo the last stroke (Ctrl+Z)">Undo</button>
      <button type="button" class="clear">Clear</button>
    </span>
  </div>
</div>
"""

CSS = """
.drawpad { display: flex; flex-direction: column; align-items: center; gap: 6px; }
.drawpad canvas { width: min(100%, 320px); aspect-ratio: 1; touch-action: none; cursor: crosshair;
  background: white; border: 1px solid var(--border-color-primary); border-radius: 8px; }
.drawpad-bar { display: flex; width: min(100%, 320px); justify-content: space-between;
  align-items: center; font-size: var(--text-sm); color: var(--body-text-color-subdued); }
.drawpad-buttons { display: flex; gap: 6px; }
.drawpad .clear, .drawpad .undo { padding: 4px 14px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); }
"""

JS = f"""
const canvas = element.querySelector('canvas');
const ctx = canvas.getContext('2d');
const strokes = [];  // each a list of [x, y] points: undo redraws all but the last
const reset = () => {{ ctx.fillStyle = 'white'; ctx.fillRect(0, 0, {SIDE}, {SIDE}); }};
reset();
let drawing = false;
const at = (e) => {{
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * {SIDE} / r.width, (e.clientY - r.top) * {SIDE} / r.height];
}};
const dot = (p) => {{
  ctx.fillStyle = 'black'; ctx.beginPath(); ctx.arc(p[0], p[1], {BRUSH / 2}, 0, 2 * Math.PI);
  ctx.fill();
}};
const segment = (a, b) => {{
  ctx.strokeStyle = 'black'; ctx.lineWidth = {BRUSH}; ctx.lineCap = 'round';
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}};
const send = () => {{  // fires the component's change event
  props.value = strokes.length ? canvas.toDataURL('image/png') : '';
}};
canvas.addEventListener('pointerdown', (e) => {{
  drawing = true; const p = at(e); strokes.push([p]); canvas.setPointerCapture(e.pointerId);
  dot(p);
}});
canvas.addEventListener('pointermove', (e) => {{
  if (!drawing) return;
  const stroke = strokes[strokes.length - 1], p = at(e);
  segment(stroke[stroke.length - 1], p); stroke.push(p);
}});
const finish = () => {{
  if (!drawing) return;
  drawing = false;
  send();
}};
canvas.addEventListener('pointerup', finish);
canvas.addEventListener('pointercancel', finish);
const undo = () => {{
  if (drawing || !strokes.length) return;
  strokes.pop(); reset();
  for (const stroke of strokes) {{
    dot(stroke[0]);
    for (let i = 1; i < stroke.length; i++) segment(stroke[i - 1], stroke[i]);
  }}
  send();
}};
element.querySelector('.undo').addEventListener('click', undo);
document.addEventListener('keydown', (e) => {{
  const typing = e.target.closest && e.target.closest('input, textarea, [contenteditable]');
  // only while the pad is on screen (its tab shown) and the visitor is not typing
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z' && !e.shiftKey && !typing
      && canvas.offsetParent !== null) {{
    e.preventDefault(); undo();
  }}
}});
element.querySelector('.clear').addEventListener('click', () => {{
  strokes.length = 0; reset(); props.value = '';
}});
"""


def drawpad(elem_id: str = "drawpad") -> gr.HTML:
    """The drawing canvas; its value is '' or a PNG data URL of the whole drawing."""
    return gr.HTML(
        value="",
        html_template=TEMPLATE,
        css_template=CSS,
        js_on_load=JS,
        elem_id=elem_id,
        apply_default_css=True,
    )
