"""The stand-in packages' shell launchers (test equipment) build the real command lines.

Each test runs the real script from testbed/standins/pkg against a temporary root (the scripts
prefix every path with MESOS_INIT_WRAPPER_ROOT / STANDIN_ROOT, for tests only); the daemon there
is a stub that prints its arguments, one per line.
"""
import os
import subprocess

import pytest

from testbed import repo

PKG = repo.PKG


def stub(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    path.chmod(0o755)


def put(root, path, text):
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def mesos_root(tmp_path):
    """The files the mesos package installs, with the defaults' `cat` pointed into the root."""
    put(tmp_path, "/etc/mesos/zk", "zk://10.0.0.1:2181,10.0.0.2:2181/mesos\n")
    put(tmp_path, "/etc/mesos-master/quorum", "2\n")
    put(tmp_path, "/etc/mesos-master/work_dir", "/var/lib/mesos\n")
    put(tmp_path, "/etc/mesos-slave/work_dir", "/var/lib/mesos\n")
    put(tmp_path, "/etc/default/mesos", 'LOGS=/var/log/mesos\nULIMIT="-n 8192"\n')
    put(tmp_path, "/etc/default/mesos-master", f"PORT=5050\nZK=`cat {tmp_path}/etc/mesos/zk`\n")
    put(tmp_path, "/etc/default/mesos-slave", f"MASTER=`cat {tmp_path}/etc/mesos/zk`\n")
    stub(tmp_path / "usr/sbin/mesos-master")
    stub(tmp_path / "usr/sbin/mesos-slave")
    return tmp_path


def wrapper(root, mode):
    env = dict(os.environ, MESOS_INIT_WRAPPER_ROOT=str(root))
    r = subprocess.run(["bash", str(PKG / "mesos-init-wrapper"), mode], env=env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_master_flags_from_defaults_then_sorted_flag_files(mesos_root):
    put(mesos_root, "/etc/mesos-master/ip", "10.0.0.1\n")
    put(mesos_root, "/etc/mesos-master/hostname", "10.0.0.1\n")
    put(mesos_root, "/etc/mesos-master/?no-hostname_lookup", "")
    put(mesos_root, "/etc/mesos-master/.hidden", "x\n")
    assert wrapper(mesos_root, "master") == [
        "--zk=zk://10.0.0.1:2181,10.0.0.2:2181/mesos", "--port=5050",
        "--log_dir=/var/log/mesos", "--no-hostname_lookup",
        "--hostname=10.0.0.1", "--ip=10.0.0.1", "--quorum=2", "--work_dir=/var/lib/mesos"]


def test_stray_file_becomes_a_flag_as_in_the_real_wrapper(mesos_root):
    put(mesos_root, "/etc/mesos-master/work_dir.bak", "/old\n")
    assert "--work_dir.bak=/old" in wrapper(mesos_root, "master")


def test_slave_attributes_and_resources_dirs(mesos_root):
    put(mesos_root, "/etc/mesos-slave/ip", "10.0.0.51\n")
    put(mesos_root, "/etc/mesos-slave/attributes/rack", "r1\n")
    put(mesos_root, "/etc/mesos-slave/attributes/zone", "z\n")
    put(mesos_root, "/etc/mesos-slave/attributes/empty", "")
    put(mesos_root, "/etc/mesos-slave/resources/cpus", "2\n")
    assert wrapper(mesos_root, "slave") == [
        "--master=zk://10.0.0.1:2181,10.0.0.2:2181/mesos", "--log_dir=/var/log/mesos",
        "--ip=10.0.0.51", "--work_dir=/var/lib/mesos", "--attributes=rack:r1;zone:z",
        "--resources=cpus:2"]


def test_defaults_are_exported_to_the_daemon(mesos_root):
    put(mesos_root, "/etc/default/mesos", "MESOS_QUORUM=2\n")
    stub_env = mesos_root / "usr/sbin/mesos-master"
    stub_env.write_text('#!/bin/sh\necho "MESOS_QUORUM=$MESOS_QUORUM"\n')
    assert wrapper(mesos_root, "master") == ["MESOS_QUORUM=2"]


def test_wrapper_without_mode_fails():
    r = subprocess.run(["bash", str(PKG / "mesos-init-wrapper")], capture_output=True, text=True)
    assert r.returncode == 1 and "master|slave" in r.stderr


def launcher(root, marathon_version, name="marathon"):
    if name == "marathon":
        conf = "1" if repo.marathon_reads_conf_dir(marathon_version) else "0"
        text = repo._launcher("marathon", "/daemon", conf, "MARATHON", "zk",
                              "zk://${hosts}/marathon")
    else:
        text = repo._launcher("chronos", "/daemon", "1", "CHRONOS", "zk_hosts", "${hosts}")
    script = root / "launcher"
    script.write_text(text)
    stub(root / "daemon")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARATHON_")}
    env["STANDIN_ROOT"] = str(root)
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_marathon_14_reads_conf_dir_and_derives_master_and_zk(tmp_path):
    put(tmp_path, "/etc/mesos/zk", "zk://10.0.0.1:2181,10.0.0.2:2181/mesos\n")
    put(tmp_path, "/etc/marathon/conf/hostname", "10.0.0.1\n")
    put(tmp_path, "/etc/marathon/conf/?ha", "")
    put(tmp_path, "/etc/default/marathon", "MARATHON_HTTP_PORT=8081\n")
    assert launcher(tmp_path, "1.4.8") == [
        "--http_port", "8081", "--ha", "--hostname", "10.0.0.1",
        "--master", "zk://10.0.0.1:2181,10.0.0.2:2181/mesos",
        "--zk", "zk://10.0.0.1:2181,10.0.0.2:2181/marathon"]


def test_marathon_14_keeps_given_master_and_zk(tmp_path):
    put(tmp_path, "/etc/mesos/zk", "zk://10.0.0.1:2181/mesos\n")
    put(tmp_path, "/etc/marathon/conf/master", "zk://m:2181/mesos\n")
    put(tmp_path, "/etc/marathon/conf/zk", "zk://m:2181/marathon\n")
    assert launcher(tmp_path, "1.4.8") == ["--master", "zk://m:2181/mesos",
                                           "--zk", "zk://m:2181/marathon"]


def test_marathon_16_ignores_conf_dir_and_reads_default_file(tmp_path):
    put(tmp_path, "/etc/mesos/zk", "zk://10.0.0.1:2181/mesos\n")
    put(tmp_path, "/etc/marathon/conf/hostname", "ignored\n")
    put(tmp_path, "/etc/default/marathon",
        "MARATHON_MASTER=zk://10.0.0.1:2181/mesos\nMARATHON_HA=\n")
    assert launcher(tmp_path, "1.6.322") == ["--ha", "--master", "zk://10.0.0.1:2181/mesos"]


def test_chronos_conf_dir(tmp_path):
    put(tmp_path, "/etc/mesos/zk", "zk://10.0.0.1:2181/mesos\n")
    put(tmp_path, "/etc/chronos/conf/http_port", "4400\n")
    assert launcher(tmp_path, None, "chronos") == [
        "--http_port", "4400", "--master", "zk://10.0.0.1:2181/mesos",
        "--zk_hosts", "10.0.0.1:2181"]
