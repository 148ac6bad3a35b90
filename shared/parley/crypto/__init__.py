"""IMv1 end-to-end encryption core (sans-IO).

Keys and bytes in, bytes out. Primitives come only from :mod:`parley.crypto.backend`
(PyNaCl on CPython, libsodium.js through the Pyodide FFI in the browser); HMAC, HKDF and
SHA come from the stdlib. See ``docs/crypto.md`` and ``docs/imv1.md`` (the spec).
"""
