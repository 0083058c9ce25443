import dataclasses

import numpy as np
import pytest
import torch

from harness.attacks import parse_attack
from harness.minimal import median_interval, minimal_eps, summary


class TwoClassLinear(torch.nn.Module):
    """logits (w.x, -w.x): FGSM moves each pixel by eps against sign(w) for class 0, so it flips a sample exactly
    when eps exceeds its margin 2 w.x over ||2w||_1, the sample's analytic minimal L-inf perturbation."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3 * 4 * 4, generator=torch.Generator().manual_seed(0)),
                                    requires_grad=False)

    def forward(self, x):
        score = x.flatten(1) @ self.w
        return torch.stack([score, -score], dim=1)


@pytest.fixture
def linear_batch():
    model = TwoClassLinear().eval()
    w = model.w
    base = torch.full((12, 48), 0.5)
    centred = base - (base @ w / (w @ w)).unsqueeze(1) * w  # w.x = 0
    margins = torch.linspace(0.002, 0.05, 12) * w.abs().sum()  # analytic eps 0.002 .. 0.05 for class 0
    images = (centred + (margins / (w @ w)).unsqueeze(1) * w).view(12, 3, 4, 4)
    assert 0 <= images.min() and images.max() <= 1
    labels = torch.zeros(12, dtype=torch.long)
    analytic = (images.flatten(1) @ w) / w.abs().sum()
    return model, images, labels, analytic


def test_the_search_finds_the_analytic_minimal_perturbation_within_its_precision(linear_batch):
    model, images, labels, analytic = linear_batch
    spec = parse_attack("fgsm-linf-8/255")
    values = minimal_eps(model, images, labels, spec, bisections=8, seed=0)
    precision = spec.eps / 2**8
    inside = analytic <= spec.eps
    assert torch.all(values[inside] >= analytic[inside].double() - 1e-6)
    assert torch.all(values[inside] <= analytic[inside].double() + precision + 1e-6)
    assert torch.all(torch.isinf(values[~inside]))  # robust at the maximum: "above max"
    assert inside.sum() >= 6 and (~inside).sum() >= 1


def test_a_misclassified_sample_scores_zero_and_the_search_is_seeded(linear_batch):
    model, images, labels, _ = linear_batch
    labels = labels.clone()
    labels[:3] = 1  # wrong clean
    spec = parse_attack("pgd-linf-16/255")
    first = minimal_eps(model, images, labels, spec, bisections=4, seed=3)
    assert torch.all(first[:3] == 0)
    assert torch.equal(first, minimal_eps(model, images, labels, spec, bisections=4, seed=3))


def test_median_interval_is_seeded_holds_the_median_and_keeps_infinity():
    values = np.array([0.0, 1.0, 2.0, 3.0, np.inf, np.inf, 4.0, 5.0, 6.0])
    lo, hi = median_interval(values, seed=0)
    assert lo <= np.median(values) <= hi and (lo, hi) == median_interval(values, seed=0)
    assert median_interval(np.full(5, np.inf), seed=0) == (np.inf, np.inf)


def test_summary_reports_median_interval_and_share_robust_at_the_maximum():
    spec = parse_attack("pgd-linf-8/255")
    values = np.array([0.0, 0.01, 0.02, np.inf])
    out = summary(values, spec, bisections=5, seed=0)
    assert out["median_eps"] == pytest.approx(0.015) and out["robust_at_max"] == 0.25
    assert out["precision"] == pytest.approx(spec.eps / 32) and out["max_eps"] == spec.eps
    assert summary(np.full(4, np.inf), spec, 5, 0)["median_eps"] is None  # above the maximum, JSON-able
    assert "linf" in out["units"] and "pixels" in out["units"]


def test_a_minimal_setting_is_a_case_of_its_own_with_its_protocol(tmp_path):
    from harness.config import build_config
    from harness.minimal import minimal_settings
    from harness.settings import SettingScope

    config = build_config(tmp_path, {"models": ["embedded:synth-cnn"], "adversarial": {
        "minimal": ["pgd-linf-8/255"], "minimal_bisections": 4}}, {})
    (setting,) = minimal_settings(SettingScope(config, "embedded:synth-cnn", "synth", "test"))
    assert setting.name == "minimal-pgd-linf-8/255" and setting.metric == "robust-at-max"
    record = setting.as_dict()
    assert record["minimal"]["bisections"] == 4 and "attack" not in record  # not on the pgd-linf dose ladder
    with pytest.raises(Exception, match="one bounded attack"):
        minimal_settings(SettingScope(dataclasses.replace(config, minimal=("cw-l2-0.5",)), "m", "synth", "test"))
