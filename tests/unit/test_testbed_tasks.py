"""The `testbed` collection's command-line surface, and what `up` passes on to testbed.hosts."""
import pytest
from invoke import Context, Program

from testbed import config, hosts, tasks


def test_collection_is_named_testbed_with_its_five_tasks():
    assert tasks.ns.name == "testbed"
    assert sorted(tasks.ns.task_names) == ["add-host", "down", "remove-host", "status", "up"]


def _run_cli(argv, mocker):
    calls = mocker.patch.object(hosts, "up")
    Program(namespace=tasks.ns).run(["fab"] + argv, exit=False)
    return calls


def test_up_defaults(mocker):
    calls = _run_cli(["up"], mocker)
    calls.assert_called_once_with(3, None, config.DEFAULT_MARATHON, repo=True)


def test_up_options_are_dashed_and_typed(mocker):
    calls = _run_cli(["up", "--slaves", "50", "--subnet", "10.213.9.0/24",
                      "--marathon-version", "1.5.2", "--no-repo"], mocker)
    calls.assert_called_once_with(50, "10.213.9.0/24", "1.5.2", repo=False)


def test_status_prints_one_line_per_host(mocker, capsys):
    mocker.patch.object(hosts, "status", return_value=[
        {"name": "master1", "ip": "198.51.100.1", "up": True, "ssh": True},
        {"name": "slave1", "ip": "198.51.100.51", "up": False, "ssh": False}])
    tasks.status(Context())
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["master1", "198.51.100.1", "up", "ssh", "ok"]
    assert out[1].split() == ["slave1", "198.51.100.51", "down", "ssh", "no"]


def test_status_when_down(mocker, capsys):
    mocker.patch.object(hosts, "status", return_value=[])
    tasks.status(Context())
    assert capsys.readouterr().out == "testbed is down\n"


def test_add_host_passes_its_options_and_prints_the_inventory_line(mocker, capsys):
    add = mocker.patch.object(hosts, "add_host", return_value=config.Host(
        "master4", "198.51.100.4", "master", 4))
    Program(namespace=tasks.ns).run(["fab", "add-host", "--name", "master4", "--role",
                                     "master", "--myid", "4"], exit=False)
    add.assert_called_once_with("master4", "master", None, 4)
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"add under [masters] in {config.INVENTORY.name}:", "master4 ip=198.51.100.4 myid=4"]


def test_add_host_failure_is_one_line_and_exit_1(mocker, capsys):
    mocker.patch.object(hosts, "add_host", side_effect=ValueError("a testbed host 'slave1' "
                                                                  "exists already"))
    with pytest.raises(SystemExit) as e:
        Program(namespace=tasks.ns).run(["fab", "add-host", "--name", "slave1", "--role",
                                         "slave"])
    assert e.value.code == 1
    assert "testbed.add-host failed: a testbed host 'slave1' exists already" in \
        capsys.readouterr().err


def test_remove_host_prints_the_line_to_delete(mocker, capsys):
    mocker.patch.object(hosts, "load_state", return_value={"hosts": [
        {"name": "master2", "ip": "198.51.100.2", "role": "master", "myid": 2}]})
    remove = mocker.patch.object(hosts, "remove_host")
    Program(namespace=tasks.ns).run(["fab", "remove-host", "--name", "master2"], exit=False)
    remove.assert_called_once_with("master2")
    assert capsys.readouterr().out.splitlines()[-1] == "master2 ip=198.51.100.2 myid=2"
