"""Optional encryption of the repository with age (pyrage): packs, index files and snapshots.

With recipients (MOBIUS_BACKUP_RECIPIENTS: age public keys) every file a backup writes is an age
file encrypted to all of them; `age -d -i KEY PACK | zstd -dc | tar -x` opens a pack with the
standard tools. Readers recognise an age file by its first line, so a repository that gained
recipients later holds both kinds and reads both. Decrypting needs the identity file
(MOBIUS_BACKUP_IDENTITY_FILE); a backup needs it too once the repository holds encrypted index
files or snapshots (deduplication and change detection read them).

Keys are read from the settings and the identity file and kept in pyrage objects only: no
message, log line or record ever holds a key (errors name the file, never its content).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mobius.errors import EnvironmentProblem, InputError

AGE_MAGIC = b"age-encryption.org/v1\n"


def is_encrypted(head: bytes) -> bool:
    return head.startswith(AGE_MAGIC)


def file_is_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        return is_encrypted(handle.read(len(AGE_MAGIC)))


@dataclass(frozen=True)
class RepositoryKeys:
    """Recipients to encrypt new files to (none: plain), and where the identity to decrypt them is."""

    recipients: tuple = ()
    identity_file: Path | None = None

    @property
    def encrypts(self) -> bool:
        return bool(self.recipients)

    @classmethod
    def from_settings(cls, recipients: str | None, identity_file: str | None, base: Path) -> RepositoryKeys:
        parsed = []
        if recipients:
            pyrage = _pyrage()
            for number, text in enumerate(recipients.replace(",", " ").split(), start=1):
                try:
                    parsed.append(pyrage.x25519.Recipient.from_str(text))
                except Exception:  # noqa: BLE001 - pyrage raises its own RecipientError/ValueError
                    raise InputError(f"MOBIUS_BACKUP_RECIPIENTS: recipient {number} is not an age public key",
                                     hint="each must look like age1... (made by `age-keygen`)") from None
        identity = None
        if identity_file:
            identity = Path(identity_file).expanduser()
            identity = identity if identity.is_absolute() else base / identity
        return cls(tuple(parsed), identity)

    def _identities(self) -> list:
        if self.identity_file is None:
            raise InputError("the backup repository is encrypted and MOBIUS_BACKUP_IDENTITY_FILE is not set",
                             hint="set it to the age identity file whose public key is in MOBIUS_BACKUP_RECIPIENTS")
        pyrage = _pyrage()
        try:
            lines = self.identity_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read the identity file {self.identity_file}: {exc.strerror}",
                             hint="check MOBIUS_BACKUP_IDENTITY_FILE") from None
        identities = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    identities.append(pyrage.x25519.Identity.from_str(line))
                except Exception:  # noqa: BLE001
                    raise InputError(f"{self.identity_file} holds a line that is not an age identity",
                                     hint="use a file made by `age-keygen`") from None
        if not identities:
            raise InputError(f"{self.identity_file} holds no age identity", hint="use a file made by `age-keygen`")
        return identities

    def require_identity(self) -> None:
        """Refuse (exit 1) unless the identity file opens: a backup checks every pack it wrote by decrypting it,
        and reads the encrypted index and parent snapshot."""
        self._identities()

    def encrypt_bytes(self, data: bytes) -> bytes:
        return _pyrage().encrypt(data, list(self.recipients)) if self.encrypts else data

    def encrypt_file(self, source: Path, target: Path) -> None:
        """`source` encrypted into the new file `target` (fsynced, mode 0600)."""
        _pyrage().encrypt_file(str(source), str(target), list(self.recipients))
        os.chmod(target, 0o600)
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def decrypt_bytes(self, data: bytes, what: str) -> bytes:
        if not is_encrypted(data):
            return data
        try:
            return _pyrage().decrypt(data, self._identities())
        except InputError:
            raise
        except Exception:  # noqa: BLE001 - pyrage.DecryptError: wrong key or damaged file
            raise _cannot_decrypt(what) from None

    def decrypt_file(self, source: Path, target: Path, what: str) -> None:
        try:
            _pyrage().decrypt_file(str(source), str(target), self._identities())
        except InputError:
            raise
        except Exception:  # noqa: BLE001
            raise _cannot_decrypt(what) from None
        os.chmod(target, 0o600)

    def read(self, path: Path) -> bytes:
        """A repository file's plain bytes (decrypted when it is an age file)."""
        return self.decrypt_bytes(path.read_bytes(), path.name)


PLAIN = RepositoryKeys()


def _cannot_decrypt(what: str) -> InputError:
    return InputError(f"{what} does not decrypt with the identity in MOBIUS_BACKUP_IDENTITY_FILE (another key, "
                      "or the file is damaged)", hint="use the identity whose public key the repository was "
                      "encrypted to; `mobius backup verify --read-data` checks every file")


def _pyrage():  # noqa: ANN202 - the module
    try:
        import pyrage
    except ImportError:
        raise EnvironmentProblem("an encrypted backup repository needs the pyrage package",
                                 hint="pip install pyrage") from None
    return pyrage
