"""Stand-in daemons (test equipment): flags and fatal errors match the real daemons' texts."""
import subprocess
import sys

import pytest

from testbed.standins import flags, marathon, mesos_master, mesos_slave, zk
from testbed.standins.localrun import REPO_ROOT


def run(module, *args, env=None):
    return subprocess.run([sys.executable, "-m", f"testbed.standins.{module}", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=20,
                          env=env)


@pytest.mark.parametrize("text,seconds,back", [
    ("1mins", 60, "1mins"), ("30secs", 30, "30secs"), ("90secs", 90, "1.5mins"),
    ("2hrs", 7200, "2hrs"), ("500ms", 0.5, "500ms"), ("2weeks", 1209600, "2weeks")])
def test_durations_parse_and_print_as_stout(text, seconds, back):
    assert flags.parse_duration(text) == seconds
    assert flags.format_duration(seconds) == back


def test_mesos_flags_values_booleans_env_and_defaults():
    f = mesos_master.load_flags(
        ["--work_dir=/w", "--quorum=2", "--zk=zk://a:2181,b:2181/mesos", "--no-hostname_lookup",
         "--registry_fetch_timeout=30secs"], environ={"MESOS_PORT": "5055", "OTHER": "x"})
    assert f["quorum"] == 2 and f["port"] == 5055 and f["hostname_lookup"] is False
    assert f["registry_fetch_timeout"] == 30 and f["ip"] is None


def test_command_line_overrides_environment():
    f = mesos_master.load_flags(["--work_dir=/w", "--port=5051"], environ={"MESOS_PORT": "1"})
    assert f["port"] == 5051


@pytest.mark.parametrize("argv,message", [
    (["--work_dir=/w", "--x=1"], "Failed to load unknown flag 'x'"),
    (["--work_dir=/w", "--port=1", "--port=2"], "Flag 'port' is already loaded via name 'port'"),
    (["--work_dir=/w", "--port"], "Failed to load non-boolean flag 'port': Missing value"),
    (["--zk=zk://h:2181/mesos", "--quorum=1"],
     "--work_dir needed for replicated log based registry"),
    (["--zk=zk://h:2181/mesos", "--work_dir=/w"], "Need to specify --quorum for replicated log "
                                                  "based registry when using ZooKeeper"),
    (["--zk=h:2181/mesos", "--work_dir=/w", "--quorum=1"],
     "Error parsing ZooKeeper URL: Expecting 'zk://' at the beginning of the URL"),
])
def test_master_flag_errors(argv, message):
    with pytest.raises(flags.FlagError, match="^" + message.replace("[", r"\[") + "$"):
        mesos_master.load_flags(argv, environ={})


def test_stray_flag_file_name_crashes_the_master_process():
    """What /etc/mesos-master/work_dir.bak does to a real master: exit 1, the flag named."""
    r = run("mesos_master", "--work_dir=/tmp/x", "--work_dir.bak=/var/lib/mesos")
    assert r.returncode == 1
    assert r.stderr.startswith("Failed to load unknown flag 'work_dir.bak'\n")


@pytest.mark.parametrize("argv,message", [
    (["--master=zk://h:2181/mesos"], "Flag 'work_dir' is required, but it was not provided"),
    (["--work_dir=/w"], "Missing required option `--master` or `--master_detector`"),
    (["--work_dir=/w", "--master=h:5050", "--bogus"], "Failed to load unknown flag 'bogus'"),
    (["--work_dir=/w", "--master=h:5050", "--resources=cpus"],
     "Failed to determine agent resources: Bad value for resources, missing ':' within cpus"),
])
def test_agent_flag_errors(argv, message):
    with pytest.raises(flags.FlagError) as e:
        mesos_slave.load_flags(argv, environ={})
    assert str(e.value) == message


def test_agent_process_exits_1_without_work_dir():
    r = run("mesos_slave", "--master=127.0.0.1:5050")
    assert r.returncode == 1 and "Flag 'work_dir' is required" in r.stderr


def test_marathon_flags_scallop_style_and_defaults():
    f = marathon.load_flags(["--master", "zk://h:2181/mesos", "--hostname=10.0.0.1", "--ha"])
    assert f["zk"] == "zk://localhost:2181/marathon" and f["http_port"] == 8080
    assert f["hostname"] == "10.0.0.1" and f["ha"] is True


@pytest.mark.parametrize("argv,message", [
    ([], "[scallop] Error: Required option 'master' not found"),
    (["--master", "m", "--nope", "1"], "[scallop] Error: Unknown option 'nope'"),
    (["--master", "m", "--http_port", "x"], "[scallop] Error: Bad arguments for option "
                                            "'http_port': 'x'"),
])
def test_marathon_flag_errors(argv, message):
    with pytest.raises(flags.FlagError) as e:
        marathon.load_flags(argv)
    assert str(e.value) == message


def test_marathon_process_without_master_exits_1():
    r = run("marathon", "--zk", "zk://127.0.0.1:1/marathon")
    assert r.returncode == 1 and "Required option 'master' not found" in r.stderr


@pytest.mark.parametrize("url,parsed", [
    ("zk://a:2181,b:2181,c:2181/mesos", ("a:2181,b:2181,c:2181", "/mesos")),
    ("zk://user:pw@a:2181/deep/path/", ("a:2181", "/deep/path")),
])
def test_zk_urls(url, parsed):
    assert zk.parse_zk_url(url) == parsed
