import os
import shutil

import pytest
from pages import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not executable:
        message = "Chromium is not installed (apt-get install chromium); ./test.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the browser tier, never skip it
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def screenshots(request):
    folder = request.config.rootpath / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
