"""Keeping database passwords out of everything a user, a log or an HTTP client sees.

`redact(text)` removes passwords from connection strings in any form libpq takes (URLs with
a user:password part, `password=` query parameters, keyword/value strings with plain or
quoted values), malformed ones included, and any literal occurrence of the password of a
database this process has used (`remember`: every `Database` does, the configured
`IMGSEARCH_DATABASE_URL`'s included) or of URLs passed in `urls`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"
MIN_LITERAL = 3  # shorter passwords are only masked where their form shows them
_remembered: set[str] = set()  # the passwords of the databases this process has used

# key=value pairs whose value is secret, in keyword strings and URL query parameters
_SECRET_KEYS = r"(?:ssl)?password|sslkey_?password|passphrase"
_KEYWORD = re.compile(rf"(?i)(\b(?:{_SECRET_KEYS})\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]*)")
_SECRET_KEY = re.compile(rf"(?i)\s*(?:{_SECRET_KEYS})\s*")
# a URL's query parameters, whose keys may be percent-encoded (libpq decodes `pass%77ord`)
_QUERY = re.compile(r"([?&]([^=&\s]+)=)([^&\s]*)")
# scheme://user:password@ : the password runs to the last '@' of the line (a malformed URL may
# hold spaces in it)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)([^\n]*)@")


def passwords_in(url: str) -> list[str]:
    """The password(s) a connection string holds, raw and decoded, and the words of one with
    spaces (best effort, any form; `?pass%77ord=` too, as libpq decodes it)."""
    found = [m.group(2) for m in _USERINFO.finditer(url)]
    for text in dict.fromkeys([url, unquote(url)]):
        for m in _KEYWORD.finditer(text):
            value = m.group(2)
            if len(value) > 1 and value[0] == value[-1] == "'":  # quoted: \' and \\ are escapes
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found.append(value)
    found += [unquote(p) for p in found]
    found += [word for p in found for word in p.split()]
    return [p for p in dict.fromkeys(found) if len(p) >= MIN_LITERAL and p != MASK]


def remember(url: str) -> None:
    """Mask the password(s) of this connection string wherever they appear from now on."""
    _remembered.update(passwords_in(url))


def redact(text: str, urls: Iterable[str | None] = ()) -> str:
    """`text` with every password masked (see the module docstring)."""
    secrets: list[str] = list(_remembered)
    for url in urls:
        if url:
            secrets += passwords_in(url)
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _QUERY.sub(
        lambda m: f"{m.group(1)}{MASK}" if _SECRET_KEY.fullmatch(unquote(m.group(2))) else m.group(0), text
    )
    return _KEYWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)
