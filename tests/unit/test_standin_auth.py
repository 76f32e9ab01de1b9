"""The stand-ins enforce authentication as the real daemons do (test equipment): Marathon's
`--http_credentials` (401 and Jetty's page for any request without them), and the master's
`--authenticate_frameworks` with `--credentials` (a framework that does not authenticate, or
with the wrong secret, is refused; Marathon then exits 137 after "Committing suicide!").

One ZooKeeper and one master on 127.0.4.1, Marathons on free ports; needs Debian's
`zookeeper` package, skipped without it.
"""
import base64
import json

import pytest

from tasks.marathon import Marathon, MarathonError
from testbed.standins import common
from testbed.standins.localrun import standin, start_zookeeper, wait_port, zookeeper_available
from tests.unit.standins_local import free_port, wait

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (apt-get install zookeeper)")
IP = "127.0.4.1"
SECRET = "fw-s3cret"


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    zk_port, port = free_port(), free_port(IP)
    zk = start_zookeeper(tmp / "zk", zk_port)
    credentials = tmp / "credentials"
    credentials.write_text(json.dumps({"credentials": [{"principal": "marathon",
                                                        "secret": SECRET}]}))
    credentials.chmod(0o600)
    proc = standin("mesos_master", [
        f"--zk=zk://127.0.0.1:{zk_port}/mesos", "--quorum=1", f"--ip={IP}", f"--hostname={IP}",
        f"--port={port}", f"--work_dir={tmp / 'master'}", "--authenticate_frameworks=true",
        f"--credentials={credentials}"], str(tmp / "master.log"))
    try:
        wait_port(IP, port)
        wait(lambda: common.call("GET", f"http://{IP}:{port}/metrics/snapshot")[1]
             ["master/elected"] == 1)
        yield {"tmp": tmp, "zk": f"127.0.0.1:{zk_port}", "url": f"http://{IP}:{port}",
               "proc": proc}
    finally:
        proc.stop()
        zk.stop()


def marathon(master, name, *flags):
    port = free_port(IP)
    proc = standin("marathon", [
        "--master", f"zk://{master['zk']}/mesos", "--zk", f"zk://{master['zk']}/{name}",
        "--hostname", IP, "--http_address", IP, "--http_port", str(port),
        "--framework_name", name, *flags], str(master["tmp"] / f"{name}.log"))
    wait_port(IP, port)
    return proc, f"http://{IP}:{port}"


def secret_file(master, text):
    path = master["tmp"] / f"secret-{abs(hash(text))}"
    path.write_text(text)
    return str(path)


def authenticating(master, secret=SECRET):
    return ("--mesos_authentication", "--mesos_authentication_principal", "marathon",
            "--mesos_authentication_secret_file", secret_file(master, secret))


def registered(master, name):
    state = common.call("GET", master["url"] + "/master/state")[1]
    return [f for f in state["frameworks"] if f["name"] == name and f["active"]]


def test_http_credentials_are_asked_of_every_request(master):
    proc, url = marathon(master, "basic", "--http_credentials", "ops:pw-123", *authenticating(master))
    try:
        status, body, headers = common.raw_call("GET", url + "/ping")
        assert status == 401
        assert headers["WWW-Authenticate"] == 'basic realm="Mesosphere"'
        assert "<h2>HTTP ERROR 401</h2>" in body.decode()
        assert "Reason:\n<pre>    Unauthorized</pre>" in body.decode()
        wrong = "Basic " + base64.b64encode(b"ops:other").decode()
        assert common.raw_call("GET", url + "/v2/apps", headers={"Authorization": wrong})[0] == 401
        right = "Basic " + base64.b64encode(b"ops:pw-123").decode()
        status, body, _ = common.raw_call("GET", url + "/ping", headers={"Authorization": right})
        assert (status, body) == (200, b"pong\n")
        # The tool's client: with the credentials it works, without it says why it cannot.
        with Marathon([url], auth=("ops", "pw-123"), log=lambda *a: None) as m:
            assert m.ping()
        with pytest.raises(MarathonError, match="HTTP 401: Marathon asks for credentials"):
            with Marathon([url], log=lambda *a: None) as m:
                m.ping()
    finally:
        proc.stop()


def test_an_authenticating_marathon_registers_with_its_principal(master):
    proc, _ = marathon(master, "good", *authenticating(master))
    try:
        [framework] = wait(lambda: registered(master, "good"), what="registration")
        assert framework["principal"] == "marathon"
        assert proc.alive()
        assert "Successfully authenticated principal 'marathon'" in master["proc"].output()
    finally:
        proc.stop()


@pytest.mark.parametrize("name, secret, reason", [
    ("none", None, "Framework at scheduler-"),
    ("wrong", "nope", "Master refused authentication"),
    # The secret file's newline is part of the secret, as Marathon reads the whole file.
    ("newline", SECRET + "\n", "Master refused authentication"),
])
def test_a_marathon_that_does_not_authenticate_is_refused_and_exits(master, name, secret, reason):
    flags = authenticating(master, secret) if secret else ()
    proc = standin("marathon", [
        "--master", f"zk://{master['zk']}/mesos", "--zk", f"zk://{master['zk']}/{name}",
        "--hostname", IP, "--http_address", IP, "--http_port", str(free_port(IP)),
        "--framework_name", name, *flags], str(master["tmp"] / f"{name}.log"))
    try:
        wait(lambda: not proc.alive(), what="Marathon's exit")
        assert proc.popen.returncode == 137
        log = proc.output()
        assert reason in log and "Committing suicide!" in log
        assert not registered(master, name)
    finally:
        proc.stop()


def test_a_master_with_an_empty_credentials_file_does_not_start(master, tmp_path):
    empty = tmp_path / "credentials"
    empty.write_text("")
    proc = standin("mesos_master", [
        f"--ip={IP}", f"--port={free_port(IP)}", f"--work_dir={tmp_path}",
        "--registry=in_memory", f"--credentials={empty}"], str(tmp_path / "master.log"))
    wait(lambda: not proc.alive(), what="the master's exit")
    assert proc.popen.returncode == 1
    assert "Credentials file must contain at least one credential (see --credentials flag)" \
        in proc.output()
