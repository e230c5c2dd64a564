"""The bash completion script completes commands, options and operations (bash-completion's own
helpers loaded, as an interactive shell has them)."""

import subprocess
from pathlib import Path

from conftest import REPO_DIR

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
SCRIPT = REPO_DIR / "completion" / "kontist-auth.bash"


def complete(words, build_dir, script=SCRIPT, function="_kontist_auth"):
    """COMPREPLY for the command line `words` (the last word is the one being completed)."""
    bindir = Path(build_dir) / "helper"
    program = f"""
source {BASH_COMPLETION}
source {script}
COMP_WORDS=({' '.join(repr(w) if w else "''" for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE="{' '.join(words)}"
COMP_POINT=${{#COMP_LINE}}
{function} {words[0]} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True,
                       text=True, timeout=30,
                       env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": "/nonexistent",
                            "LANG": "C"})
    assert r.returncode == 0, r.stderr
    return sorted(x for x in r.stdout.splitlines() if x)


def test_commands(build_dir):
    assert complete(["kontist-auth", ""], build_dir) == sorted(
        ["login", "device", "token", "status", "logout", "credential", "doctor"])
    assert complete(["kontist-auth", "do"], build_dir) == ["doctor"]


def test_command_options_come_from_its_help(build_dir):
    options = complete(["kontist-auth", "doctor", "--"], build_dir)
    for option in ("--json", "--offline", "--system", "--no-system", "--pam-dir",
                   "--sshd-config", "--sshd", "--config", "--help"):
        assert option in options, options
    assert "--json" in complete(["kontist-auth", "token", "--j"], build_dir)


def test_global_options_and_operations(build_dir):
    assert complete(["kontist-auth", "--v"], build_dir) == ["--version"]
    assert complete(["kontist-auth", "credential", ""], build_dir) == ["erase", "get", "store"]
    assert complete(["kontist-auth", "device", ""], build_dir) == ["enroll", "list", "remove"]
    assert complete(["kontist-auth", "device", "r"], build_dir) == ["remove"]


def test_device_subcommand_options_come_from_their_help(build_dir):
    assert complete(["kontist-auth", "device", "list", "--"], build_dir) == sorted(
        ["--json", "--config", "--help"])
    options = complete(["kontist-auth", "device", "remove", "--"], build_dir)
    for option in ("--this", "--yes", "--config", "--help"):
        assert option in options, options
    assert "--otp-stdin" in complete(["kontist-auth", "device", "enroll", "--"], build_dir)
    assert complete(["kontist-auth", "--config", "x", "device", "remove", "--t"],
                    build_dir) == ["--this"]
    assert complete(["git-credential-kontist", "g"], build_dir,
                    function="_git_credential_kontist") == ["get"]


def test_zsh_completion_parses_and_names_both_commands():
    script = REPO_DIR / "completion" / "_kontist-auth"
    assert script.read_text().splitlines()[0] == "#compdef kontist-auth git-credential-kontist"
    r = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for command in ("login", "device", "token", "status", "logout", "credential", "doctor"):
        assert f"'{command}:" in script.read_text(), command
    for action in ("enroll", "list", "remove"):
        assert f"'{action}[" in script.read_text(), action


def test_zsh_completion_offers_every_option_of_each_command(build_dir):
    """Each command's own options, as its --help lists them, are in its zsh case."""
    import re
    text = (REPO_DIR / "completion" / "_kontist-auth").read_text()
    program = Path(build_dir) / "helper" / "kontist-auth"
    for command, case in ((["login"], "login)"), (["token"], "token)"),
                          (["doctor"], "doctor)"), (["device", "enroll"], "enroll)"),
                          (["device", "list"], "list)"), (["device", "remove"], "remove)")):
        help_text = subprocess.run([str(program), *command, "--help"], capture_output=True,
                                   text=True, timeout=30, check=True).stdout
        options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, re.M))
        options.discard("--help")
        assert options, command
        start = text.index(case)
        body = text[start:text.index(";;", start)]
        for option in options:
            assert re.search(re.escape(option) + r"(?![a-z-])", body), (command, option)
