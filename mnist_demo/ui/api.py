"""The app's documented API: /predict (one digit from any image) and /status (the job).

gr.api endpoints, not components: clients send and receive JSON, and nothing here draws.
"""

from __future__ import annotations

import asyncio
from typing import Any

import gradio as gr

from .. import limits as caps
from ..job import TrainingJob
from ..predict import Predictor
from ..sketch import ImageInput, SketchError, decode_data_url, decoded_if_small
from .common import Components
from .draw import NO_DIGIT, reading_hints

ApiImage = dict[str, Any] | str  # FileData, an editor value, or a data URL (see api_image)
API_NO_DIGIT = {"empty": "No digit found: the image is blank."}
EDITOR_KEYS = ("background", "layers", "composite")


def api_image(value: Any) -> ImageInput:
    """An API payload as an image `sketch` reads: Gradio has already checked that every file
    in it was uploaded to this server (or fetched a URL given with `handle_file`)."""

    def file_path(part: Any) -> str | None:
        if part is None:
            return None
        if isinstance(part, dict) and isinstance(part.get("path"), str):
            return part["path"]
        if isinstance(part, str) and part.startswith("data:"):
            return part
        raise SketchError("expected an image file, a data URL or a Sketchpad value")

    def as_image(part: Any) -> Any:
        path = file_path(part)
        return decode_data_url(path) if path and path.startswith("data:") else path

    if isinstance(value, str):
        if not value.startswith("data:"):
            raise SketchError(
                "a string must be a data:image/... URL; send files and web addresses with "
                "gradio_client's handle_file()"
            )
        return decode_data_url(value)
    if isinstance(value, dict) and any(key in value for key in EDITOR_KEYS):
        layers = value.get("layers") or []
        if not isinstance(layers, list):
            raise SketchError("a Sketchpad value's layers must be a list")
        return {
            "background": as_image(value.get("background")),
            "layers": [as_image(layer) for layer in layers],
            "composite": as_image(value.get("composite")),
        }
    if isinstance(value, dict):
        return as_image(value)
    if value is None:
        raise SketchError("no image was sent")
    raise SketchError(f"expected an image, got {type(value).__name__}")


class Api:
    """The public endpoints' handlers, bound to the job and the shared predictor."""

    def __init__(self, job: TrainingJob, predictor: Predictor) -> None:
        self.job, self.predictor = job, predictor

    async def predict_api(self, image: ApiImage) -> dict[str, Any]:
        """Read one digit for an API client: an image file (`handle_file`, a URL through
        `handle_file` too), a `data:image/...` URL, or a Sketchpad/ImageEditor value.

        Answers all ten probabilities, the label (None only when the image is blank) and
        which weights answered; what cannot be read is a `gr.Error` the client receives.
        Nothing else: the browser's extras (bars, the 28x28 preview PNG) would cost a
        visitor-facing server more per call than the network itself does. A small image
        (limits.INLINE_PIXELS) is read on the event loop, a larger one in a worker thread.
        """
        try:
            value = api_image(image)
            small = decoded_if_small(value, caps.INLINE_PIXELS)
            if small is not None:  # on the event loop itself: see limits.INLINE_PIXELS
                return self._answer(small)
            return await asyncio.to_thread(self._answer, value)
        except SketchError as err:
            raise gr.Error(str(err)) from None

    def _answer(self, image: ImageInput) -> dict[str, Any]:
        """The API's answer for an image `sketch` reads (SketchError if it cannot)."""
        with self.job.in_flight.serving():  # a CPU training run waits a moment for it
            prediction = self.predictor.predict(image)
        version = prediction.version
        answer: dict[str, Any] = {
            "label": None if prediction.label is None else str(prediction.label),
            "probabilities": None,
            "weights": version.label,
            "weights_version": version.number,
        }
        if prediction.label is None:
            reason = prediction.sketch.reason if prediction.sketch else "empty"
            answer["note"] = API_NO_DIGIT.get(reason) or NO_DIGIT.get(reason, reason)
        else:
            probs = prediction.probabilities
            answer["probabilities"] = {str(d): round(float(p), 6) for d, p in enumerate(probs)}
            answer["note"] = " ".join(reading_hints(prediction))
        return answer

    def status(self) -> dict:
        """The job's state and latest metrics as JSON (the public /status endpoint)."""
        snap = self.job.snapshot()
        data = snap.as_dict()
        data.pop("records")
        version = self.predictor.version
        data["weights"] = {
            "version": version.number,
            "label": version.label,
            "model": version.model_name,
        }
        return data


def build(c: Components, api: Api) -> None:
    """Register the endpoints (`c` is unused: the API has no components)."""
    # The public reading endpoint: /predict_file is its old name, kept for clients.
    for name in ("predict", "predict_file"):
        gr.api(api.predict_api, api_name=name, concurrency_limit=None)
    gr.api(api.status, api_name="status")
