"""The stand-in agent's resources must not move between two starts on the same host, or it
refuses its own checkpoint ("Incompatible agent info") after a reboot."""

import os
from types import SimpleNamespace

from testbed.standins import mesos_slave


def fake_statvfs(free_blocks):
    return lambda path: SimpleNamespace(f_blocks=50 * 1024 * 256, f_bavail=free_blocks, f_frsize=4096)


def test_disk_is_the_file_systems_size_not_its_free_space(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "statvfs", fake_statvfs(1000))
    first = mesos_slave.detect_resources(str(tmp_path), "")
    monkeypatch.setattr(os, "statvfs", fake_statvfs(999))
    assert mesos_slave.detect_resources(str(tmp_path), "") == first
    assert first["disk"] == 50 * 1024 - 10 * 1024      # 50 GiB file system, Mesos keeps 10 GiB


def test_resources_flag_overrides_detection(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "statvfs", fake_statvfs(1000))
    res = mesos_slave.detect_resources(str(tmp_path), "cpus:1;mem:512")
    assert (res["cpus"], res["mem"]) == (1.0, 512.0)
