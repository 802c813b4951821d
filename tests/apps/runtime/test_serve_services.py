"""`manage.py serve --processes 2` in services mode: two Daphne processes accept on one port (each
answers while the other is frozen), SIGTERM to the parent stops them all, and one dying (or the
parent being killed) takes the whole server down instead of leaving half of it running."""

import os
import signal
import sys
import urllib.request

import psutil
import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def _live(base: str) -> bool:
    try:
        return urllib.request.urlopen(f"{base}/health/live", timeout=5).status == 200
    except OSError:
        return False


def _listening_on(pid: int, port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


@pytest.fixture
def two_process_server(start_process, process_env, process_tools):
    """(the parent's ManagedProcess, base URL, [child pids]) once both children listen and answer."""
    port = process_tools.free_port()
    argv = [sys.executable, "manage.py", "serve", "--no-worker", "--processes", "2", "--port", str(port)]
    server = start_process("web", argv, process_env)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert server.proc.poll() is None, server.log()
        children = psutil.Process(server.proc.pid).children()
        listening = [child.pid for child in children if _listening_on(child.pid, port)]
        return len(listening) == 2 and _live(base) and listening

    children = process_tools.wait_until(up, timeout=120, what="two web processes")
    return server, base, children


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_two_web_processes_answer_on_one_port_and_sigterm_stops_them_all(two_process_server):
    server, base, children = two_process_server
    assert len(set(children)) == 2 and server.proc.pid not in children
    for frozen in children:  # the other one alone answers on the shared port
        os.kill(frozen, signal.SIGSTOP)
        try:
            assert all(_live(base) for _ in range(3)), f"no answer while {frozen} was stopped"
        finally:
            os.kill(frozen, signal.SIGCONT)

    os.kill(server.proc.pid, signal.SIGTERM)  # the parent only: it forwards the signal
    assert server.proc.wait(timeout=60) == 0, server.log()
    assert all(_gone(pid) for pid in children)
    assert not _live(base)


def test_the_server_stops_when_one_web_process_dies(two_process_server):
    server, base, (dying, other) = two_process_server
    os.kill(dying, signal.SIGKILL)
    assert server.proc.wait(timeout=60) == 1
    assert f"web process {dying} exited with status -9" in server.log()
    assert _gone(other) and not _live(base)


def test_web_processes_stop_when_the_parent_is_killed(two_process_server, process_tools):
    server, base, children = two_process_server
    server.proc.kill()  # SIGKILL: nothing is forwarded
    server.proc.wait(timeout=10)
    process_tools.wait_until(lambda: all(_gone(pid) for pid in children), timeout=30, what="orphans to stop")
    assert not _live(base)


def test_a_web_process_whose_parent_died_before_it_started_stops(process_env, process_tools):
    """The parent can die while a child is still starting: the child must compare its parent with
    the pid the parent gave it, not with whatever os.getppid() says once it is up (then 1, its
    new parent, so it never noticed; this test's predecessor was flaky for that reason)."""
    import socket
    import subprocess

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    gone_parent = 2**22 + 1  # above Linux's largest pid: no live process has it, as after the parent died
    argv = [sys.executable, "manage.py", "serve", "--listen-fd", str(listener.fileno())]
    argv += ["--parent-pid", str(gone_parent)]
    child = subprocess.Popen(argv, env=process_env, pass_fds=(listener.fileno(),), stdout=subprocess.DEVNULL)
    listener.close()
    try:
        assert child.wait(timeout=90) == 0
    finally:
        if child.poll() is None:
            child.kill()
