"""The package's shape: no import circles, no function-level imports of motiondiff modules, no upward arrows
between its rooms, and packaging that lists every room."""

import ast
from pathlib import Path

import pytest

from conftest import ROOT

SOURCE = ROOT / "src"
PACKAGE = SOURCE / "motiondiff"
# The rooms and the rooms each may import (besides itself): lower layers only.
FOUNDATIONS = {"core"}
ALLOWED = {
    "core": set(),
    "text": {"core"},
    "networks": {"core"},
    "diffusion": {"core"},
    "data": {"core", "text"},
    "metrics": {"core", "data"},
    "render": {"core", "data"},
    "report": {"core", "data"},
    "training": {"core", "text", "networks", "diffusion", "data", "metrics"},
    "tracking": {"core", "data", "render", "training"},
    "runs": {"core", "data", "diffusion", "training", "tracking"},
    "sweeps": {"core", "runs"},
    "generation": {"core", "data", "diffusion", "render", "text", "training", "runs", "export", "report"},
    "evaluation": {
        "core",
        "data",
        "metrics",
        "render",
        "text",
        "networks",
        "diffusion",
        "training",
        "runs",
        "sweeps",
        "report",
    },
    "demos": {"core", "evaluation", "sweeps", "report"},
    "export": {"core", "data", "render"},
    "editing": {"core", "data", "diffusion", "render", "text", "training", "runs", "generation", "report"},
    "app": {"core", "text", "runs", "generation", "export", "report"},
    "cli": {
        "core",
        "data",
        "training",
        "runs",
        "sweeps",
        "generation",
        "evaluation",
        "render",
        "demos",
        "export",
        "editing",
        "app",
        "report",
        "tracking",
    },
}
COMMANDS = (
    "train",
    "generate",
    "evaluate",
    "compare",
    "render_data",
    "convert_bvh",
    "eval_demo",
    "sweep_demo",
    "edit",
    "nfe_curve",
)
# A command named like its room: `python -m motiondiff.<room>` runs <room>/__main__.py, which calls cli.<module>.
PACKAGE_COMMANDS = {"export": "export", "app": "serve"}  # room -> its cli module (cli/app.py is the shared machinery)


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def run_path_of(node: ast.AST) -> "tuple | None":
    """(config name, dotted run path) of a command module's `main = hydra_entry_point("<config>", "<path>")`, or
    None: the command imports the module of that path once its command line is checked (cli.app)."""
    call = node.value if isinstance(node, ast.Assign) else None
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "hydra_entry_point"):
        return None
    assert len(call.args) == 2 and all(isinstance(arg, ast.Constant) for arg in call.args), ast.dump(call)
    return call.args[0].value, call.args[1].value


def imported(node: ast.AST, importer: str) -> list:
    """The motiondiff modules an import statement names (a `from package import submodule` names the submodule), and
    the module of a command's run path (run_path_of), which it imports by name."""
    if run_path_of(node):
        return [run_path_of(node)[1].rpartition(".")[0]]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "motiondiff"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative import: resolve against the importer's package
        base = (
            importer.split(".")[: -node.level] if not MODULES[importer].name == "__init__.py" else importer.split(".")
        )
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "motiondiff":
        return []
    return [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names]


def import_graph() -> tuple:
    """({module: {imported modules}}, [(module, line, imported) of imports inside functions or classes])."""
    graph, nested = {}, []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {target for node in tree.body for target in imported(node, name)}
        for scope in ast.walk(tree):
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for node in ast.walk(scope):
                    nested += [(name, node.lineno, target) for target in imported(node, name)]
    return graph, nested


def cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan), each a sorted list."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def room(module: str) -> str:
    """The top-level folder of a motiondiff module ('' for modules at the package top and command aliases)."""
    parts = module.split(".")
    if len(parts) == 3 and parts[1] in PACKAGE_COMMANDS and parts[2] == "__main__":
        return ""
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def test_the_import_graph_has_no_cycles():
    graph, _ = import_graph()
    assert len(graph) > 80, "the scan found too few modules"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph, _ = import_graph()
    planted = {**graph, "motiondiff.core.errors": graph["motiondiff.core.errors"] | {"motiondiff.cli.app"}}
    assert any("motiondiff.core.errors" in component for component in cycles(planted))


def test_no_motiondiff_module_is_imported_inside_a_function():
    _, nested = import_graph()
    assert nested == [], f"imports inside functions (a sign of a circle being dodged): {nested}"


def test_rooms_only_import_lower_rooms():
    graph, _ = import_graph()
    upward = []
    for module, targets in graph.items():
        source = room(module)
        for target in targets:
            destination = room(target)
            if source == "":  # `python -m motiondiff.<command>` aliases: the cli only
                if destination not in ("", "cli"):
                    upward.append((module, target))
            elif destination != source and destination not in ALLOWED[source]:
                upward.append((module, target))
    assert set(ALLOWED) == {room(m) for m in MODULES} - {""}, "a room was added or removed: list what it may import"
    assert upward == []


def test_every_command_names_a_run_function_and_a_config_that_exist():
    found = {}
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if run_path_of(node):
                found[name] = run_path_of(node)
    assert sorted(found) == sorted({f"motiondiff.cli.{c}" for c in [*COMMANDS, *PACKAGE_COMMANDS.values()]})
    for command, (config, run_path) in found.items():
        module, _, function = run_path.rpartition(".")
        assert module in MODULES, f"{command}: no module {module}"
        defined = {
            node.name for node in ast.parse(MODULES[module].read_text()).body if isinstance(node, ast.FunctionDef)
        }
        assert function in defined, f"{command}: {module} defines no {function}()"
        assert (ROOT / "configs" / f"{config}.yaml").is_file(), f"{command}: no configs/{config}.yaml"


def test_the_package_top_holds_only_the_command_aliases():
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert top == sorted(["__init__", *COMMANDS])
    for command in COMMANDS:
        text = (PACKAGE / f"{command}.py").read_text()
        assert f"from motiondiff.cli.{command} import main" in text and len(text.splitlines()) <= 8
    for command, module in PACKAGE_COMMANDS.items():
        text = (PACKAGE / command / "__main__.py").read_text()
        assert f"from motiondiff.cli.{module} import main" in text and len(text.splitlines()) <= 8


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_console_script(command):
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[f"motiondiff-{command.replace('_', '-')}"] == f"motiondiff.cli.{command}:main"


@pytest.mark.parametrize("command", PACKAGE_COMMANDS)
def test_every_package_command_has_a_console_script(command):
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[f"motiondiff-{command}"] == f"motiondiff.cli.{PACKAGE_COMMANDS[command]}:main"


def test_pyproject_lists_every_package():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(path) for path in PACKAGE.rglob("__init__.py")} | {"motiondiff.configs"}
    assert listed == found
