"""Tests for sbc.config.users: the users file, its HA1 hashes, and errors that name the line."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.config.errors import ConfigError
from sbc.config.users import (
    Account,
    UserDirectory,
    accountKey,
    computeHA1,
    formatAccount,
    isValidDomain,
    isValidUser,
    loadUsers,
    parseAccountName,
    parseUsers,
)

PATH = Path("etc/users.txt")
MD5 = "0" * 32
SHA = "f" * 64


def line(account: str = "alice@example.com", rest: str = f"md5={MD5} sha256={SHA}") -> str:
    return f"{account} {rest}"


class FormatAccountTests(SynchronousTestCase):
    def test_hashes(self) -> None:
        """The hashes are RFC 7616 HA1 values with the domain as realm, and the password is absent."""
        text = formatAccount("alice", "example.com", "s3cret!")
        md5 = hashlib.md5(b"alice:example.com:s3cret!").hexdigest()
        sha = hashlib.sha256(b"alice:example.com:s3cret!").hexdigest()
        self.assertEqual(text, f"alice@example.com md5={md5} sha256={sha}")
        self.assertNotIn("s3cret", text)

    def test_rfc2617Example(self) -> None:
        """computeHA1 gives the HA1 of RFC 2617's section 3.5 example (the realm lower-cased)."""
        self.assertEqual(
            computeHA1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9",
        )
        self.assertRaises(ValueError, computeHA1, "SHA-512-256", "a", "b", "c")

    def test_demoAndDomainCase(self) -> None:
        """The domain is written, and hashed, in lower case; demo adds the flag."""
        text = formatAccount("Bob", "Example.COM", "pw", demo=True)
        md5 = hashlib.md5(b"Bob:example.com:pw").hexdigest()
        self.assertTrue(text.startswith(f"Bob@example.com md5={md5} sha256="))
        self.assertTrue(text.endswith(" demo"))

    def test_roundTrip(self) -> None:
        """A formatted line parses back to the account it describes."""
        users = parseUsers(formatAccount("alice", "example.com", "pw", demo=True) + "\n", PATH)
        account = users.lookup("alice", "example.com")
        assert account is not None
        self.assertEqual(account.ha1["MD5"], hashlib.md5(b"alice:example.com:pw").hexdigest())
        self.assertEqual(account.ha1["SHA-256"], hashlib.sha256(b"alice:example.com:pw").hexdigest())
        self.assertTrue(account.demo)

    def test_badName(self) -> None:
        """A user or domain that is not valid is refused."""
        self.assertRaises(ValueError, formatAccount, "al ice", "example.com", "pw")
        self.assertRaises(ValueError, formatAccount, "alice", "exa_mple.com", "pw")


class AccountNameTests(SynchronousTestCase):
    def test_valid(self) -> None:
        """SIP user characters and host names pass; the domain is lower-cased."""
        self.assertEqual(
            parseAccountName("a.b-c_d+1;x=y@Sip.Example.com"), ("a.b-c_d+1;x=y", "sip.example.com")
        )
        self.assertEqual(parseAccountName("1000@192.0.2.1"), ("1000", "192.0.2.1"))
        self.assertTrue(isValidUser("+4930123456"))
        self.assertTrue(isValidDomain("localhost"))

    def test_invalid(self) -> None:
        """Missing parts, spaces, '#', '@' in the user, bad labels and trailing dots are refused."""
        for text in (
            "alice",
            "@example.com",
            "alice@",
            "al ice@example.com",
            "al#ice@example.com",
            "a@b@example.com",
            "alice@-example.com",
            "alice@example..com",
            "alice@example.com.",
            "alice@exa mple.com",
            "al%41ice@example.com",
        ):
            with self.assertRaises(ValueError, msg=text):
                parseAccountName(text)

    def test_accountKey(self) -> None:
        """accountKey names the account of a line, and None for blanks and comments."""
        self.assertEqual(accountKey(line("alice@Example.com") + "  # hi"), ("alice", "example.com"))
        self.assertIsNone(accountKey("   # alice@example.com"))
        self.assertIsNone(accountKey(""))


