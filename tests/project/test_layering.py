"""Each layer of the package imports only the layers below it (README, "Layout").

common <- modules <- models <- criterions, tasks, generator, checkpoint, export <- streaming <- agents, server <- cli;
data, evaluation and vocoder are self-contained (evaluation and vocoder read data's files and text);
optim (learning-rate schedules) stands on fairseq alone.
common (atomic writes, the sample rate and encoder frame, the mono check, the CPU's capabilities) is the base:
every part
may import it, and it imports nothing of the package.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "echostream_fairseq"
BENCHMARKS = PACKAGE.parent / "echostream_bench"  # imports the package; the package never imports it

_BASE = {"common"}
_MODEL = _BASE | {"modules", "models"}
_TRAINING = _MODEL | {"data", "criterions", "tasks", "generator", "checkpoint"}
_STREAMING = _TRAINING | {"evaluation", "vocoder", "export", "streaming"}
# what each top-level part of the package may import from the package
ALLOWED = {
    "common": _BASE,
    "data": _BASE | {"data"},
    "evaluation": _BASE | {"data", "evaluation"},
    "vocoder": _BASE | {"data", "vocoder"},
    "modules": _BASE | {"modules"},
    "optim": _BASE | {"optim"},
    "models": _MODEL,
    "criterions": _MODEL | {"data", "criterions"},
    # fairseq's task builds the generator (and allow-lists checkpoint configs itself: tasks/checkpoint_configs.py)
    "tasks": _MODEL | {"data", "tasks", "generator"},
    "generator": _MODEL,
    "checkpoint": _MODEL | {"tasks"},
    # the streaming stages as graphs (ONNX): built from the models, read by the streaming runtime
    "export": _MODEL | {"export", "vocoder"},
    "streaming": _STREAMING,
    "agents": _STREAMING | {"agents"},
    "server": _STREAMING | {"server"},
    "cli": _STREAMING | {"agents", "server", "cli"},
}


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_parts(path: Path):
    """(line, part) for every import of ``echostream_fairseq.<part>``, at any depth of the file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative imports resolve inside the file's own part
                continue
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            bits = name.split(".")
            if bits[0] == "echostream_fairseq" and len(bits) > 1:
                yield node.lineno, bits[1]


def _sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name != "__init__.py")


def test_every_part_has_a_rule():
    assert {_part(p) for p in _sources()} <= set(ALLOWED)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_look_down_only(path):
    part = _part(path)
    upward = [f"line {line}: {name}" for line, name in _imported_parts(path) if name not in ALLOWED[part]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({part}) imports a higher layer: {upward}"


def test_the_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from echostream_fairseq.streaming.policy import ctc_policy\n")
    assert list(_imported_parts(bad)) == [(2, "streaming"), (2, "streaming")]
    assert "streaming" not in ALLOWED["models"]


def _module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(files, root: Path = PACKAGE.parent) -> dict:
    """module -> the package's modules it names in an import, at any depth of the file (under
    ``TYPE_CHECKING`` and inside functions too). However an import is spelled, its edge goes to
    the module it names: ``from pkg import mod`` to ``pkg.mod``, ``from pkg import name`` to ``pkg``.
    The parent packages Python initialises first are not edges (a package's ``__init__`` that
    re-exports its modules would otherwise close a circle with each of them)."""
    names = {_module_name(f, root): f for f in files}
    graph = {}
    for module, path in names.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in names else node.module)
        graph[module] = sorted(t for t in targets if t in names and t != module)
    return graph


def _circles(graph: dict) -> list:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_import_circle():
    files = sorted(PACKAGE.rglob("*.py")) + sorted(BENCHMARKS.rglob("*.py"))
    assert _circles(_import_graph(files)) == []


def test_the_package_never_imports_its_benchmarks():
    graph = _import_graph(sorted(PACKAGE.rglob("*.py")) + sorted(BENCHMARKS.rglob("*.py")))
    assert [
        m
        for m, targets in graph.items()
        if m.startswith("echostream_fairseq") and any(t.startswith("echostream_bench") for t in targets)
    ] == []
    assert any(t.startswith("echostream_fairseq") for t in graph["echostream_bench.system"])


def test_the_circle_check_finds_one(tmp_path):
    assert _circles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _circles({"a": ["b"], "b": []}) == []
    # the same edges whichever way an import is spelled
    package = tmp_path / "echostream_fairseq" / "part"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from echostream_fairseq.part.one import f\n")
    (package / "one.py").write_text("from echostream_fairseq.part import two\n")
    (package / "two.py").write_text(
        "import echostream_fairseq.part.one as one\nfrom echostream_fairseq.part import g\n"
    )
    files = sorted(package.glob("*.py"))
    assert _import_graph(files, tmp_path) == {
        "echostream_fairseq.part": ["echostream_fairseq.part.one"],
        "echostream_fairseq.part.one": ["echostream_fairseq.part.two"],
        "echostream_fairseq.part.two": ["echostream_fairseq.part", "echostream_fairseq.part.one"],
    }
    # two takes a name from the package, whose __init__ imports one, which imports two: a circle
    assert _circles(_import_graph(files, tmp_path)) == [
        ["echostream_fairseq.part", "echostream_fairseq.part.one", "echostream_fairseq.part.two"]
    ]


def _simuleval_importers(modules) -> list:
    """Which of the package's ``modules`` import SimulEval themselves (fairseq, below us, may)."""
    found = []
    for module in modules:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        path = path if path.is_file() else path.with_suffix("") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "simuleval" for n in names):
                found.append(module)
                break
    return found


def test_the_server_and_longform_commands_do_not_need_the_agents():
    """Their flags come from streaming/options.py: nothing they import of ours imports SimulEval."""
    graph = _import_graph(sorted(PACKAGE.rglob("*.py")))
    for command in ("echostream_fairseq.cli.serve", "echostream_fairseq.cli.longform"):
        reached, todo = set(), [command]
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo.extend(graph[module])
        assert not any(m.startswith("echostream_fairseq.agents") for m in reached), command
        assert _simuleval_importers(sorted(reached)) == [], command
    assert _simuleval_importers(["echostream_fairseq.agents.simuleval_agent"]) == [
        "echostream_fairseq.agents.simuleval_agent"
    ]


def test_importing_the_package_and_the_agents_patches_nothing():
    """Registering with fairseq is the package import's only effect: torch's allow-list and
    SimulEval's classes are changed by explicit calls (the task, the checkpoint loader, the agents)."""
    import subprocess
    import sys

    code = (
        "import torch, simuleval.evaluator.instance as inst\n"
        "before = set(map(id, torch.serialization.get_safe_globals()))\n"
        "summarize = inst.SpeechOutputInstance.summarize\n"
        "import echostream_fairseq, echostream_fairseq.agents.simuleval_agent\n"
        "assert set(map(id, torch.serialization.get_safe_globals())) == before, 'allow-list changed'\n"
        "assert inst.SpeechOutputInstance.summarize is summarize, 'SimulEval patched'\n"
        "from fairseq.models import ARCH_MODEL_REGISTRY\n"
        "assert 'echostream_emformer_tiny' in ARCH_MODEL_REGISTRY\n"
        "from echostream_fairseq.evaluation.simuleval_compat import keep_speech_elapsed_times\n"
        "keep_speech_elapsed_times()\n"
        "assert inst.SpeechOutputInstance.summarize is not summarize\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
