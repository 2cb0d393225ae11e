"""``infattn lab``: bound to localhost with a token, notebooks copied out of a wheel."""

import json
from pathlib import Path

from infattn import cli
from infattn.commands import lab


def test_lab_binds_to_localhost_with_a_token(capsys):
    assert cli.main(["lab", "--dry-run", "--token", "t0k", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and "token=t0k" in out
    assert "--ServerApp.ip=127.0.0.1" in out and "--IdentityProvider.token=t0k" in out
    assert "ssh -L" in out


def test_app_serves_the_explorer_with_voila(capsys):
    assert cli.main(["lab", "--app", "--dry-run", "--token", "t0k", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "-m voila" in out and "app.ipynb" in out and "--Voila.ip=127.0.0.1" in out


def test_a_random_token_by_default(capsys):
    cli.main(["lab", "--dry-run", "--port", "0"])
    first = capsys.readouterr().out
    cli.main(["lab", "--dry-run", "--port", "0"])
    assert first.split("token=")[1][:32] != capsys.readouterr().out.split("token=")[1][:32]


def test_notebooks_are_copied_to_a_user_folder_keeping_edits(tmp_path):
    (tmp_path / lab.FIRST_NOTEBOOK).write_text('{"edited": true}')
    folder = lab.notebook_dir(tmp_path)
    assert folder == tmp_path
    assert json.loads((tmp_path / lab.FIRST_NOTEBOOK).read_text()) == {"edited": True}
    assert (tmp_path / "02_gaussianity.ipynb").is_file() and (tmp_path / "app.ipynb").is_file()


def test_a_taken_port_is_replaced_by_a_free_one():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert lab.free_port(taken) != taken
    assert Path(lab.server_command(True, Path("nb"), 1, "t")[0][3]).name == "app.ipynb"


def test_lab_allows_root_only_when_asked():
    plain, _ = lab.server_command(False, Path("nb"), 1, "t")
    root, _ = lab.server_command(False, Path("nb"), 1, "t", allow_root=True)
    assert "--ServerApp.allow_root=True" not in plain
    assert "--ServerApp.allow_root=True" in root
    assert "--ServerApp.ip=127.0.0.1" in root
