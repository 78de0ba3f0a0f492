"""One redactor for every secret the project can print, log or record.

A password or token can reach the user's screen, a log, MLflow params and tags, or another process's
command line by way of a URL (``scheme://user:password@host``, a token as the user name, ``?password=``
in the query) or of text that quotes one (a driver's error message, often with the password
percent-decoded). Every place that shows such text calls :func:`redact`; places that know the URL
call :func:`scrub` so the decoded password is hidden too.

Why not ``urllib.parse``: it follows RFC 3986, so in ``https://alice:s3c/ret@host`` the authority
ends at the first ``/`` and the password's tail ``ret`` would be read as the path; with
``https://alice:s3c@ret@host`` it splits at the last ``@`` but other parsers split at the first.
Users type such URLs, so the userinfo is taken here as everything between ``//`` and the *last*
``@`` of the URL token: over-hiding a path that contains ``@`` is a small price, showing a password
is not.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["MASK", "redact", "redact_tree", "redact_url", "scrub", "url_password"]

MASK = "***"

# A URL token: a scheme, "//", then anything up to white space or a quote/bracket that ends it in
# prose ("... at 'https://u:p@h/x': ..."). The userinfo is the part before the last "@" of the token.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>`]+)")
# Query or fragment parameters whose value is a secret (``?password=...&token=...``).
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:^|[?&;#])(?:password|passwd|pwd|pass|secret|token|access_token|refresh_token|"
    r"api_key|apikey|api-key|access_key|secret_key|auth|authorization|sig|signature|"
    r"client_secret|sas|credential|credentials)=)(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """``(userinfo, remainder)`` of the text after ``//``; userinfo is None when there is no ``@``.

    ``scheme:///path`` has an empty authority (``file:///a@b.csv``, ``sqlite:////x@y.db``): no
    credentials, so an ``@`` in its path is left alone.
    """
    at = rest.rfind("@")
    if at < 0 or rest.startswith("/"):
        return None, rest
    return rest[:at], rest[at + 1 :]


def _redact_rest(rest: str) -> str:
    userinfo, remainder = _split_userinfo(rest)
    remainder = _SECRET_PARAM.sub(lambda m: m.group("key") + MASK, remainder)
    if userinfo is None:
        return remainder
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        # A user name with a "/" or "@" in it is really part of a password typed unencoded.
        user = user if user and not re.search(r"[/@]", user) else ""
        return f"{user}:{MASK}@{remainder}"
    # No colon: the whole userinfo may be a token (``https://<token>@host``); hide it all.
    return f"{MASK}@{remainder}"


def redact_url(url: str) -> str:
    """``url`` with its password, token or secret query values replaced by ``***``.

    Parameters
    ----------
    url : str
        Any text; a URL is expected but anything else comes back with only its URLs redacted.

    Returns
    -------
    str
        The same URL with ``user`` kept (when a password follows it) and every secret hidden.

    Examples
    --------
    >>> redact_url("postgresql://alice:s3c@db:5432/cv")
    'postgresql://alice:***@db:5432/cv'
    >>> redact_url("https://alice:s3c/ret@host/x")
    'https://alice:***@host/x'
    >>> redact_url("https://:token@host")
    'https://:***@host'
    >>> redact_url("https://tok3n@host")
    'https://***@host'
    """
    return redact(url)


def redact(text: object) -> str:
    """``text`` with every URL's userinfo password and secret query parameters hidden.

    Parameters
    ----------
    text : object
        A message, a param value, a tag; converted with ``str``.

    Returns
    -------
    str
        The text with each secret replaced by ``***``.
    """
    return _URL.sub(lambda m: m.group("scheme") + _redact_rest(m.group("rest")), str(text))


def url_password(url: str) -> list[str]:
    """Every secret ``url`` carries, raw and percent-decoded (for :func:`scrub`).

    Parameters
    ----------
    url : str
        A URL as configured.

    Returns
    -------
    list of str
        Non-empty secrets, longest first, so a secret is never partly replaced.
    """
    found: list[str] = []
    for m in _URL.finditer(str(url)):
        userinfo, remainder = _split_userinfo(m.group("rest"))
        if userinfo:
            found.append(userinfo.split(":", 1)[1] if ":" in userinfo else userinfo)
        found += [p.group("value") for p in _SECRET_PARAM.finditer(remainder)]
    out = {s for f in found if f for s in (f, unquote(f))}
    return sorted(out, key=len, reverse=True)


def scrub(text: object, url: str) -> str:
    """``text`` with ``url``'s secrets hidden wherever they appear, in the URL or on their own.

    A database driver's error may quote the password alone, percent-decoded; :func:`redact` finds
    only URLs, so the secrets are also replaced as plain strings.

    Parameters
    ----------
    text : object
        The text to clean, e.g. an exception.
    url : str
        The URL whose secrets must not appear.

    Returns
    -------
    str
        The cleaned text.
    """
    out = redact(text)
    for secret in url_password(url):
        # Very short secrets (one or two characters) would blank out ordinary words.
        if len(secret) >= 3:
            out = out.replace(secret, MASK)
    return out


def redact_tree(value):
    """A copy of nested dicts/lists with every string redacted (configs before they are recorded).

    Parameters
    ----------
    value : object
        A JSON-like tree (a dumped config).

    Returns
    -------
    object
        The same shape; strings pass through :func:`redact`, other leaves are unchanged.
    """
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_tree(v) for v in value)
    return redact(value) if isinstance(value, str) else value
