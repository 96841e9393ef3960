"""Does "this doesn't look like a digit" flag non-digits and leave digits alone?

Measures the not-a-digit check (mnist_demo/novelty.py) through `Predictor.predict`, the app's
own path, on two sets: the re-drawn MNIST *test* digits of bench/robustness_set.py (seed 0)
plus the digits drawn as strokes, and a fresh seed of scribbles, letters, shapes and lines
(tests/not_digits.py). Target: flag >= 80% of the drawings and <= 1% of the digits.

`--calibrate` first fits the score and writes mnist_demo/novelty.npz: a one-hidden-layer
network on re-drawn MNIST *training* digits against another seed of drawings, with the
threshold set so FIT_FLAGGED of those training digits are flagged. The score does not read
the classifier's weights, so a retrained checkpoint needs no new fit; `--model` only picks
the weights whose answers the measurement runs through.

    python bench/not_a_digit.py --calibrate
    python bench/not_a_digit.py --n 1000 --others 400
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from _env import print_header

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from not_digits import iter_not_digits  # noqa: E402
from redrawn import iter_redrawn, redrawn_sources, stroke_digits  # noqa: E402

from mnist_demo import checkpoints, novelty  # noqa: E402
from mnist_demo.predict import Predictor, shipped_predictor  # noqa: E402
from mnist_demo.sketch import analyse  # noqa: E402

FIT_SEED, MEASURE_SEED = 101, 202  # non-digit seeds; the re-drawn digits come from other splits
FIT_DIGITS, FIT_OTHERS = 3000, 1200
FIT_FLAGGED = 0.005  # of the training digits: the threshold
HIDDEN = 16  # tanh units: a plain logistic regression flags ~10 points fewer drawings
L2 = 1e-3  # on the standardised weights: a little, so that no single fact dominates


def _facts(images) -> np.ndarray:
    """The novelty facts of every image that preprocessing finds a digit in."""
    frames = [d for image in images if (d := analyse(image).digit) is not None]
    return novelty.features(np.stack(frames))


def fit() -> novelty.Calibration:
    """Fit the score on re-drawn training digits and FIT_SEED's drawings (see the module doc).

    Training digits that novelty compares with (novelty.REFERENCE) are left out: a digit near
    its own original would look more like MNIST than a new one does.
    """
    sources = redrawn_sources(FIT_DIGITS, 1, "train")
    reference = range(60_000)[novelty.REFERENCE]
    drawn = iter_redrawn(FIT_DIGITS, 1, "train")
    digits = _facts(im for (im, _, _), i in zip(drawn, sources, strict=True) if i not in reference)
    others = _facts(im for im, _ in iter_not_digits(FIT_OTHERS, FIT_SEED))
    x = np.vstack([digits, others]).astype(np.float64)
    y = np.r_[np.zeros(len(digits)), np.ones(len(others))]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / scale)
    yt = torch.tensor(y)
    balance = torch.where(yt > 0, 0.5 / yt.mean(), 0.5 / (1 - yt.mean()))  # classes weigh alike
    torch.manual_seed(0)
    hidden, out = torch.nn.Linear(x.shape[1], HIDDEN).double(), torch.nn.Linear(HIDDEN, 1).double()
    parameters = [*hidden.parameters(), *out.parameters()]
    optimiser = torch.optim.LBFGS(parameters, max_iter=1000, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        logits = out(torch.tanh(hidden(xt)))[:, 0]
        value = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, balance)
        value = value + L2 * (hidden.weight.square().sum() + out.weight.square().sum())
        value.backward()
        return value

    optimiser.step(loss)
    with torch.no_grad():
        calibration = novelty.Calibration(
            mean.astype(np.float32),
            scale.astype(np.float32),
            hidden.weight.T.numpy().astype(np.float32),
            hidden.bias.numpy().astype(np.float32),
            out.weight[0].numpy().astype(np.float32),
            float(out.bias[0]),
            0.0,
        )
    threshold = float(np.quantile(calibration.score(digits), 1 - FIT_FLAGGED))
    flagged = float(np.mean(calibration.score(others) > threshold))
    print(f"# fitted on {len(digits)} training digits, {len(others)} drawings (seed {FIT_SEED})")
    print(f"# threshold {threshold:.3f}: flags {100 * flagged:.1f}% of the fitting drawings")
    return dataclasses.replace(calibration, threshold=threshold)


def measure(predictor: Predictor, n_digits: int, n_others: int) -> None:
    """Flag rates through Predictor.predict on the test digits and MEASURE_SEED's drawings."""
    digits = Counter()
    start = time.perf_counter()
    sets = ((im, v) for im, _, v in [*stroke_digits(), *iter_redrawn(n_digits, 0, "test")])
    for image, variant in sets:
        prediction = predictor.predict(image)
        kind = "strokes" if variant.startswith("strokes/") else "redrawn"
        digits[kind, "n"] += 1
        digits[kind, "flagged"] += prediction.not_digit
        digits[kind, "unscored"] += prediction.digit_check is None
    others = Counter()
    for image, variant in iter_not_digits(n_others, MEASURE_SEED):
        prediction = predictor.predict(image)
        kind = variant.split("/")[0]
        others[kind, "n"] += 1
        others[kind, "flagged"] += prediction.not_digit
        others[kind, "blank"] += prediction.label is None  # "too small", "specks": no answer
    seconds = time.perf_counter() - start
    print(f"\n{'set':<10} {'kind':<9} {'n':>6} {'flagged':>8} {'%':>7}  (no answer at all)")
    for name, tally in (("digits", digits), ("not digit", others)):
        for kind in sorted({k for k, _ in tally}):
            n, flagged = tally[kind, "n"], tally[kind, "flagged"]
            extra = tally[kind, "blank"] or tally[kind, "unscored"]
            print(f"{name:<10} {kind:<9} {n:>6} {flagged:>8} {100 * flagged / n:>7.2f}  ({extra})")
    n_d = digits["redrawn", "n"] + digits["strokes", "n"]
    f_d = digits["redrawn", "flagged"] + digits["strokes", "flagged"]
    n_o = sum(v for (_, k), v in others.items() if k == "n")
    f_o = sum(v for (_, k), v in others.items() if k in ("flagged", "blank"))
    print(
        f"\ndigits flagged: {100 * f_d / n_d:.2f}% of {n_d} (target <= 1%); non-digits flagged "
        f"or not answered: {100 * f_o / n_o:.1f}% of {n_o} (target >= 80%); "
        f"{1000 * seconds / (n_d + n_o):.1f} ms per image (drawing + predict)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="improved", help="which shipped checkpoint answers")
    parser.add_argument("--calibrate", action="store_true", help="fit and save the score first")
    parser.add_argument("--n", type=int, default=1000, help="re-drawn MNIST test digits")
    parser.add_argument("--others", type=int, default=400, help="non-digit drawings")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the app pins inference; the header shows it
    print_header()
    predictor = shipped_predictor(args.model, threads=1)
    print(f"# checkpoint: {checkpoints.shipped(args.model).name}")
    if args.calibrate:
        path = novelty.save(fit())
        novelty.load.cache_clear()
        print(f"# wrote {path}")
    measure(predictor, args.n, args.others)


if __name__ == "__main__":
    main()
