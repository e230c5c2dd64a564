"""kontist.conf(5) documents every key the parser knows (lib/kt_config.c), with its default as
kt_config_init sets it and the component that reads it."""

import re

import pytest

from conftest import REPO_DIR

SOURCE = (REPO_DIR / "lib" / "kt_config.c").read_text()
HEADER = (REPO_DIR / "include" / "kontist.h").read_text()
PAGE = (REPO_DIR / "doc" / "kontist.conf.5").read_text()

KEYS = re.findall(r'\[K_[A-Z0-9_]+\] = "([a-z0-9_]+)"', SOURCE)


def entry(key):
    """The text of the key's .TP paragraph, roff escapes undone."""
    m = re.search(rf"^\.TP\n\.BI {key} [^\n]*\n(.*?)(?=^\.TP|^\.SH)", PAGE, re.S | re.M)
    assert m, f"kontist.conf(5) has no entry for {key}"
    return m.group(1).replace("\\-", "-")


def defaults():
    init = re.search(r"void kt_config_init\(kt_config \*cfg\)\n\{(.*?)\n\}", SOURCE, re.S).group(1)
    found = {k: v for k, v in re.findall(r"cfg->([a-z_]+) = (\d+);", init)}
    found["base_url"] = re.search(r'KT_DEFAULT_BASE_URL "([^"]+)"', HEADER).group(1)
    found["scopes"] = re.search(r'KT_DEFAULT_SCOPES "([^"]+)"', HEADER).group(1)
    return found


def test_every_key_is_found():
    assert len(KEYS) == int(re.search(r"#define KT_CONFIG_KEYS (\d+)", HEADER).group(1))


@pytest.mark.parametrize("key", KEYS)
def test_key_is_documented_with_default_and_reader(key):
    text = entry(key)
    assert "default" in text.lower(), key
    assert re.search(r"\bBoth\b|\bonly\b", text), f"{key}: who reads it?"
    default = defaults().get(key)
    if default is not None:
        assert re.search(rf"Default:\s*\n?\.?B?R?\s*\"?{re.escape(default)}", text), (key, default)


def test_page_names_file_order_and_permissions():
    for needle in ("/etc/kontist/kontist.conf", "XDG_CONFIG_HOME", "KONTIST_CONFIG", "config=",
                   "owned by root", "0600", "not writable by group"):
        assert needle in PAGE.replace("\\-", "-").replace("\\fI", "").replace("\\fR", ""), needle
