from tests.signatures.helpers import craft, keypair, new_key, real_copy, scan_repo

__all__ = ["craft", "keypair", "new_key", "real_copy", "scan_repo"]
