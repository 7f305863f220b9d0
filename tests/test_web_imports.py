"""The web process never imports torch, onnxruntime or transformers: every module of the
web side (the ASGI application, its URLs, views, API, admin, services, commands) is
imported in a fresh interpreter, and none of those runtimes may appear in sys.modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import importlib, pkgutil, sys
import django
django.setup()
import modelmgr
import modelmgr.asgi  # the whole application daphne serves
from django.urls import get_resolver
get_resolver().url_patterns  # every URLconf and the views it names
for module in pkgutil.walk_packages(modelmgr.__path__, "modelmgr."):
    if ".migrations." not in module.name:
        importlib.import_module(module.name)
heavy = [
    name
    for name in ("torch", "onnxruntime", "transformers", "tokenizers")
    if name in sys.modules
]
print("heavy modules imported:", heavy)
sys.exit(1 if heavy else 0)
"""


def test_no_module_of_the_web_side_imports_torch_or_onnxruntime(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
        "MODELMGR_VAR_DIR": str(tmp_path),
        "MODELMGR_IMPORT_RUNNER": "false",
        "PATH": "/usr/bin:/bin",
    }
    if os.environ.get("PYTHONPATH"):  # where a machine keeps extra packages (the GPU host)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
