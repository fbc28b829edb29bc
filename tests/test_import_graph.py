"""The project's modules import each other without cycles (lazy imports inside functions included):
a cycle makes import order matter and hides which module owns what."""
import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("transforms", "pipeline", "templates_mining")


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path, modules: set) -> set:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in modules)
    return found


def import_graph() -> dict:
    paths = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} - set(PACKAGES) for p in paths}


def cycles(graph: dict) -> list:
    """Every cycle found by depth-first search (each reported from where it was entered)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_generation_backends_import_the_config_not_the_seam():
    graph = import_graph()
    for backend in ("transforms.openai_backend", "transforms.vllm_backend", "transforms.transformers_backend"):
        assert "transforms.generation" not in graph[backend], backend
        assert "transforms.generation_config" in graph[backend], backend


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
