"""IAM's evaluation of identity policies, as the policy simulator applies it.

jump's templates are IAM documents, and `jump doctor` asks IAM's simulator
whether they grant what jump needs. A sandbox that allows everything cannot
tell a valid template from a broken one, nor a doctor that asks the wrong
question from one that asks the right one. So this module decides as IAM does:
an explicit Deny wins, then an Allow, otherwise the request is implicitly
denied; a permissions boundary caps what the identity policies allow.

Statements are matched on Action/NotAction (case-insensitive, `*` and `?`),
Resource/NotResource (case-sensitive; a `*` stays inside its ARN segment
unless it ends the segment, as the IAM User Guide describes), and Condition
(operators AND, keys AND, values OR, NOR for negated operators; ForAnyValue:,
ForAllValues:, ...IfExists, Null). Policy variables (`${aws:userid}`,
`${key, 'default'}`, `${*}`, `${?}`, `${$}`) are expanded from the request
context in 2012-10-17 documents only; a value substituted into a pattern is
literal, and a variable without a value makes its element match nothing.
"""

import base64
import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"
VARIABLES_VERSION = "2012-10-17"


class PolicyError(ValueError):
    """A document that is not a policy."""


@dataclass
class Statement:
    data: dict
    policy: "Policy"
    start: tuple[int, int] | None = None  # (line, column), 1-based
    end: tuple[int, int] | None = None


@dataclass
class Policy:
    source_id: str
    source_type: str
    version: str
    statements: list[Statement] = field(default_factory=list)


