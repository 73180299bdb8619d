"""db_env's TLS options (ssl_ca, ssl_cert, ssl_key -> WA_DB_SSL_CA/CERT/KEY), run through the module's
own main(): written after the seven variables only when set, the file stays 0600, a second run changes
nothing, a path is shown (it is no secret) and bad paths fail before anything is touched."""

from __future__ import annotations

import json
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv_file as dbenv_file
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv_mask as dbenv_mask
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv_validate as dbenv_validate
from ansible_collections.wabiz.cluster.plugins.modules import db_env

PASSWORD = "Tls-Hidden-9"
TLS = {"ssl_ca": "/opt/whatsapp/certs/ca.pem", "ssl_cert": "/opt/whatsapp/certs/client.pem",
       "ssl_key": "/opt/whatsapp/certs/client.key"}


def run(capsys, path, check=False, diff=False, **over):
    args = {"path": str(path), "engine": "mysql", "hostname": "db", "username": "wa", "password": PASSWORD,
            "_ansible_check_mode": check, "_ansible_diff": diff, **over}
    with patch_module_args(args), pytest.raises(SystemExit):
        db_env.main()
    out = capsys.readouterr().out
    assert PASSWORD not in out
    return json.loads(out)


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_tls_paths_are_written_after_the_seven_and_a_second_run_changes_nothing(tmp_path, capsys, engine):
    path = tmp_path / "db.env"
    first = run(capsys, path, diff=True, engine=engine, **TLS)
    assert first["changed"] and not first.get("failed"), first
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    keys = [ln.split("=", 1)[0] for ln in lines]
    assert keys[-3:] == ["WA_DB_SSL_CA", "WA_DB_SSL_CERT", "WA_DB_SSL_KEY"]
    assert keys[:-3] == [k for k in dbenv_file.KEYS if k in keys]
    assert dbenv_file.parse(path.read_text())["WA_DB_SSL_KEY"] == TLS["ssl_key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A path is no secret: shown as it is in the result and the diff.
    assert first["variables"]["WA_DB_SSL_KEY"] == TLS["ssl_key"]
    assert "WA_DB_SSL_KEY=" + TLS["ssl_key"] in first["diff"]["after"]
    assert {"WA_DB_SSL_CA", "WA_DB_SSL_CERT", "WA_DB_SSL_KEY"} <= set(first["changed_keys"])
    second = run(capsys, path, engine=engine, **TLS)
    assert not second["changed"] and second["changed_keys"] == []


def test_without_tls_options_the_file_is_as_before_and_removing_them_is_a_change(tmp_path, capsys):
    path = tmp_path / "db.env"
    run(capsys, path, **TLS)
    dropped = run(capsys, path)
    assert dropped["changed"]
    assert sorted(dropped["changed_keys"]) == ["WA_DB_SSL_CA", "WA_DB_SSL_CERT", "WA_DB_SSL_KEY"]
    assert "WA_DB_SSL" not in path.read_text()
    assert list(dbenv_file.parse(path.read_text())) == [k for k in dbenv_file.KEYS if k != "WA_DB_NAME_PREFIX"]
    assert not run(capsys, path)["changed"]


def test_ca_alone_is_enough(tmp_path, capsys):
    path = tmp_path / "db.env"
    res = run(capsys, path, ssl_ca=TLS["ssl_ca"])
    assert res["changed"] and dbenv_file.parse(path.read_text())["WA_DB_SSL_CA"] == TLS["ssl_ca"]
    assert "WA_DB_SSL_CERT" not in path.read_text()


def test_a_hand_added_tls_line_is_managed_not_hidden(tmp_path, capsys):
    path = tmp_path / "db.env"
    run(capsys, path)
    path.write_text(path.read_text() + "WA_DB_SSL_CA=/old/ca.pem\n")
    res = run(capsys, path, diff=True, ssl_ca=TLS["ssl_ca"])
    assert res["changed_keys"] == ["WA_DB_SSL_CA"]
    assert "WA_DB_SSL_CA=/old/ca.pem" in res["diff"]["before"]


@pytest.mark.parametrize("check", [False, True])
@pytest.mark.parametrize(("over", "expected"), [
    ({"ssl_ca": "certs/ca.pem"}, "ssl_ca: 'certs/ca.pem' is not an absolute path"),
    ({"ssl_ca": ""}, "ssl_ca: '' is not an absolute path"),
    ({"ssl_ca": "/certs/ca$X.pem"}, "ssl_ca: '/certs/ca$X.pem' contains '$'"),
    ({"ssl_ca": "/certs/ca.pem\nWA_DB_PORT=1"}, "ssl_ca: "),
    ({"ssl_ca": "/certs/a #b.pem"}, "ssl_ca: "),
    ({"ssl_ca": "/" + "c" * 5000}, "is not an absolute path of at most 4096 characters"),
    ({"ssl_cert": "/certs/client.pem"}, "parameters are required together: ssl_cert, ssl_key"),
    ({"ssl_key": "/certs/client.key"}, "parameters are required together: ssl_cert, ssl_key"),
    ({"ssl_cert": "/certs/client.pem", "ssl_key": "key.pem"}, "ssl_key: 'key.pem' is not an absolute path"),
])
def test_bad_tls_paths_fail_before_anything_is_touched(tmp_path, capsys, over, expected, check):
    path = tmp_path / "db.env"
    path.write_text("WA_DB_ENGINE=MYSQL\n")
    path.chmod(0o600)
    res = run(capsys, path, check=check, **over)
    assert res.get("failed") and expected in res["msg"], res
    assert path.read_text() == "WA_DB_ENGINE=MYSQL\n"


def test_check_tls_paths_pairs_cert_and_key():
    assert dbenv_validate.check_tls_paths() == {}
    pair = dbenv_validate.check_tls_paths(ssl_cert="/c.pem", ssl_key="/k.pem")
    assert pair == {"WA_DB_SSL_CERT": "/c.pem", "WA_DB_SSL_KEY": "/k.pem"}
    with pytest.raises(dbenv_validate.DbEnvError, match="go together"):
        dbenv_validate.check_tls_paths(ssl_key="/k.pem")
    assert not dbenv_mask.is_secret_key("WA_DB_SSL_KEY") and dbenv_mask.is_secret_key("SSH_KEY")
