"""The tutorial recipe as written vs. our loop, same model and hyperparameters, one device.

Tutorial: torchvision datasets.MNIST + DataLoader(batch 64, shuffle), Adam 1e-3, and after
each epoch an accuracy pass over the train and the test loader. Ours: `--preset tutorial`
(data resident on the device, running train accuracy, one test pass). Per-epoch seconds
include evaluation in both columns.

    python bench/tutorial_vs_ours.py --epochs 1 --device cpu
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torchvision.datasets as datasets
import torchvision.transforms as transforms
from _env import print_header
from torch import nn
from torch.utils.data import DataLoader

from mnist_demo.data import BUNDLED_DIR
from mnist_demo.models import TutorialCNN
from mnist_demo.records import of_kind
from mnist_demo.training import config_from_preset, resolve_device, train


def _torchvision_root() -> Path:
    """Unpack the bundled files into torchvision's MNIST/raw/ layout (no download)."""
    root = Path(tempfile.mkdtemp(prefix="mnist-tv-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in BUNDLED_DIR.glob("*.gz"):
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


def tutorial_recipe(epochs: int, device: torch.device) -> list[dict]:
    """The seed tutorial's section 3, line for line, timed per epoch."""
    root = _torchvision_root()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_dataset = datasets.MNIST(root, train=True, transform=transform)
    test_dataset = datasets.MNIST(root, train=False, transform=transform)
    torch.manual_seed(0)
    model = TutorialCNN().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

    def accuracy(loader):
        total = correct = 0
        model.eval()
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            _, predicted = torch.max(model(X).data, 1)
            total += y.size(0)
            correct += (predicted == y).sum().item()
        return 100 * correct / total

    train_loader = DataLoader(train_dataset, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=64, shuffle=False)
    results = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        for X, y in train_loader:
            X, y = X.to(device), y.to(device)
            loss = criterion(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
        train_s = time.perf_counter() - start
        with torch.no_grad():
            accuracy(train_loader)
            test_acc = accuracy(test_loader)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - start
        results.append(
            dict(
                epoch=epoch + 1,
                train_s=train_s,
                eval_s=total - train_s,
                total_s=total,
                test_acc=test_acc,
            )
        )
    shutil.rmtree(root)
    return results


def ours(epochs: int, device: str, cuda_graph: bool) -> list[dict]:
    config = config_from_preset("tutorial", epochs=epochs, device=device, cuda_graph=cuda_graph)
    result = train(config)
    return [
        dict(
            epoch=r["epoch"],
            train_s=r["epoch_seconds"],
            eval_s=r["eval_seconds"],
            total_s=r["epoch_seconds"] + r["eval_seconds"],
            test_acc=r["test_accuracy"],
        )
        for r in of_kind(result.history, "epoch")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-cuda-graph", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header(str(device))
    theirs = tutorial_recipe(args.epochs, device)
    mine = ours(args.epochs, str(device), not args.no_cuda_graph)
    print("| epoch | tutorial train+eval s | test % | ours train+eval s | test % | speed-up |")
    print("|---|---|---|---|---|---|")
    for t, o in zip(theirs, mine, strict=True):
        print(
            f"| {t['epoch']} | {t['train_s']:.2f} + {t['eval_s']:.2f} | {t['test_acc']:.2f} "
            f"| {o['train_s']:.2f} + {o['eval_s']:.2f} | {o['test_acc']:.2f} "
            f"| {t['total_s'] / o['total_s']:.1f}x |"
        )
    print(json.dumps({"tutorial": theirs, "ours": mine}))


if __name__ == "__main__":
    main()