def parse_policy(text, source_id: str, source_type: str) -> Policy:
    if isinstance(text, dict):
        text = json.dumps(text)
    try:
        document = json.loads(text)
    except ValueError as err:
        raise PolicyError(f"{source_id} is not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"{source_id} is not a JSON object")
    raw = document.get("Statement", [])
    raw = raw if isinstance(raw, list) else [raw]
    policy = Policy(source_id, source_type, str(document.get("Version", "")))
    spans = _statement_spans(text)
    for index, data in enumerate(raw):
        if not isinstance(data, dict):
            raise PolicyError(f"{source_id}: statement {index + 1} is not an object")
        statement = Statement(data, policy)
        if len(spans) == len(raw):
            statement.start, statement.end = (_line_column(text, i) for i in spans[index])
        policy.statements.append(statement)
    return policy


def _statement_spans(text: str) -> list[tuple[int, int]]:
    """Where each statement's object starts and ends in the document's text (end exclusive)."""
    decoder = json.JSONDecoder()

    def skip(i):
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    try:
        i = skip(0)
        if text[i] != "{":
            return []
        i += 1
        while True:
            i = skip(i)
            if text[i] == "}":
                return []
            key, i = decoder.raw_decode(text, i)
            i = skip(i)
            i = skip(i + 1)  # the colon
            if key == "Statement":
                if text[i] != "[":
                    _, end = decoder.raw_decode(text, i)
                    return [(i, end)]
                spans, i = [], i + 1
                while True:
                    i = skip(i)
                    if text[i] == "]":
                        return spans
                    _, end = decoder.raw_decode(text, i)
                    spans.append((i, end))
                    i = skip(end)
                    if text[i] == ",":
                        i += 1
            _, i = decoder.raw_decode(text, i)
            i = skip(i)
            if text[i] == ",":
                i += 1
    except (ValueError, IndexError):
        return []


def _line_column(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


class Context:
    """The request context: ContextEntries, keyed case-insensitively as IAM keys are."""

    def __init__(self, entries: list[tuple[str, list[str], str]] = ()):
        self.values: dict[str, list[str]] = {}
        for name, values, _type in entries:
            self.values.setdefault(name.lower(), []).extend(values)

    def get(self, key: str) -> list[str] | None:
        return self.values.get(key.lower())

    def has(self, key: str) -> bool:
        return key.lower() in self.values


@dataclass
class Outcome:
    decision: str
    matched: list[Statement]
    boundary_allowed: bool | None = None  # None: no permissions boundary in effect


def evaluate(policies: list[Policy], action: str, resource: str, context: Context,
             boundary: list[Policy] | None = None) -> Outcome:
    denies, allows = _matching(policies, action, resource, context)
    if boundary is None:
        if denies:
            return Outcome(EXPLICIT_DENY, denies)
        return Outcome(ALLOWED, allows) if allows else Outcome(IMPLICIT_DENY, [])
    capped_denies, capped_allows = _matching(boundary, action, resource, context)
    within = bool(capped_allows) and not capped_denies
    if denies or capped_denies:
        return Outcome(EXPLICIT_DENY, denies + capped_denies, within)
    if allows and within:
        return Outcome(ALLOWED, allows, True)
    return Outcome(IMPLICIT_DENY, [], within)


def _matching(policies, action, resource, context) -> tuple[list[Statement], list[Statement]]:
    denies, allows = [], []
    for policy in policies:
        variables = policy.version == VARIABLES_VERSION
        for statement in policy.statements:
            if _applies(statement.data, action, resource, context, variables):
                (denies if statement.data.get("Effect") == "Deny" else allows).append(statement)
    return denies, allows


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _applies(data: dict, action: str, resource: str, context: Context, variables: bool) -> bool:
    if "Action" in data:
        if not any(_action_matches(p, action) for p in _as_list(data["Action"])):
            return False
    elif "NotAction" in data:
        if any(_action_matches(p, action) for p in _as_list(data["NotAction"])):
            return False
    else:
        return False
    if "Resource" in data:
        if not any(_resource_matches(p, resource, context, variables) for p in _as_list(data["Resource"])):
            return False
    elif "NotResource" in data:
        if any(_resource_matches(p, resource, context, variables) for p in _as_list(data["NotResource"])):
            return False
    else:
        return False
    return _conditions_hold(data.get("Condition") or {}, context, variables)


def _action_matches(pattern, action: str) -> bool:
    return bool(_glob([(False, str(pattern))], arn=False, ignore_case=True).fullmatch(action))


def _resource_matches(pattern, resource: str, context: Context, variables: bool) -> bool:
    parts = _expand(str(pattern), context, variables)
    return parts is not None and bool(_glob(parts, arn=str(pattern).startswith("arn:")).fullmatch(resource))


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")


def _expand(text: str, context: Context, variables: bool) -> list[tuple[bool, str]] | None:
    """The text as (literal?, text) parts with variables substituted; None if one has no value."""
    if not variables:
        return [(False, text)]
    parts, pos = [], 0
    for match in _VARIABLE.finditer(text):
        parts.append((False, text[pos:match.start()]))
        inner = match.group(1).strip()
        if inner in ("*", "?", "$"):
            parts.append((True, inner))
        else:
            default = _DEFAULT.match(inner)
            key = default.group(1) if default else inner
            values = context.get(key)
            if values is not None and len(values) == 1:
                parts.append((True, values[0]))
            elif default:
                parts.append((True, default.group(2)))
            else:
                return None
        pos = match.end()
    parts.append((False, text[pos:]))
    return parts


def _literal(parts: list[tuple[bool, str]]) -> str:
    return "".join(text for _, text in parts)


def _glob(parts: list[tuple[bool, str]], arn: bool, ignore_case: bool = False) -> re.Pattern:
    """A regex for a wildcard pattern. In an ARN's first five segments `*` and `?` stay inside
    their segment, except that a `*` ending a segment may run past its colons."""
    out, colons = [], 0
    for literal, text in parts:
        if literal:
            out.append(re.escape(text))
            colons += text.count(":")
            continue
        for index, char in enumerate(text):
            in_segment = arn and colons < 5
            if char == "*":
                ends_segment = index + 1 == len(text) or text[index + 1] == ":"
                out.append("[^:]*" if in_segment and not ends_segment else ".*")
            elif char == "?":
                out.append("[^:]" if in_segment else ".")
            else:
                out.append(re.escape(char))
                colons += char == ":"
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


# Condition operators: base name -> (comparison, negated, expands policy variables)
def _string_eq(req, pol):
    return req == _literal(pol)


def _string_eq_ci(req, pol):
    return req.casefold() == _literal(pol).casefold()


def _string_like(req, pol):
    return bool(_glob(pol, arn=False).fullmatch(req))


def _arn_like(req, pol):
    return bool(_glob(pol, arn=True).fullmatch(req))


def _number(text):
    return float(text)


def _date(text):
    text = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), timezone.utc)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _ordered(convert, compare):
    def test(req, pol):
        try:
            return compare(convert(req), convert(_literal(pol)))
        except (ValueError, OverflowError):
            return False
    return test


def _bool(req, pol):
    return req.lower() == _literal(pol).lower()


def _binary(req, pol):
    try:
        return base64.b64decode(req) == base64.b64decode(_literal(pol))
    except ValueError:
        return False


def _ip(req, pol):
    try:
        return ipaddress.ip_address(req) in ipaddress.ip_network(_literal(pol), strict=False)
    except ValueError:
        return False


