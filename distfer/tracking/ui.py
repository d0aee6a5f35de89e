"""``distfer ui --output DIR``: serve the MLflow UI of an experiment's SQLite store on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from distfer.errors import DataError
from distfer.tracking.mlflow_store import default_tracking_uri

__all__ = ["ui_command", "serve_ui"]


def ui_command(output: str | Path, *, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command line for the store in ``output`` (``<output>/mlflow.db``).

    Raises:
        DataError: ``output`` holds no ``mlflow.db`` (the experiment has not run there).
    """
    out = Path(output).expanduser().resolve()
    db = out / "mlflow.db"
    if not db.is_file():
        raise DataError(f"{out} holds no MLflow store (mlflow.db); run the experiment with "
                        f"--output-dir {out} first, or pass the folder that has it")
    if not 0 < port < 65536:
        raise DataError(f"port {port} is not a valid TCP port (1..65535)")
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", default_tracking_uri(out),
            "--host", host, "--port", str(port)]


def serve_ui(output: str | Path, *, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Replace this process with the MLflow UI server (so Ctrl-C and SIGTERM reach it directly).

    Returns only if the command cannot be started.
    """
    cmd = ui_command(output, host=host, port=port)
    print(f"MLflow UI for {Path(output).resolve()} at http://{host}:{port} (Ctrl-C to stop)", flush=True)
    os.execv(cmd[0], cmd)  # no shell; argv as a list
    return 1
