"""`attune-memory-admin`: the operator's command line for both services' secrets and store.

One typer app (app.py) with a module per command group: tokens.py (bearer
tokens and tokens files), keys.py (encryption-at-rest keys), reencrypt.py
(re-sealing SENSITIVE patterns after a key rotation). Each command's logic is a
plain function returning the exit status, so the older module entry points
(legacy.py: `python -m memory_service.security.identity`, `...security.crypto`,
`memory_service.reencrypt`) run exactly the same code.
"""
