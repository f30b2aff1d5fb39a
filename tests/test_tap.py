"""
Tests for L{xmeet.tap}, the twistd plugin and C{twistd -n xmeet} itself.
"""

from __future__ import annotations

import signal

from twisted.application.service import IServiceMaker
from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.cluster_support import XmeetProcess, run_twistd
from tests.token_support import SECRET, ec_private, key_file, public_pem, rsa_private
from xmeet.config import Settings
from xmeet.core.tokens import TokenVerifier, load_token_key
from xmeet.tap import Options, port_description


def _parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    Options become L{Settings}; bad values are usage errors.
    """

    def test_defaults(self) -> None:
        """
        With no options: port 8080 on every interface and the defaults of
        PROTOCOL.md section 0.
        """
        options = _parse()
        self.assertEqual(options["port"], "tcp:8080:backlog=1024")
        self.assertEqual(options["settings"], Settings())
        settings = options["settings"]
        self.assertEqual(
            (settings.history_size, settings.max_message_size, settings.rate, settings.burst),
            (1000, 65536, 20, 40),
        )
        self.assertEqual((settings.ping_interval, settings.ping_timeout), (25, 20))
        self.assertEqual(settings.timezone, "UTC")
        self.assertEqual((settings.max_send_queue, settings.max_send_buffer), (10000, 4 * 2**20))
        self.assertEqual(settings.write_delay, 0.020)
        self.assertEqual(
            (settings.history_bytes, settings.history_memory, settings.offline_bytes),
            (2**20, 256 * 2**20, 2**20),
        )

    def test_values(self) -> None:
        """
        Every option reaches the settings.
        """
        options = _parse(
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--history-size",
            "5",
            "--max-message-size",
            "100",
            "--rate",
            "2.5",
            "--burst",
            "7",
            "--ping-interval",
            "3",
            "--ping-timeout",
            "4",
            "--timezone",
            "Asia/Shanghai",
            "--max-idle-rooms",
            "9",
            "--max-connections",
            "11",
            "--redis",
            "redis://:secret@127.0.0.1:6380/2",
            "--redis-prefix",
            "chat:",
            "--node-timeout",
            "4.5",
            "--max-send-queue",
            "12",
            "--max-send-buffer",
            "65536",
            "--write-delay",
            "2.5",
            "--history-bytes",
            "512K",
            "--history-memory",
            "8M",
            "--offline-bytes",
            "100000",
        )
        self.assertEqual(options["port"], "tcp:0:interface=127.0.0.1:backlog=1024")
        self.assertEqual(
            options["settings"],
            Settings(
                history_size=5,
                max_message_size=100,
                rate=2.5,
                burst=7,
                ping_interval=3,
                ping_timeout=4,
                timezone="Asia/Shanghai",
                max_idle_rooms=9,
                max_connections=11,
                redis_url="redis://:secret@127.0.0.1:6380/2",
                redis_prefix="chat:",
                node_timeout=4.5,
                max_send_queue=12,
                max_send_buffer=65536,
                write_delay=0.0025,
                history_bytes=512 * 1024,
                history_memory=8 * 2**20,
                offline_bytes=100000,
            ),
        )

    def test_send_buffer_units(self) -> None:
        """
        C{--max-send-buffer} takes bytes, or K, M or G (powers of 1024,
        any case, optionally followed by B or iB).
        """
        for value, size in [
            ("1", 1),
            ("4194304", 4194304),
            ("512K", 512 * 1024),
            ("4M", 4 * 2**20),
            ("4mib", 4 * 2**20),
            ("1GB", 2**30),
        ]:
            settings = _parse("--max-send-buffer", value)["settings"]
            self.assertEqual(settings.max_send_buffer, size, value)

    def test_history_bounds_against_each_other(self) -> None:
        """
        The byte bounds of history and offline queues hold a message of
        C{--max-message-size}, the node's budget a room's history; the
        error names both options.
        """
        for arguments, names in [
            (("--max-message-size", "2000000"), ("--history-bytes", "--max-message-size")),
            (("--offline-bytes", "1000", "--max-message-size", "999"), None),
            (("--history-bytes", "64K", "--history-memory", "128K"), None),
            (("--history-bytes", "4M", "--history-memory", "2M"), ("--history-memory",)),
        ]:
            if names is None:
                _parse(*arguments)
                continue
            with self.assertRaises(usage.UsageError) as raised:
                _parse(*arguments)
            for name in names:
                self.assertIn(name, str(raised.exception))

    def test_access_log(self) -> None:
        """
        C{--access-log} turns the access log on; it is off without it.
        """
        self.assertTrue(_parse("--access-log")["settings"].access_log)
        self.assertFalse(_parse()["settings"].access_log)

    def test_admission_options(self) -> None:
        """
        The per-address limits and the xnest cap reach the settings; by
        default the per-address limits are off and a socket may be in 100
        xnests.
        """
        settings = _parse(
            "--max-connections-per-ip",
            "50",
            "--connection-rate-per-ip",
            "2.5",
            "--connection-burst-per-ip",
            "10",
            "--max-xnests-per-socket",
            "7",
        )["settings"]
        self.assertEqual(
            (
                settings.max_connections_per_ip,
                settings.connection_rate_per_ip,
                settings.connection_burst_per_ip,
                settings.max_xnests_per_socket,
            ),
            (50, 2.5, 10, 7),
        )
        defaults = _parse()["settings"]
        self.assertEqual(
            (
                defaults.max_connections_per_ip,
                defaults.connection_rate_per_ip,
                defaults.connection_burst_per_ip,
                defaults.max_xnests_per_socket,
            ),
            (0, 0, 100, 100),
        )
        off = _parse("--max-connections-per-ip", "0", "--connection-rate-per-ip", "0")
        self.assertEqual(
            (off["settings"].max_connections_per_ip, off["settings"].connection_rate_per_ip),
            (0, 0),
        )

    def test_request_deadline(self) -> None:
        """
        C{--header-timeout} (seconds, default 10) and C{--body-min-rate}
        (bytes per second, default 1K) reach the settings; bad values are
        usage errors naming the option, and both are in C{--help}.
        """
        self.assertEqual((Settings().header_timeout, Settings().body_min_rate), (10, 1024))
        settings = _parse("--header-timeout", "2.5", "--body-min-rate", "4K")["settings"]
        self.assertEqual((settings.header_timeout, settings.body_min_rate), (2.5, 4096))
        for option, value in [
            ("--header-timeout", "0"),
            ("--header-timeout", "-1"),
            ("--header-timeout", "soon"),
            ("--header-timeout", "inf"),
            ("--body-min-rate", "0"),
            ("--body-min-rate", "fast"),
            ("--body-min-rate", "1.5K"),
        ]:
            with self.assertRaises(usage.UsageError, msg=f"{option} {value}") as raised:
                _parse(option, value)
            self.assertIn(option, str(raised.exception))
        text = str(Options())
        self.assertIn("--header-timeout", text)
        self.assertIn("--body-min-rate", text)

    def test_write_delay_off(self) -> None:
        """
        C{--write-delay 0} sends at the end of every reactor turn.
        """
        self.assertEqual(_parse("--write-delay", "0")["settings"].write_delay, 0)

    def test_port_description(self) -> None:
        """
        A bare number is TCP; TCP and TLS ports without a backlog get
        backlog=1024; other descriptions and explicit backlogs pass through.
        """
        self.assertEqual(port_description("8080"), "tcp:8080:backlog=1024")
        self.assertEqual(port_description("tcp:8080"), "tcp:8080:backlog=1024")
        self.assertEqual(
            port_description("tcp:8080:interface=\\:\\:1"),
            "tcp:8080:interface=\\:\\:1:backlog=1024",
        )
        self.assertEqual(port_description("tcp6:8080"), "tcp6:8080:backlog=1024")
        self.assertEqual(
            port_description("ssl:8443:privateKey=k"), "ssl:8443:privateKey=k:backlog=1024"
        )
        self.assertEqual(port_description("tcp:8080:backlog=50"), "tcp:8080:backlog=50")
        self.assertEqual(port_description("tcp:backlog=7:port=80"), "tcp:backlog=7:port=80")
        self.assertEqual(port_description("unix:/run/xmeet.sock"), "unix:/run/xmeet.sock")

    def test_bad_values(self) -> None:
        """
        Each bad value is a L{usage.UsageError} naming the option.
        """
        cases = [
            ("--history-size", "0"),
            ("--history-size", "ten"),
            ("--max-message-size", "-1"),
            ("--rate", "fast"),
            ("--rate", "0"),
            ("--rate", "inf"),
            ("--rate", "nan"),
            ("--burst", "1.5"),
            ("--ping-interval", "-3"),
            ("--ping-interval", "0.5"),
            ("--ping-timeout", "0.2"),
            ("--ping-timeout", "x"),
            ("--timezone", "Mars/Olympus"),
            ("--max-idle-rooms", "0"),
            ("--max-connections", "-2"),
            ("--port", "nonsense:1"),
            ("--port", "tcp:notaport"),
            ("--port", "ssl:8443:privateKey=/nonexistent.pem"),
            ("--redis", "http://127.0.0.1:6379/0"),
            ("--redis", "redis://127.0.0.1:port/0"),
            ("--redis", "redis://127.0.0.1:6379/zero"),
            ("--redis", "redis:///0"),
            ("--redis-prefix", ""),
            ("--redis-prefix", "has space"),
            ("--node-timeout", "0"),
            ("--max-send-queue", "0"),
            ("--max-send-buffer", "0"),
            ("--max-send-buffer", "-1"),
            ("--max-send-buffer", "1.5M"),
            ("--max-send-buffer", "4T"),
            ("--max-send-buffer", "lots"),
            ("--write-delay", "-1"),
            ("--write-delay", "1001"),
            ("--write-delay", "soon"),
            ("--write-delay", "nan"),
            ("--max-connections-per-ip", "-1"),
            ("--max-connections-per-ip", "many"),
            ("--connection-rate-per-ip", "-5"),
            ("--connection-rate-per-ip", "inf"),
            ("--connection-rate-per-ip", "nan"),
            ("--connection-rate-per-ip", "quick"),
            ("--connection-burst-per-ip", "0"),
            ("--connection-burst-per-ip", "2.5"),
            ("--max-xnests-per-socket", "0"),
            ("--max-xnests-per-socket", "all"),
            ("--history-bytes", "0"),
            ("--history-bytes", "lots"),
            ("--history-bytes", "32K"),
            ("--history-memory", "-1"),
            ("--history-memory", "512K"),
            ("--offline-bytes", "1.5M"),
            ("--offline-bytes", "65535"),
        ]
        for option, value in cases:
            with self.assertRaises(usage.UsageError, msg=f"{option} {value}") as raised:
                _parse(option, value)
            self.assertIn(option, str(raised.exception))

    def test_secret_files(self) -> None:
        """
        The HMAC secret and the Redis password may come from files: their
        first line, without the newline; the secret still may come from
        C{--auth-secret}. Neither is shown by the settings' repr.
        """
        path = key_file(self, b"hmac secret\nignored\n")
        settings = _parse("--auth-secret-file", path)["settings"]
        self.assertEqual(settings.auth_secret, "hmac secret")
        self.assertEqual(_parse("--auth-secret", "k")["settings"].auth_secret, "k")
        password = key_file(self, b"p@ss word\n")
        settings = _parse("--redis", "redis://127.0.0.1:6380/2", "--redis-password-file", password)[
            "settings"
        ]
        self.assertEqual(settings.redis_password, "p@ss word")
        self.assertNotIn("p@ss", repr(settings))
        self.assertNotIn("hmac", repr(_parse("--auth-secret-file", path)["settings"]))

    def test_jwt(self) -> None:
        """
        C{--jwt-key-file} and its companions make the settings' verifier:
        the algorithm follows from the key; the leeway is 30 s by default
        and may be 0.
        """
        verifier = _parse("--jwt-key-file", key_file(self, SECRET + b"\n"))["settings"].jwt
        self.assertEqual(verifier, TokenVerifier(load_token_key(SECRET), leeway=30))
        self.assertEqual((verifier.key.algorithm, verifier.key.key), ("HS256", SECRET))
        settings = _parse(
            "--jwt-key-file",
            key_file(self, public_pem(rsa_private())),
            "--jwt-audience",
            "xmeet",
            "--jwt-issuer",
            "https://id.example",
            "--jwt-leeway",
            "0",
        )["settings"]
        assert settings.jwt is not None
        self.assertEqual(
            (settings.jwt.key.algorithm, settings.jwt.audience, settings.jwt.issuer),
            ("RS256", "xmeet", "https://id.example"),
        )
        self.assertEqual(settings.jwt.leeway, 0)
        ec = _parse("--jwt-key-file", key_file(self, public_pem(ec_private())))["settings"]
        self.assertEqual(ec.jwt.key.algorithm, "ES256")
        self.assertIsNone(_parse()["settings"].jwt)
        self.assertFalse(_parse("--jwt-key-file", key_file(self, SECRET))["settings"].xgate_jwt)
        xgate = _parse("--jwt-key-file", key_file(self, SECRET), "--xgate-jwt")["settings"]
        self.assertTrue(xgate.xgate_jwt)

    def test_bad_secret_options(self) -> None:
        """
        Unusable key and secret files, and options that contradict each
        other or mean nothing alone, are usage errors saying why.
        """
        secret = key_file(self, SECRET)
        empty = key_file(self, b"\n \n")
        cases = [
            (["--jwt-key-file", "/nonexistent/key"], "No such file"),
            (["--jwt-key-file", key_file(self, b"short\n")], "5-byte HS256 secret"),
            (["--jwt-key-file", key_file(self, b"-----BEGIN PUBLIC KEY-----\nxx")], "PEM"),
            (["--jwt-key-file", key_file(self, b"k" * 70000)], "larger than"),
            (["--jwt-key-file", secret, "--jwt-leeway", "-1"], "--jwt-leeway"),
            (["--jwt-key-file", secret, "--jwt-leeway", "soon"], "--jwt-leeway"),
            (["--jwt-key-file", secret, "--auth-secret", "k"], "give one of them"),
            (["--jwt-key-file", secret, "--auth-secret-file", secret], "give one of them"),
            (["--auth-secret", "k", "--auth-secret-file", secret], "not both"),
            (["--auth-secret", ""], "must not be empty"),
            (["--auth-secret-file", empty], "is empty"),
            (["--auth-secret-file", key_file(self, b"\xff\xfe\n")], "not UTF-8"),
            (["--jwt-audience", "xmeet"], "needs --jwt-key-file"),
            (["--xgate-jwt"], "needs --jwt-key-file"),
            (["--jwt-issuer", "me"], "needs --jwt-key-file"),
            (["--redis-password-file", secret], "needs --redis"),
            (["--redis", "redis://:pw@h/0", "--redis-password-file", secret], "drop it"),
            (["--redis", "redis://h/0", "--redis-password-file", empty], "is empty"),
        ]
        for argv, why in cases:
            with self.assertRaises(usage.UsageError, msg=" ".join(argv)) as raised:
                _parse(*argv)
            self.assertIn(why, str(raised.exception))

    def test_help(self) -> None:
        """
        Every option has help text.
        """
        text = str(Options())
        for option in [
            "--port",
            "--history-size",
            "--max-message-size",
            "--rate",
            "--burst",
            "--ping-interval",
            "--ping-timeout",
            "--timezone",
            "--max-send-queue",
            "--max-send-buffer",
            "--write-delay",
            "--auth-secret-file",
            "--jwt-key-file",
            "--jwt-audience",
            "--jwt-issuer",
            "--jwt-leeway",
            "--redis-password-file",
            "--xgate-jwt",
            "--history-bytes",
            "--history-memory",
            "--offline-bytes",
        ]:
            self.assertIn(option, text)

    def test_plugin(self) -> None:
        """
        twistd finds the C{xmeet} service maker, which points at this module.
        """
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("xmeet", makers)
        self.assertIs(makers["xmeet"].options, Options)


class TwistdTests(TestCase):
    """
    The README's command, C{twistd -n xmeet --port ...}, serves.
    """

    @defer.inlineCallbacks
    def test_twistd_serves(self):  # type: ignore[no-untyped-def]
        """
        A real twistd process answers C{/healthz} and stops on SIGTERM.
        """
        node = XmeetProcess(self)
        health = yield node.start()
        self.assertEqual(health["status"], "ok")
        yield node.signal(signal.SIGTERM)
        self.assertIn("listening on", node.log)
        self.assertIn("Main loop terminated", node.log)

    @defer.inlineCallbacks
    def test_usage_error(self):  # type: ignore[no-untyped-def]
        """
        A bad option makes twistd print a usage error, not a traceback.
        """
        output = yield run_twistd("--rate", "fast")
        self.assertIn(b"--rate must be a number", output)
        self.assertNotIn(b"Traceback", output)


class ListenBacklogTests(TestCase):
    """
    The listening port itself, with the reactor.
    """

    def test_listen_backlog(self) -> None:
        """
        The port xmeet listens on by default asks the kernel for a backlog
        of 1024; an explicit backlog is kept.
        """
        for given, backlog in [("0", 1024), ("tcp:0:interface=127.0.0.1:backlog=64", 64)]:
            endpoint = serverFromString(reactor, _parse("--port", given)["port"])
            port = self.successResultOf(endpoint.listen(Factory()))
            self.addCleanup(port.stopListening)
            self.assertEqual(port.backlog, backlog)  # type: ignore[attr-defined]


class RedisURLTests(SynchronousTestCase):
    """
    L{parse_redis_url}.
    """

    def test_parts(self) -> None:
        """
        Host, port, database and credentials, with defaults.
        """
        from xmeet.store.redis import RedisAddress, parse_redis_url

        self.assertEqual(parse_redis_url("redis://h"), RedisAddress("h", 6379, 0))
        self.assertEqual(
            parse_redis_url("redis://u:p%40ss@10.0.0.1:6380/3"),
            RedisAddress("10.0.0.1", 6380, 3, "u", "p@ss"),
        )
