"""The end-to-end flow and bad-input suites again, on the Redis store.

Same tests, same assertions (tests/test_e2e_flow.py, tests/test_e2e_bad_input.py, tests/test_e2e_ops.py,
tests/test_e2e_feedback.py, tests/test_e2e_records_loop.py):
only the ``gateway_app`` they get runs on a real redis-server, in a fresh
namespace. Whatever they hold the memory gateway to, they hold this one to.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests import test_e2e_bad_input, test_e2e_feedback, test_e2e_flow, test_e2e_ops, test_e2e_records_loop
from tests.conftest import RedisServer, RunningApp
from tests.support import merge

pytestmark = pytest.mark.redis

Test = Callable[..., Awaitable[None]]


def _cases() -> list[Any]:
    cases = []
    for module in (test_e2e_flow, test_e2e_bad_input, test_e2e_ops, test_e2e_feedback, test_e2e_records_loop):
        for name, fn in sorted(vars(module).items()):
            if not (name.startswith("test_") and inspect.iscoroutinefunction(fn)
                    and "gateway_app" in inspect.signature(fn).parameters):
                continue
            grid: list[dict[str, Any]] = [{}]
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "parametrize":
                    argnames, values = mark.args[0], mark.args[1]
                    grid = [{**g, argnames: v} for g in grid for v in values]
            for g in grid:
                label = f"{module.__name__.rsplit('.', 1)[-1]}::{name}" + "".join(f"[{v}]" for v in g.values())
                cases.append(pytest.param(fn, g, id=label))
    return cases


@pytest.fixture
def redis_gateway_app(gateway_app: Callable[..., Awaitable[RunningApp]],
                      redis_server: RedisServer) -> Callable[..., Awaitable[RunningApp]]:
    namespace = f"e{uuid.uuid4().hex[:12]}"

    async def start(overrides: dict[str, Any] | None = None, store: str | None = None) -> RunningApp:
        return await gateway_app(merge(overrides or {}, {"store": {"namespace": namespace}}), store=redis_server.url)

    return start


@pytest.mark.parametrize(("test", "args"), _cases())
async def test_on_redis(test: Test, args: dict[str, Any], redis_gateway_app: Callable[..., Awaitable[RunningApp]],
                        request: pytest.FixtureRequest) -> None:
    fixtures = {p: request.getfixturevalue(p) for p in inspect.signature(test).parameters
                if p != "gateway_app" and p not in args}  # e.g. tmp_path
    await test(redis_gateway_app, **args, **fixtures)
