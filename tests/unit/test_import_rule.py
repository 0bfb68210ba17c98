"""The import rule of scripts/__init__.py, checked on the source of every product module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

PRODUCT = ("pipeline", "scripts", "bentos", "monitoring")
COMMANDS = {path.stem for path in (REPO_ROOT / "scripts").glob("*.py") if path.stem != "__init__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from scripts import deploy` imports the command module scripts.deploy.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def product_modules() -> dict[str, set[str]]:
    return {
        module_name(path): imports(path)
        for package in PRODUCT
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }


def is_command(module: str) -> bool:
    parts = module.split(".")
    return len(parts) == 2 and parts[0] == "scripts" and parts[1] in COMMANDS


def violations(modules: dict[str, set[str]]) -> list[str]:
    """Each import that breaks the rule, as ``importer -> imported: rule``."""
    found = []
    for module, imported in sorted(modules.items()):
        for name in sorted(imported):
            top = name.split(".")[0]
            rules = [
                (top == "tests", "product code never imports tests"),
                (
                    is_command(module) and is_command(name) and name != module,
                    "commands never import each other",
                ),
                (
                    module.startswith(("scripts.cd", "scripts.ci")) and is_command(name),
                    "cd/ci never import a command",
                ),
                (
                    not module.startswith("scripts.dev") and name.startswith("scripts.dev"),
                    "only dev tooling imports scripts.dev",
                ),
                (
                    module.startswith("pipeline") and top in {"scripts", "bentos", "monitoring"},
                    "pipeline imports no other product package",
                ),
            ]
            found += [f"{module} -> {name}: {rule}" for broken, rule in rules if broken]
    return found


def test_the_product_keeps_the_import_rule() -> None:
    assert violations(product_modules()) == []


def test_the_rule_catches_a_sideways_import() -> None:
    modules = {
        "scripts.promote": {"scripts.deploy", "scripts.cd.promotion"},
        "scripts.cd.local_driver": {"scripts.smoke", "scripts.dev.workspace"},
        "scripts.ci.gates": {"scripts.gates"},
        "monitoring.retrain": {"tests.helpers"},
    }
    assert violations(modules) == [
        "monitoring.retrain -> tests.helpers: product code never imports tests",
        "scripts.cd.local_driver -> scripts.dev.workspace: only dev tooling imports scripts.dev",
        "scripts.cd.local_driver -> scripts.smoke: cd/ci never import a command",
        "scripts.ci.gates -> scripts.gates: cd/ci never import a command",
        "scripts.promote -> scripts.deploy: commands never import each other",
    ]


# What runs before any install: the comment job, train.yml's first step, the lock commit.
BEFORE_INSTALL = [
    "scripts.ci.github",
    "scripts.comment",
    "scripts.ci.changes",
    "scripts.changes",
    "scripts.gitops",
]


@pytest.mark.parametrize("module", BEFORE_INSTALL)
def test_the_comment_job_needs_only_the_standard_library(module: str) -> None:
    path = REPO_ROOT / Path(*module.split(".")).with_suffix(".py")
    ours = {"pipeline.exit_codes", "scripts.ci.github", "scripts.ci.changes"}
    third_party = {
        name
        for name in imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == our or name.startswith(f"{our}.") for our in ours)
    }
    assert third_party == set()
