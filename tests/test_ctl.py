"""Tests for sbc.ops.ctl: ``sbc-ctl adduser`` edits the users file safely and never stores a password."""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.config.users import formatAccount, loadUsers
from sbc.ops import ctl

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[1]


class AdduserTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.users = self.directory / "users.txt"
        self.prompts: list[str] = []
        self.answers: list[str] = []

    def fakeGetpass(self, prompt: str = "Password: ", stream: object = None) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)

    def sbcCtl(self, *argv: str, stdin: str = "", answers: tuple[str, ...] = ()) -> tuple[int, str, str]:
        """Run sbc-ctl on the test's users file; returns (status, stdout, stderr)."""
        self.answers = list(answers)
        self.patch(getpass, "getpass", self.fakeGetpass)
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdin", io.StringIO(stdin))
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = ctl.main(["--users", str(self.users), *argv])
        self.assertNotIn(PASSWORD, out.getvalue() + err.getvalue())
        return status, out.getvalue(), err.getvalue()

    def assertNoPassword(self) -> None:
        """Neither the password nor any directory entry other than the users file appears."""
        self.assertNotIn(PASSWORD.encode(), self.users.read_bytes())
        self.assertEqual(os.listdir(self.directory), [self.users.name])

    def test_addNewFile(self) -> None:
        """A first adduser creates the file 0600, with a header comment and the account's hashes."""
        status, out, err = self.sbcCtl(
            "adduser", "alice@Example.com", "--password-stdin", stdin=PASSWORD + "\n"
        )
        self.assertEqual((status, err), (0, ""))
        self.assertIn("added alice@example.com", out)
        self.assertEqual(stat.S_IMODE(self.users.stat().st_mode), 0o600)
        text = self.users.read_text()
        self.assertTrue(text.startswith("# "))
        self.assertTrue(text.endswith(formatAccount("alice", "example.com", PASSWORD) + "\n"))
        account = loadUsers(self.users).lookup("alice", "example.com")
        assert account is not None
        self.assertEqual(
            account.ha1["MD5"], hashlib.md5(f"alice:example.com:{PASSWORD}".encode()).hexdigest()
        )
        self.assertFalse(account.demo)
        self.assertNoPassword()

    def test_askedTwice(self) -> None:
        """Without --password-stdin the password is asked twice on the terminal."""
        status, _, _ = self.sbcCtl("adduser", "alice@example.com", "--demo", answers=(PASSWORD, PASSWORD))
        self.assertEqual(status, 0)
        self.assertEqual(len(self.prompts), 2)
        account = loadUsers(self.users).lookup("alice", "example.com")
        assert account is not None
        self.assertTrue(account.demo)
        self.assertNoPassword()

    def test_mismatchRefused(self) -> None:
        """Two different answers change nothing and exit 1 with a message."""
        status, _, err = self.sbcCtl("adduser", "alice@example.com", answers=(PASSWORD, PASSWORD + "x"))
        self.assertEqual(status, 1)
        self.assertIn("do not match", err)
        self.assertFalse(self.users.exists())

    def test_emptyRefused(self) -> None:
        """An empty password, typed or on stdin, or no stdin at all, is refused."""
        self.assertEqual(self.sbcCtl("adduser", "alice@example.com", answers=("",))[0], 1)
        self.assertEqual(self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin="\n")[0], 1)
        status, _, err = self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin="")
        self.assertEqual(status, 1)
        self.assertIn("empty password", err)
        self.assertFalse(self.users.exists())

    def test_stdinLineOnly(self) -> None:
        """--password-stdin takes the first line, without its line ending but with its spaces."""
        self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin=" pw \r\nsecond line\n")
        self.assertTrue(self.users.read_text().endswith(formatAccount("alice", "example.com", " pw ") + "\n"))

    def test_replaceKeepsOtherLines(self) -> None:
        """Replacing an account changes its line only: other bytes, and its trailing comment, stay."""
        old = formatAccount("alice", "example.com", "old")
        before = (
            "# our accounts\r\n"
            "\r\n"
            f"{formatAccount('bob', 'example.com', 'b')}   # Bob's desk phone\r\n"
            f"{old}\t# Alice, room 4\r\n"
            "  # indented comment with odd   spacing\r\n"
            f"{formatAccount('carol', 'example.com', 'c', demo=True)}"
        ).encode()
        self.users.write_bytes(before)
        self.users.chmod(0o600)
        status, out, _ = self.sbcCtl("adduser", "alice@EXAMPLE.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(status, 0)
        self.assertIn("replaced alice@example.com", out)
        new = formatAccount("alice", "example.com", PASSWORD)
        self.assertEqual(self.users.read_bytes(), before.replace(old.encode(), new.encode()))
        self.assertEqual(stat.S_IMODE(self.users.stat().st_mode), 0o600)
        self.assertEqual(len(loadUsers(self.users)), 3)
        self.assertNoPassword()

    def test_groupAndOtherPermissionsDropped(self) -> None:
        """An existing users file readable by group or others is written 0600, and sbc-ctl says so."""
        self.users.write_text(formatAccount("bob", "example.com", "b") + "\n")
        self.users.chmod(0o644)
        status, _, err = self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(status, 0)
        self.assertEqual(stat.S_IMODE(self.users.stat().st_mode), 0o600)
        self.assertIn("was mode 0644 and is now 0600", err)

    def test_appendKeepsOtherLines(self) -> None:
        """A new account goes at the end, after a newline in the file's own style if it lacked one."""
        before = f"# accounts\r\n{formatAccount('bob', 'example.com', 'b')}".encode()
        self.users.write_bytes(before)
        status, _, _ = self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(status, 0)
        new = formatAccount("alice", "example.com", PASSWORD)
        self.assertEqual(self.users.read_bytes(), before + b"\r\n" + new.encode() + b"\r\n")
        self.assertNoPassword()

    def test_userCaseMatters(self) -> None:
        """Alice and alice are two accounts: the user part is case-sensitive."""
        self.users.write_text(formatAccount("alice", "example.com", "a") + "\n")
        self.sbcCtl("adduser", "Alice@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(len(loadUsers(self.users)), 2)

    def test_brokenFileUntouched(self) -> None:
        """A users file that does not parse is left alone, and the error names its line."""
        before = b"# x\nalice@example.com md5=nothex\n"
        self.users.write_bytes(before)
        status, _, err = self.sbcCtl("adduser", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(status, 1)
        self.assertIn(f"{self.users}:2:", err)
        self.assertEqual(self.users.read_bytes(), before)
        self.assertEqual(os.listdir(self.directory), [self.users.name])

    def test_symlinkFollowed(self) -> None:
        """A users file reached through a symlink is edited where it lives; the link stays."""
        real = self.directory / "real.txt"
        real.write_text(formatAccount("bob", "example.com", "b") + "\n")
        self.users.symlink_to(real.name)
        self.assertEqual(
            self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin=PASSWORD)[0], 0
        )
        self.assertTrue(self.users.is_symlink())
        self.assertEqual(len(loadUsers(real)), 2)

    def test_missingDirectory(self) -> None:
        """A users file in a directory that does not exist is an error, not a traceback."""
        self.users = self.directory / "nowhere" / "users.txt"
        status, _, err = self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(status, 1)
        self.assertIn("cannot write", err)

    def test_badAccountName(self) -> None:
        """A bad USER@DOMAIN is a usage error (2), asked before any password."""
        for name in ("alice", "al ice@example.com", "alice@exa_mple.com", "alice@"):
            status, _, err = self.sbcCtl("adduser", name, answers=(PASSWORD, PASSWORD))
            self.assertEqual(status, 2, name)
            self.assertIn("error:", err)
        self.assertEqual(self.prompts, [])
        self.assertFalse(self.users.exists())

    def test_usage(self) -> None:
        """No command, an unknown command or a missing argument exit 2; --help exits 0."""
        self.assertEqual(self.sbcCtl()[0], 2)
        self.assertEqual(self.sbcCtl("deluser", "alice@example.com")[0], 2)
        self.assertEqual(self.sbcCtl("adduser")[0], 2)
        status, out, _ = self.sbcCtl("adduser", "--help")
        self.assertEqual(status, 0)
        self.assertIn("--password-stdin", out)

    def test_defaultPath(self) -> None:
        """Without --users the file is etc/users.txt under the working directory."""
        (self.directory / "etc").mkdir()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.directory)
        self.patch(sys, "stdin", io.StringIO(PASSWORD))
        self.patch(sys, "stdout", io.StringIO())
        self.assertEqual(ctl.main(["adduser", "alice@example.com", "--password-stdin"]), 0)
        self.assertEqual(len(loadUsers(self.directory / "etc" / "users.txt")), 1)

    def test_passwordChangeKeepsAlgorithms(self) -> None:
        """A new password for an account keeps the digest algorithms its line named."""
        old = formatAccount("alice", "example.com", "old", algorithms=("SHA-256",), demo=True)
        self.users.write_text(old + "\n")
        status, _, _ = self.sbcCtl("adduser", "alice@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(status, 0)
        new = formatAccount("alice", "example.com", PASSWORD, algorithms=("SHA-256",))
        self.assertEqual(self.users.read_text(), new + "\n")
        self.assertNoPassword()


class ModuleTests(SynchronousTestCase):
    def test_pythonDashM(self) -> None:
        """``python -m sbc.ops.ctl`` runs the command and exits with its status."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        users = directory / "users.txt"
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "sbc.ops.ctl", "--users", str(users), "adduser", "alice@example.com"]
        done = subprocess.run(
            [*command, "--password-stdin"],
            input=PASSWORD + "\n",
            env=environment,
            capture_output=True,
            text=True,
        )
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        self.assertEqual(len(loadUsers(users)), 1)
        done = subprocess.run([*command[:-1], "bad"], env=environment, capture_output=True, text=True)
        self.assertEqual(done.returncode, 2)


class InitTests(SynchronousTestCase):
    def test_init(self) -> None:
        """`sbc-ctl init DIR` writes a starter config that loads, and says how to run it."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertEqual(ctl.main(["init", str(directory / "sbc")]), 0)
        self.assertIn(f"--config {directory / 'sbc' / 'sbc.toml'}", out.getvalue())

    def test_refusesToOverwrite(self) -> None:
        """An existing sbc.toml is kept, and the command fails saying so."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        (directory / "sbc.toml").write_text("# mine\n")
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertEqual(ctl.main(["init", str(directory)]), 1)
        self.assertIn("exists already", err.getvalue())
        self.assertEqual((directory / "sbc.toml").read_text(), "# mine\n")


class OptionsCommandTests(SynchronousTestCase):
    def test_silencePrintsNothingAndFails(self) -> None:
        """With nobody answering, `sbc-ctl options` prints nothing on stdout and exits 1."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            port = silent.getsockname()[1]
            out, err = io.StringIO(), io.StringIO()
            self.patch(sys, "stdout", out)
            self.patch(sys, "stderr", err)
            status = ctl.main(["options", f"sip:127.0.0.1:{port}", "--from", "127.0.0.1", "--timeout", "0.3"])
        self.assertEqual((status, out.getvalue()), (1, ""))
        expected = f"no answer from sip:127.0.0.1:{port} within 0.3 s (sent from 127.0.0.1)"
        self.assertIn(expected, err.getvalue())

    def test_badURI(self) -> None:
        """A target that is not a sip: URI is refused with the reason."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertEqual(ctl.main(["options", "http://example.com"]), 1)
        self.assertIn("not a", err.getvalue())
