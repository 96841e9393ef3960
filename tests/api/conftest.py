import pytest


@pytest.fixture(scope="module")
def client(live_app):
    from gradio_client import Client

    return Client(live_app.url, verbose=False)
