"""The shared protocol smoke check against a real `gateway serve` process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

SHARED = ROOT.parent / "shared" / "conformance" / "smoke.py"
VENDORED = Path(__file__).parent / "conformance" / "smoke.py"


def test_smoke_passes_against_gateway_serve(gateway_proc) -> None:
    gw = gateway_proc()
    script = SHARED if SHARED.is_file() else VENDORED
    r = subprocess.run([sys.executable, str(script), "--url", gw.ws_url, "--agent", "a1", "--token", "demo-a1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + gw.log()
    assert "0 failed" in r.stdout and "FAIL" not in r.stdout
