#!/usr/bin/env python3
"""Builds a Python handler into a component of ocni's handler world:

    python3 guests/python/build.py guests/python/handlers/compute.py compute.wasm

The handler module and the SDK (ocni.py) are copied into an empty folder, which is the only
Python path componentize-py is given: the component holds CPython, its standard library, the
bindings componentize-py generates from wit/handler.wit (`wit_world`), and those two modules.
componentize-py comes from the virtual environment scripts/test.sh makes (guests/python/.venv,
at the version requirements.txt pins), or else from the PATH.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WIT = os.path.join(HERE, "..", "..", "wit")


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: build.py HANDLER.py OUT.wasm", file=sys.stderr)
        return 2
    source, output = (os.path.abspath(p) for p in sys.argv[1:])
    module = os.path.splitext(os.path.basename(source))[0]
    if module in ("ocni", "wit_world"):
        print(f"a handler module cannot be named {module}", file=sys.stderr)
        return 2
    tool = os.path.join(HERE, ".venv", "bin", "componentize-py")
    if not os.path.exists(tool):
        tool = shutil.which("componentize-py")
    if tool is None:
        print("componentize-py not found: run scripts/test.sh, or python3 -m venv guests/python/.venv && "
              "guests/python/.venv/bin/pip install -r guests/python/requirements.txt", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ocni-py-") as stage:
        shutil.copy(os.path.join(HERE, "ocni.py"), stage)
        shutil.copy(source, os.path.join(stage, f"{module}.py"))
        command = [tool, "--quiet", "--wit-path", WIT, "--world", "handler-world",
                   "componentize", "--python-path", stage, module, "--output", output]
        # No virtual environment's site-packages may slip into the component.
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        subprocess.run(command, cwd=stage, env=env, check=True)
    print(f"{output}: {os.path.getsize(output)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
