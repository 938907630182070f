"""Mechanical checks of the conventions in CONTRIBUTING.md."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
GW = SRC / "generic_worker"
PY_FILES = sorted(SRC.rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_sources_exist():
    assert len(PY_FILES) > 20


@pytest.mark.parametrize("path", PY_FILES, ids=rel)
def test_module_size_budget(path: Path):
    assert len(path.read_text().splitlines()) <= 500, "split this module: it is past ~500 lines"


def test_no_grab_bag_modules():
    assert not [p for p in PY_FILES if p.stem in ("utils", "util", "helpers", "misc", "common")]


def calls_sys_exit(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit":
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "sys":
                return True
    return False


def test_only_main_calls_sys_exit():
    offenders = [rel(p) for p in PY_FILES if calls_sys_exit(p) and p.name != "__main__.py"]
    assert offenders == []


PROCESS_CALLS = re.compile(
    r"\bsubprocess\b|os\.fork\(|os\.kill\(|os\.killpg\(|create_subprocess_|os\.waitpid\("
)


def test_only_process_package_touches_processes():
    offenders = [
        rel(p)
        for p in GW.rglob("*.py")
        if "process" not in p.relative_to(GW).parts and PROCESS_CALLS.search(p.read_text())
    ]
    assert offenders == []


def test_engine_never_imports_features():
    offenders = [
        rel(p)
        for p in (GW / "engine").rglob("*.py")
        if any(i.startswith("generic_worker.features") for i in imports_of(p))
    ]
    assert offenders == []


def test_features_never_import_each_other():
    features = GW / "features"
    for path in features.glob("*.py"):
        if path.name == "__init__.py":
            continue
        others = {i for i in imports_of(path) if i.startswith("generic_worker.features")}
        assert others == set(), f"{rel(path)} imports {others}"


def test_each_feature_module_defines_exactly_one_feature():
    from generic_worker.engine.feature import Feature, FeatureBase
    from generic_worker.features import build_features

    modules = sorted(p.stem for p in (GW / "features").glob("*.py") if p.name != "__init__.py")
    for stem in modules:
        tree = ast.parse((GW / "features" / f"{stem}.py").read_text())
        classes = [
            n.name
            for n in tree.body
            if isinstance(n, ast.ClassDef) and any(getattr(b, "id", "") == "FeatureBase" for b in n.bases)
        ]
        assert len(classes) == 1, f"features/{stem}.py defines {classes}"
    from generic_worker.config import config_from_mapping

    config, _ = config_from_mapping(
        {
            "rootURL": "http://x",
            "accessToken": "a",
            "clientId": "c",
            "workerId": "w",
            "workerType": "t",
            "enableLiveLog": False,
        }
    )
    features = build_features(config)
    assert {type(f).__module__.rsplit(".", 1)[1] for f in features} == set(modules)
    for feature in features:
        assert isinstance(feature, Feature)
        assert isinstance(feature, FeatureBase)
    assert len({f.name for f in features}) == len(features)


def test_no_blocking_sleep_or_requests_in_worker():
    offenders = [
        rel(p)
        for p in GW.rglob("*.py")
        if re.search(r"\btime\.sleep\(|^import requests|^from requests", p.read_text(), re.M)
    ]
    assert offenders == []


def test_broad_excepts_only_at_isolation_boundaries():
    # crash_report.py runs at the worker's crash boundary: reporting must never crash again.
    allowed = {"engine/taskrun.py", "engine/worker.py", "crash_report.py"}
    offenders = [
        str(p.relative_to(GW))
        for p in GW.rglob("*.py")
        if "except Exception" in p.read_text() and str(p.relative_to(GW)) not in allowed
    ]
    assert offenders == []


def test_tests_never_patch_our_own_code():
    pattern = re.compile(r"patch(\.object)?\(\s*['\"]?(generic_worker|tclocal)")
    offenders = [rel(p) for p in (ROOT / "tests").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_only_cli_and_worker_boundary_check_platform():
    offenders = [
        rel(p)
        for p in GW.rglob("*.py")
        if re.search(r"sys\.platform|os\.name\b", p.read_text()) and "process" not in p.relative_to(GW).parts
    ]
    assert offenders == []


def test_docs_document_every_config_key_and_exit_code():
    from generic_worker.config import config_keys
    from generic_worker.exitcodes import ExitCode

    keys_page = (ROOT / "docs" / "configuration.md").read_text()
    for info in config_keys():
        assert f"| `{info.key}` | `{info.default_text()}` |" in keys_page, info.key
    codes_page = (ROOT / "docs" / "exit-codes.md").read_text()
    for code in ExitCode:
        assert f"\n| {int(code)} | " in codes_page, code


def test_docs_feature_table_matches_the_feature_list():
    from generic_worker.config import config_from_mapping
    from generic_worker.features import build_features

    config, _ = config_from_mapping(
        {
            "rootURL": "http://x",
            "accessToken": "a",
            "clientId": "c",
            "workerId": "w",
            "workerType": "t",
            "enableLiveLog": False,
        }
    )
    page = (ROOT / "docs" / "task-run.md").read_text()
    table = page[page.index("| order | feature | what it does |") :].split("\n\n", 1)[0]
    names = [line.split("|")[2].strip() for line in table.splitlines()[2:]]
    assert names == [f.name for f in build_features(config)]
