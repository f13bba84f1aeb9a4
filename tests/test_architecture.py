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
                                    "robench.config", "robench.cli", "robench.report.tidy", "robench.report.stats", "robench.report.leaderboard", "robench.report.formats", "robench.report.views",
                                    "robench.report.plots", "robench.report.html", "robench.report.robustbench", "robench.eval.cell"])
def test_table_and_command_line_modules_import_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def _imports(path: Path, lazy: bool = True) -> set[str]:
    """The robench modules a file imports: at its top level, and (with `lazy`) inside functions and
    classes too, since a lazy import still runs and can close a cycle. `if TYPE_CHECKING:` blocks
    never run and are skipped."""
    tree, found = ast.parse(path.read_text()), set()

    def visit(nodes, top: bool):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against the file's package
                    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                    base = ".".join(parts + ((node.module,) if node.module else ()))
                if top or lazy:  # `from pkg import module` imports the module; `from module import name` the module
                    found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
            elif isinstance(node, ast.Import) and (top or lazy):
                found.update(alias.name for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    nested = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
                    visit(inner, top and not nested)

    visit(tree.body, True)
    return {m for m in found if m.startswith("robench")}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


MODULES = _modules()


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> the modules it imports), or None."""
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if not state.get(nxt):
                found = visit(nxt, trail + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for name in sorted(graph):
        if not state.get(name):
            found = visit(name, [])
            if found:
                return found
    return None


def import_graph(modules: dict[str, Path], skip_lazy_in: tuple[str, ...] = ("robench.cli",)) -> dict[str, set[str]]:
    """Module -> the robench modules it imports, lazy imports included except in `skip_lazy_in`
    (the CLI imports its verbs inside the commands, for start-up speed). The edge from a submodule
    to its own package's __init__ (which Python runs first) is left out: it never closes a cycle
    Python cannot resolve, since the package is initialised before the submodule."""
    return {name: {m for m in _imports(path, lazy=name not in skip_lazy_in) if m in modules and m != name}
            for name, path in modules.items()}


def test_no_import_cycles_between_modules_counting_lazy_imports():
    cycle = find_cycle(import_graph(_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    """The check is not blind to imports inside functions: a lazy import added on purpose from the
    run-folder layout back up to the eval loop (which imports it) closes a cycle it reports."""
    modules = _modules()
    files = modules["robench.runfolder.files"]
    planted = tmp_path / "files.py"
    planted.write_text(files.read_text() + "\n\ndef _planted():\n    from robench.eval.loop import measure\n")
    cycle = find_cycle(import_graph({**modules, "robench.runfolder.files": planted}))
    assert cycle is not None and "robench.runfolder.files" in cycle and "robench.eval.loop" in cycle


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
