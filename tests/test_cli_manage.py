"""The entity commands' help and usage errors (their work is in tests/test_manage_e2e.py)."""

from __future__ import annotations

import pytest

from owaction.cli_manage import EXIT_USAGE
from tests.conftest import TEST_SECRET
from tests.test_cli import run

GROUPS = {
    "action": ["create", "update", "get", "delete", "list"],
    "package": ["create", "update", "bind", "get", "delete", "list"],
    "trigger": ["create", "update", "fire", "get", "delete", "list"],
    "rule": ["create", "update", "enable", "disable", "get", "delete", "list"],
    "route": ["create", "list", "delete"],
}


@pytest.mark.parametrize("args", [[group, *sub] for group, subs in GROUPS.items()
                                  for sub in ([], *([s] for s in subs))])
def test_help_works_for_every_entity_command(args):
    proc = run(*args, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"usage: owaction {' '.join(args)}" in proc.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["action", "create", "x"], "needs a file or --sequence"),
    (["action", "create", "x", "missing.py"], "cannot read missing.py"),
    (["action", "create", "x", "README.md"], "give --kind"),
    (["action", "create", "x", "README.md", "--sequence", "a,b"], "not both"),
    (["action", "update", "x", "--kind", "python:3"], "--kind needs"),
    (["action", "create", "x", "--sequence", "a", "--web", "maybe"], "--web is"),
    (["package", "create", "p", "--shared", "perhaps"], "not true or false"),
])
def test_bad_usage_exits_2_before_any_request(args, needle):
    # No module is listening at --url: a usage error must not need one.
    proc = run(*args, "--url", "http://127.0.0.1:9", env={"MODULE_SECRET_KEY": TEST_SECRET})
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert needle in proc.stderr


def test_an_unreachable_module_exits_1():
    proc = run("rule", "disable", "r", "--url", "http://127.0.0.1:9",
               env={"MODULE_SECRET_KEY": TEST_SECRET})
    assert proc.returncode == 1 and "cannot reach" in proc.stderr


def test_a_missing_argument_is_a_usage_error():
    assert run("rule", "create", "r").returncode == 2
