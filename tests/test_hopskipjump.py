import logging

import numpy as np
import pytest
import torch

from harness.hopskipjump import HopSkipJump

SHAPE = (3, 8, 8)
CLASSES = 4


def linear_model(seed: int = 0) -> torch.nn.Sequential:
    """Random weights; classes 2 and 3 biased out of reach. HopSkipJump walks the boundary of the class its random
    start falls in, which need not be the nearest one; with two classes left, the boundary it walks is the
    nearest."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SHAPE[0] * SHAPE[1] * SHAPE[2], CLASSES))
    model[1].weight.data.copy_(torch.randn(CLASSES, SHAPE[0] * SHAPE[1] * SHAPE[2], generator=generator))
    model[1].bias.data.copy_(torch.tensor([0.0, 0.0, -100.0, -100.0]))
    return model.eval().requires_grad_(False)


def images_near_half(count: int, seed: int = 1) -> torch.Tensor:
    return 0.5 + 0.1 * (2 * torch.rand(count, *SHAPE, generator=torch.Generator().manual_seed(seed)) - 1)


def nearest_boundary(model: torch.nn.Sequential, images: torch.Tensor, labels: torch.Tensor,
                     norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances (N,), points (N, C, H, W)): the smallest perturbation in `norm` that flips the linear model on
    each image, ignoring the [0, 1] box, and the point it leads to. Against competitor o it is
    margin_o / ||w_label - w_o||_dual (dual 2 for L2, 1 for L-inf); the minimum over o is taken."""
    weight = model[1].weight
    logits = model(images)
    differences = weight[labels].unsqueeze(1) - weight.unsqueeze(0)
    ratios = (logits.gather(1, labels.unsqueeze(1)) - logits) / differences.norm(p=2 if norm == "l2" else 1, dim=2)
    distances, competitors = ratios.scatter(1, labels.unsqueeze(1), float("inf")).min(dim=1)
    direction = differences[torch.arange(len(images)), competitors]
    step = direction / direction.norm(dim=1, keepdim=True) if norm == "l2" else direction.sign()
    return distances, images - (distances.unsqueeze(1) * step).view_as(images)


@pytest.mark.parametrize("norm, factor", [("l2", 1.5), ("linf", 2.0)])
def test_points_are_adversarial_and_close_to_the_analytic_minimum(norm, factor):
    model, images = linear_model(), images_near_half(4)
    labels = model(images).argmax(dim=1)
    optimum, closest = nearest_boundary(model, images, labels, norm)
    assert closest.min() >= 0 and closest.max() <= 1

    adversarial = HopSkipJump(model, norm, max_iter=20, max_eval=1000, init_eval=100, seed=0)(images, labels)

    assert (model(adversarial).argmax(dim=1) != labels).all()
    delta = (adversarial - images).flatten(1)
    distance = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
    assert (distance >= optimum * (1 - 1e-4)).all()
    assert (distance <= factor * optimum).all(), distance / optimum


class Constant(torch.nn.Module):
    """Predicts class 0 whatever the input: no adversarial point exists."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]), requires_grad=False)

    def forward(self, x):
        return self.bias.expand(len(x), CLASSES) + 0 * x.flatten(1)[:, :1]


def test_samples_without_an_adversarial_point_and_misclassified_ones_come_back_unchanged():
    images = images_near_half(3)
    labels = torch.tensor([0, 0, 2])
    attack = HopSkipJump(Constant().eval(), "l2", max_iter=2, max_eval=20, init_eval=10, seed=0)
    assert torch.equal(attack(images, labels), images)


def test_a_seed_fixes_the_result_and_the_global_rngs_are_left_alone(caplog):
    model, images = linear_model(), images_near_half(3)
    labels = model(images).argmax(dim=1)

    def attack(seed):
        return HopSkipJump(model, "l2", max_iter=3, max_eval=200, init_eval=20, seed=seed)(images, labels)

    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    art_level = logging.getLogger("art").level
    with caplog.at_level(logging.DEBUG):
        first, again, other = attack(0), attack(0), attack(1)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not [record for record in caplog.records if record.name.startswith("art")]
    assert logging.getLogger("art").level == art_level


def test_the_result_keeps_shape_dtype_device_and_pixel_range():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * SHAPE[1] * SHAPE[2], CLASSES))
    for parameter, seed in zip(model.parameters(), range(4)):
        parameter.data.copy_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(seed)))
    model.eval().requires_grad_(False)
    images = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(2))
    labels = model(images).argmax(dim=1)

    adversarial = HopSkipJump(model, "linf", max_iter=3, max_eval=100, init_eval=10, seed=0)(images, labels)

    assert adversarial.shape == images.shape and adversarial.dtype == torch.float32
    assert adversarial.device == images.device
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    broken = model(adversarial).argmax(dim=1) != labels
    assert broken.any()
    assert torch.equal(adversarial[~broken], images[~broken])


def test_an_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="l2, linf"):
        HopSkipJump(linear_model(), "l1", max_iter=1, max_eval=10, init_eval=10, seed=0)
