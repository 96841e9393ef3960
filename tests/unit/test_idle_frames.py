"""The page script that keeps idle tabs idle reaches the page before Gradio's modules."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mnist_demo.ui.idle_frames import IDLE_FRAMES_JS, PageScript, with_script

PAGE = '<html><head><script>window.config = 1;</script><script type="module" src="a.js"></script>'


def test_the_script_goes_before_the_first_module_script() -> None:
    page = with_script(PAGE.encode(), "run()").decode()
    assert page.index("<script>run()</script>") < page.index('<script type="module"')
    assert page.index("window.config") < page.index("run()")  # after the inline config
    assert with_script(b"<html>no modules</html>", "run()") == b"<html>no modules</html>"


def test_the_middleware_rewrites_html_pages_only_and_keeps_their_length_right() -> None:
    async def page(request):
        return HTMLResponse(PAGE)

    async def config(request):
        return JSONResponse({"page": PAGE})

    app = PageScript(Starlette(routes=[Route("/", page), Route("/config", config)]))
    client = TestClient(app)
    html = client.get("/")
    assert html.text.index(IDLE_FRAMES_JS) < html.text.index('<script type="module"')
    assert int(html.headers["content-length"]) == len(html.content)
    assert client.get("/config").json() == {"page": PAGE}  # JSON passes untouched
