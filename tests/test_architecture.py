"""The shape of the house, kept: small signatures, the controller apart from the plugin, report tools without torch."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_PARAMETERS = 6
CONTROLLER_HOOKS = {"pytest_runtest_logreport", "pytest_sessionfinish", "pytest_terminal_summary",
                    "pytest_xdist_node_collection_finished", "pytest_testnodedown"}


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _parameters(node: ast.FunctionDef) -> list[str]:
    arguments = node.args
    names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
    names += [f"*{a.arg}" for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def test_no_function_takes_more_than_six_parameters():
    wide = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({', '.join(_parameters(node))})"
            for folder in ("harness", "tools", "benchmarks") for path in sorted((ROOT / folder).rglob("*.py"))
            for node in _functions(path) if len(_parameters(node)) > MAX_PARAMETERS]
    assert wide == [], "group these parameters into a record:\n" + "\n".join(wide)


def test_the_plugin_holds_no_controller_hooks():
    hooks = {node.name for node in _functions(ROOT / "harness" / "plugin.py")}
    assert hooks & CONTROLLER_HOOKS == set()
    assert CONTROLLER_HOOKS <= {node.name for node in _functions(ROOT / "harness" / "controller.py")}


@pytest.mark.parametrize("module", ["harness.records", "harness.report", "harness.reports_cli", "harness.files",
                                    "harness.html_report"])
def test_the_report_modules_import_no_model_stack(module):
    script = (f"import sys, {module}; print(sorted(m for m in ('torch', 'open_clip', 'timm', 'torchattacks', "
              f"'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
