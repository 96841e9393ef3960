"""Start the web app: the options of `python app.py` and `mnist-demo app`, and the launch itself.

Gradio is imported only when the app really starts, so the rest of the CLI stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from .training import available_devices


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The app's options, shared by app.py and the CLI's `app` command."""
    parser.add_argument(
        "--host",
        default=None,
        help="interface to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="device preselected for training: auto, cpu, cuda or cuda:N",
    )
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    return parser


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Read the settings, build the app and serve it until interrupted."""
    from . import server, settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        app_settings = dataclasses.replace(settings.from_env(), default_device=args.device)
    except settings.SettingsError as err:
        parser.error(str(err))  # one line and exit code 2, before anything starts
    if args.device not in available_devices():
        parser.error(f"--device {args.device}: choose from {', '.join(available_devices())}")
    demo, dashboard = server.create(app_settings)
    server.freeze_start_up()
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        **server.launch_kwargs(app_settings, dashboard),
    )


def main(argv: list[str] | None = None) -> None:
    parser = add_arguments(
        argparse.ArgumentParser(description="MNIST live: train a CNN and draw digits.")
    )
    run(parser.parse_args(argv), parser)
