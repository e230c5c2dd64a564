"""Users and OAuth clients known to the mock, loaded from a JSON file.

Format (keys starting with "_" are comments and ignored)::

    {"users":   [{"username": "...", "password": "...", "phone": "..."}],
     "clients": [{"client_id": "...", "client_secret": "",
                  "grants": ["password", "refresh_token"],
                  "scopes": ["accounts", "offline", ...]}]}

An empty client_secret makes a public client: it authenticates with its
client_id alone (Basic "id:" or client_id in the body).
"""

import json
import os
from dataclasses import dataclass, field

ALL_SCOPES = ("accounts", "clients", "offline", "statements",
              "subscriptions", "transactions", "transfers", "users")
GRANTS = ("password", "refresh_token")
DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "demo-users.json")


class UsersFileError(Exception):
    pass


@dataclass
class User:
    username: str
    password: str
    phone: str = ""


@dataclass
class Client:
    client_id: str
    client_secret: str
    grants: frozenset = field(default_factory=frozenset)
    scopes: frozenset = field(default_factory=frozenset)


def _strings(obj, key, where, allowed=None):
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsersFileError(f"{where}: {key!r} must be a list of strings")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise UsersFileError(f"{where}: unknown {key}: {', '.join(unknown)}")
    return frozenset(value)


def _string(obj, key, where, default=None):
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise UsersFileError(f"{where}: {key!r} must be a string")
    return value


def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise UsersFileError(f"{where}: must be an object")
    unknown = sorted(k for k in obj if k not in allowed and not k.startswith("_"))
    if unknown:
        raise UsersFileError(f"{where}: unknown keys: {', '.join(unknown)}")


def parse(data, source="users file"):
    """Return (users by lower-case name, clients by id) from the decoded JSON."""
    _check_keys(data, ("users", "clients"), source)
    users, clients = {}, {}
    for i, u in enumerate(data.get("users", [])):
        where = f"{source}: users[{i}]"
        _check_keys(u, ("username", "password", "phone"), where)
        user = User(_string(u, "username", where), _string(u, "password", where),
                    _string(u, "phone", where, ""))
        if not user.username or not user.password:
            raise UsersFileError(f"{where}: username and password must not be empty")
        users[user.username.lower()] = user
    for i, c in enumerate(data.get("clients", [])):
        where = f"{source}: clients[{i}]"
        _check_keys(c, ("client_id", "client_secret", "grants", "scopes"), where)
        client = Client(_string(c, "client_id", where),
                        _string(c, "client_secret", where, ""),
                        _strings(c, "grants", where, GRANTS),
                        _strings(c, "scopes", where, ALL_SCOPES))
        if not client.client_id:
            raise UsersFileError(f"{where}: client_id must not be empty")
        clients[client.client_id] = client
    return users, clients


def load(path=None):
    path = path or DEFAULT_FILE
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise UsersFileError(f"{path}: {e}") from None
    return parse(data, path)
