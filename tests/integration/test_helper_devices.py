"""kontist-auth device list and device remove against the mock: the list with this machine marked
(text and --json), removing another device and this machine's (with the local state checked file
by file afterwards), the questions asked and refused, and every way the bank can say no."""

import json
import os
import pty
import select
import subprocess
import time

import pytest

from test_helper_env import (EXIT_AUTH, EXIT_IO, EXIT_MFA, EXIT_OK, EXIT_UNAVAILABLE,  # noqa: F401
                             EXIT_USAGE, kenv, kenv_factory)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def graphql_ops(mock):
    return [r["operation"] for r in mock.requests("graphql")]


def snapshot(kenv):
    """Every file below HOME with its bytes: what 'nothing changed here' compares."""
    files = {}
    for path in sorted(kenv.home.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(kenv.home))] = path.read_bytes()
    return files


def bank_ids(mock):
    return [d["id"] for d in mock.state()["devices"]]


@pytest.fixture
def enrolled(kenv):
    """This machine enrolled and logged in with it, and a second device ("old laptop") bound to
    the same account elsewhere. Returns (this_id, other_id)."""
    kenv.confirmed_login()
    this_id = json.loads(kenv.record_file.read_text())["device_id"]
    other_id, _ = kenv.mock.enroll_device(name="old laptop")
    return this_id, other_id


# -- list ----------------------------------------------------------------------------------------

def test_list_shows_every_device_and_marks_this_machine(kenv, enrolled):
    this_id, other_id = enrolled
    r = kenv.run("device", "list")
    assert r.returncode == EXIT_OK, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME"]
    [mine] = [line for line in lines if line.startswith(this_id)]
    [other] = [line for line in lines if line.startswith(other_id)]
    assert mine.endswith("(this machine)")
    assert "old laptop" in other and "(this machine)" not in other
    assert len(lines) == 3
    assert graphql_ops(kenv.mock)[-1] == "listBoundDevices"


def test_list_json_for_scripts(kenv, enrolled):
    this_id, other_id = enrolled
    r = kenv.run("device", "list", "--json")
    assert r.returncode == EXIT_OK, r.stderr
    data = json.loads(r.stdout)
    assert data["username"] == "demo@example.com"
    assert {d["id"]: d["this_machine"] for d in data["devices"]} == {this_id: True,
                                                                       other_id: False}
    assert {d["id"]: d["name"] for d in data["devices"]}[other_id] == "old laptop"
    assert all(set(d) == {"id", "name", "this_machine"} for d in data["devices"])


def test_list_shows_names_without_control_characters(kenv, enrolled):
    odd_id, _ = kenv.mock.enroll_device(name="evil\x1b[2J\x07 box\u0085 \u00e4")
    r = kenv.run("device", "list")
    assert r.returncode == EXIT_OK, r.stderr
    [line] = [line for line in r.stdout.splitlines() if line.startswith(odd_id)]
    assert "\x1b" not in line and "\x07" not in line and "\u0085" not in line
    assert "evil\\x1b[2J\\x07 box\\xc2\\x85 \u00e4" in line
    # --json keeps the name as the bank sent it, escaped
    data = json.loads(kenv.run("device", "list", "--json").stdout)
    assert {d["id"]: d["name"] for d in data["devices"]}[odd_id] == "evil\x1b[2J\x07 box\u0085 \u00e4"


def test_list_without_a_record_marks_nothing(kenv, enrolled):
    kenv.record_file.unlink()
    data = json.loads(kenv.run("device", "list", "--json").stdout)
    assert [d["this_machine"] for d in data["devices"]] == [False, False]


def test_list_needs_a_confirmed_login(kenv):
    assert kenv.login().returncode == EXIT_OK     # no device: an unconfirmed token
    r = kenv.run("device", "list")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "not confirmed" in r.stderr
    assert kenv.mock.requests("graphql") == []


def test_list_when_not_logged_in(kenv):
    r = kenv.run("device", "list")
    assert r.returncode == EXIT_AUTH, r.stderr
    assert "kontist-auth login" in r.stderr
    assert kenv.mock.requests() == []


# -- remove another device -------------------------------------------------------------------------

