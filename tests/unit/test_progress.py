"""tasks.progress: live line on a terminal, plain lines without control characters elsewhere."""

from __future__ import annotations

import io
import re
import time

import pytest

from tasks import progress


def test_off_a_terminal_lines_say_what_where_and_how_long(monkeypatch):
    monkeypatch.setattr(progress, "REMIND", 0.2)
    monkeypatch.setattr(progress, "TICK", 0.05)
    out = io.StringIO()
    board = progress.Board(out, tty=False)
    with board.waiting("install mesosphere", host="master1") as wait:
        board.println("master2 write-zk ok")
        wait.update("unpacking")
        wait.update("unpacking")          # unchanged: not printed twice
        time.sleep(0.5)
    text = out.getvalue()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), repr(text)
    lines = text.splitlines()
    assert lines[0] == "master1 install mesosphere: waiting ..."
    assert "master2 write-zk ok" in lines
    assert sum("unpacking (" in line for line in lines) == 1
    assert any(re.fullmatch(r"master1 install mesosphere: still waiting after \d+ s \(unpacking\)", l)
               for l in lines)
    assert re.fullmatch(r"master1 install mesosphere: done after \d+ s", lines[-1])


def test_a_wait_that_raises_ends_as_failed():
    out = io.StringIO()
    board = progress.Board(out, tty=False)
    with pytest.raises(RuntimeError):
        with board.waiting("election of a Mesos leader"):
            raise RuntimeError("timeout")
    assert re.fullmatch(r"election of a Mesos leader: failed after \d+ s", out.getvalue().splitlines()[-1])


def test_on_a_terminal_one_live_line_is_redrawn_and_cleared(monkeypatch):
    monkeypatch.setattr(progress, "TICK", 0.05)
    out = io.StringIO()
    board = progress.Board(out, tty=True)
    with board.waiting("install mesos", host="slave1"):
        with board.waiting("install mesos", host="slave2") as second:
            second.update("downloading")
            board.println("slave3 install-slave changed")
            time.sleep(0.2)
    text = out.getvalue()
    assert "waiting 0 s: slave1 install mesos; slave2 install mesos (downloading)" in text
    # The plain line is printed on a cleared line, then the live line comes back.
    assert progress.CLEAR + "slave3 install-slave changed\n" + "waiting" in text
    assert text.endswith(progress.CLEAR)      # nothing left on the live line at the end
    assert board.live == ""


def test_a_wait_shows_only_once_it_lasted_its_delay(monkeypatch):
    monkeypatch.setattr(progress, "TICK", 0.05)
    out = io.StringIO()
    board = progress.Board(out, tty=False)
    with board.waiting("write /etc/mesos/zk", host="slave1", after=5):
        time.sleep(0.2)                    # a quick round trip: nothing printed
    with board.waiting("install mesos", host="slave2", after=0.1) as wait:
        time.sleep(0.4)
        wait.update("unpacking")
    lines = out.getvalue().splitlines()
    assert not any("slave1" in line for line in lines)
    assert re.fullmatch(r"slave2 install mesos: waiting \.\.\. \(\d+ s so far\)", lines[0])
    assert lines[1].startswith("slave2 install mesos: unpacking (")
    assert re.fullmatch(r"slave2 install mesos: done after \d+ s", lines[-1])
