"""scripts/demo: the end-to-end transcript, its masking, its failure handling and clean-up."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import DEMO_PASSWORD, REPO_DIR

DEMO = REPO_DIR / "scripts" / "demo"


def demo_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "HOME": os.environ.get("HOME", "/root")}
    env.update(extra)
    return env


def run_demo(*args, env=None, timeout=120):
    return subprocess.run(["bash", str(DEMO), *map(str, args)], capture_output=True, text=True,
                          env=env or demo_env(), timeout=timeout, start_new_session=True)


def work_dir(output):
    match = re.search(r"HOME=(\S+)/home", output)
    assert match, output
    return Path(match.group(1))


def processes_mentioning(path):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(path).encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_demo_runs_end_to_end(build_dir):
    r = run_demo(build_dir)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "all steps passed" in r.stdout
    for step in ("kontist-auth login", "kontist-auth device enroll", "credential fill",
                 "kontist-auth status", "kontist-auth token --json"):
        assert step in r.stdout
    assert "token confirmed by device" in r.stderr
    # the demo plays the person who confirms the device binding request, and says so
    assert 'the person taps "confirm"' in r.stdout
    assert "/__control/binding-requests/" in r.stdout
    assert "confirm it in the Kontist app" in r.stderr
    assert "confirmed:     yes" in r.stdout
    assert '"confirmed":true' in r.stdout
    # tokens only masked: eyJ + 5 characters and an ellipsis, never more
    assert re.search(r"password=eyJ[A-Za-z0-9_-]{5}…", r.stdout)
    assert not re.search(r"eyJ[A-Za-z0-9_-]{6}", out)
    assert DEMO_PASSWORD not in out
    work = work_dir(r.stdout)
    assert not work.exists(), "the temporary directory was left behind"
    assert processes_mentioning(work) == [], "the mock is still running"


def test_demo_takes_the_build_dir_from_the_environment(build_dir):
    r = run_demo(env=demo_env(KONTIST_BUILDDIR=str(build_dir)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all steps passed" in r.stdout


def test_demo_without_a_build_dir_says_how_to_run_it():
    r = run_demo()
    assert r.returncode != 0
    assert "usage: scripts/demo BUILDDIR" in r.stderr


@pytest.mark.parametrize("failing", ["login", "enroll", "token"])
def test_demo_fails_when_a_step_fails_and_cleans_up(tmp_path, build_dir, failing):
    """A kontist-auth that fails one step: the demo stops non-zero, mock stopped, dir gone."""
    fake = tmp_path / "fake-build" / "helper"
    fake.mkdir(parents=True)
    real = build_dir / "helper" / "kontist-auth"
    word = {"login": "login", "enroll": "device", "token": "token"}[failing]
    script = fake / "kontist-auth"
    script.write_text(f"""#!/bin/bash
if [ "$1" = "{word}" ]; then echo "kontist-auth: simulated failure" >&2; exit 4; fi
exec -a "$0" "{real}" "$@"
""")
    script.chmod(0o755)
    (fake / "git-credential-kontist").symlink_to(build_dir / "helper" / "git-credential-kontist")
    r = run_demo(fake.parent)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "all steps passed" not in out
    assert "demo: FAILED" in r.stderr
    work = work_dir(r.stdout)
    assert not work.exists()
    assert processes_mentioning(work) == []
