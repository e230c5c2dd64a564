"""Every configuration and PAM stack example in the documentation is checked.

The examples are extracted from README.md, doc/*.md, the man pages (doc/*.1, doc/*.8, their .EX
blocks) and examples/:

- configuration examples (fenced blocks of `key = value` lines, `cat > FILE.conf <<'EOF'` here
  documents, and the same in the man pages) go through the real parser (tests/docs/examples_check,
  which calls kt_config_parse);
- every pam_kontist.so line, commented-out alternatives included, goes through the module's own
  argument parser (kt_pam_args_parse);

and where an example is complete it is run against the mock: a configuration with a client_id
logs in with the real kontist-auth (base_url, ca_file and the client pointed at the mock, the rest
as written), and every pam_kontist auth line authenticates an enrolled user under pam_wrapper
(the configuration, pins and helper pointed at the test's).
"""

import os
import re
import subprocess

import pytest

from conftest import (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER,
                      PUBLIC_CLIENT_ID, REPO_DIR)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

CONFIG_KEYS = {"base_url", "client_id", "client_secret_file", "scopes", "ca_file",
               "pinned_pubkey", "proxy", "username", "connect_timeout", "timeout",
               "login_timeout"}
CONFIG_LINE = re.compile(r"^\s*([A-Za-z_]+)\s*=")
STACK_LINE = re.compile(r"^\s*#?\s*(auth|account|session|password)\s+(\[[^\]]*\]|\S+)\s+"
                        r"(\S*pam_kontist\.so)(?:\s+(.*?))?\s*$")
HEREDOC = re.compile(r"cat\s+>\s*(\S+)\s+<<\s*'?(\w+)'?\n(.*?)\n\2\n", re.S)


class Example:
    def __init__(self, kind, where, text):
        self.kind = kind      # "config" or "stack"
        self.where = where    # "doc/enrolling.md:87"
        self.text = text      # the configuration, or the stack line

    def __repr__(self):
        return f"<{self.kind} {self.where}>"


def roff_text(line):
    """A line of a man page's .EX block as it reads."""
    for escape, char in ((r"\(aq", "'"), (r"\(dq", '"'), (r"\-", "-"), (r"\e", "\\"),
                         (r"\&", "")):
        line = line.replace(escape, char)
    return line


def blocks(path):
    """(first line number, lines) of each code block: fenced blocks of Markdown, .EX blocks of
    man pages, the whole file for examples/."""
    lines = path.read_text().splitlines()
    if path.suffix == ".md":
        start = None
        for n, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                if start is None:
                    start = n
                else:
                    yield start + 1, [x.strip() if x.startswith("   ") else x
                                      for x in lines[start:n - 1]]
                    start = None
    elif re.fullmatch(r"\.\d", path.suffix):
        start = None
        for n, line in enumerate(lines, 1):
            if line.startswith(".EX"):
                start = n
            elif line.startswith(".EE") and start is not None:
                body = [roff_text(x) for x in lines[start:n - 1] if not x.startswith(".")]
                yield start + 1, body
                start = None
    else:
        yield 1, lines


def is_config(lines):
    body = [x for x in lines if x.strip() and not x.lstrip().startswith("#")]
    keys = [CONFIG_LINE.match(x) for x in body]
    return bool(body) and all(m and m.group(1) in CONFIG_KEYS for m in keys)


def extract(path):
    rel = path.relative_to(REPO_DIR)
    for first, lines in blocks(path):
        text = "\n".join(lines) + "\n"
        for m in HEREDOC.finditer(text):
            if m.group(1).endswith(".conf"):
                line = first + text[:m.start()].count("\n")
                yield Example("config", f"{rel}:{line} ({m.group(1)})", m.group(3) + "\n")
        if is_config(lines):
            yield Example("config", f"{rel}:{first}", text)
        for n, line in enumerate(lines):
            if STACK_LINE.match(line):
                yield Example("stack", f"{rel}:{first + n}", line)


def documents():
    paths = [REPO_DIR / "README.md", *sorted((REPO_DIR / "doc").glob("*.md")),
             *sorted((REPO_DIR / "doc").glob("*.[158]")),
             *sorted(p for p in (REPO_DIR / "examples").rglob("*") if p.is_file())]
    return paths


EXAMPLES = [e for p in documents() for e in extract(p)]
CONFIGS = [e for e in EXAMPLES if e.kind == "config"]
STACKS = [e for e in EXAMPLES if e.kind == "stack"]


def ids(examples):
    return [e.where for e in examples]


def test_the_examples_are_found():
    """A change to the extraction (or to the docs' layout) must not leave nothing to test."""
    where = {e.where.split(":")[0] for e in CONFIGS}
    assert {"README.md", "doc/enrolling.md", "doc/kontist-auth.1"} <= where, CONFIGS
    assert len(CONFIGS) >= 6, CONFIGS
    stack_files = {e.where.split(":")[0] for e in STACKS}
    assert {"examples/pam.d/sshd", "examples/pam.d/sudo", "examples/pam.d/su",
            "examples/pam.d/login", "doc/pam_kontist.8", "doc/enrolling.md"} <= stack_files
    assert len(STACKS) >= 15, STACKS


