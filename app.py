"""Entry point: `python app.py` locally, or the app file of a Hugging Face Space.

The same app starts with `mnist-demo app` once the package is installed.
"""

from __future__ import annotations

from mnist_demo.launch import main

if __name__ == "__main__":
    main()
