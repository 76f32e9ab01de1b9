"""The `testbed` collection's command-line surface, and what `up` passes on to testbed.hosts."""
from invoke import Context, Program

from testbed import config, hosts, tasks


def test_collection_is_named_testbed_with_three_tasks():
    assert tasks.ns.name == "testbed"
    assert sorted(tasks.ns.task_names) == ["down", "status", "up"]


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