@pytest.fixture(scope="module")
def checker(build_dir):
    path = build_dir / "tests" / "docs" / "examples_check"
    assert path.exists(), f"{path} is missing: run make check (or make tests/docs/examples_check)"
    return path


def parse_config(checker, tmp_path, example):
    path = tmp_path / "example.conf"
    path.write_text(example.text)
    r = subprocess.run([str(checker), "config", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, f"{example.where}: {r.stderr}\n{example.text}"
    return dict(line.split("=", 1) for line in r.stdout.splitlines())


@pytest.mark.parametrize("example", CONFIGS, ids=ids(CONFIGS))
def test_configuration_example_parses(checker, tmp_path, example):
    values = parse_config(checker, tmp_path, example)
    assert values, f"{example.where}: sets no key"
    # What the example says after a '#' is a comment: never part of a value.
    for key, value in values.items():
        source = [x for x in example.text.splitlines() if CONFIG_LINE.match(x) and
                  CONFIG_LINE.match(x).group(1) == key][-1]
        if "#" in value:
            assert "\\#" in source or '"' in source, f"{example.where}: {key}={value!r}"


def stack_args(example):
    return STACK_LINE.match(example.text).group(4) or ""


@pytest.mark.parametrize("example", STACKS, ids=ids(STACKS))
def test_stack_line_arguments_parse(checker, example):
    r = subprocess.run([str(checker), "pam", *stack_args(example).split()], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"{example.where}: {r.stderr}\n{example.text}"


# -- complete examples against the mock -----------------------------------------------------------

COMPLETE_CONFIGS = [e for e in CONFIGS if re.search(r"(?m)^\s*client_id\s*=", e.text)]


def for_the_mock(text, mock, secret_file):
    """The example with the bank's address, trust and client replaced by the mock's; comments,
    layout and every other key as written."""
    confidential = re.search(r"(?m)^\s*client_secret_file\s*=", text) is not None
    replace = {
        "base_url": mock.url,
        "ca_file": mock.ca_file,
        "client_id": DEMO_CLIENT_ID if confidential else PUBLIC_CLIENT_ID,
        "client_secret_file": str(secret_file),
        "pinned_pubkey": None,  # the example's key file is not the mock's
        "username": None,
    }
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*([A-Za-z_]+)\s*=\s*)(.*?)(\s+#.*)?$", line)
        if m and m.group(2) in replace:
            new = replace.pop(m.group(2))
            if new is None:
                continue
            line = m.group(1) + new + (m.group(4) or "")
        out.append(line)
    if "ca_file" in replace:
        out.append(f"ca_file = {mock.ca_file}")
    if "base_url" in replace:
        out.append(f"base_url = {mock.url}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("example", COMPLETE_CONFIGS, ids=ids(COMPLETE_CONFIGS))
def test_complete_configuration_logs_in(build_dir, tmp_path, mock, example):
    secret = tmp_path / "client-secret"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(DEMO_CLIENT_SECRET + "\n")
    config = tmp_path / "kontist.conf"
    config.write_text(for_the_mock(example.text, mock, secret))
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C"}
    auth = str(build_dir / "helper" / "kontist-auth")
    r = subprocess.run([auth, "--config", str(config), "login", "--user", DEMO_USER,
                        "--password-stdin", "--mfa", "none"], input=DEMO_PASSWORD + "\n", capture_output=True,
                       text=True, env=env, timeout=60, start_new_session=True)
    assert r.returncode == 0, f"{example.where}: {r.stderr}\n{config.read_text()}"
    r = subprocess.run([auth, "--config", str(config), "status"], capture_output=True, text=True,
                       env=env, timeout=30, start_new_session=True)
    assert r.returncode == 0, r.stderr
    assert f"logged in:     {DEMO_USER}" in r.stdout


AUTH_STACKS = [e for e in STACKS if STACK_LINE.match(e.text).group(1) == "auth"]


@pytest.mark.parametrize("example", AUTH_STACKS, ids=ids(AUTH_STACKS))
def test_auth_line_authenticates(world, alice, example):
    """The line as written (control and arguments), with the test's configuration, pins and
    helper: an enrolled user's Kontist password passes."""
    m = STACK_LINE.match(example.text)
    args = [a for a in stack_args(example).split()
            if not a.startswith(("config=", "authfile=", "helper="))]
    line = (f"auth {m.group(2)} {world.module} config={world.config} authfile={world.pins} "
            f"helper={world.helper} {' '.join(args)}")
    (world.services / "example").write_text(line + "\n")
    run = world.run("example", "alice")
    assert run.code == "PAM_SUCCESS", f"{example.where}: {run}"
