import pytest
from support import launch


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    app = launch(tmp_path_factory.mktemp("runs"))
    yield app
    app.close()


@pytest.fixture(scope="module")
def client(live_app):
    from gradio_client import Client

    return Client(live_app.url, verbose=False)
