"""The one Registry behind model families, benchmarks, attacks and transforms: names are registered once, unknown
names are answered with the available ones, and code outside the harness registers through the public decorators."""
from pathlib import Path

import numpy as np
import pytest

from harness.registry import DuplicateNameError, Registry, UnknownNameError


@pytest.fixture
def widgets():
    registry = Registry("widget")
    registry.add("b", 2)
    registry.add("a", 1)
    return registry


def test_a_name_is_registered_once(widgets):
    with pytest.raises(DuplicateNameError, match="widget 'a' is already registered; choose another name") as error:
        widgets.add("a", 3)
    assert isinstance(error.value, ValueError)
    with pytest.raises(DuplicateNameError):
        widgets.register("b")(lambda: None)
    assert widgets["a"] == 1 and widgets["b"] == 2  # the refused registration replaced nothing


def test_an_unknown_name_lists_the_available_ones(widgets):
    with pytest.raises(UnknownNameError) as error:
        widgets.get("c")
    assert str(error.value) == "unknown widget 'c'; available: a, b"
    assert isinstance(error.value, KeyError) and isinstance(error.value, LookupError)
    with pytest.raises(KeyError, match="available: a, b"):
        widgets["c"]
    with pytest.raises(UnknownNameError, match="unknown widget 'x'; available: none"):
        Registry("widget").get("x")


def test_the_decorator_returns_the_object_unchanged(widgets):
    def function():
        return "f"

    class Class:
        pass

    assert widgets.register("function")(function) is function
    assert widgets.register("class")(Class) is Class
    assert widgets["function"] is function and widgets["class"] is Class
    assert widgets.add("plain", 5) == 5


def test_mapping_style_read_access_is_in_name_order(widgets):
    assert widgets.names() == ["a", "b"] == list(widgets)
    assert "a" in widgets and "c" not in widgets and len(widgets) == 2
    assert widgets.items() == [("a", 1), ("b", 2)] and widgets.values() == [1, 2]
    assert widgets["b"] == widgets.get("b") == 2
    assert "widget" in repr(widgets)


def test_unregister_undoes_a_registration(widgets):
    assert widgets.unregister("a") == 1
    assert "a" not in widgets and widgets.names() == ["b"]
    widgets.add("a", 7)  # the name is free again
    with pytest.raises(UnknownNameError, match="available: a, b"):
        widgets.unregister("c")


# The real registries: a built-in name is refused, and an out-of-tree registration through the public decorator is
# found by the public lookup. Each throwaway registration is undone, so the rest of the session never sees it.

def test_model_families():
    from harness.models import UnknownModelError, known_model_ids, register_family, resolve
    from harness.models.registry import FAMILIES

    before = known_model_ids()
    with pytest.raises(DuplicateNameError, match="model family 'embedded' is already registered"):
        register_family("embedded")(type("Again", (), {}))
    assert type(FAMILIES["embedded"]).__name__ != "Again"

    class Throwaway:
        def names(self):
            return ["one"]

        def validate(self, model_id):
            if model_id.name != "one":
                raise UnknownModelError(f"no throwaway model {model_id.name!r}")

        def benchmark(self, model_id):
            return "synth"

        def load(self, model_id, device, cache=None):
            raise NotImplementedError

    assert register_family("throwaway-family")(Throwaway) is Throwaway
    try:
        model_id, family = resolve("throwaway-family:one")
        assert isinstance(family, Throwaway) and model_id.name == "one"  # an instance of the decorated class
        assert "throwaway-family:one" in known_model_ids()
        with pytest.raises(UnknownModelError, match="no throwaway model 'two'"):
            resolve("throwaway-family:two")
    finally:
        FAMILIES.unregister("throwaway-family")
    assert known_model_ids() == before
    with pytest.raises(UnknownModelError, match="unknown model family 'throwaway-family' in 'throwaway-family:one'; "
                                                "known model ids: embedded:"):
        resolve("throwaway-family:one")


def test_benchmarks():
    from harness.data import BENCHMARKS, get_benchmark, register_benchmark

    with pytest.raises(DuplicateNameError, match="benchmark 'synth' is already registered"):
        register_benchmark("synth")(lambda data_root: None)
    assert get_benchmark("synth").name == "synth"

    made = []

    def factory(data_root):
        made.append(data_root)
        return "a throwaway benchmark"

    assert register_benchmark("throwaway-benchmark")(factory) is factory
    try:
        assert get_benchmark("throwaway-benchmark", Path("/data")) == "a throwaway benchmark"
        assert made == [Path("/data")]
    finally:
        BENCHMARKS.unregister("throwaway-benchmark")
    with pytest.raises(LookupError, match=r"^unknown benchmark 'throwaway-benchmark'; known: imagenet, synth$"):
        get_benchmark("throwaway-benchmark")


