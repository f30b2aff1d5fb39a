# -*- test-case-name: tests.test_core_rules -*-
"""
What a valid xnest id and a valid nickname are (PROTOCOL.md section 1),
and the text every front end refuses: a lone surrogate, which UTF-8
cannot carry.

All come from untrusted clients, so the rules are strict and the errors
say exactly what was wrong: they are shown to the client as they are.
"""

from __future__ import annotations

import re
import unicodedata
from random import Random
from urllib.parse import unquote_to_bytes

__all__ = [
    "InvalidName",
    "MAX_NICKNAME_LENGTH",
    "MAX_XNEST_ID_LENGTH",
    "choose_nickname",
    "decode_xnest_segment",
    "has_lone_surrogate",
    "not_unicode",
    "normalize_nickname",
    "random_nickname",
    "validate_xnest_id",
]

MAX_XNEST_ID_LENGTH = 64
MAX_NICKNAME_LENGTH = 32

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class InvalidName(ValueError):
    """
    An xnest id or nickname broke the rules; C{str(error)} says which rule.
    """


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(character) == "Cc" for character in text)


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_lone_surrogate(value: object) -> bool:
    """
    Whether C{value}, a string or a decoded JSON value, holds text UTF-8
    cannot carry: a lone surrogate, which a JSON decoder accepts from an
    escape such as C{"\\ud800"}. Such text is refused where it comes in,
    so that no front end fails to encode it for another member later.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return True
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return False


def not_unicode(what: str) -> str:
    """
    The refusal of text with a lone surrogate, naming C{what} it was.
    """
    return f"{what} is not valid Unicode (lone surrogate)"


def validate_xnest_id(xnest_id: str) -> str:
    """
    Check a decoded xnest id: 1..64 characters, no control character, no
    lone surrogate, no C{/}.

    @return: C{xnest_id} unchanged.
    @raise InvalidName: when it breaks a rule.
    """
    if not xnest_id:
        raise InvalidName("xnest id is empty")
    if len(xnest_id) > MAX_XNEST_ID_LENGTH:
        raise InvalidName(f"xnest id is longer than {MAX_XNEST_ID_LENGTH} characters")
    if "/" in xnest_id:
        raise InvalidName("xnest id contains '/'")
    if _has_control_character(xnest_id):
        raise InvalidName("xnest id contains a control character")
    if has_lone_surrogate(xnest_id):
        raise InvalidName(not_unicode("xnest id"))
    return xnest_id


def decode_xnest_segment(segment: bytes) -> str:
    """
    Percent-decode one raw URL path segment as UTF-8 and validate it as an
    xnest id.

    The raw segment is decoded here, not by the web framework, because a
    malformed escape must be refused rather than passed through literally.

    @raise InvalidName: on a bad escape, invalid UTF-8 or a broken rule.
    """
    if _BAD_ESCAPE.search(segment):
        raise InvalidName("xnest id has a malformed percent escape")
    try:
        decoded = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName("xnest id is not valid UTF-8") from None
    return validate_xnest_id(decoded)


def normalize_nickname(nickname: str) -> str:
    """
    Trim surrounding white space and check the result: 1..32 characters,
    no control character, no lone surrogate.

    @return: the trimmed nickname.
    @raise InvalidName: when the trimmed nickname breaks a rule.
    """
    trimmed = nickname.strip()
    if not trimmed:
        raise InvalidName("nickname is empty")
    if len(trimmed) > MAX_NICKNAME_LENGTH:
        raise InvalidName(f"nickname is longer than {MAX_NICKNAME_LENGTH} characters")
    if _has_control_character(trimmed):
        raise InvalidName("nickname contains a control character")
    if has_lone_surrogate(trimmed):
        raise InvalidName(not_unicode("nickname"))
    return trimmed


def random_nickname(rng: Random) -> str:
    """
    A nickname for a visitor who gave none, such as C{guest-4821}.
    """
    return f"guest-{rng.randrange(1000, 10000)}"


def choose_nickname(requested: str | None, remembered: str | None, rng: Random) -> str:
    """
    The nickname of a member joining an xnest: C{requested} (the URL's or
    the join's) when given, else C{remembered} (the cookie's) when valid,
    else a random one.

    Asking for an invalid nickname is an error the client should see; a
    remembered one that is no longer valid is simply forgotten.

    @param requested: the nickname asked for; C{None} or empty for none.
    @param remembered: the nickname remembered for the client, if any.
    @return: the normalized nickname.
    @raise InvalidName: when C{requested} is given and breaks a rule.
    """
    if requested:
        return normalize_nickname(requested)
    if remembered:
        try:
            return normalize_nickname(remembered)
        except InvalidName:
            pass
    return random_nickname(rng)