_EQ, _LT, _LE = (lambda a, b: a == b), (lambda a, b: a < b), (lambda a, b: a <= b)
_GT, _GE = (lambda a, b: a > b), (lambda a, b: a >= b)
OPERATORS = {
    "stringequals": (_string_eq, False, True),
    "stringnotequals": (_string_eq, True, True),
    "stringequalsignorecase": (_string_eq_ci, False, True),
    "stringnotequalsignorecase": (_string_eq_ci, True, True),
    "stringlike": (_string_like, False, True),
    "stringnotlike": (_string_like, True, True),
    "numericequals": (_ordered(_number, _EQ), False, False),
    "numericnotequals": (_ordered(_number, _EQ), True, False),
    "numericlessthan": (_ordered(_number, _LT), False, False),
    "numericlessthanequals": (_ordered(_number, _LE), False, False),
    "numericgreaterthan": (_ordered(_number, _GT), False, False),
    "numericgreaterthanequals": (_ordered(_number, _GE), False, False),
    "dateequals": (_ordered(_date, _EQ), False, False),
    "datenotequals": (_ordered(_date, _EQ), True, False),
    "datelessthan": (_ordered(_date, _LT), False, False),
    "datelessthanequals": (_ordered(_date, _LE), False, False),
    "dategreaterthan": (_ordered(_date, _GT), False, False),
    "dategreaterthanequals": (_ordered(_date, _GE), False, False),
    "bool": (_bool, False, True),
    "binaryequals": (_binary, False, False),
    "ipaddress": (_ip, False, False),
    "notipaddress": (_ip, True, False),
    "arnequals": (_arn_like, False, True),
    "arnlike": (_arn_like, False, True),
    "arnnotequals": (_arn_like, True, True),
    "arnnotlike": (_arn_like, True, True),
}


def _policy_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _conditions_hold(block: dict, context: Context, variables: bool) -> bool:
    if not isinstance(block, dict):
        return False
    for operator, keys in block.items():
        if not isinstance(keys, dict):
            return False
        for key, values in keys.items():
            if not _condition_holds(operator, key, [_policy_value(v) for v in _as_list(values)], context, variables):
                return False
    return True


def _condition_holds(operator: str, key: str, values: list[str], context: Context, variables: bool) -> bool:
    name = operator.lower()
    qualifier = None
    for prefix in ("foranyvalue:", "forallvalues:"):
        if name.startswith(prefix):
            qualifier, name = prefix[:-1], name[len(prefix):]
    request = context.get(key)
    if name == "null":
        return any((request is None) == (v.lower() == "true") for v in values)
    if_exists = name.endswith("ifexists")
    if if_exists:
        name = name[: -len("ifexists")]
    if name not in OPERATORS:
        return False
    compare, negated, expands = OPERATORS[name]
    if request is None:
        if if_exists or qualifier == "forallvalues":
            return True
        return negated and qualifier is None
    expanded = [_expand(v, context, variables and expands) for v in values]
    patterns = [p for p in expanded if p is not None]

    def matches(req: str) -> bool:
        return any(compare(req, pattern) for pattern in patterns)

    if qualifier == "forallvalues":
        return all(matches(r) != negated for r in request)
    if negated:
        return any(not matches(r) for r in request) if qualifier else not any(matches(r) for r in request)
    return any(matches(r) for r in request)


def context_keys(policies: list[Policy]) -> list[str]:
    """Every context key the documents refer to, in conditions or as policy variables, first
    spelling kept. IAM's simulator reports the unsupplied ones for every statement of the
    simulated policies, not only those about the simulated action (boto/boto3#3111,
    aws/aws-sdk-java-v2#1751)."""
    seen: dict[str, str] = {}

    def note(key: str):
        seen.setdefault(key.lower(), key)

    def note_variables(text: str):
        for match in _VARIABLE.finditer(text):
            inner = match.group(1).strip()
            if inner not in ("*", "?", "$"):
                default = _DEFAULT.match(inner)
                note(default.group(1) if default else inner)

    for policy in policies:
        variables = policy.version == VARIABLES_VERSION
        for statement in policy.statements:
            data = statement.data
            if variables:
                for pattern in _as_list(data.get("Resource")) + _as_list(data.get("NotResource")):
                    note_variables(str(pattern))
            condition = data.get("Condition") or {}
            if not isinstance(condition, dict):
                continue
            for keys in condition.values():
                if not isinstance(keys, dict):
                    continue
                for key, values in keys.items():
                    note(key)
                    if variables:
                        for value in _as_list(values):
                            note_variables(_policy_value(value))
    return list(seen.values())
