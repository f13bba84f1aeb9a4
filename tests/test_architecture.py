"""The shape of the package: light imports where promised, no import cycles, one registry idiom,
and the public API that `import robench` offers."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import robench
from robench.cli import app
from robench.registry import Param, Registry

PACKAGE = Path(robench.__file__).parent


@pytest.mark.parametrize("module", ["robench", "robench.report", "robench.runfolder", "robench.runfolder.files", "robench.runfolder.cellstore", "robench.runfolder.staging", "robench.corruptions.protocol",
                                    "robench.config", "robench.cli", "robench.report.tidy", "robench.report.stats", "robench.report.leaderboard", "robench.report.formats",
                                    "robench.report.plots", "robench.report.html", "robench.report.robustbench"])
def test_table_and_command_line_modules_import_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def _imports(path: Path) -> set[str]:
    """The robench modules a file imports at its top level (imports inside functions are lazy)."""
    tree, found = ast.parse(path.read_text()), set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                base = ".".join(parts + ((node.module,) if node.module else ()))
            found.add(base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("robench")}


def test_no_import_cycles_between_modules():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    # Importing a submodule runs its package's __init__ first; package __init__s here import lazily.
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [node, nxt]))
            if not state.get(nxt):
                visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        if not state.get(name):
            visit(name, [])


def test_the_public_api():
    assert robench.CORRUPTIONS[0] == "gaussian_noise" and len(robench.CORRUPTIONS) == 19
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert robench.corrupt(images, "fog", 2, seed=1).shape == images.shape
    policy, mixer = robench.make_policy("trivialaugment"), robench.make_mixer("mixup", num_classes=10)
    mixed, soft = mixer(policy(images, seed=0), torch.tensor([1, 2]), seed=0)
    assert mixed.dtype == torch.float32 and soft.shape == (2, 10)
    assert issubclass(robench.RobenchError, ValueError)
    assert set(robench.__all__) <= set(dir(robench))
    with pytest.raises(AttributeError):
        robench.no_such_name


def test_registry_lookups_params_and_families():
    things = Registry("thing")

    @things.register("plain", "a plain thing", params={"size": Param(3, "its size", lo=1, hi=9)})
    def make_plain(size):
        return ("plain", size)

    things.add("hub:<id>", lambda: "hub", "a family of things")
    assert list(things) == ["plain", "hub:<id>"] and "plain" in things and len(things) == 2
    assert things.create("plain") == ("plain", 3) and things.create("plain", size="5") == ("plain", 5)
    assert things.get("hub:some/repo").name == "hub:<id>"
    for bad, needle in [(lambda: things.get("plian"), "unknown thing 'plian'"),
                        (lambda: things.create("plain", size=10), "size"),
                        (lambda: things.create("plain", colour=1), "no parameter 'colour'"),
                        (lambda: things.get("hub:"), "needs a name after the colon")]:
        with pytest.raises(robench.RobenchError, match=needle):
            bad()
    with pytest.raises(ValueError, match="twice"):
        things.add("plain", make_plain, "again")
    assert things.describe() == ["  plain              a plain thing", "      size=3                   int in [1, 9]; its size",
                                 "  hub:<id>           a family of things"]


def test_robench_list_prints_every_registry_with_parameters_and_defaults():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    text = result.output
    for kind in ("datasets:", "models:", "optimizers:", "policies:", "mixers:", "corruptions:"):
        assert kind in text
    assert "magnitude=9" in text and "num_ops=2" in text  # randaugment's parameters with defaults
    assert "alpha=1.0" in text and "final_lr=0.1" in text and "lr=0.1" in text
    assert "hf:<repo-id>" in text and "wrn-40-2" in text and "jpeg_compression" in text
    policies = CliRunner().invoke(app, ["list", "policies"]).output
    assert "augmix" in policies and "corruptions:" not in policies
