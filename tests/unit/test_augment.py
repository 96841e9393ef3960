"""Batched deskewing and distortion (mnist_demo/augment.py), and where they plug in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_demo import augment, checkpoints, data, training
from mnist_demo.__main__ import main
from mnist_demo.models import build_model
from mnist_demo.predict import Predictor


def _slanted_bar(slant: float) -> torch.Tensor:
    """A (1, 28, 28) uint8 bar from (14 - 8 * slant, 4) to (14 + 8 * slant, 23): a leaning 1."""
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    for row in range(4, 24):
        col = round(14 + slant * (13.5 - row))
        image[0, row, col - 1 : col + 2] = 255
    return image


def test_deskew_stands_a_leaning_stroke_upright_and_keeps_its_ink():
    leaning = _slanted_bar(0.4)
    upright = augment.deskew(leaning)

    assert augment.skew(leaning).abs().item() > 0.3
    assert augment.skew(upright).abs().item() < 0.03
    assert upright.dtype == torch.uint8 and upright.shape == leaning.shape
    cols = upright[0].float().sum(0).nonzero()
    assert cols.max() - cols.min() <= 4  # one column of ink, +-1 px of anti-aliasing
    assert abs(upright.float().sum() / leaning.float().sum() - 1) < 0.05


def test_deskew_leaves_an_upright_digit_and_a_blank_image_alone():
    upright = _slanted_bar(0.0)
    blank = torch.zeros(2, 28, 28)

    np.testing.assert_array_equal(augment.deskew(upright).numpy(), upright.numpy())
    assert augment.deskew(blank).abs().max() == 0


def test_distort_is_seeded_changes_digits_and_keeps_the_pixel_range(mnist):
    images = mnist[0].images[:64]
    torch.manual_seed(1)
    a = augment.distort(images)
    torch.manual_seed(1)
    b = augment.distort(images)

    assert a.shape == (64, 28, 28) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    changed = (a - images.float() / 255).abs().flatten(1).max(1).values > 0.2
    assert changed.float().mean() > 0.9
    assert augment.distort(torch.zeros(3, 28, 28, dtype=torch.uint8)).max() == 0


def test_distort_geometry_scales_the_slant_it_adds_and_nothing_else():
    """An upright bar keeps standing with geometry 0 (the pen and scanner changes remain);
    with all of it, rotation and shear lean many copies."""
    bars = _slanted_bar(0.0).repeat(256, 1, 1)
    torch.manual_seed(0)
    full = augment.skew(augment.distort(bars, 1.0, geometry=1.0)).abs()
    torch.manual_seed(0)
    none = augment.skew(augment.distort(bars, 1.0, geometry=0.0)).abs()

    assert full.mean() > 2.5 * none.mean()
    assert none.max() < 0.35 < full.max()


def test_without_geometry_and_warp_only_pen_and_scanner_change_a_digit(mnist):
    """geometry 0 and warp 0 leave every digit where it was (pen and scanner changes keep its
    centre); the full distortions move them around."""
    images = mnist[0].images[:128]

    def centre(x: torch.Tensor) -> torch.Tensor:
        x = x.float().reshape(len(x), 28, 28)
        grid = torch.arange(28, dtype=torch.float32)
        mass = x.sum((1, 2)).clamp_min(1e-6)
        return torch.stack([(x.sum(2) * grid).sum(1), (x.sum(1) * grid).sum(1)], 1) / mass[:, None]

    torch.manual_seed(0)
    still = augment.distort(images, 1.0, geometry=0.0, warp=0.0)
    torch.manual_seed(0)
    moved = augment.distort(images, 1.0)

    before = centre(images)
    assert (centre(still) - before).norm(dim=1).mean() < 0.2
    assert (centre(still) - before).norm(dim=1).max() < 1.0
    assert (centre(moved) - before).norm(dim=1).mean() > 1.0
    assert (still - images.float() / 255).abs().flatten(1).max(1).values.gt(0.2).any()


def test_a_run_holds_out_the_last_training_images_and_deskews_both_splits(mnist):
    train, test = training.prepared_mnist(None, holdout=2000, deskew=True)

    assert len(train) == len(mnist[0]) - 2000
    assert torch.equal(train.labels, mnist[0].labels[:-2000])
    assert augment.skew(train.images[:200]).abs().mean() < 0.02
    assert augment.skew(test.images[:200]).abs().mean() < 0.02
    assert training.prepared_mnist(None)[0] is data.load_mnist(None)[0]  # data as loaded


@pytest.mark.parametrize(
    "field, value",
    [
        ("deskew", 1),
        ("distort", -0.5),
        ("distort", 3.0),
        ("distort_geometry", 1.5),
        ("distort_warp", -0.1),
        ("holdout", 59_000),
        ("flag_ones", 1.5),
        ("flag_ones", float("nan")),
    ],
)
def test_bad_new_settings_are_refused(make_config, field, value):
    with pytest.raises(training.ConfigError):
        make_config(**{field: value})


def test_the_tutorial_preset_neither_deskews_nor_distorts_nor_holds_out():
    config = training.config_from_preset("tutorial")
    assert (config.deskew, config.distort, config.holdout, config.augment) == (False, 0.0, 0, 0)
    assert config.flag_ones == 0


def test_flag_ones_adds_a_stroke_left_of_the_top_of_picked_1s_only(mnist):
    images, labels = mnist[0].images[:400], mnist[0].labels[:400]
    plain = images.float() / 255
    torch.manual_seed(0)
    flagged = augment.flag_ones(images, labels, 1.0)
    assert flagged.shape == images.shape and flagged.min() >= 0 and flagged.max() <= 1
    ones = labels == 1
    assert torch.equal(flagged[~ones], plain[~ones]), "only 1s change"
    added = (flagged - plain).clamp_min(0)[ones]  # (n, 28, 28): the new ink alone
    assert (flagged >= plain).all(), "a flag only adds ink"
    for image, ink in zip(plain[ones], added, strict=True):
        rows = (image > 0.5).any(1).nonzero()[:, 0]
        top, height = rows[0].item(), rows[-1].item() - rows[0].item() + 1
        top_col = (image[top] * torch.arange(28.0)).sum() / image[top].sum()
        new = (ink > 0.5).nonzero().float()
        assert len(new) >= 2, "a visible stroke"
        # from the top of the stem, down and to the left, within half the digit's height
        assert new[:, 0].min() >= top - 1.5 and new[:, 0].max() <= top + 0.5 * height + 1.5
        assert new[:, 1].max() <= top_col + 1.5 and new[:, 1].min() < top_col - 1
    torch.manual_seed(0)
    none = augment.flag_ones(images, labels, 0.0)
    assert torch.equal(none, plain)
    torch.manual_seed(0)
    some = augment.flag_ones(images[:, None], labels, 0.5)[:, 0]  # (B, 1, 28, 28) works too
    changed = (some != plain).flatten(1).any(1)
    assert changed[ones].float().mean().item() == pytest.approx(0.5, abs=0.2)


def test_a_run_with_flag_ones_trains_on_flagged_1s(mnist, make_config):
    config = make_config(flag_ones=1.0)
    step = training._Step(build_model("tutorial"), None, mnist[0], config, torch.device("cpu"))
    idx = torch.arange(200)
    torch.manual_seed(0)
    x, y = step.batch(idx)
    plain = data.to_network_input(mnist[0].images[idx])
    differs = (x - plain).abs().flatten(1).amax(1) > 0.1  # uint8 and float paths round apart
    assert torch.equal(differs, y == 1)


def test_cli_takes_deskew_as_a_yes_no_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--deskew", "maybe"])
    assert exit_info.value.code == 2
    assert "expected true or false" in capsys.readouterr().err


def test_a_deskew_checkpoint_makes_the_predictor_read_deskewed_images(tmp_path):
    state = build_model("tutorial").state_dict()
    plain = checkpoints.save(tmp_path / "plain.pt", "tutorial", state, config={})
    straight = checkpoints.save(tmp_path / "d.pt", "tutorial", state, config={"deskew": True})
    leaning = _slanted_bar(0.4)[0].numpy().astype(np.float32) / 255

    old, new = Predictor.from_file(plain), Predictor.from_file(straight)
    seen_old, seen_new = (
        old.predict_preprocessed(leaning).image,
        new.predict_preprocessed(leaning).image,
    )

    assert not old.version.deskew and new.version.deskew
    np.testing.assert_array_equal(seen_old, leaning)  # old checkpoints: images as they are
    assert augment.skew(torch.from_numpy(seen_new)[None]).abs().item() < 0.03
    p_direct, _ = old.predict_arrays(seen_new[None])
    p_new, _ = new.predict_arrays(leaning[None])
    np.testing.assert_allclose(p_new, p_direct, atol=1e-6)  # the same model on the same input


def test_the_shipped_tutorial_checkpoint_reads_images_as_they_are():
    assert not checkpoints.load(checkpoints.shipped("tutorial")).deskew
