"""The Gradio app: a live training dashboard and a drawing tab over one shared job.

One module per tab (`train`, `draw`; `explore` holds the parts that look inside the network),
`api` for the documented endpoints, `app` to assemble them, `common` for what they share. No
torch here: handlers call the job and the predictor and return named views of plain data.
Nothing mutable lives at module level.
"""

from .app import Dashboard, build_app
from .common import CSS, THEME

__all__ = ["CSS", "THEME", "Dashboard", "build_app"]
