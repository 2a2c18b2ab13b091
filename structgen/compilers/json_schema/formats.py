"""String formats: one ECMA regex per supported ``format``, used both by the grammar and the validator.

The grammar and the runtime validator share these definitions, so "valid" means the same to both.
The regexes follow the RFCs the 2020-12 spec cites (RFC 3339 date/time/duration, RFC 5321-style
dot-atom emails, RFC 1123 hostnames, RFC 4291 IPv6, RFC 3986 URIs, RFC 4122 UUIDs), with two
simplifications stated here: hostname labels and email parts are not length-limited, and an IPv6
host inside a URI is checked for its characters only.
"""

from __future__ import annotations

import re

from jsonschema import FormatChecker

# Years 0001-9999: year 0000 fits RFC 3339's grammar, but Python's datetime (which jsonschema's own
# format checker uses) and most consumers reject it.
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
# Day-of-month is checked against the month, and 29 February against the Gregorian leap-year rule.
_DATE = (
    rf"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
    rf"|{_LEAP_YEAR}-02-29)"
)
_OFFSET = r"(?:[Zz]|[+\-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_TIME = rf"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?{_OFFSET}"
_DUR_T = r"T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
_DUR_D = r"(?:[0-9]+D|[0-9]+M(?:[0-9]+D)?|[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?)"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = (
    "(?:"
    + "|".join(
        [
            rf"(?:{_H16}:){{6}}{_LS32}",
            rf"::(?:{_H16}:){{5}}{_LS32}",
            rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        ]
    )
    + ")"
)
# RFC 3986 section 3, production by production.
_PCT = r"%[0-9A-Fa-f]{2}"
_UNRESERVED_SUB = r"[A-Za-z0-9\-._~!$&'()*+,;=]"
_PCHAR = rf"(?:{_UNRESERVED_SUB}|{_PCT}|[:@])"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_SEGMENT_NZ_NC = rf"(?:{_UNRESERVED_SUB}|{_PCT}|@)+"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
# The bracketed IPv6 host is checked for its characters only: the exact IPv6 automaton would
# multiply the URI automaton's compile time by thirty.
_IP_LITERAL = rf"\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.(?:{_UNRESERVED_SUB}|:)+)\]"
_USERINFO = rf"(?:{_UNRESERVED_SUB}|{_PCT}|:)*@"
_AUTHORITY = rf"(?:{_USERINFO})?(?:{_IP_LITERAL}|(?:{_UNRESERVED_SUB}|{_PCT})*)(?::[0-9]*)?"
_PATH_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_TAIL = rf"(?:\?{_QUERY})?(?:#{_QUERY})?"
_URI = (
    rf"[A-Za-z][A-Za-z0-9+\-.]*:"
    rf"(?://{_AUTHORITY}(?:/{_SEGMENT})*|{_PATH_ABSOLUTE}|{_SEGMENT_NZ}(?:/{_SEGMENT})*)?{_TAIL}"
)
_RELATIVE_REF = (
    rf"(?://{_AUTHORITY}(?:/{_SEGMENT})*|{_PATH_ABSOLUTE}|{_SEGMENT_NZ_NC}(?:/{_SEGMENT})*)?{_TAIL}"
)

FORMAT_PATTERNS: dict[str, str] = {
    "date-time": rf"^{_DATE}[Tt]{_TIME}$",
    "date": rf"^{_DATE}$",
    "time": rf"^{_TIME}$",
    "duration": rf"^P(?:{_DUR_D}(?:{_DUR_T})?|{_DUR_T}|[0-9]+W)$",
    "email": rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*$",
    "hostname": rf"^{_LABEL}(?:\.{_LABEL})*$",
    "ipv4": rf"^{_IPV4}$",
    "ipv6": rf"^{_IPV6}$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "uri": rf"^{_URI}$",
    "uri-reference": rf"^(?:{_URI}|{_RELATIVE_REF})$",
    "iri": r"^[A-Za-z][A-Za-z0-9+\-.]*:[^\s\"<>\\^`{|}]*$",
    "iri-reference": r"^[^\s\"<>\\^`{|}]*$",
    "uri-template": r"^(?:[^\s\"<>\\^`{|}]|\{[+#./;?&=,!@|]?[A-Za-z0-9_%.,*:]+\})*$",
    "json-pointer": r"^(?:/(?:[^~/]|~[01])*)*$",
    "relative-json-pointer": r"^(?:0|[1-9][0-9]*)(?:#|(?:/(?:[^~/]|~[01])*)*)$",
}


def _make_check(pattern: str):
    # Every pattern is "^body$"; fullmatch on the body avoids Python's "$ matches before a final \n".
    compiled = re.compile(pattern[1:-1])

    def check(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        return compiled.fullmatch(instance) is not None

    return check


def make_format_checker() -> FormatChecker:
    """jsonschema FormatChecker using this module's definitions (jsonschema's own for other formats)."""
    checker = FormatChecker()
    for name, pattern in FORMAT_PATTERNS.items():
        checker.checkers[name] = (_make_check(pattern), ())
    return checker
