"""Throw-away OpenPGP keys made with the machine's gpg, for the key tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def new_key(tmp_path: Path, name: str) -> tuple[str, bytes]:
    """A fresh ed25519 signing key in its own GnuPG home: (its fingerprint, the armored public
    key). The gpg-agent that making it starts is stopped again."""
    home = tmp_path / f"gpg-{name}"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
    try:
        subprocess.run(gpg + ["--passphrase", "", "--quick-gen-key", f"{name}@example.org",
                              "ed25519", "sign", "never"], check=True, capture_output=True)
        colons = subprocess.run(gpg + ["--with-colons", "--fingerprint"], check=True,
                                capture_output=True, text=True).stdout
        armored = subprocess.run(gpg + ["--armor", "--export"], check=True,
                                 capture_output=True).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True)
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    return fpr, armored
