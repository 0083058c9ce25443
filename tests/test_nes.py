import pytest
import torch

from harness.nes import NES, margin_loss

SHAPE = (3, 8, 8)
CLASSES = 4


class Linear(torch.nn.Module):
    """logits = x.flatten(1) @ weight.T + bias."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
        self.layer.weight.data.copy_(weight)
        self.layer.bias.data.copy_(bias)
        self.eval().requires_grad_(False)

    def forward(self, x):
        return self.layer(x.flatten(1))


def random_linear(seed: int) -> Linear:
    generator = torch.Generator().manual_seed(seed)
    features = SHAPE[0] * SHAPE[1] * SHAPE[2]
    return Linear(torch.randn(CLASSES, features, generator=generator), torch.zeros(CLASSES))


def minimal_linf(model: Linear, image: torch.Tensor, label: int) -> float:
    """The smallest L-inf perturbation that flips a linear model's decision on `image`, ignoring the [0, 1] box:
    min over competitors o of margin_o / ||w_label - w_o||_1."""
    weight, bias = model.layer.weight, model.layer.bias
    x = image.flatten()
    ratios = [((weight[label] - weight[o]) @ x + bias[label] - bias[o]) / (weight[label] - weight[o]).abs().sum()
              for o in range(CLASSES) if o != label]
    return min(ratios).item()


def near_boundary_case(seed: int, eps_star: float = 0.02) -> tuple[Linear, torch.Tensor, torch.Tensor]:
    """A linear model and one image near 0.5 of class 0 whose nearest competitor is class 1 at L-inf distance
    `eps_star`; classes 2 and 3 are far, so class 1 stays the largest other logit everywhere in the ball."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(CLASSES, SHAPE[0] * SHAPE[1] * SHAPE[2], generator=generator)
    image = 0.5 + 0.05 * (2 * torch.rand(1, *SHAPE, generator=generator) - 1)
    direction = weight[0] - weight[1]
    bias = torch.tensor([0.0, (direction @ image.flatten() - eps_star * direction.abs().sum()).item(), -100.0, -100.0])
    return Linear(weight, bias), image, torch.tensor([0])


def test_margin_loss_is_true_logit_minus_the_largest_other():
    logits = torch.tensor([[3.0, 1.0, 2.5], [0.0, 4.0, -1.0]])
    assert torch.allclose(margin_loss(logits, torch.tensor([0, 2])), torch.tensor([0.5, -5.0]))


@pytest.mark.parametrize("batch_size", [64, 100_000])
def test_the_gradient_estimate_points_along_the_analytic_margin_gradient(batch_size):
    model = random_linear(0)
    images = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(images)
    labels = logits.argmax(dim=1)
    competitors = logits.scatter(1, labels.unsqueeze(1), float("-inf")).argmax(dim=1)
    weight = model.layer.weight
    analytic = (weight[labels] - weight[competitors]).view_as(images)

    attack = NES(model, eps=0.1, alpha=0.01, steps=1, queries=2000)
    attack.batch_size = batch_size
    estimate = attack.margin_gradient(images, labels, torch.Generator().manual_seed(0))

    cosine = torch.nn.functional.cosine_similarity(estimate.flatten(1), analytic.flatten(1), dim=1)
    assert estimate.shape == images.shape
    assert (cosine > 0.9).all(), cosine


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nes_flips_just_above_the_analytic_minimal_linf_budget_and_not_below(seed):
    model, image, label = near_boundary_case(seed)
    eps_star = minimal_linf(model, image, 0)
    assert eps_star == pytest.approx(0.02, rel=1e-3)
    assert (image - 1.2 * eps_star).min() > 0 and (image + 1.2 * eps_star).max() < 1

    for factor, flips in [(1.2, True), (0.8, False)]:
        eps = factor * eps_star
        adversarial = NES(model, eps=eps, alpha=eps / 4, steps=40, queries=200, seed=seed)(image, label)
        assert (adversarial - image).abs().max() <= eps + 1e-6
        assert (model(adversarial).argmax(dim=1) != label).item() is flips, factor


def test_a_flipped_sample_stops_at_its_first_adversarial_point():
    model, image, label = near_boundary_case(0)
    eps = 1.2 * minimal_linf(model, image, 0)
    short, long = (NES(model, eps=eps, alpha=eps / 4, steps=steps, queries=200)(image, label) for steps in (40, 80))
    assert model(short).argmax(dim=1).item() != label.item()
    assert torch.equal(short, long)


def test_an_already_misclassified_sample_comes_back_unchanged():
    model, image, _ = near_boundary_case(0)
    wrong = torch.tensor([1])
    assert torch.equal(NES(model, eps=0.1, alpha=0.01, steps=5, queries=10)(image, wrong), image)


def test_outputs_stay_in_the_pixel_range_and_the_eps_ball():
    model = random_linear(3)
    images = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(4))
    images[:, 0] = 0.0
    images[:, 1] = 1.0
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    original = images.clone()
    eps = 0.05

    attack = NES(model, eps=eps, alpha=0.02, steps=10, queries=20)
    attack.batch_size = 50
    adversarial = attack(images, labels)

    assert torch.equal(images, original)
    assert adversarial.shape == images.shape and adversarial.dtype == images.dtype
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - images).abs().max() <= eps + 1e-6
    assert (adversarial != images).any()


def test_a_seed_fixes_the_draws_and_the_global_rng_is_left_alone():
    model, image, label = near_boundary_case(1)
    eps = 0.8 * minimal_linf(model, image, 0)
    images, labels = image.repeat(3, 1, 1, 1), label.repeat(3)

    def attack(seed):
        return NES(model, eps=eps, alpha=eps / 4, steps=3, queries=10, seed=seed)(images, labels)

    state = torch.get_rng_state()
    first, again, other = attack(0), attack(0), attack(1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])
