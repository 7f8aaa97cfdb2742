"""The bubblewrap sandbox against hostile programs, and the Docker backend's
container spec (checked without an engine)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, WORKSPACES, Caller

from vibe_coding.sandbox import (
    BwrapSandbox,
    DockerSandbox,
    Limits,
    Program,
    SandboxTarget,
    choose_backend,
    container_spec,
    language,
    program_for,
)
from vibe_coding.sandbox.bwrap import bwrap_argv

LIMITS = Limits(timeout_s=10, memory_bytes=1 << 30, max_procs=64, cpu_s=60, file_bytes=100 << 20, output_bytes=1 << 18)


def _procs_of(uid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,cmd=", "-u", str(uid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_bwrap_command_line_binds_only_system_dirs_and_drops_everything(tmp_path: Path) -> None:
    target = SandboxTarget(tmp_path, 201234, "s")
    argv = bwrap_argv(target, LIMITS, ["python3", "x.py"])
    assert argv[:4] == ["setpriv", "--reuid=201234", "--regid=201234", "--clear-groups"]
    pairs = {(argv[i], argv[i + 1]) for i in range(len(argv) - 1)}
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    assert set(binds) <= {"/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", str(tmp_path)}
    assert "/" not in binds and "/home" not in binds and "/root" not in binds
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert ("--cap-drop", "ALL") in pairs and ("--remount-ro", "/dev") in pairs
    tail = argv[argv.index("prlimit") :]
    assert f"--as={1 << 30}" in tail and "--nproc=64" in tail and f"--fsize={100 << 20}" in tail
    assert tail[-2:] == ["python3", "x.py"]
    # Without root there is no uid to switch to: bwrap's own user namespace isolates.
    assert bwrap_argv(target, LIMITS, ["true"], drop_to_uid=False)[0] == "bwrap"
    # The terminal keeps its pty as controlling terminal; nothing else does.
    assert "--new-session" not in bwrap_argv(target, LIMITS, ["bash"], terminal=True)


def test_languages_and_programs() -> None:
    assert language("Python3").name == "python" and language("js").name == "node" and language("sh").name == "bash"
    assert language("cobol") is None
    prog = program_for(language("python"), "print(1)", None)
    assert prog.argv == ("python3", "-u", "-c", "print(1)") and prog.files == {}
    assert program_for(language("js"), "1", None).argv == ("node", "-e", "1")
    assert program_for(language("node"), None, "ls -la").argv == ("bash", "-c", "ls -la")


def test_host_files_are_out_of_reach(caller: Caller) -> None:
    sid = caller.session()
    script = (
        "for p in /etc/shadow /etc/gshadow /proc/1/root/etc/shadow; do"
        ' if cat "$p" >/dev/null 2>&1; then echo "READABLE $p"; fi; done;'
        f"for p in /root /home /work {ROOT} {ROOT}/.dev {ROOT}/scripts/fleet.py; do"
        ' if ls "$p" >/dev/null 2>&1; then echo "READABLE $p"; fi; done;'
        " ln /etc/passwd hardlink 2>/dev/null && echo 'READABLE hardlink';"
        " ls /; id -u"
    )
    out = caller.run(sid, command=script)
    assert "READABLE" not in out["output"], out
    top = set(out["output"].split()[:-1])
    assert top <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr", "workspace"}
    assert int(out["output"].split()[-1]) >= 200_000  # a per-session uid, not root


def test_network_is_unreachable(caller: Caller) -> None:
    sid = caller.session()
    code = (
        "import socket\n"
        "for host, port in (('1.1.1.1', 53), ('127.0.0.1', 5432), ('127.0.0.1', 9000)):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close()\n"
        "        print('CONNECTED', host, port)\n"
        "    except OSError as exc:\n"
        "        print('blocked', host, port, exc.errno)\n"
    )
    out = caller.run(sid, code=code)
    assert "CONNECTED" not in out["output"] and out["output"].count("blocked") == 3, out


def test_memory_and_file_size_are_capped(caller: Caller) -> None:
    sid = caller.session()
    out = caller.run(sid, code="b = bytearray(2 * 1024**3)\nprint('allocated')")
    assert "allocated" not in out["output"] and "MemoryError" in out["error"], out
    out = caller.run(
        sid, code="f = open('big', 'wb')\nfor _ in range(1024):\n    f.write(b'x' * 1048576)\nprint('wrote 1 GB')"
    )
    assert "wrote 1 GB" not in out["output"] and out["status"] == "error", out
    size = caller.run(sid, command="stat -c %s big")["output"]
    assert int(size) <= 100 * 1024 * 1024


def test_fork_bomb_is_contained(caller: Caller) -> None:
    sid = caller.session()
    start = time.monotonic()
    out = caller.run(sid, command=":(){ :|:& };:; sleep 5", timeout=3)
    assert time.monotonic() - start < 10
    assert out["status"] in ("timeout", "error", "completed")
    # The machine still works, and so does the session.
    assert caller.run(sid, code="print('alive')")["output"] == "alive\n"


def test_timeout_leaves_no_process_behind(caller: Caller) -> None:
    sid = caller.session()
    uid = int(caller.run(sid, command="id -u")["output"])
    out = caller.run(sid, command="(sleep 300 &) ; sleep 300 & while :; do :; done", timeout=1)
    assert out["status"] == "timeout"
    deadline = time.monotonic() + 5
    while _procs_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _procs_of(uid) == []


def test_workspace_files_belong_to_the_session_uid(caller: Caller) -> None:
    sid = caller.session()
    caller.put(f"/api/vibe/files/{sid}/write", json={"path": "d/f.txt", "content": "x"})
    out = caller.run(sid, command="echo more >> d/f.txt && mkdir -p d/e && stat -c %u d/f.txt && cat d/f.txt")
    assert out["exit_code"] == 0, out
    assert out["output"].splitlines()[1:] == ["x", "more"] or out["output"].splitlines()[1:] == ["xmore"]


async def test_run_directly_reports_first_output() -> None:
    workspace = Path(tempfile.mkdtemp(dir=WORKSPACES))
    os.chmod(workspace, 0o777)  # noqa: S103 - written by a sandbox uid
    sandbox = BwrapSandbox()
    result = await sandbox.run(SandboxTarget(workspace, 201_001, "x"), Program(("echo", "hi")), LIMITS)
    assert (result.exit_code, result.stdout) == (0, "hi\n")
    assert result.first_output_s is not None and result.first_output_s <= result.duration_s


# ---------------------------------------------------------------- docker


def test_docker_container_spec(tmp_path: Path) -> None:
    prog = program_for(language("python"), "print('hi')", None)
    target = SandboxTarget(tmp_path / "7" / "abc", 201_234, "abc")
    spec = container_spec(
        image="harvis/sandbox-python:latest",
        program=prog,
        target=target,
        host_workspace=Path("/srv/ws/7/abc"),
        limits=LIMITS,
    )
    assert spec["image"] == "harvis/sandbox-python:latest"
    assert spec["network_mode"] == "none"
    assert spec["user"] == "65534:65534" or spec["user"] == "201234:201234"
    assert spec["read_only"] is True and spec["tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={LIMITS.tmp_bytes}"}
    assert spec["volumes"] == {"/srv/ws/7/abc": {"bind": "/workspace", "mode": "rw"}}
    assert spec["working_dir"] == "/workspace"
    assert spec["mem_limit"] == spec["memswap_limit"] == 1 << 30
    assert spec["pids_limit"] == 64 and spec["nano_cpus"] == 1_000_000_000
    assert spec["cap_drop"] == ["ALL"] and spec["security_opt"] == ["no-new-privileges:true"]
    assert {u["Name"]: u["Hard"] for u in spec["ulimits"]}["fsize"] == 100 << 20
    assert spec.get("privileged") is None and "ports" not in spec
    assert spec["command"] == ["python3", "-u", "-c", "print('hi')"]
    # Files a program needs reach the read-only container through the environment and a stub.
    with_file = Program(("python3", "/tmp/x/a.py"), {"/tmp/x/a.py": b"print(2)"}, "python")
    spec = container_spec(image="i", program=with_file, target=target, host_workspace=tmp_path, limits=LIMITS)
    assert spec["environment"]["HARVIS_FILE_0"] == "print(2)"
    assert spec["command"][:2] == ["sh", "-c"] and spec["command"][-2:] == ["python3", "/tmp/x/a.py"]


def test_docker_spec_becomes_the_engine_request(tmp_path: Path) -> None:
    """What the docker SDK would send to the engine's create endpoint (its own conversion)."""
    from docker.models.containers import _create_container_args

    from vibe_coding.sandbox.docker import create_kwargs

    spec = container_spec(
        image="img",
        program=program_for(language("node"), "console.log(1)", None),
        target=SandboxTarget(tmp_path, 201_234, "s"),
        host_workspace=Path("/srv/ws/1/s"),
        limits=LIMITS,
        uid=201_234,
    )
    body = _create_container_args({**create_kwargs(spec), "version": "1.45"})
    host = body["host_config"]
    assert body["user"] == "201234:201234" and body["command"] == ["node", "-e", "console.log(1)"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["Memory"] == host["MemorySwap"] == 1 << 30 and host["PidsLimit"] == 64
    assert host["NanoCpus"] == 1_000_000_000 and host["Init"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Binds"] == ["/srv/ws/1/s:/workspace:rw"]
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {
        "data": 1 << 30,
        "fsize": 100 << 20,
        "cpu": 60,
        "core": 0,
        "nofile": 1024,
        "nproc": 64,
    }
    assert "Privileged" not in host and "PortBindings" not in host


def test_docker_backend_maps_workspaces_to_the_engine_host(tmp_path: Path) -> None:
    backend = DockerSandbox("unix:///nonexistent.sock", "img-{language}", tmp_path, "/host/ws")
    assert backend.host_path(tmp_path / "3" / "s") == Path("/host/ws/3/s")
    assert DockerSandbox("unix:///x", "i", tmp_path).host_path(tmp_path / "a") == tmp_path / "a"


async def test_docker_readiness_needs_every_languages_image(tmp_path: Path) -> None:
    """Ready only when the engine has the image of each language (the first run would fail)."""
    import docker

    class Images:
        def __init__(self, have: set[str]) -> None:
            self.have = have

        def get(self, name: str) -> object:
            if name not in self.have:
                raise docker.errors.ImageNotFound(name)
            return object()

    class Client:
        def __init__(self, have: set[str]) -> None:
            self.images = Images(have)

        def version(self) -> dict[str, str]:
            return {"Version": "4.3.1"}

    backend = DockerSandbox("unix:///x", "harvis/sandbox-{language}:latest", tmp_path)
    wanted = {f"harvis/sandbox-{lang}:latest" for lang in ("python", "node", "bash")}
    assert set(backend.images()) == wanted
    backend._client = Client(wanted)
    assert await backend.probe(tmp_path, 1) == "docker 4.3.1"
    backend._client = Client(wanted - {"harvis/sandbox-node:latest"})
    with pytest.raises(RuntimeError, match="no image harvis/sandbox-node:latest"):
        await backend.probe(tmp_path, 1)


def test_backend_auto_detection(tmp_path: Path) -> None:
    kw = {"image_template": "i", "workspace_dir": tmp_path, "host_workspace_dir": ""}
    assert choose_backend("auto", docker_url=f"unix://{tmp_path}/none.sock", **kw).name == "bwrap"
    assert choose_backend("docker", docker_url=f"unix://{tmp_path}/none.sock", **kw).name == "docker"
    assert choose_backend("bwrap", docker_url="unix:///var/run/docker.sock", **kw).name == "bwrap"
    import socket

    path = tmp_path / "d.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        assert choose_backend("auto", docker_url=f"unix://{path}", **kw).name == "docker"


@pytest.mark.parametrize("lang", ["python", "node", "bash"])
def test_docker_spec_per_language(tmp_path: Path, lang: str) -> None:
    spec = container_spec(
        image=f"img-{lang}",
        program=program_for(language(lang), "x", None),
        target=SandboxTarget(tmp_path, None, "s"),
        host_workspace=tmp_path,
        limits=LIMITS,
    )
    assert spec["user"] == "65534:65534" and spec["network_mode"] == "none"


def test_workspace_quota_stops_a_disk_filler(caller: Caller) -> None:
    sid = caller.session()
    # Each file stays under the per-file limit; together they pass the 200 MB workspace limit.
    out = caller.run(sid, command="for i in 1 2 3 4; do head -c 90000000 /dev/zero > f$i; done; sleep 5", timeout=20)
    assert out["status"] == "error" and "exceeded" in out["error"], out
    assert out["execution_time"] < 5
    # Over the limit, the file API refuses to write more; deleting makes room.
    w = caller.put(f"/api/vibe/files/{sid}/write", json={"path": "x", "content": "x"})
    assert w.status_code == 413
    for name in ("f1", "f2", "f3", "f4"):
        caller.delete(f"/api/vibe/files/{sid}", params={"path": name})
    assert caller.run(sid, code="print('room again')")["output"] == "room again\n"


async def test_files_reach_the_sandbox_read_only() -> None:
    workspace = Path(tempfile.mkdtemp(dir=WORKSPACES))
    os.chmod(workspace, 0o777)  # noqa: S103 - written by a sandbox uid
    program = Program(("sh", "-c", "cat /tmp/.in/data.txt; echo x > /tmp/.in/data.txt"), {"/tmp/.in/data.txt": b"hi\n"})
    result = await BwrapSandbox().run(SandboxTarget(workspace, 201_002, "x"), program, LIMITS)
    assert result.stdout == "hi\n" and result.exit_code != 0