def test_attacks():
    from harness.attacks import ATTACKS, known_attacks, parse_attack, register_attack

    pgd = ATTACKS["pgd"]
    with pytest.raises(DuplicateNameError, match="attack 'pgd' is already registered"):
        register_attack("pgd", norms=("linf",))(lambda model, spec, n_classes, seed: None)
    assert ATTACKS["pgd"] is pgd

    def build(model, spec, n_classes, seed):
        raise NotImplementedError

    assert register_attack("throwaway", norms=("l2",), steps=3, alpha_fraction=0.5)(build) is build
    try:
        spec = parse_attack("throwaway-l2-0.5")
        assert (spec.attack, spec.steps, spec.alpha) == ("throwaway", 3, 0.25)
        assert ATTACKS["throwaway"].build is build and "throwaway-l2" in known_attacks()
    finally:
        ATTACKS.unregister("throwaway")
    with pytest.raises(ValueError, match="unknown attack throwaway-l2"):
        parse_attack("throwaway-l2-0.5")


def test_transforms(tmp_path):
    from harness.cases import expand_cases
    from harness.config import build_config
    from harness.shifts.perturbations import TRANSFORMS, Transform, register_transform

    greyscale = TRANSFORMS["greyscale"]
    with pytest.raises(DuplicateNameError, match="transform 'greyscale' is already registered"):
        register_transform("greyscale")(lambda images, seed, offset: images)
    assert TRANSFORMS["greyscale"] is greyscale

    def invert(images, seed, offset):
        return 255 - images

    assert register_transform("throwaway-invert")(invert) is invert
    try:
        images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
        assert np.array_equal(TRANSFORMS["throwaway-invert"](images, 0, 0), 255 - images)  # as evaluate.py calls it
        cases = expand_cases(build_config(tmp_path, {"synthetic": {"transforms": ["throwaway-invert"]}}, {}))
        assert {c.setting.perturbation for c in cases if isinstance(c.setting.perturbation, Transform)} == {
            Transform("throwaway-invert")}
    finally:
        TRANSFORMS.unregister("throwaway-invert")
    assert TRANSFORMS.names() == ["greyscale", "stylized"]


def test_shift_kinds(tmp_path):
    """A kind of shift from outside: its Perturbation and its settings builder, registered in one module."""
    import dataclasses

    import torch

    from harness.cache import ArrayCache
    from harness.cases import expand_cases
    from harness.config import build_config
    from harness.evaluate import RunContext, evaluate
    from harness.models import load_model
    from harness.settings import SHIFT_KINDS, Setting, register_shift_kind
    from harness.shifts.base import Perturbation, with_pixels

    assert SHIFT_KINDS.names() == ["attack", "corruption", "minimal", "sequence", "transfer", "transform",
                                  "typographic"]
    with pytest.raises(DuplicateNameError, match="shift kind 'attack' is already registered"):
        register_shift_kind("attack")(lambda scope: [])

    @dataclasses.dataclass(frozen=True)
    class Darken(Perturbation):
        factor: int

        def record(self):
            return {"darken": {"factor": self.factor}}

        def perturb(self, inputs, model, run):
            return with_pixels(inputs, inputs.images // self.factor)

    def darken_settings(scope):
        return [Setting("synthetic", "darken-2", scope.clean_split, 20, perturbation=Darken(2))]

    assert register_shift_kind("throwaway-darken")(darken_settings) is darken_settings
    try:
        config = build_config(tmp_path, {"models": ["embedded:synth-cnn"]}, {})
        [case] = [c for c in expand_cases(config) if c.setting.name == "darken-2"]
        assert case.id == "synth-cnn-darken-2" and case.setting.as_dict()["darken"] == {"factor": 2}
        model = load_model("embedded:synth-cnn", torch.device("cpu"))
        result = evaluate(case, model, RunContext(torch.device("cpu"), ArrayCache(tmp_path / "cache")))
        assert result.n == 20 and "perturbed_sha256" in result.data
    finally:
        SHIFT_KINDS.unregister("throwaway-darken")
