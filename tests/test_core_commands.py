"""
Tests for L{xmeet.core.commands}.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.commands import (
    ChangeName,
    Chat,
    CommandError,
    HistoryRequest,
    Ignored,
    PrivateMessage,
    parse_command,
)


class ParseCommandTests(SynchronousTestCase):
    """
    L{parse_command} says what a member's text asks for.
    """

    def test_chat(self) -> None:
        """
        Text that is not a command, even starting with C{@}, is chat as it is.
        """
        for text in ["hello", " 你好 ", "@bob hi", "@history", "@to", "x@to:a|b"]:
            self.assertEqual(parse_command(text), Chat(text))

    def test_ignored(self) -> None:
        """
        Empty and white-space-only text is ignored.
        """
        for text in ["", " ", "\n\t  "]:
            self.assertEqual(parse_command(text), Ignored())

    def test_changename(self) -> None:
        """
        The new name is passed on untouched, for the room to validate.
        """
        self.assertEqual(parse_command("@changename: 小红 "), ChangeName(" 小红 "))
        self.assertEqual(parse_command("@changename:"), ChangeName(""))

    def test_history(self) -> None:
        """
        A decimal cursor, white space around it allowed.
        """
        self.assertEqual(parse_command("@history:0"), HistoryRequest(0))
        self.assertEqual(parse_command("@history: 12 "), HistoryRequest(12))
        self.assertEqual(parse_command("@history:999999999"), HistoryRequest(999999999))

    def test_history_malformed(self) -> None:
        """
        Anything but 1 to 9 ASCII digits is an error saying so.
        """
        for cursor in ["", "-1", "a", "1.5", "1e3", "٣", "1234567890", "+1"]:
            with self.assertRaises(CommandError) as raised:
                parse_command("@history:" + cursor)
            self.assertIn("cursor", str(raised.exception))

    def test_private(self) -> None:
        """
        C{@to:ID|TEXT}; the text may itself contain C{|}.
        """
        self.assertEqual(parse_command("@to:abc.1|hi|there"), PrivateMessage("abc.1", "hi|there"))

    def test_private_malformed(self) -> None:
        """
        A missing separator, id or text is an error.
        """
        for text in ["@to:abc", "@to:|hi", "@to:abc|", "@to:abc|  "]:
            with self.assertRaises(CommandError):
                parse_command(text)

    @given(st.text())
    def test_never_raises_anything_else(self, text: str) -> None:
        """
        Any text is a command or a L{CommandError}.
        """
        try:
            command = parse_command(text)
        except CommandError:
            return
        self.assertIsInstance(command, (Chat, ChangeName, HistoryRequest, PrivateMessage, Ignored))
