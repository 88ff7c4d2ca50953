"""One meaning per name: a helper copied into several scripts keeps one text everywhere.

The scripts import nothing from each other (each reads alone), so shared helpers are copies. A copy that
drifts (another argument order, another output shape) is a silent bug for whoever pastes it elsewhere. This
test reads every top-level script with `ast` and fails when two same-named top-level definitions differ,
except the names listed below, which each script defines for itself on purpose.
"""

import ast
import pathlib
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Names each script defines for itself, and why. Everything else must be identical wherever it appears.
MEANT_TO_DIFFER = {
    "Args": "each script's own flags",
    "main": "each script's own training loop",
    "PRESETS": "each script transcribes its own paper table",
    "resolve_args": "fills and checks each script's own Args",
    "watch": "loads each script's own saved networks",
}
# Names each algorithm defines for itself: they differ between algorithms, but must agree between the files
# that run the same algorithm on another domain.
PER_ALGORITHM = {
    "train_step": "each algorithm's own update",
    "td_target": "each algorithm's own critic target (TD3's; Gamid's choice among N target means)",
    "evaluate": "each algorithm's own greedy policy",
}
SAME_ALGORITHM = [
    {"gamid_continuous_action.py", "gamid_her_fetch.py", "mazegrid.py"},
    {"sacm_baseline.py", "sacm_her_fetch.py"},
]


def top_level_definitions(path: pathlib.Path) -> dict[str, str]:
    """Source text (decorators included) of each top-level function, class and constant of a script."""
    source = path.read_text()
    lines = source.splitlines()
    definitions = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        first = min([node.lineno] + [decorator.lineno for decorator in getattr(node, "decorator_list", [])])
        text = "\n".join(lines[first - 1 : node.end_lineno])
        for name in names:
            definitions[name] = text
    return definitions


def scripts(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    return sorted(root.glob("*.py"))


def drifted_copies(root: pathlib.Path = ROOT) -> dict[str, list[str]]:
    """Names whose copies differ: name -> the files, grouped by identical text."""
    texts = defaultdict(lambda: defaultdict(list))  # name -> text -> files
    for path in scripts(root):
        for name, text in top_level_definitions(path).items():
            texts[name][text].append(path.name)
    drifted = {}
    for name, by_text in texts.items():
        groups = list(by_text.values())
        if name in MEANT_TO_DIFFER:
            continue
        if name in PER_ALGORITHM:  # compare the copies within each algorithm's files only
            for family in SAME_ALGORITHM:
                in_family = [[file for file in files if file in family] for files in groups]
                in_family = [files for files in in_family if files]
                if len(in_family) > 1:
                    drifted[name] = [", ".join(files) for files in in_family]
        elif len(groups) > 1:
            drifted[name] = [", ".join(files) for files in groups]
    return drifted


def test_same_named_helpers_are_identical_in_every_script():
    drifted = drifted_copies()
    report = "\n".join(f"  {name}: differs between [{'] and ['.join(groups)}]" for name, groups in drifted.items())
    assert not drifted, "same-named helpers differ between scripts; make the copies identical or rename one:\n" + report


def test_the_check_sees_a_drifted_copy(tmp_path):
    """The comparison is by text: one changed character in one copy is reported."""
    helper = 'def linear_schedule(initial, final, fraction, total, step):\n    """Decay."""\n    return {}\n'
    (tmp_path / "a.py").write_text(helper.format("initial"))
    (tmp_path / "b.py").write_text(helper.format("final"))
    (tmp_path / "c.py").write_text(helper.format("initial") + "\n\ndef main():\n    pass\n")
    (tmp_path / "d.py").write_text("def main():\n    return 1\n")
    assert drifted_copies(tmp_path) == {"linear_schedule": ["a.py, c.py", "b.py"]}


def test_per_algorithm_names_must_agree_within_one_algorithm(tmp_path):
    """td_target may differ between TD3 and Gamid, but not between two Gamid files."""
    target = "def td_target(batch):\n    return {}\n"
    (tmp_path / "td3_baseline.py").write_text(target.format("batch.rewards"))
    (tmp_path / "gamid_continuous_action.py").write_text(target.format("batch.rewards + 1"))
    assert drifted_copies(tmp_path) == {}
    (tmp_path / "gamid_her_fetch.py").write_text(target.format("batch.rewards + 2"))
    assert drifted_copies(tmp_path) == {"td_target": ["gamid_continuous_action.py", "gamid_her_fetch.py"]}


def test_no_script_imports_another():
    names = {path.stem for path in scripts()}
    for path in scripts():
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & (names - {path.stem}), f"{path.name} imports {imported & names}"
