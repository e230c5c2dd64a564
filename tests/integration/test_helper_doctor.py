"""kontist-auth doctor against the mock: every check passes on a good setup, and each broken
setup of the table is reported by the check it concerns, with its fix."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DEMO_USER
from kt_crypto import make_key, write_key_pem
from test_helper_env import EXIT_OK, EXIT_USAGE, HelperEnv

SSHD = Path("/usr/sbin/sshd")
GOOD_SSHD_CONFIG = "UsePAM yes\nKbdInteractiveAuthentication yes\nLoginGraceTime 120\n"


class DoctorEnv:
    """A logged-in user with an enrolled device, a PAM stack for sshd and an sshd_config."""

    def __init__(self, root, mock, build_dir):
        self.k = HelperEnv(root / "env", mock, build_dir)
        self.build_dir = Path(build_dir)
        self.device_id, key = mock.enroll_device()
        self.k.config_dir.mkdir(parents=True, mode=0o700)
        write_key_pem(key, self.k.key_file)
        self.k.record_file.write_text(json.dumps({
            "username": DEMO_USER, "device_id": self.device_id, "key": str(self.k.key_file),
            "name": "test device"}))
        self.k.record_file.chmod(0o600)
        r = self.k.login()
        assert r.returncode == EXIT_OK, r.stderr
        assert self.k.cache()["confirmed"] is True
        self.pam_dir = root / "pam.d"
        self.pam_dir.mkdir()
        self.write_stack()
        self.sshd_config = root / "sshd_config"
        self.sshd_config.write_text(GOOD_SSHD_CONFIG)

    def write_stack(self, control="[success=done authinfo_unavail=ignore ignore=ignore "
                                  "default=die]", args="nouserok login_timeout=20", helper=None):
        helper = helper or self.build_dir / "pam_kontist" / "kontist-pam-helper"
        path = self.pam_dir / "sshd"
        path.write_text(
            "# test stack\n"
            "auth requisite pam_nologin.so\n"
            f"auth {control} pam_kontist.so config={self.k.config} helper={helper} {args}\n"
            "auth required pam_unix.so try_first_pass\n"
            "@include common-account\n")
        path.chmod(0o644)

    def run(self, *extra, sshd=""):
        r = self.k.run("doctor", "--json", "--system", "--pam-dir", self.pam_dir,
                       "--sshd-config", self.sshd_config, "--sshd", sshd, *extra)
        assert "Sanitizer" not in r.stderr, r.stderr  # a failing check must not hide a leak
        try:
            report = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"not JSON: {r.stdout!r} {r.stderr!r}") from None
        return r, report


@pytest.fixture
def denv(tmp_path, mock, build_dir):
    return DoctorEnv(tmp_path, mock, build_dir)


def checks(report, name):
    return [c for c in report["checks"] if c["name"] == name]


def assert_all_pass(r, report):
    bad = [c for c in report["checks"] if c["status"] not in ("ok", "skip")]
    assert bad == [], bad
    assert report["ok"] is True and r.returncode == EXIT_OK, (r.returncode, r.stderr)


def test_good_setup_passes_every_check(denv, mock):
    before = len(mock.requests())
    r, report = denv.run()
    assert_all_pass(r, report)
    names = [c["name"] for c in report["checks"]]
    for name in ("config-file", "config", "client-secret", "config-files", "dns", "tcp", "tls",
                 "clock", "token-endpoint", "token-cache", "device-record", "device-key",
                 "device-bound", "pam-stack", "sshd-usepam", "sshd-kbdinteractive",
                 "sshd-logingracetime"):
        assert name in names, name
    assert [c["status"] for c in checks(report, "device-bound")] == ["ok"]
    # No password, and at most three requests: the token probe, one challenge and its answer.
    requests = mock.requests()[before:]
    assert len(requests) <= 3, requests
    assert not any(q.get("grant_type") == "password" for q in requests)
    assert [q for q in requests if q["endpoint"] == "token"][0]["grant_type"] == "refresh_token"


def test_good_setup_plain_lines(denv):
    r = denv.k.run("doctor", "--system", "--pam-dir", denv.pam_dir, "--sshd-config",
                   denv.sshd_config, "--sshd", "")
    assert r.returncode == EXIT_OK, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert all(line.split()[0] in ("ok", "skip") for line in lines[:-1]), r.stdout
    assert lines[-1].endswith("0 failed, 0 skipped") or " 0 failed" in lines[-1]
    assert any(line.startswith("ok    device-bound: ") for line in lines)


def test_doctor_changes_no_file(denv):
    before = {p: p.read_bytes() for p in denv.k.home.rglob("*") if p.is_file()}
    denv.run()
    after = {p: p.read_bytes() for p in denv.k.home.rglob("*") if p.is_file()}
    assert before == after


@pytest.mark.skipif(not SSHD.exists() or os.geteuid() != 0,
                    reason="needs openssh-server and root for sshd -T")
def test_sshd_settings_from_sshd_t(denv, tmp_path):
    hostkey = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)],
                   check=True)
    denv.sshd_config.write_text(f"HostKey {hostkey}\nUsePAM no\n")
    r, report = denv.run(sshd=str(SSHD))
    (usepam,) = checks(report, "sshd-usepam")
    assert usepam["status"] == "fail" and "sshd -T" in usepam["detail"], usepam
    denv.sshd_config.write_text(f"HostKey {hostkey}\n{GOOD_SSHD_CONFIG}")
    r, report = denv.run(sshd=str(SSHD))
    assert_all_pass(r, report)
    assert "sshd -T" in checks(report, "sshd-usepam")[0]["detail"]


# -- broken setups ----------------------------------------------------------------------------

def break_secret_mode(d, mock_factory):
    d.k.secret_file.chmod(0o644)


def break_wrong_ca(d, mock_factory):
    d.k.write_config(ca_file=Path(d.k.mock.ca_file).with_name("untrusted-ca.pem"))


def break_missing_ca(d, mock_factory):
    d.k.write_config(ca_file=d.k.root / "no-such-ca.pem")


def break_key_mode(d, mock_factory):
    d.k.key_file.chmod(0o644)


def break_key_missing(d, mock_factory):
    d.k.key_file.unlink()


def break_key_mismatch(d, mock_factory):
    d.k.key_file.unlink()
    write_key_pem(make_key(), d.k.key_file)


def break_record_mode(d, mock_factory):
    d.k.record_file.chmod(0o644)


def break_cache_mode(d, mock_factory):
    d.k.cache_file.chmod(0o644)


def break_cache_corrupt(d, mock_factory):
    d.k.write_cache_text("{not json")


def break_config_syntax(d, mock_factory):
    with open(d.k.config, "a") as f:
        f.write("bogus_key = 1\n")


def break_config_writable(d, mock_factory):
    d.k.config.chmod(0o666)


def break_client_secret(d, mock_factory):
    d.k.secret_file.write_text("not-the-secret\n")


def break_client_refused_400(d, mock_factory):
    # RFC 6749 allows 400 for invalid_client too: the error code decides, not the status.
    d.k.mock.set_fault(endpoint="token", kind="status", status=400,
                       body={"error": "invalid_client", "error_description": "unknown client"})


def break_unreachable(d, mock_factory):
    d.k.write_config(base_url="https://127.0.0.1:9")


def break_skewed_clock(d, mock_factory):
    skewed = mock_factory("--date-skew", "-600")
    d.k.write_config(base_url=skewed.url, ca_file=skewed.ca_file)


def break_no_usepam(d, mock_factory):
    d.sshd_config.write_text("UsePAM no\nKbdInteractiveAuthentication yes\n")


def break_usepam_in_include(d, mock_factory):
    inc = d.sshd_config.with_name("sshd_config.d")
    inc.mkdir()
    (inc / "10-pam.conf").write_text("UsePAM no\n")
    d.sshd_config.write_text(f"Include {inc}/*.conf\n{GOOD_SSHD_CONFIG}")


def break_usepam_after_nested_include(d, mock_factory):
    inc = d.sshd_config.with_name("sshd_config.d")
    inc.mkdir()
    (inc / "a.conf").write_text(f"Include {inc}/c.conf\n")
    (inc / "c.conf").write_text("PasswordAuthentication no\n")
    (inc / "b.conf").write_text("UsePAM no\n")
    d.sshd_config.write_text(f"Include {inc}/a.conf {inc}/b.conf\n{GOOD_SSHD_CONFIG}")


def break_no_kbd(d, mock_factory):
    d.sshd_config.write_text("UsePAM yes\nKbdInteractiveAuthentication no\n"
                             "PasswordAuthentication no\n")


def break_grace_time(d, mock_factory):
    d.sshd_config.write_text("UsePAM yes\nKbdInteractiveAuthentication yes\nLoginGraceTime 20s\n")


def break_module_argument(d, mock_factory):
    d.write_stack(args="nouserok login_timout=20")


def break_module_helper(d, mock_factory):
    d.write_stack(helper="/nonexistent/kontist-pam-helper")


def break_stack_writable(d, mock_factory):
    (d.pam_dir / "sshd").chmod(0o666)


BROKEN = [
    # (breaker, check, what the detail says, what the fix says)
    (break_secret_mode, "client-secret", "0644", "chmod 0600"),
    (break_wrong_ca, "tls", "certificate", "ca_file"),
    (break_missing_ca, "config-files", "does not exist", "readable"),
    (break_skewed_clock, "clock", "600 s", "timedatectl"),
    (break_key_mode, "device-key", "", "chmod 0600"),
    (break_key_missing, "device-key", "", "enroll again"),
    (break_key_mismatch, "device-bound", "refused", "enroll again"),
    (break_record_mode, "device-record", "", "chmod 0600"),
    (break_cache_mode, "token-cache", "", "chmod 0600"),
    (break_cache_corrupt, "token-cache", "", "kontist-auth login"),
    (break_config_syntax, "config-file", "bogus_key", "kontist.conf(5)"),
    (break_config_writable, "config-file", "", "chmod 0644"),
    (break_client_secret, "token-endpoint", "HTTP 401", "client_secret_file"),
    (break_client_refused_400, "token-endpoint", "HTTP 400 invalid_client", "client_secret_file"),
    (break_unreachable, "tcp", "127.0.0.1", "firewall"),
    (break_no_usepam, "sshd-usepam", "UsePAM no", "UsePAM yes"),
    (break_usepam_in_include, "sshd-usepam", "UsePAM no", "UsePAM yes"),
    (break_usepam_after_nested_include, "sshd-usepam", "UsePAM no", "UsePAM yes"),
    (break_no_kbd, "sshd-kbdinteractive", "no password", "KbdInteractiveAuthentication yes"),
    (break_grace_time, "sshd-logingracetime", "20 s", "LoginGraceTime above"),
    (break_module_argument, "pam-stack", "login_timout", "pam_kontist(8)"),
    (break_module_helper, "pam-stack", "/nonexistent", "helper="),
    (break_stack_writable, "pam-stack", "0666", "chmod 0644"),
]


@pytest.mark.parametrize("breaker,check,detail,fix", BROKEN,
                         ids=[b[0].__name__[len("break_"):] for b in BROKEN])
def test_broken_setup_is_reported_with_its_fix(denv, mock_factory, breaker, check, detail, fix):
    breaker(denv, mock_factory)
    r, report = denv.run()
    assert r.returncode != EXIT_OK and report["ok"] is False
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    mine = [c for c in failed if c["name"] == check]
    assert mine, (check, report["checks"])
    assert detail in mine[0]["detail"], mine[0]
    assert mine[0]["fix"] and fix in mine[0]["fix"], mine[0]


def test_sufficient_is_a_warning_that_explains_the_fallback(denv):
    denv.write_stack(control="sufficient")
    r, report = denv.run()
    (stack,) = checks(report, "pam-stack")
    assert stack["status"] == "warn" and "protects nothing" in stack["detail"]
    assert "default=die" in stack["fix"]
    assert r.returncode == EXIT_OK  # a warning alone does not fail the doctor


def test_fallback_choice_is_explained(denv):
    r, report = denv.run()
    (stack,) = checks(report, "pam-stack")
    assert "only when the API is unavailable" in stack["detail"]
    denv.write_stack(control="requisite")
    r, report = denv.run()
    (stack,) = checks(report, "pam-stack")
    assert stack["status"] == "ok" and "no fallback" in stack["detail"]


@pytest.mark.parametrize("code,args", [
    ("cred_insufficient=ignore", "nouserok"),
    ("service_err=ok", "nouserok"),
    ("system_err=1", "nouserok"),
    ("conv_err=ignore", "nouserok"),
    ("module_unknown=ignore", "nouserok"),
    ("user_unknown=ignore", ""),
    ("auth_err=ignore", "nouserok"),
])
def test_every_failure_that_goes_on_is_a_fallback(denv, code, args):
    """Not only auth_err: a pinned user the module refuses with any code other than an outage
    (a device record without a device, a broken configuration) must not reach the next module."""
    denv.write_stack(control=f"[success=done authinfo_unavail=ignore {code} ignore=ignore "
                     "default=die]", args=args)
    r, report = denv.run()
    (stack,) = checks(report, "pam-stack")
    assert stack["status"] == "warn" and f"({code})" in stack["detail"], stack
    assert "default=die" in stack["fix"]


def test_user_unknown_going_on_is_no_fallback_with_nouserok(denv):
    """With nouserok, PAM_USER_UNKNOWN means the local user does not exist; the next module
    refuses them as well."""
    denv.write_stack(control="[success=done authinfo_unavail=ignore user_unknown=ignore "
                     "ignore=ignore default=die]", args="nouserok")
    r, report = denv.run()
    (stack,) = checks(report, "pam-stack")
    assert stack["status"] == "ok", stack


def write_common_auth(denv, control):
    helper = denv.build_dir / "pam_kontist" / "kontist-pam-helper"
    path = denv.pam_dir / "common-auth"
    path.write_text(f"auth {control} pam_kontist.so config={denv.k.config} helper={helper} "
                    "nouserok\nauth [success=1 default=ignore] pam_unix.so nullok\n"
                    "auth requisite pam_deny.so\nauth required pam_permit.so\n")
    path.chmod(0o644)


@pytest.mark.parametrize("service,include", [
    ("sudo", "@include common-auth"),
    ("su", "auth include common-auth"),
    ("su-l", "auth substack su-inner\n"),
])
def test_sudo_and_su_with_a_fallback_are_warned(denv, service, include):
    """sudo and su include common-auth: a fallback there (the outage one included) gives them the
    local password whenever the API cannot be reached."""
    write_common_auth(denv, "[success=end authinfo_unavail=ignore ignore=ignore default=die]")
    (denv.pam_dir / "su-inner").write_text("@include common-auth\n")
    (denv.pam_dir / service).write_text(f"{include}\n@include common-account\n")
    r, report = denv.run()
    warned = [c for c in checks(report, "pam-stack") if c["status"] == "warn"]
    assert len(warned) == 1, report["checks"]
    assert f"{service}:" in warned[0]["detail"] and "common-auth:1" in warned[0]["detail"]
    assert f"{service} then accepts the local password" in warned[0]["detail"]
    # Kontist or nothing for pinned users: nothing to warn about.
    write_common_auth(denv, "[success=end ignore=ignore default=die]")
    r, report = denv.run()
    assert [c for c in checks(report, "pam-stack") if c["status"] == "warn"] == []
    assert_all_pass(r, report)


def test_match_in_an_included_file_stays_in_that_file(denv):
    """sshd restores the including file's state after an Include: a Match block inside an
    included file does not swallow the settings that follow the Include."""
    inc = denv.sshd_config.with_name("sshd_config.d")
    inc.mkdir()
    (inc / "50-match.conf").write_text("Match User nobody\n    PasswordAuthentication yes\n")
    denv.sshd_config.write_text(f"Include {inc}/*.conf\n{GOOD_SSHD_CONFIG}")
    r, report = denv.run()
    assert_all_pass(r, report)
    assert "sshd_config" in checks(report, "sshd-usepam")[0]["detail"]
    # The file after the one with the Match is still read.
    (inc / "60-pam.conf").write_text("UsePAM no\n")
    r, report = denv.run()
    usepam = checks(report, "sshd-usepam")[0]
    assert usepam["status"] == "fail" and "UsePAM no" in usepam["detail"], usepam


def fake_sshd(tmp_path, marker):
    script = tmp_path / "fake-sshd"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nprintf 'usepam yes\\n"
                      "kbdinteractiveauthentication yes\\nlogingracetime 120\\n'\n")
    script.chmod(0o755)
    return script


@pytest.mark.skipif(os.geteuid() != 0, reason="the check is for the doctor run as root")
@pytest.mark.parametrize("owner,mode", [(0, 0o757), (0, 0o775), (65534, 0o755)])
def test_root_runs_no_sshd_others_can_change(denv, tmp_path, owner, mode):
    """As root, --sshd PATH would otherwise run whatever is at PATH with root's rights."""
    marker = tmp_path / "ran"
    script = fake_sshd(tmp_path, marker)
    os.chown(script, owner, 0)
    script.chmod(mode)
    r, report = denv.run(sshd=str(script))
    assert not marker.exists()
    (warn,) = [c for c in checks(report, "sshd") if c["status"] == "warn"]
    assert "not run as root" in warn["detail"] and f"{mode:04o}" in warn["detail"], warn
    # The settings are read from sshd_config instead.
    assert str(denv.sshd_config) in checks(report, "sshd-usepam")[0]["detail"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the check is for the doctor run as root")
def test_root_runs_a_root_owned_sshd(denv, tmp_path):
    marker = tmp_path / "ran"
    script = fake_sshd(tmp_path, marker)
    os.chown(script, 0, 0)
    r, report = denv.run(sshd=str(script))
    assert marker.exists()
    assert "sshd -T" in checks(report, "sshd-usepam")[0]["detail"]
    assert_all_pass(r, report)


def test_proxy_password_is_not_printed(denv):
    config = Path(str(denv.k.config))
    config.write_text(config.read_text() + "proxy = http://proxyuser:pr0xy-s3cret@127.0.0.1:9/x\n")
    r, report = denv.run()  # the proxy refuses the connection: the request fails at once
    assert "pr0xy-s3cret" not in r.stdout + r.stderr and "proxyuser" not in r.stdout
    (dns,) = checks(report, "dns")
    assert "proxy http://127.0.0.1:9:" in dns["detail"], dns


HOSTILE_NAME = b"evil\x1b]0;owned\x07\x1b[2J\nok    fake: all good\xff\xc2\x9b.conf"


def run_raw(denv, *args):
    return subprocess.run([str(denv.k.auth), "doctor", "--offline", "--no-system", *args],
                          capture_output=True, env=denv.k.env, timeout=60)


def test_control_characters_in_names_are_escaped(denv, tmp_path):
    """A file name is bytes chosen by whoever named the file: in plain text it must not reach
    the terminal as escape sequences or a line of its own, and --json must stay valid JSON."""
    hostile = os.path.join(os.fsencode(tmp_path), HOSTILE_NAME)
    with open(hostile, "wb") as f:
        f.write(Path(str(denv.k.config)).read_bytes())
    os.chmod(hostile, 0o644)
    r = run_raw(denv, b"--config", hostile)
    out = r.stdout
    assert b"\x1b" not in out and b"\x07" not in out and b"\xff" not in out, out
    assert b"\xc2\x9b" not in out, out  # C1 CSI
    assert not any(line.startswith(b"ok    fake") for line in out.splitlines()), out
    assert b"evil\\x1b]0;owned\\x07\\x1b[2J\\x0aok    fake: all good\\xff\\xc2\\x9b.conf" in out, out
    r = run_raw(denv, "--json", b"--config", hostile)
    report = json.loads(r.stdout.decode("utf-8"))  # strict: valid UTF-8, valid JSON
    details = " ".join(c["detail"] for c in report["checks"])
    assert "evil\x1b]0;owned\x07\x1b[2J\nok    fake: all good\ufffd\x9b.conf" in details, details


@pytest.mark.parametrize("include", ["@include common-auth", "auth substack common-auth",
                                     "auth include common-auth"])
def test_sshd_stack_through_an_included_file_checks_sshd(denv, include):
    """With the pam-auth-update profile the sshd stack names pam_kontist.so only through
    common-auth: sshd's settings are checked all the same, against that line's login_timeout."""
    write_common_auth(denv, "[success=end ignore=ignore default=die]")
    common = denv.pam_dir / "common-auth"
    common.write_text(common.read_text().replace("nouserok", "nouserok login_timeout=40", 1))
    (denv.pam_dir / "sshd").write_text(f"{include}\n@include common-account\n")
    denv.sshd_config.write_text("UsePAM no\nKbdInteractiveAuthentication yes\n"
                                "LoginGraceTime 30\n")
    r, report = denv.run()
    usepam = checks(report, "sshd-usepam")
    assert usepam and usepam[0]["status"] == "fail", report["checks"]
    grace = checks(report, "sshd-logingracetime")[0]
    assert grace["status"] == "fail" and "login_timeout 40 s" in grace["detail"], grace


def stack_config_world_writable(denv, tmp_path):
    config = denv.k.write_config(tmp_path / "loose.conf")
    config.chmod(0o666)
    return config, "0666"


def stack_config_typo(denv, tmp_path):
    config = denv.k.write_config(tmp_path / "typo.conf")
    config.write_text(config.read_text() + "bsae_url = https://evil.example\n")
    return config, "typo.conf:"


def stack_config_secret_missing(denv, tmp_path):
    config = denv.k.write_config(tmp_path / "nosecret.conf",
                                 client_secret_file=tmp_path / "no-such-secret")
    return config, "no-such-secret"


@pytest.mark.parametrize("make", [stack_config_world_writable, stack_config_typo,
                                  stack_config_secret_missing])
def test_stack_config_is_checked_like_the_helper_reads_it(denv, tmp_path, make):
    """config= that exists but that the helper refuses (its owner or mode, its content, a file it
    names) makes every login of that stack a PAM_SERVICE_ERR: not ok just because it exists."""
    config, detail = make(denv, tmp_path)
    denv.write_stack()
    stack = denv.pam_dir / "sshd"
    stack.write_text(stack.read_text().replace(f"config={denv.k.config} ", f"config={config} "))
    assert f"config={config} " in stack.read_text()
    r, report = denv.run()
    bad = [c for c in checks(report, "pam-stack") if c["status"] == "fail"]
    assert bad and "refused by the helper" in bad[0]["detail"], report["checks"]
    assert detail in bad[0]["detail"], bad[0]


def test_stack_helper_others_can_write_is_refused(denv, tmp_path):
    helper = tmp_path / "kontist-pam-helper"
    helper.write_bytes((denv.build_dir / "pam_kontist" / "kontist-pam-helper").read_bytes())
    helper.chmod(0o775)
    denv.write_stack(helper=helper)
    r, report = denv.run()
    bad = [c for c in checks(report, "pam-stack") if c["status"] == "fail"]
    assert bad and "writable by group or others" in bad[0]["detail"], report["checks"]


def test_not_logged_in_skips_the_bank_check(denv):
    denv.k.cache_file.unlink()
    r, report = denv.run()
    assert checks(report, "token-cache")[0]["status"] == "warn"
    bound = checks(report, "device-bound")[0]
    assert bound["status"] == "skip" and "log in" in bound["detail"]
    assert bound["fix"] == "kontist-auth login", bound
    assert r.returncode == EXIT_OK


def test_offline_makes_no_request(denv, mock):
    before = len(mock.requests())
    r, report = denv.run("--offline")
    assert len(mock.requests()) == before
    assert checks(report, "api")[0]["status"] == "skip"
    assert r.returncode == EXIT_OK


def test_no_system_skips_pam_and_sshd(denv):
    r = denv.k.run("doctor", "--json", "--no-system", "--pam-dir", denv.pam_dir)
    report = json.loads(r.stdout)
    assert not checks(report, "pam-stack") and not checks(report, "sshd-usepam")


def test_usage_errors(denv):
    r = denv.k.run("doctor", "--bogus")
    assert r.returncode == EXIT_USAGE and "unknown option '--bogus'" in r.stderr
    r = denv.k.run("doctor", "extra")
    assert r.returncode == EXIT_USAGE
    r = denv.k.run("doctor", "--help")
    assert r.returncode == EXIT_OK and "Usage: kontist-auth doctor" in r.stdout


def test_version_names_the_libraries(denv):
    r = denv.k.run("--version")
    assert r.returncode == EXIT_OK
    lines = r.stdout.splitlines()
    assert lines[0].startswith("kontist-auth ")
    assert lines[1].startswith("libcurl ") and "not loadable" not in lines[1]
    assert lines[2].startswith("OpenSSL 3.")
    assert lines[3].startswith("json-c ")