def test_remove_another_device_leaves_this_machine_alone(kenv, enrolled):
    this_id, other_id = enrolled
    before = snapshot(kenv)
    r = kenv.run("device", "remove", other_id, "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"removed device {other_id} (\"old laptop\") at the bank" in r.stderr
    assert bank_ids(kenv.mock) == [this_id]
    assert graphql_ops(kenv.mock)[-2:] == ["listBoundDevices", "deleteBoundDevice"]
    # the id travelled as a variable, not inside the query
    [delete] = [r for r in kenv.mock.requests("graphql") if r["operation"] == "deleteBoundDevice"]
    assert other_id not in json.dumps(delete.get("query", ""))
    # this machine's files: byte for byte what they were
    assert snapshot(kenv) == before
    assert kenv.run("token").returncode == EXIT_OK


# -- remove this machine's device ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["--this", "id"])
def test_remove_this_machine_removes_record_key_and_tokens(kenv, enrolled, how):
    this_id, other_id = enrolled
    assert kenv.record_file.exists() and kenv.key_file.exists() and kenv.cache_file.exists()
    assert kenv.cache()["device_id"] == this_id
    r = kenv.run("device", "remove", "--this" if how == "--this" else this_id, "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert bank_ids(kenv.mock) == [other_id]
    # file by file
    assert not kenv.record_file.exists()
    assert not kenv.key_file.exists()
    assert not kenv.cache_file.exists()
    assert [p.name for p in kenv.config_dir.iterdir()] == []
    assert [p.name for p in kenv.state_dir.iterdir()] == ["tokens.lock"]
    assert f"device record ({kenv.record_file}): removed" in r.stderr
    assert f"key ({kenv.key_file}): removed" in r.stderr
    assert f"cached tokens it confirmed ({kenv.cache_file}): removed" in r.stderr
    assert "'kontist-auth login --no-device' and 'kontist-auth device enroll'" in r.stderr
    # and the machine says so
    r = kenv.run("token")
    assert r.returncode == EXIT_AUTH


def test_remove_this_machine_removes_the_default_key_of_a_record_without_key(kenv, enrolled):
    """A record without "key" signs with the default key file: that key goes with the device."""
    this_id, other_id = enrolled
    record = json.loads(kenv.record_file.read_text())
    del record["key"]
    kenv.record_file.write_text(json.dumps(record))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert bank_ids(kenv.mock) == [other_id]
    assert not kenv.key_file.exists() and not kenv.record_file.exists()
    assert f"key ({kenv.key_file}): removed" in r.stderr


def test_remove_this_machine_keeps_a_key_it_did_not_make(kenv, enrolled, tmp_path):
    this_id, _ = enrolled
    own_key = tmp_path / "my-key.pem"
    os.rename(kenv.key_file, own_key)
    record = json.loads(kenv.record_file.read_text())
    record["key"] = str(own_key)
    kenv.record_file.write_text(json.dumps(record))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert own_key.exists()
    assert not kenv.record_file.exists() and not kenv.cache_file.exists()
    assert f"key ({own_key}): kept" in r.stderr
    assert "kontist-auth did not make it there" in r.stderr


def test_remove_this_machine_names_a_hardware_key_to_remove(kenv, enrolled):
    record = json.loads(kenv.record_file.read_text())
    record["key"] = "handle:0x81000123"
    kenv.record_file.write_text(json.dumps(record))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert "key (handle:0x81000123): kept" in r.stderr
    assert "tpm2_evictcontrol -C o -c 0x81000123" in r.stderr
    # the PEM file was never the record's key: it stays too
    assert kenv.key_file.exists()
    assert not kenv.record_file.exists()


def test_remove_this_machine_removes_the_tpm_key_blob_enrolling_made(kenv, enrolled):
    # removal never loads the key: a blob file where --tpm puts it stands for a real one
    blob = kenv.config_dir / "device-key.tss2"
    blob.write_text("-----BEGIN TSS2 PRIVATE KEY-----\n")
    blob.chmod(0o600)
    kenv.key_file.unlink()
    record = json.loads(kenv.record_file.read_text())
    record["key"] = f"tpm2:{blob}"
    kenv.record_file.write_text(json.dumps(record))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"key (tpm2:{blob}): removed" in r.stderr
    assert [p.name for p in kenv.config_dir.iterdir()] == []
    assert not kenv.cache_file.exists()


def test_a_token_key_stays_and_a_pin_in_its_uri_is_never_shown(kenv, enrolled):
    this_id, other_id = enrolled
    record = json.loads(kenv.record_file.read_text())
    # A record naming a PIN in its URI is refused before the bank is asked, without the PIN.
    record["key"] = "pkcs11:token=kontist;object=device;pin-value=s3cr3t-PIN"
    kenv.record_file.write_text(json.dumps(record))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode != EXIT_OK
    assert "s3cr3t-PIN" not in r.stderr + r.stdout
    assert "pin-value" in r.stderr
    assert sorted(bank_ids(kenv.mock)) == sorted([this_id, other_id])
    assert kenv.record_file.exists() and kenv.cache_file.exists()

    record["key"] = "pkcs11:token=kontist;object=device?pin-source=file:/etc/kontist/pin"
    kenv.record_file.write_text(json.dumps(record))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_OK, r.stderr
    assert "key (pkcs11:token=kontist;object=device?pin-source=file:/etc/kontist/pin): kept" \
        in r.stderr, r.stderr
    assert "stays on the PKCS#11 token" in r.stderr and "pkcs11-tool --delete-object" in r.stderr
    assert not kenv.record_file.exists() and not kenv.cache_file.exists()
    assert bank_ids(kenv.mock) == [other_id]


def test_a_local_step_that_fails_is_named(kenv, enrolled):
    this_id, other_id = enrolled
    # a key that cannot be unlinked: a non-empty directory where the file was
    kenv.key_file.unlink()
    kenv.key_file.mkdir()
    (kenv.key_file / "x").write_text("x")
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_IO, r.stderr
    assert f"device {this_id} was removed at the bank, but not everything here" in r.stderr
    assert f"key ({kenv.key_file}): NOT removed" in r.stderr
    assert f"device record ({kenv.record_file}): removed" in r.stderr
    assert bank_ids(kenv.mock) == [other_id]
    assert not kenv.record_file.exists() and not kenv.cache_file.exists()
    assert kenv.key_file.is_dir()


# -- refusals: nothing changes -------------------------------------------------------------------------

def test_without_a_terminal_it_needs_yes(kenv, enrolled):
    before = snapshot(kenv)
    requests = len(kenv.mock.requests())
    r = kenv.run("device", "remove", "--this")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "pass --yes" in r.stderr
    assert len(kenv.mock.requests()) == requests
    assert len(bank_ids(kenv.mock)) == 2 and snapshot(kenv) == before


def test_unknown_id_changes_nothing(kenv, enrolled):
    before = snapshot(kenv)
    r = kenv.run("device", "remove", "no-such-device", "--yes")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "the bank lists no device no-such-device for demo@example.com" in r.stderr
    assert "'kontist-auth device list' shows the account's devices" in r.stderr
    assert "deleteBoundDevice" not in graphql_ops(kenv.mock)
    assert len(bank_ids(kenv.mock)) == 2 and snapshot(kenv) == before


@pytest.mark.parametrize("bad", ["../x", "a b", "x" * 129, "", "id\n"])
def test_malformed_id_is_refused_before_anything(kenv, enrolled, bad):
    requests = len(kenv.mock.requests())
    r = kenv.run("device", "remove", bad, "--yes")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert len(kenv.mock.requests()) == requests


@pytest.mark.parametrize("args", [[], ["--this", "abc"], ["a", "b"]])
def test_remove_wants_one_id_or_this(kenv, args):
    r = kenv.run("device", "remove", "--yes", *args)
    assert r.returncode == EXIT_USAGE
    assert kenv.mock.requests() == []


def gql_errors(code, message):
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}


@pytest.mark.parametrize("operation", ["listBoundDevices", "deleteBoundDevice"])
def test_graphql_errors_are_reported_with_their_messages(kenv, enrolled, operation):
    before = snapshot(kenv)
    kenv.mock.set_fault(endpoint="graphql", operation=operation, kind="status", status=200,
                        body=gql_errors("FORBIDDEN", "device removal is locked for this account"))
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "device removal is locked for this account" in r.stderr
    assert "refused" in r.stderr
    assert "device enroll" not in r.stderr          # not the enrolling hint
    assert len(bank_ids(kenv.mock)) == 2 and snapshot(kenv) == before


def test_graphql_error_on_list(kenv, enrolled):
    kenv.mock.set_fault(endpoint="graphql", operation="listBoundDevices", kind="status",
                        status=200, body=gql_errors("INTERNAL_SERVER_ERROR", "list is broken"))
    r = kenv.run("device", "list")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "list is broken" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("command", [["list"], ["remove", "--this", "--yes"]])
def test_unauthenticated_means_log_in_again(kenv, enrolled, command):
    before = snapshot(kenv)
    kenv.mock.set_fault(endpoint="graphql", kind="status", status=200,
                        body=gql_errors("UNAUTHENTICATED", "token revoked"))
    r = kenv.run("device", *command)
    assert r.returncode == EXIT_AUTH, r.stderr
    assert "token revoked" in r.stderr
    assert "log in again with 'kontist-auth login'" in r.stderr
    assert len(bank_ids(kenv.mock)) == 2 and snapshot(kenv) == before


@pytest.mark.parametrize("operation", ["listBoundDevices", "deleteBoundDevice"])
def test_rate_limited(kenv, enrolled, operation):
    before = snapshot(kenv)
    kenv.mock.set_fault(endpoint="graphql", operation=operation, kind="status", status=429,
                        retry_after=7)
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "rate limiting requests; try again in 7 s" in r.stderr
    assert len(bank_ids(kenv.mock)) == 2 and snapshot(kenv) == before


@pytest.mark.parametrize("fault", [{"kind": "status", "status": 503},
                                   {"kind": "html_body", "status": 502},
                                   {"kind": "malformed_json"},
                                   {"kind": "close"}])
def test_bank_failure_on_removal_keeps_everything_here(kenv, enrolled, fault):
    before = snapshot(kenv)
    kenv.mock.set_fault(endpoint="graphql", operation="deleteBoundDevice", **fault)
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert snapshot(kenv) == before
    assert kenv.record_file.exists() and kenv.key_file.exists() and kenv.cache_file.exists()
    assert "removed" not in r.stderr.replace("remove bound device", "")


def test_a_bank_that_answers_false_removed_nothing(kenv, enrolled):
    before = snapshot(kenv)
    kenv.mock.set_fault(endpoint="graphql", operation="deleteBoundDevice", kind="status",
                        status=200, body={"data": {"deleteBoundDevice": False}})
    r = kenv.run("device", "remove", "--this", "--yes")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "the bank did not remove device" in r.stderr
    assert snapshot(kenv) == before


# -- the question on a terminal ----------------------------------------------------------------------

def run_on_pty(kenv, args, answer, timeout=20):
    """Runs kontist-auth with a pty as its controlling terminal and answers the first question."""
    master, slave = pty.openpty()

    def ctty():
        os.setsid()
        import fcntl
        import termios
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([str(kenv.auth), *args], env=kenv.env, stdin=slave, stdout=slave,
                            stderr=slave, preexec_fn=ctty, close_fds=True)
    os.close(slave)
    out, answered = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not answered and b"[y/N]" in out:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=5)
    os.close(master)
    return proc.returncode, out.decode(errors="replace")


def test_terminal_question_no_keeps_everything(kenv, enrolled):
    this_id, _ = enrolled
    before = snapshot(kenv)
    rc, out = run_on_pty(kenv, ["device", "remove", "--this"], "n")
    assert "[y/N]" in out
    assert f"device {this_id} (\"" in out and "THIS machine's device" in out
    assert rc == EXIT_USAGE, out
    assert "was not removed" in out
    assert "deleteBoundDevice" not in graphql_ops(kenv.mock)
    assert snapshot(kenv) == before


def test_terminal_question_yes_removes(kenv, enrolled):
    _, other_id = enrolled
    rc, out = run_on_pty(kenv, ["device", "remove", other_id], "y")
    assert rc == EXIT_OK, out
    assert "old laptop" in out
    assert other_id not in bank_ids(kenv.mock)


def test_help_texts(kenv):
    for sub, words in (("list", ["--json", "this machine"]),
                       ("remove", ["--this", "--yes", "TPM", "PKCS#11", "asks"])):
        r = kenv.run("device", sub, "--help")
        assert r.returncode == EXIT_OK
        for w in words:
            assert w in r.stdout, (sub, w)
    r = kenv.run("device", "--help")
    assert "device list" in r.stdout and "device remove" in r.stdout
