"""Which of the SBC's secrets other accounts on the host can read: one warning line each at start.

The users file holds HA1 hashes, which are as good as passwords for our realm; a config with a
registrant's ``password`` inline holds that password (``password_file`` is checked at load); the TLS key is
the server's identity; the state directory holds the nonce secret, registrations and CDRs. None
of them should be readable by anyone but the account the SBC runs as (contrib/sbc.service sets
``UMask=0077`` and ``StateDirectoryMode=0700``). We warn, not refuse: ops may have reasons
(a group of administrators), and a refused start is worse than a logged risk.
"""

from __future__ import annotations

import stat
from pathlib import Path

from sbc.config import Config

# Read permission for group or others on a file; read or search on a directory.
_FILE_BITS = stat.S_IRGRP | stat.S_IROTH
_DIRECTORY_BITS = _FILE_BITS | stat.S_IXGRP | stat.S_IXOTH


def exposure(path: Path, what: str) -> str | None:
    """A warning if accounts other than the owner can read ``path``, else None (also if absent)."""
    try:
        status = path.stat()
    except OSError:
        return None
    directory = stat.S_ISDIR(status.st_mode)
    mode = stat.S_IMODE(status.st_mode)
    if not mode & (_DIRECTORY_BITS if directory else _FILE_BITS):
        return None
    fix = "chmod 700" if directory else "chmod 600"
    return f"{what} {path} can be read by other accounts (mode {mode:04o}): {fix} it"


def exposedSecrets(config: Config) -> list[str]:
    """One warning per secret in ``config`` that other accounts can read."""
    places: list[tuple[Path, str]] = []
    if config.registrar.usersPath is not None:
        places.append((config.registrar.usersPath, "the users file (password hashes)"))
    if config.tls is not None:
        places.append((config.tls.key, "the TLS private key"))
    places.append((config.stateDirectory, "the state directory"))
    inline = [r.name for r in config.registrants if r.passwordFile is None and r.password]
    if inline:
        # Better: password_file (checked to be 0600 at load).
        places.append((config.path, f"the config (registrant {', '.join(inline)}: inline password)"))
    return [warning for path, what in places if (warning := exposure(path, what)) is not None]
