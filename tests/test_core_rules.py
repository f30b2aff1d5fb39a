"""
Tests for L{xmeet.core.rules}: xnest ids, nicknames and text UTF-8 can
carry.
"""

import json
from random import Random

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.rules import (
    InvalidName,
    choose_nickname,
    decode_xnest_segment,
    has_lone_surrogate,
    normalize_nickname,
    random_nickname,
    validate_xnest_id,
)

ANY_TEXT = st.text(
    st.characters(exclude_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    max_size=40,
)
"""
Text of any code points, lone surrogates often among them, as a JSON
decoder hands them over from C{"\\ud800"} escapes (Hypothesis leaves
surrogates out by default, and they are 2,048 of 1,114,112 code points).
"""
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


class XnestIdTests(SynchronousTestCase):
    """
    L{validate_xnest_id} and L{decode_xnest_segment}.
    """

    def test_valid(self) -> None:
        """
        Ordinary ids, unicode ids and the 64-character maximum pass as they are.
        """
        for xnest_id in ["f45c6d77", "房间一", "a" * 64, "with space", "🎉"]:
            self.assertEqual(validate_xnest_id(xnest_id), xnest_id)

    def test_invalid(self) -> None:
        """
        Empty, too long, a slash or a control character is refused with a
        message naming the rule.
        """
        cases = {
            "": "empty",
            "a" * 65: "longer than 64",
            "a/b": "'/'",
            "a\x00b": "control character",
            "a\x7fb": "control character",
            "a\u0085b": "control character",
            "a\ud800b": "not valid Unicode (lone surrogate)",
            "\udfff": "not valid Unicode (lone surrogate)",
        }
        for xnest_id, reason in cases.items():
            with self.assertRaises(InvalidName) as raised:
                validate_xnest_id(xnest_id)
            self.assertIn(reason, str(raised.exception))

    def test_decode(self) -> None:
        """
        A raw segment is percent-decoded as UTF-8.
        """
        self.assertEqual(decode_xnest_segment(b"%E6%88%BF%E9%97%B4"), "房间")
        self.assertEqual(decode_xnest_segment(b"plain-id"), "plain-id")

    def test_decode_refuses(self) -> None:
        """
        Bad escapes, invalid UTF-8 and an encoded slash are refused.
        """
        cases = {
            b"%zz": "malformed percent escape",
            b"abc%": "malformed percent escape",
            b"%4": "malformed percent escape",
            b"%ff": "not valid UTF-8",
            b"a%2Fb": "'/'",
            b"a/b": "'/'",
            b"": "empty",
        }
        for segment, reason in cases.items():
            with self.assertRaises(InvalidName) as raised:
                decode_xnest_segment(segment)
            self.assertIn(reason, str(raised.exception))

    @given(st.binary(max_size=200))
    def test_decode_arbitrary_bytes(self, segment: bytes) -> None:
        """
        Any bytes either decode to a valid id or raise L{InvalidName}.
        """
        try:
            xnest_id = decode_xnest_segment(segment)
        except InvalidName:
            return
        self.assertEqual(validate_xnest_id(xnest_id), xnest_id)

    @given(st.text(min_size=1, max_size=64).filter(lambda s: "/" not in s))
    def test_decode_round_trip(self, xnest_id: str) -> None:
        """
        Encoding a valid id and decoding it gives it back.
        """
        from urllib.parse import quote

        try:
            validate_xnest_id(xnest_id)
        except InvalidName:
            return
        self.assertEqual(decode_xnest_segment(quote(xnest_id, safe="").encode()), xnest_id)


class NicknameTests(SynchronousTestCase):
    """
    L{normalize_nickname} and L{random_nickname}.
    """

    def test_trimmed(self) -> None:
        """
        Surrounding white space goes; inner white space stays.
        """
        self.assertEqual(normalize_nickname("  小明 大 \t"), "小明 大")

    def test_lengths(self) -> None:
        """
        1 to 32 characters after trimming.
        """
        self.assertEqual(normalize_nickname("a" * 32), "a" * 32)
        with self.assertRaises(InvalidName):
            normalize_nickname("a" * 33)
        with self.assertRaises(InvalidName):
            normalize_nickname("   ")

    def test_control_characters(self) -> None:
        """
        A control character anywhere is refused.
        """
        with self.assertRaises(InvalidName) as raised:
            normalize_nickname("bad\x07name")
        self.assertIn("control character", str(raised.exception))

    def test_lone_surrogate(self) -> None:
        """
        A lone surrogate, which UTF-8 cannot carry, is refused; a surrogate
        pair decoded by JSON is one character and passes.
        """
        with self.assertRaises(InvalidName) as raised:
            normalize_nickname("Zo\ud800")
        self.assertIn("nickname is not valid Unicode (lone surrogate)", str(raised.exception))
        self.assertEqual(normalize_nickname(json.loads('"\\ud83d\\ude00"')), "\U0001f600")

    @given(ANY_TEXT)
    def test_accepted_encodes(self, nickname: str) -> None:
        """
        Whatever nickname or xnest id is accepted encodes to UTF-8.
        """
        for check in (normalize_nickname, validate_xnest_id):
            try:
                check(nickname).encode("utf-8")
            except InvalidName:
                pass

    @given(st.text(max_size=60))
    def test_result_obeys_rules(self, nickname: str) -> None:
        """
        Whatever is accepted is trimmed, 1..32 characters and idempotent.
        """
        try:
            result = normalize_nickname(nickname)
        except InvalidName:
            return
        self.assertEqual(result, result.strip())
        self.assertTrue(1 <= len(result) <= 32)
        self.assertEqual(normalize_nickname(result), result)

    def test_random(self) -> None:
        """
        Random nicknames look like C{guest-NNNN} and are valid.
        """
        rng = Random(4)
        for _ in range(100):
            name = random_nickname(rng)
            self.assertRegex(name, r"^guest-\d{4}$")
            self.assertEqual(normalize_nickname(name), name)


def _normalized(nickname: str) -> str | None:
    """
    C{nickname} normalized, or C{None} when it breaks the rules.
    """
    try:
        return normalize_nickname(nickname)
    except InvalidName:
        return None


class ChooseNicknameTests(SynchronousTestCase):
    """
    L{choose_nickname}: requested, else remembered, else random.
    """

    def test_order(self) -> None:
        rng = Random(1)
        self.assertEqual(choose_nickname(" ann ", "bob", rng), "ann")
        self.assertEqual(choose_nickname(None, " bob ", rng), "bob")
        self.assertEqual(choose_nickname("", "bob", rng), "bob")
        self.assertRegex(choose_nickname(None, None, rng), r"^guest-\d{4}$")
        self.assertRegex(choose_nickname("", "", rng), r"^guest-\d{4}$")

    @given(st.none() | st.text(max_size=40), st.none() | st.text(max_size=40))
    def test_model(self, requested: str | None, remembered: str | None) -> None:
        """
        For any inputs: an invalid requested nickname is refused; a valid
        one is used; without one, a valid remembered one is used, and an
        invalid one is ignored for a random one.
        """
        rng = Random(3)
        if requested:
            expected = _normalized(requested)
            if expected is None:
                self.assertRaises(InvalidName, choose_nickname, requested, remembered, rng)
            else:
                self.assertEqual(choose_nickname(requested, remembered, rng), expected)
            return
        chosen = choose_nickname(requested, remembered, rng)
        kept = _normalized(remembered) if remembered else None
        if kept is not None:
            self.assertEqual(chosen, kept)
        else:
            self.assertRegex(chosen, r"^guest-\d{4}$")


class LoneSurrogateTests(SynchronousTestCase):
    """
    L{has_lone_surrogate}: text UTF-8 cannot carry, anywhere in a decoded
    JSON value.
    """

    def test_found_anywhere(self) -> None:
        """
        A lone surrogate in a string, a list item, an object's key or
        value, however deep, is found; text without one is not.
        """
        for value in ["\ud800", ["a", "\udc00"], {"\ud800": 1}, {"a": [{"b": "x\udbff"}]}]:
            self.assertTrue(has_lone_surrogate(value), value)
        for value in ["", "plain", "Zoë 😀", ["a", 1, None, True], {"k": {"v": 1.5}}, 7]:
            self.assertFalse(has_lone_surrogate(value), value)

    def test_deep(self) -> None:
        """
        A value nested deeper than the interpreter's recursion limit is
        walked without a L{RecursionError}.
        """
        deep: object = "\ud800"
        for _ in range(5000):
            deep = [deep]
        self.assertTrue(has_lone_surrogate(deep))

    @given(ANY_JSON)
    def test_model(self, value: object) -> None:
        """
        Found exactly when the value's JSON text fails to encode as UTF-8.
        """
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            encodable = False
        else:
            encodable = True
        self.assertEqual(has_lone_surrogate(value), not encodable)
