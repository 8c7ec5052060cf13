"""`python -m memory_service.reencrypt`: alias of `attune-memory-admin reencrypt`."""

from __future__ import annotations

import sys

from memory_service.admin.legacy import reencrypt_main as main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
