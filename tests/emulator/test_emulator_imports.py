"""Import hygiene: the emulator never imports Airflow, and the always-loaded pytest plugin stays cheap."""

from __future__ import annotations

import subprocess
import sys


def loaded_modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_emulator_does_not_import_airflow():
    modules = loaded_modules_after(
        "import airflow_provider_codecheck.emulator.server, airflow_provider_codecheck.emulator.__main__"
    )
    assert "airflow_provider_codecheck.emulator.app" in modules
    assert not {name for name in modules if name == "airflow" or name.startswith("airflow.")}


def test_pytest_plugin_import_is_cheap():
    modules = loaded_modules_after("import airflow_provider_codecheck.emulator.pytest_plugin")
    assert "aiohttp" not in modules
    assert "cryptography" not in modules
    assert "airflow" not in modules
