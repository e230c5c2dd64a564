"""Just enough GraphQL for the mock: one operation, fields, arguments, variables.

parse(text) turns a document into an Operation or raises GraphQLError.  It
knows the query language's lexical rules (names, strings with escapes, block
strings, numbers, comments, commas as white space) and this grammar:

    document   := operation
    operation  := selections | ("query" | "mutation") NAME? vardefs? selections
    vardefs    := "(" ("$" NAME ":" type ("=" value)?)+ ")"
    type       := (NAME | "[" type "]") "!"?
    selections := "{" (field)+ "}"
    field      := (NAME ":")? NAME ("(" (NAME ":" value)+ ")")? selections?
    value      := "$" NAME | STRING | INT | FLOAT | true | false | null | NAME
                | "[" value* "]" | "{" (NAME ":" value)* "}"

Fragments, directives and subscriptions are not supported (a validation
error says so).  Checking fields and arguments against a schema is the
caller's business (api.py).
"""

import json
import re
from dataclasses import dataclass, field

MAX_DEPTH = 32

_TOKEN = re.compile(r"""
    (?P<ignored>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<block>\"\"\"(?:[^"\\]|\\"\"\"|\\|"(?!""))*\"\"\")
  | (?P<string>"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$&()\:=@\[\]{|}])
""", re.VERBOSE)


class GraphQLError(Exception):
    """A document that does not parse, or uses what the mock does not support."""


@dataclass
class Variable:
    name: str


@dataclass
class Field:
    name: str
    alias: str
    arguments: dict                      # name -> value (Variable for $x)
    selections: list = None              # list of Field, or None for a leaf


@dataclass
class Operation:
    kind: str                            # "query" or "mutation"
    name: str
    variables: dict = field(default_factory=dict)   # name -> (type text, default)
    selections: list = field(default_factory=list)

    def count_fields(self):
        def count(fields):
            return sum(1 + count(f.selections or []) for f in fields)
        return count(self.selections)


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise GraphQLError(f"Syntax Error: unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ignored":
            continue
        value = m.group(kind)
        if kind == "string":
            value = json.loads(value)
        elif kind == "block":
            value = value[3:-3].replace('\\"""', '"""')
            kind = "string"
        out.append((kind, value))
    out.append(("eof", None))
    return out


class _Parser:
    def __init__(self, text):
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self, kind=None, value=None):
        k, v = self.tokens[self.i]
        return (kind is None or k == kind) and (value is None or v == value)

    def take(self, kind=None, value=None):
        k, v = self.tokens[self.i]
        if not self.peek(kind, value):
            want = value or kind
            got = "end of document" if k == "eof" else repr(v)
            raise GraphQLError(f"Syntax Error: expected {want}, found {got}")
        self.i += 1
        return v

    def nested(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise GraphQLError("Syntax Error: document nested too deeply")

    def document(self):
        if self.peek("punct", "{"):
            op = Operation("query", None)
        else:
            kind = self.take("name")
            if kind == "subscription" or kind == "fragment":
                raise GraphQLError(f"{kind} is not supported")
            if kind not in ("query", "mutation"):
                raise GraphQLError(f"Syntax Error: unexpected name {kind!r}")
            op = Operation(kind, self.take("name") if self.peek("name") else None)
            if self.peek("punct", "("):
                op.variables = self.variable_definitions()
        if self.peek("punct", "@"):
            raise GraphQLError("directives are not supported")
        op.selections = self.selection_set()
        if not self.peek("eof"):
            raise GraphQLError("only one operation per document is supported")
        return op

    def variable_definitions(self):
        self.take("punct", "(")
        out = {}
        while True:
            self.take("punct", "$")
            name = self.take("name")
            self.take("punct", ":")
            type_text = self.type_ref()
            default = None
            if self.peek("punct", "="):
                self.take()
                default = self.value(const=True)
            if name in out:
                raise GraphQLError(f'There can be only one variable named "${name}".')
            out[name] = (type_text, default)
            if self.peek("punct", ")"):
                self.take()
                return out

    def type_ref(self):
        if self.peek("punct", "["):
            self.take()
            text = "[" + self.type_ref() + "]"
            self.take("punct", "]")
        else:
            text = self.take("name")
        if self.peek("punct", "!"):
            self.take()
            text += "!"
        return text

    def selection_set(self):
        self.nested()
        self.take("punct", "{")
        out = []
        while not self.peek("punct", "}"):
            if self.peek("spread"):
                raise GraphQLError("fragments are not supported")
            out.append(self.field())
        self.take()
        if not out:
            raise GraphQLError("Syntax Error: empty selection set")
        self.depth -= 1
        return out

    def field(self):
        name = self.take("name")
        alias = name
        if self.peek("punct", ":"):
            self.take()
            name = self.take("name")
        arguments = {}
        if self.peek("punct", "("):
            self.take()
            while True:
                arg = self.take("name")
                self.take("punct", ":")
                if arg in arguments:
                    raise GraphQLError(f'There can be only one argument named "{arg}".')
                arguments[arg] = self.value()
                if self.peek("punct", ")"):
                    self.take()
                    break
        if self.peek("punct", "@"):
            raise GraphQLError("directives are not supported")
        selections = self.selection_set() if self.peek("punct", "{") else None
        return Field(name, alias, arguments, selections)

    def value(self, const=False):
        kind, v = self.tokens[self.i]
        if kind == "punct" and v == "$" and not const:
            self.take()
            return Variable(self.take("name"))
        if kind == "string":
            self.take()
            return v
        if kind == "number":
            self.take()
            return json.loads(v)
        if kind == "name":
            self.take()
            return {"true": True, "false": False, "null": None}.get(v, v)
        if kind == "punct" and v == "[":
            self.nested()
            self.take()
            out = []
            while not self.peek("punct", "]"):
                out.append(self.value(const))
            self.take()
            self.depth -= 1
            return out
        if kind == "punct" and v == "{":
            self.nested()
            self.take()
            out = {}
            while not self.peek("punct", "}"):
                key = self.take("name")
                self.take("punct", ":")
                out[key] = self.value(const)
            self.take()
            self.depth -= 1
            return out
        raise GraphQLError(f"Syntax Error: unexpected {v!r}" if kind != "eof"
                           else "Syntax Error: unexpected end of document")


def parse(text):
    """The one operation of a GraphQL document (GraphQLError if it has none)."""
    if not isinstance(text, str):
        raise GraphQLError("query must be a string")
    return _Parser(text).document()


def first_field(text):
    """Name of the first top-level field of a document, or None (for logs and faults)."""
    try:
        op = parse(text)
    except (GraphQLError, ValueError, RecursionError):
        return None
    return op.selections[0].name if op.selections else None
