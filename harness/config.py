"""One SuiteConfig per pytest session: `[tool.robustness]` in pyproject.toml, overridden by command-line options."""
from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


# Seconds per case, generous: the first case of a model also loads it and builds its zero-shot head, which takes
# minutes for an open_clip ViT-B/32 on a GPU and up to hours on a CPU (README, "Running on real models").
DEFAULT_TIMEOUTS = {"clean": 3 * 3600.0, "natural": 3 * 3600.0, "synthetic": 3 * 3600.0, "adversarial": 6 * 3600.0}
MAX_MARGIN = 0.1  # accuracy units: a wider margin lets the paired test pass any drop a case can show


class ConfigError(ValueError):
    """A setting is missing, mistyped or out of range; the message names the setting and the fix."""


@dataclasses.dataclass(frozen=True)
class GatePolicy:
    """How a threshold is derived from a baseline: Wilson lower bound at `confidence`, minus `margin` (accuracy units)."""

    confidence: float = 0.99
    margin: float = 0.01


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    models: tuple[str, ...]
    samples: int
    seed: int
    device: str
    batch_size: int
    baselines_dir: Path
    report_dir: Path
    cache_dir: Path
    gate: GatePolicy
    gate_by_category: dict[str, GatePolicy]
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    transforms: tuple[str, ...]
    sequences: tuple[str, ...]
    synthetic_samples: int
    attacks: tuple[str, ...]
    adversarial_samples: int
    attack_sample_caps: dict[str, int]
    transfer_attacks: tuple[str, ...]
    surrogates: tuple[str, ...]
    typographic: tuple[str, ...]
    attack_options: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    canary: str = "pgd-linf-16/255"
    canary_max_accuracy: float = 0.1
    minimal: tuple[str, ...] = ()
    minimal_bisections: int = 5
    update_baselines: bool = False
    allow_loosen: bool = False
    save_adversarials: Path | None = None
    data_root: Path | None = None
    strict_data: bool = False
    max_flip_rate: float | None = None
    amp: str = "off"
    timeouts: dict[str, float] = dataclasses.field(default_factory=dict)
    benchmark: str = ""  # every model's benchmark ("" : each family's own)
    templates: str = ""  # "", "openai", "single" or an absolute path (see harness.prompts)
    classnames: str = ""  # "" or an absolute path
    smoke: tuple[str, ...] = ()  # setting names marked `smoke`: `pytest -m smoke` gates this slice of every model
    cache_images_gb: float = 20.0  # decoded and perturbed pixels kept in the cache, least recently used evicted
    corruption_workers: int = 0  # processes per xdist worker a corruption is computed on; 0: cores / workers
    huge_pages: bool = True  # the processes a run starts ask glibc for transparent huge pages (harness.allocator)

    def timeout_for(self, category: str) -> float:
        """Seconds one case of `category` may run (its model's loading included) before it is an error."""
        return self.timeouts.get(category, DEFAULT_TIMEOUTS[category])

    def policy_for(self, category: str, overrides: Mapping[str, Any] | None = None) -> GatePolicy:
        """The gate policy of a category: pyproject's, then a baseline file's per-model `gate` overrides."""
        policy = self.gate_by_category.get(category, self.gate)
        override = (overrides or {}).get(category) or (overrides or {}).get("default")
        if override:
            policy = policy_from_table(f"baseline gate.{category}", override, policy)
        return policy

    def samples_for(self, category: str, attack: str | None = None) -> int:
        """The per-case sample cap of a category (`clean`, `natural`, `synthetic`, `adversarial`), lowered for
        attacks with a cap of their own (those that loop per image)."""
        cap = {"synthetic": self.synthetic_samples, "adversarial": self.adversarial_samples}.get(
            category, self.samples)
        return min(cap, self.attack_sample_caps.get(attack, cap)) if attack else cap


PROTOCOL = Path(__file__).resolve().with_name("protocol.toml")  # the default protocol, in [tool.robustness]'s schema


