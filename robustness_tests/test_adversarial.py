"""Adversarial attacks with budgets in pixel units (white-box, black-box, transfer) and typographic attacks.

Every attack batch is checked for validity (see harness.attacks); the canary below proves the pipeline bites.
"""
import numpy as np
import pytest

from harness.attacks import parse_attack
from harness.data import get_benchmark
from harness.evaluate import attack
from harness.models import resolve

pytestmark = pytest.mark.adversarial

# An undefended embedded model must collapse under a strong white-box attack: if it does not, gradients are not
# reaching the input (a detached head, a wrong normalization, a broken attack) and every robust accuracy of the
# run overstates robustness. Measured on the first 100 test images (weights of 2026-11-30, seeds 0-2 alike):
# synth-clip 0.94 clean -> 0.02 at 8/255 (0.34 at 4/255), synth-cnn 1.00 -> 0.24 at 4/255; the ceilings leave room
# for seed noise, not for a pipeline that stopped biting.
CANARIES = {"embedded:synth-clip": ("pgd-linf-8/255", 0.15), "embedded:synth-cnn": ("pgd-linf-4/255", 0.50)}
CANARY_SAMPLES = 100


def test_attack(case, gate):
    decision = gate(case)
    assert decision.ok, decision.message


@pytest.mark.parametrize("model_id", sorted(CANARIES))
def test_canary_undefended_model_breaks(model_id, robustness_session, loaded_models):
    suite = robustness_session.suite
    if model_id not in suite.models:
        pytest.skip(f"{model_id} is not among the models of this run")
    spec, ceiling = parse_attack(CANARIES[model_id][0]), CANARIES[model_id][1]
    parsed, family = resolve(model_id)
    model = loaded_models.get(model_id)
    benchmark = get_benchmark(family.benchmark(parsed))
    data = benchmark.load(benchmark.clean_split, CANARY_SAMPLES, robustness_session.cache, model.preprocess)
    attacked = attack(model, data.images, data.labels, spec, robustness_session.run(loaded_models.get))
    accuracy, stats = float(np.mean(attacked.robust)), attacked.stats
    assert stats["clean_accuracy"] > 0.5, f"canary: {model_id} clean accuracy {stats['clean_accuracy']:.3f}"
    assert accuracy <= ceiling, (f"canary: {model_id} keeps {accuracy:.3f} accuracy under {spec.name} "
                                 f"(ceiling {ceiling}): the attack pipeline does not bite")
