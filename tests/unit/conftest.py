"""Shared set-up of the unit tests."""

from pathlib import Path

SECRETS = Path(__file__).parent / "cases" / "inventories" / "secrets"

# git keeps no file modes but the executable bit, and the tool refuses a secret file others
# can read (as ssh refuses such a key): the test data's secrets are made 0600 before any test.
for _secret in SECRETS.iterdir():
    _secret.chmod(0o600)