def default_protocol() -> dict[str, Any]:
    """harness/protocol.toml: what every project's `[tool.robustness]` table starts from."""
    with PROTOCOL.open("rb") as handle:
        return tomllib.load(handle)


# Keys a project may set that the default protocol leaves unset, and the tables whose keys are names (attacks,
# categories): a name table a project sets replaces the protocol's whole, so an entry can be dropped.
UNSET_KEYS = {(): {"data_root", "strict_data", "max_flip_rate"},
              ("gate",): {"clean", "natural", "synthetic", "adversarial"}}
NAME_TABLES = {("adversarial", "options"), ("adversarial", "sample_caps")}


def with_defaults(defaults: Mapping[str, Any], table: Mapping[str, Any], where: tuple[str, ...] = ()) -> dict[str, Any]:
    """`table` over `defaults`: tables merge key by key, except the NAME_TABLES, which replace, as does any other
    value (a list among them). ConfigError for a key the protocol does not know (with the closest one it does)
    and for a table where the protocol has a value or the other way round."""
    merged = dict(defaults)
    for key, value in table.items():
        name = ".".join(("tool.robustness", *where))
        if key not in defaults and key not in UNSET_KEYS.get(where, ()):
            known = sorted({*defaults, *UNSET_KEYS.get(where, ())})
            close = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"[{name}] has no key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                              + f" (known: {', '.join(known)}; harness/protocol.toml lists them)")
        if key in defaults and isinstance(defaults[key], dict) != isinstance(value, dict):
            kind = "a table" if isinstance(defaults[key], dict) else "a value, not a table"
            raise ConfigError(f"[{name}] {key!r} must be {kind}, got {value!r:.60}")
        nested = isinstance(value, dict) and key in defaults and (*where, key) not in NAME_TABLES
        merged[key] = with_defaults(defaults[key], value, (*where, key)) if nested else value
    return merged


def declares_suite(pyproject: Path) -> bool:
    """Whether `pyproject` has a `[tool.robustness]` table (an empty one too): the project has set the suite up.
    False for a missing or unparsable file (pytest reports the latter itself where it is the ini file)."""
    try:
        with Path(pyproject).open("rb") as handle:
            return "robustness" in tomllib.load(handle).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def read_pyproject_table(pyproject: Path) -> dict[str, Any]:
    """The `[tool.robustness]` table of `pyproject`, or {} when the file or the table is absent."""
    if not pyproject.is_file():
        return {}
    try:
        with pyproject.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{pyproject}: not valid TOML ({error}); fix the file or remove [tool.robustness]") from error
    table = document.get("tool", {}).get("robustness", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.robustness] must be a table")
    return table


def _typed(source: str, key: str, value: Any, kind: type) -> Any:
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{source}: '{key}' must be {kind.__name__}, got {value!r}")
    return value


def _positive_int(source: str, key: str, value: Any) -> int:
    value = _typed(source, key, value, int)
    if value < 1:
        raise ConfigError(f"{source}: '{key}' must be >= 1, got {value}")
    return value


def _non_negative_int(source: str, key: str, value: Any) -> int:
    value = _typed(source, key, value, int)
    if value < 0:
        raise ConfigError(f"{source}: '{key}' must be >= 0 (0: this machine's cores shared among the workers), "
                          f"got {value}")
    return value


