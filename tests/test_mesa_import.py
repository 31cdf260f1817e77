"""mesa is imported without its stack walks, and nothing else notices."""

from __future__ import annotations

import inspect
import subprocess
import sys


def test_inspect_is_restored_and_the_model_logger_keeps_its_name():
    import mesa.model

    from model.mesa_import import load_mesa

    assert load_mesa() is sys.modules["mesa"]
    assert inspect.stack.__module__ == "inspect"
    assert inspect.getouterframes.__module__ == "inspect"
    assert inspect.getmodule.__module__ == "inspect"
    assert mesa.model._mesa_logger.name == "MESA.mesa.model"


def test_a_fresh_import_names_the_loggers_as_mesa_does():
    """In a new process mesa is first imported through model.mesa_import."""
    code = (
        "import logging, model.market_model, mesa.model as m;"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s %(message)s');"
        "logging.getLogger('MESA').setLevel(logging.DEBUG);"
        "m.Model(rng=1); print(m._mesa_logger.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "MESA.mesa.model"
    assert "MESA.mesa.model calling Model.__init__" in out.stderr