class ParseUsersTests(SynchronousTestCase):
    def error(self, text: str) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            parseUsers(text, PATH)
        error: ConfigError = caught.exception
        return error

    def test_parse(self) -> None:
        """Accounts, comments, blank lines and the demo flag all parse."""
        text = "\n".join(
            [
                "# accounts",
                "",
                line("alice@example.com"),
                f"bob@Example.org sha256={SHA.upper()} md5={MD5}  demo   # trailing comment",
                "   ",
            ]
        )
        users = parseUsers(text, PATH)
        self.assertEqual(len(users), 2)
        self.assertEqual(
            users.lookup("alice", "example.com"),
            Account("alice", "example.com", {"MD5": MD5, "SHA-256": SHA}, False),
        )
        bob = users.lookup("bob", "example.org")
        assert bob is not None
        self.assertEqual((bob.aor, bob.ha1["SHA-256"], bob.demo), ("bob@example.org", SHA, True))
        self.assertEqual({account.aor for account in users}, {"alice@example.com", "bob@example.org"})

    def test_lookupCase(self) -> None:
        """The user matches case-sensitively, the domain case-insensitively."""
        users = parseUsers(line("alice@example.com"), PATH)
        self.assertIsNotNone(users.lookup("alice", "EXAMPLE.com"))
        self.assertIsNone(users.lookup("Alice", "example.com"))
        self.assertIsNone(users.lookup("alice", "example.org"))

    def test_empty(self) -> None:
        """A file of comments only is an empty directory."""
        self.assertEqual(len(parseUsers("# nobody yet\n\n", PATH)), 0)

    def test_readOnly(self) -> None:
        """An account's hashes cannot be changed through the directory."""
        account = parseUsers(line(), PATH).lookup("alice", "example.com")
        assert account is not None
        with self.assertRaises(TypeError):
            account.ha1["MD5"] = "x"  # type: ignore[index]

    def test_badAccountName(self) -> None:
        """A bad user@domain is reported with its line."""
        error = self.error(f"# c\n{line('alice@exa mple')}\n")
        self.assertEqual(error.line, 2)
        error = self.error(line("no-at-sign"))
        self.assertEqual(error.line, 1)
        self.assertIn("etc/users.txt:1:", str(error))

    def test_wrongHexLength(self) -> None:
        """A hash of the wrong length is reported with its line."""
        error = self.error(f"{line()}\n\n{line('bob@example.com', f'md5={MD5}0 sha256={SHA}')}\n")
        self.assertEqual(error.line, 3)
        self.assertIn("md5= must be 32 hex digits", error.reason)
        error = self.error(line(rest=f"md5={MD5} sha256={SHA[:-1]}"))
        self.assertEqual(error.line, 1)
        self.assertIn("sha256= must be 64 hex digits", error.reason)

    def test_notHex(self) -> None:
        """A hash with a non-hex digit is reported with its line."""
        error = self.error(line(rest=f"md5={'g' * 32} sha256={SHA}"))
        self.assertEqual(error.line, 1)
        self.assertIn("hex", error.reason)

    def test_unknownKey(self) -> None:
        """An unknown key, or a word that is not a key, is reported with its line."""
        error = self.error(f"\n{line(rest=f'md5={MD5} sha256={SHA} sha512=00')}")
        self.assertEqual((error.line, error.reason.split(" (")[0]), (2, "unknown key 'sha512'"))
        error = self.error(line(rest=f"md5={MD5} sha256={SHA} password"))
        self.assertEqual(error.line, 1)
        self.assertIn("'password'", error.reason)

    def test_duplicateKey(self) -> None:
        """A key given twice on one line is reported with its line."""
        error = self.error(line(rest=f"md5={MD5} md5={MD5} sha256={SHA}"))
        self.assertEqual(error.line, 1)
        self.assertIn("twice", error.reason)

    def test_duplicateAccount(self) -> None:
        """The same account twice (domain in any case) is reported at the second line, naming the first."""
        error = self.error(f"{line('alice@example.com')}\n# x\n{line('alice@EXAMPLE.com')}\n")
        self.assertEqual(error.line, 3)
        self.assertIn("line 1", error.reason)

    def test_missingHash(self) -> None:
        """An account without md5= or without sha256= is reported with its line."""
        error = self.error(f"{line()}\n{line('bob@example.com', f'md5={MD5}')}")
        self.assertEqual((error.line, error.reason), (2, "sha256= is missing"))
        error = self.error(line(rest=f"sha256={SHA} demo"))
        self.assertEqual((error.line, error.reason), (1, "md5= is missing"))


class LoadUsersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def test_load(self) -> None:
        """A file on disk loads, and its errors name it."""
        path = self.directory / "users.txt"
        path.write_text(line() + "\n", encoding="utf-8")
        self.assertEqual(len(loadUsers(path)), 1)
        path.write_text(line() + "\n" + line() + "\n", encoding="utf-8")
        with self.assertRaises(ConfigError) as caught:
            loadUsers(path)
        self.assertIn(f"{path}:2:", str(caught.exception))

    def test_missing(self) -> None:
        """A missing users file is an error naming it."""
        with self.assertRaises(ConfigError) as caught:
            loadUsers(self.directory / "nope.txt")
        self.assertIn("nope.txt", str(caught.exception))


class UserDirectoryTests(SynchronousTestCase):
    def test_duplicateRefused(self) -> None:
        """A directory cannot hold one account twice."""
        account = Account("alice", "example.com", {"MD5": MD5, "SHA-256": SHA})
        with self.assertRaises(ValueError):
            UserDirectory([account, Account("alice", "Example.com", {})])


class AccountAlgorithmsTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """algorithms= picks the account's digest algorithms in its order, any case; absent means none."""
        users = parseUsers(
            line("alice@example.com", f"md5={MD5} sha256={SHA} algorithms=sha-256,MD5")
            + "\n"
            + line("bob@example.com"),
            PATH,
        )
        alice, bob = users.lookup("alice", "example.com"), users.lookup("bob", "example.com")
        assert alice is not None and bob is not None
        self.assertEqual((alice.algorithms, bob.algorithms), (("SHA-256", "MD5"), ()))

    def test_bad(self) -> None:
        """An unknown or repeated algorithm, or algorithms= twice, is reported with its line."""
        for rest in [
            "algorithms=SHA-512",
            "algorithms=MD5,MD5",
            "algorithms=",
            "algorithms=MD5 algorithms=MD5",
        ]:
            with self.assertRaises(ConfigError) as caught:
                parseUsers(line(rest=f"md5={MD5} sha256={SHA} {rest}"), PATH)
            self.assertEqual(caught.exception.line, 1, rest)

    def test_formatRoundTrip(self) -> None:
        """formatAccount writes algorithms= so that the line parses back to the same choice."""
        text = formatAccount("carol", "example.com", "pw", algorithms=("SHA-256",))
        self.assertTrue(text.endswith(" algorithms=SHA-256"))
        carol = parseUsers(text, PATH).lookup("carol", "example.com")
        assert carol is not None
        self.assertEqual(carol.algorithms, ("SHA-256",))
