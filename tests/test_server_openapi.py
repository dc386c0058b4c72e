"""``GET /api/openapi.json``: every route the app registers is in it, and schemathesis finds the live
gateway true to it (status codes, content types, response bodies; invalid input refused with a 4xx,
never a 5xx), with the admin's token and without one.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.config import load_config
from gateway.server.app import build_app
from gateway.server.openapi import ENDPOINTS, document
from tests.records_contract import T0, msg, rec
from tests.support import DEMO_CONFIG

ADMIN = {"Authorization": "Bearer demo-admin"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12  # per operation, generation mode and caller: about 25 s in all
BUDGET_S = 60.0


def _path(canonical: str) -> str:
    """aiohttp's ``/static/{name:[A-Za-z0-9._-]+}`` as OpenAPI writes it: ``/static/{name}``."""
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", canonical)


async def test_the_document_is_served(gateway_app: Any) -> None:
    app = await gateway_app()
    async with aiohttp.ClientSession() as http, http.get(app.http_url + "/api/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        served = await r.json()
    assert served == document() and served["openapi"] == "3.1.0"


async def test_every_route_of_the_app_is_documented() -> None:
    config = await asyncio.to_thread(load_config, DEMO_CONFIG)
    app = await build_app(config)  # built, not started: only its routes are read
    try:
        routes = {(r.method.lower(), _path(r.resource.canonical)) for r in app.router.routes()
                  if r.method != "HEAD" and r.resource is not None}
    finally:
        await app["ctx"].archive.close()
    documented = {(m, p) for p, ops in ENDPOINTS.items() for m in ops}
    assert routes - documented == set(), "routes missing from gateway/server/openapi.py ENDPOINTS"
    assert documented - routes == set(), "documented but not registered"


def _examples(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], deadline: float
              ) -> int:
    """Up to ``EXAMPLES`` requests of one operation in one generation mode, each response checked."""
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    calls = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        nonlocal calls
        if time.monotonic() > deadline:
            return
        calls += 1
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=10)

    check()
    return calls


def _run(base_url: str, doc: dict[str, Any], headers: dict[str, str], deadline: float) -> tuple[list[str], int]:
    """schemathesis over every operation (on a worker thread: its HTTP client blocks)."""
    # Unknown query parameters are ignored by most endpoints (as HTTP allows), and the token is the
    # caller's (``headers``), not generated: neither is "invalid data" here.
    config = schemathesis.Config.from_dict(
        {"generation": {"allow-extra-parameters": False, "with-security-parameters": False}})
    schema = schemathesis.openapi.from_dict(doc, config=config)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                calls += _examples(operation, mode, base_url, headers, deadline)
            except Unsatisfiable:
                continue  # nothing invalid to send (no parameters, or none that can be wrong)
            except (Exception, BaseExceptionGroup) as e:  # every failing operation, reported together
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}, "
                                f"{'admin' if headers else 'no token'}]: {str(e)[:1500]}")
    return failures, calls


@pytest.mark.timeout(120)
async def test_schemathesis_finds_the_live_gateway_true_to_the_document(gateway_app: Any) -> None:
    app = await gateway_app()
    for i in range(3):  # archived conversations, so the search's items are checked too
        await app.ctx.archive.put(rec(f"c-{i}", T0 + i, agents=("a1",), orders=("O-1",), rating=i + 1,
                                      messages=[msg("customer", "我想退款", 1)]))
    doc = document()
    started = time.monotonic()
    deadline = started + BUDGET_S
    failures, calls = await asyncio.to_thread(_run, app.http_url, doc, ADMIN, deadline)
    more, calls2 = await asyncio.to_thread(_run, app.http_url, doc, {}, deadline)
    assert not failures + more, "\n\n".join(failures + more)
    assert calls + calls2 >= 10 * len(ENDPOINTS), f"only {calls + calls2} requests"
    assert time.monotonic() < deadline, "schemathesis ran out of its time budget"
