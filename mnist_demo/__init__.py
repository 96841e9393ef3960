"""mnist-demo: train the tutorial CNN on MNIST, watch it learn, and draw digits for it to read."""

__version__ = "0.1.0"
