"""``infattn lab``: JupyterLab on the notebooks; ``infattn lab --app``: the explorer as a web app.

Both bind to 127.0.0.1 with a random token and print the URL to open (from a
laptop: ``ssh -L PORT:127.0.0.1:PORT host``, then open the URL there). The
notebooks are ``notebooks/`` of a source checkout; a wheel ships them as package
data (``infattn/notebooks``, see ``pyproject.toml``), and since a user cannot
write inside an installed package they are copied first to a user folder
(``--dir``, default ``~/infattn-notebooks``; files already there are kept).
``--app`` serves ``app.ipynb`` (every panel, no code) with Voila.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

NAME = "lab"
HELP = "start JupyterLab on the notebooks (or, with --app, the explorer as a Voila web app)"
FIRST_NOTEBOOK = "01_infinite_head_limit.ipynb"
APP_NOTEBOOK = "app.ipynb"
DEFAULT_USER_DIR = Path.home() / "infattn-notebooks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", action="store_true", help="serve the explorer alone with Voila")
    parser.add_argument("--port", type=int, default=8888, help="port (next free one if taken)")
    parser.add_argument("--token", default=None, help="access token (default: a random one)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"folder for the notebooks when installed from a wheel (default {DEFAULT_USER_DIR})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the server command and URL, start nothing"
    )


def source_notebooks() -> Path | None:
    """``notebooks/`` next to the package in a source checkout, else ``None``."""
    here = Path(__file__).resolve().parents[2] / "notebooks"
    return here if (here / FIRST_NOTEBOOK).is_file() else None


def notebook_dir(user_dir: Path | None = None) -> Path:
    """Where the notebooks are opened: the checkout's folder, or a user copy of the packaged ones.

    Example:
      >>> (notebook_dir() / FIRST_NOTEBOOK).is_file()
      True
    """
    if user_dir is None:
        found = source_notebooks()
        if found is not None:
            return found
        user_dir = DEFAULT_USER_DIR
    return copy_packaged_notebooks(user_dir)


def copy_packaged_notebooks(dest: Path) -> Path:
    """Copy the notebooks shipped in the package to ``dest``, keeping files already there."""
    src = importlib.resources.files("infattn") / "notebooks"
    if not src.is_dir():
        found = source_notebooks()
        if found is None:
            raise FileNotFoundError("no notebooks in this installation of infattn")
        src = found
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        target = dest / item.name
        if item.name.endswith(".ipynb") and not target.exists():
            target.write_bytes(item.read_bytes())
    return dest


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it at 127.0.0.1, else a free port the OS picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def server_command(
    app: bool, folder: Path, port: int, token: str, allow_root: bool = False
) -> tuple[list[str], str]:
    """The command line that starts the server and the URL to open.

    ``allow_root``: JupyterLab refuses to start as root unless told to; containers
    and cloud machines often run as root (the server still binds to 127.0.0.1 with
    a token).

    Example:
      >>> cmd, url = server_command(False, Path("nb"), 8890, "abc")
      >>> "--ServerApp.ip=127.0.0.1" in cmd, url
      (True, 'http://127.0.0.1:8890/lab/tree/01_infinite_head_limit.ipynb?token=abc')
    """
    if app:
        cmd = [
            sys.executable, "-m", "voila", str(folder / APP_NOTEBOOK),
            "--Voila.ip=127.0.0.1", f"--port={port}", f"--token={token}", "--no-browser",
        ]  # fmt: skip
        return cmd, f"http://127.0.0.1:{port}/?token={token}"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
    ]  # fmt: skip
    if allow_root:
        cmd.append("--ServerApp.allow_root=True")
    return cmd, f"http://127.0.0.1:{port}/lab/tree/{FIRST_NOTEBOOK}?token={token}"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run(args: argparse.Namespace) -> int:
    folder = notebook_dir(args.dir)
    for tool in ("voila",) if args.app else ("jupyterlab", "ipympl"):
        if importlib.util.find_spec(tool) is None:
            print(f"infattn lab needs {tool}: pip install 'infattn[notebook]'", file=sys.stderr)
            return 1
    port = free_port(args.port)
    token = args.token or secrets.token_hex(16)
    cmd, url = server_command(args.app, folder, port, token, allow_root=_is_root())
    what = "the explorer (Voila)" if args.app else f"JupyterLab on {folder}"
    print(f"Starting {what}. Open:\n\n    {url}\n", flush=True)
    print(f"From another machine: ssh -L {port}:127.0.0.1:{port} THIS_HOST, then the URL.\n")
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    try:
        return subprocess.call(cmd, cwd=folder)
    except KeyboardInterrupt:
        return 0