def _positive_number(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{source}: '{key}' must be a number > 0, got {value!r}")
    return float(value)


AMP_MODES = ("off", "bf16", "fp16")


def _fraction(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{source}: '{key}' must be a number in [0, 1], got {value!r}")
    return float(value)


ATTACK_OPTIONS = ("steps", "queries", "restarts")


def _attack_options(source: str, table: Any) -> dict[str, dict[str, int]]:
    """`[tool.robustness.adversarial.options]`: per attack name, the steps, queries or restarts that replace its
    registered defaults, e.g. `autoattack = {queries = 5000}`."""
    key = "adversarial.options"
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: '{key}' must be a table of attack name -> {{steps, queries, restarts}}")
    options = {}
    for attack, values in table.items():
        if not isinstance(values, dict) or set(values) - set(ATTACK_OPTIONS):
            raise ConfigError(f"{source}: '{key}.{attack}' must be a table with keys among "
                              f"{', '.join(ATTACK_OPTIONS)}, got {values!r}")
        options[attack] = {name: _positive_int(source, f"{key}.{attack}.{name}", value)
                           for name, value in values.items()}
    return options


def _amp(source: str, value: Any) -> str:
    if value not in AMP_MODES:
        raise ConfigError(f"{source}: 'amp' must be one of {', '.join(AMP_MODES)}, got {value!r}")
    return value


def _str_list(source: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: '{key}' must be a list of strings, got {value!r}")
    return tuple(value)


PROMPT_KEYWORDS = ("", "openai", "single")


def _prompt_option(source: str, key: str, value: Any, root: Path, keywords: tuple[str, ...]) -> str:
    """A prompts option as SuiteConfig keeps it: a keyword as is, a file as its absolute path (which must exist)."""
    value = _typed(source, key, value, str)
    if value in keywords:
        return value
    path = (root / value).resolve()
    if not path.is_file():
        choices = " or ".join(f'"{k}"' for k in keywords if k)
        raise ConfigError(f"{source}: '{key}' = {value!r} names no file ({path}); give a text file, one entry per "
                          f"line" + (f", or {choices}" if choices else ""))
    return str(path)


def build_config(root: Path, table: Mapping[str, Any], overrides: Mapping[str, Any]) -> SuiteConfig:
    """pyproject's `table` over the default protocol, then command-line `overrides` (None means "not given");
    paths resolve against `root`."""
    source = f"{root / 'pyproject.toml'} [tool.robustness]"
    table = with_defaults(default_protocol(), table)
    merged = {k: v for k, v in table.items() if not isinstance(v, dict)}
    merged.update({k: v for k, v in overrides.items() if v is not None})

    gate_table = table["gate"]
    synthetic = table["synthetic"]
    adversarial = table["adversarial"]
    prompts = {**table["prompts"], **{k: overrides[k] for k in ("templates", "classnames")
                                              if overrides.get(k) is not None}}
    gate = policy_from_table(f"{source} gate", gate_table, GatePolicy())
    by_category = {name: policy_from_table(f"{source} gate.{name}", value, gate)
                   for name, value in gate_table.items() if isinstance(value, dict)}
    max_flip_rate = merged.get("max_flip_rate")
    if max_flip_rate is not None and not 0 <= float(max_flip_rate) <= 1:
        raise ConfigError(f"--max-flip-rate must be in [0, 1], got {max_flip_rate}")

    severities = tuple(synthetic["severities"])
    if not severities or not all(isinstance(s, int) and 1 <= s <= 5 for s in severities):
        raise ConfigError(f"{source}: 'synthetic.severities' must be integers in 1..5, got {list(severities)}")

    samples = _positive_int(source, "samples", merged["samples"])
    timeouts = _timeouts(source, table["timeouts"], merged.get("case_timeout"))
    return SuiteConfig(
        timeouts=timeouts,
        models=_str_list(source, "models", list(merged["models"])),
        samples=samples,
        seed=_typed(source, "seed", merged["seed"], int),
        device=_typed(source, "device", merged["device"], str),
        amp=_amp(source, merged["amp"]),
        batch_size=_positive_int(source, "batch_size", merged["batch_size"]),
        baselines_dir=(root / _typed(source, "baselines_dir", merged["baselines_dir"], str)).resolve(),
        report_dir=(root / _typed(source, "report_dir", merged["report_dir"], str)).resolve(),
        cache_dir=(root / _typed(source, "cache_dir", merged["cache_dir"], str)).resolve(),
        gate=gate,
        gate_by_category=by_category,
        corruptions=_str_list(source, "synthetic.corruptions", synthetic["corruptions"]),
        severities=severities,
        transforms=_str_list(source, "synthetic.transforms", synthetic["transforms"]),
        sequences=_str_list(source, "synthetic.sequences", synthetic["sequences"]),
        synthetic_samples=min(samples, _positive_int(source, "synthetic.samples", synthetic["samples"])),
        attacks=_str_list(source, "adversarial.attacks", adversarial["attacks"]),
        adversarial_samples=min(samples, _positive_int(
            source, "adversarial.samples", adversarial["samples"])),
        attack_sample_caps={name: _positive_int(source, f"adversarial.sample_caps.{name}", cap)
                            for name, cap in adversarial["sample_caps"].items()},
        transfer_attacks=_str_list(source, "adversarial.transfer", adversarial["transfer"]),
        surrogates=_str_list(source, "adversarial.surrogates", adversarial["surrogates"]),
        typographic=_str_list(source, "adversarial.typographic", adversarial["typographic"]),
        attack_options=_attack_options(source, adversarial["options"]),
        canary=_typed(source, "adversarial.canary", adversarial["canary"], str),
        canary_max_accuracy=_fraction(source, "adversarial.canary_max_accuracy",
                                      adversarial["canary_max_accuracy"]),
        minimal=_str_list(source, "adversarial.minimal", adversarial["minimal"]),
        minimal_bisections=_positive_int(source, "adversarial.minimal_bisections",
                                         adversarial["minimal_bisections"]),
        update_baselines=bool(merged.get("update_baselines", False)),
        allow_loosen=bool(merged.get("allow_loosen", False)),
        save_adversarials=Path(merged["save_adversarials"]).resolve() if merged.get("save_adversarials") else None,
        data_root=(root / merged["data_root"]).resolve() if merged.get("data_root") else None,
        strict_data=bool(merged.get("strict_data", False)),
        max_flip_rate=None if max_flip_rate is None else float(max_flip_rate),
        benchmark=_typed(source, "benchmark", merged["benchmark"], str),
        smoke=_str_list(source, "smoke", list(merged["smoke"])),
        cache_images_gb=_positive_number(source, "cache_images_gb", merged["cache_images_gb"]),
        corruption_workers=_non_negative_int(source, "synthetic.workers", synthetic["workers"]),
        huge_pages=_typed(source, "huge_pages", merged["huge_pages"], bool),
        templates=_prompt_option(source, "prompts.templates", prompts["templates"], root, PROMPT_KEYWORDS),
        classnames=_prompt_option(source, "prompts.classnames", prompts["classnames"], root, ("",)),
    )


def _timeouts(source: str, table: Any, everywhere: Any) -> dict[str, float]:
    """Per-category case timeouts from `[tool.robustness.timeouts]`; --case-timeout sets every category."""
    if not isinstance(table, dict) or set(table) - set(DEFAULT_TIMEOUTS):
        raise ConfigError(f"{source}: 'timeouts' must be a table of seconds by category "
                          f"({', '.join(DEFAULT_TIMEOUTS)}), got {table!r}")
    found = {**DEFAULT_TIMEOUTS, **table} if everywhere is None else dict.fromkeys(DEFAULT_TIMEOUTS, everywhere)
    for category, seconds in found.items():
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ConfigError(f"{source}: timeout of {category} cases must be a positive number of seconds, got "
                              f"{seconds!r}")
    return {category: float(seconds) for category, seconds in found.items()}


def policy_from_table(source: str, table: Mapping[str, Any], base: GatePolicy) -> GatePolicy:
    """`base` with the `confidence` and `margin` of `table` applied, range-checked."""
    confidence = table.get("confidence", base.confidence)
    margin = table.get("margin", base.margin)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence <= 0.999:
        raise ConfigError(f"{source}: 'confidence' must be a number in [0.5, 0.999], got {confidence!r} (above "
                          f"0.999 the paired test could not fail at the default sample sizes)")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= MAX_MARGIN:
        raise ConfigError(f"{source}: 'margin' must be a number in [0, {MAX_MARGIN}], got {margin!r} (a larger "
                          f"margin would switch the paired test off)")
    return GatePolicy(confidence=float(confidence), margin=float(margin))
