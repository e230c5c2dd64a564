"""libcurl is loaded on the first request, not when kontist-auth starts.

A cached token and a git credential never map libcurl or its dependencies. When libcurl cannot be
loaded (the library is broken, lacks functions or is too old), what needs no request still works
and what needs one fails with a message that names the library and the package to install: an
internal error (exit 1), never "unavailable".

The broken libraries are put in front of the real one with LD_LIBRARY_PATH, which the dynamic
linker honours for kontist-auth as for any program a user runs. kontist-pam-helper, which runs as
root, gets an empty environment from the PAM module, so nothing of the caller's can choose what it
loads: the last test checks that.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pam_support import cache_path
from test_helper_env import EXIT_INTERNAL, EXIT_OK, EXIT_UNAVAILABLE, kenv  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

SRC = Path(__file__).resolve().parent.parent.parent
CC = shutil.which("cc") or shutil.which("gcc")


def _compile(out, source, *extra):
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(out), str(src), *extra], check=True,
                   capture_output=True)


def fake_libcurl(base, kind):
    """A directory holding a libcurl.so.4 that cannot be used, of the given kind."""
    d = Path(base) / f"fake-{kind}"
    d.mkdir()
    lib = d / "libcurl.so.4"
    if kind == "not-elf":
        lib.write_text("this is not a shared library\n")
    elif kind == "missing-dependency":
        dep = d / "libkontist-test-gone.so.1"
        _compile(dep, "int kontist_test_gone(void) { return 1; }\n",
                 "-Wl,-soname,libkontist-test-gone.so.1")
        _compile(lib, "int kontist_test_gone(void);\n"
                      "int curl_global_init(long f) { (void)f; return kontist_test_gone(); }\n",
                 "-Wl,--no-as-needed", f"-L{d}", "-l:libkontist-test-gone.so.1")
        dep.unlink()
    elif kind == "no-functions":
        _compile(lib, "int kontist_test_not_curl = 1;\n")
    elif kind == "too-old":
        cflags = subprocess.run(["pkg-config", "--cflags", "libcurl"], capture_output=True,
                                text=True).stdout.split()
        _compile(lib, (SRC / "tests" / "unit" / "fake_libcurl.c").read_text(), *cflags)
    else:
        raise ValueError(kind)
    return d


FAKES = ["not-elf", "missing-dependency", "no-functions", "too-old"]
EXPECTED = {
    "not-elf": "cannot load libcurl.so.4: ",
    "missing-dependency": "cannot load libcurl.so.4: libkontist-test-gone.so.1",
    "no-functions": "cannot use libcurl.so.4: it has no curl_",
    "too-old": "cannot use libcurl.so.4: it is libcurl 7.74.0, 7.87.0 or newer is needed",
}


def loaded_libraries(result):
    """The libraries the dynamic linker reported loading (LD_DEBUG=files) in a run's stderr."""
    names = set()
    for line in result.stderr.splitlines():
        if "file=" in line and ("needed by" in line or "dynamically loaded by" in line):
            names.add(line.split("file=", 1)[1].split()[0])
    return names


def test_kontist_auth_links_no_libcurl(kenv):
    needed = subprocess.run(["readelf", "-dW", str(kenv.auth)], capture_output=True,
                            text=True, check=True).stdout
    assert "(NEEDED)" in needed
    assert "libcurl" not in needed
    ldd = subprocess.run(["ldd", str(kenv.auth)], capture_output=True, text=True).stdout
    for lib in ("libcurl", "libssl", "libnghttp2", "libgssapi", "libldap", "libssh2"):
        assert lib not in ldd, ldd


def test_cached_paths_map_no_libcurl(kenv):
    kenv.confirmed_login()
    token = kenv.token()
    debug = {"LD_DEBUG": "files"}

    r = kenv.run("token", env=debug)
    assert r.returncode == EXIT_OK
    assert r.stdout.strip() == token
    libs = loaded_libraries(r)
    assert "libcrypto.so.3" in libs  # the report is there at all
    assert not any("libcurl" in lib for lib in libs), libs

    r = kenv.credential("get", f"protocol=https\nhost={kenv.host}\n\n", env=debug)
    assert r.returncode == EXIT_OK
    assert f"password={token}" in r.stdout
    assert not any("libcurl" in lib for lib in loaded_libraries(r))

    # A refresh is a request: it loads libcurl, and the tree it brings.
    kenv.expire_soon()
    r = kenv.run("token", env=debug)
    assert r.returncode == EXIT_OK, r.stderr
    libs = loaded_libraries(r)
    assert "libcurl.so.4" in libs
    assert "libssl.so.3" in libs
    assert any("dynamically loaded by" in line and "libcurl.so.4" in line
               for line in r.stderr.splitlines())


@pytest.mark.skipif(CC is None, reason="needs a C compiler to build the broken libraries")
@pytest.mark.parametrize("kind", FAKES)
def test_unusable_libcurl_fails_only_what_needs_a_request(kenv, tmp_path, kind):
    kenv.confirmed_login()
    token = kenv.token()
    broken = {"LD_LIBRARY_PATH": str(fake_libcurl(tmp_path, kind))}
    requests = len(kenv.mock.requests())

    # Nothing that needs no request notices.
    r = kenv.run("token", env=broken)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (EXIT_OK, token, "")
    r = kenv.credential("get", f"protocol=https\nhost={kenv.host}\n\n", env=broken)
    assert r.returncode == EXIT_OK, r.stderr
    assert f"password={token}" in r.stdout
    r = kenv.run("status", env=broken)
    assert r.returncode == EXIT_OK, r.stderr

    # A login needs requests: a clear error, and not one that reads as an outage.
    r = kenv.login(env=broken)
    assert r.returncode == EXIT_INTERNAL, r.stderr
    assert r.returncode != EXIT_UNAVAILABLE
    assert EXPECTED[kind] in r.stderr, r.stderr
    assert "install the Debian package libcurl4" in r.stderr
    assert "unavailable" not in r.stderr.lower()

    # So does a refresh; the cache stays as it was.
    before = kenv.expire_soon()
    r = kenv.run("token", env=broken)
    assert r.returncode == EXIT_INTERNAL, r.stderr
    assert EXPECTED[kind] in r.stderr
    assert r.stdout == ""
    assert kenv.cache() == before

    assert len(kenv.mock.requests()) == requests

    # With the library back, the same cache is refreshed as usual.
    r = kenv.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.strip() != token


@pytest.mark.skipif(CC is None, reason="needs a C compiler to build the broken libraries")
def test_pam_helper_ignores_the_callers_library_path(tmp_path, world, alice, mock):
    """The module starts kontist-pam-helper with an empty environment: a LD_LIBRARY_PATH in the
    PAM application's environment does not reach the root process that loads libcurl."""
    world.service("kontist")
    broken = str(fake_libcurl(tmp_path, "not-elf"))
    run = world.run("kontist", "alice", extra_env={"LD_LIBRARY_PATH": broken})
    assert run.code == "PAM_SUCCESS", run
    assert cache_path(alice.home).exists()
    assert any(r["endpoint"] == "challenge_verify" for r in mock.requests())
