"""End-to-end encryption of every conversation, sans-IO (docs/imv1.md §P).

Every conversation message is ONE Sender-Key GroupMessage (1:1 included); pairwise X3DH +
Double Ratchet sessions carry to-device messages only (SKDMs, skdm_req, key_req/key_fwd, derr).
A message whose key is missing waits visibly and is requested, never dropped; nothing is ever
put into an envelope unencrypted.

* ``state``: the msgspec-serializable persistent state (persist BEFORE ciphertext leaves).
* ``identity``: AIK / device keys, what to publish, SPK rotation, OPK refill.
* ``directory``: verifying device lists and bundles under the pinned AIK; TOFU and notices.
* ``pairwise``: per-remote-device sessions, to-device encrypt/decrypt, automatic reset.
* ``groups``: outbound sender keys (create, SKDM fan-out, rotation), inbound states, the
  waiting queue with skdm_req / key_req, key_fwd answers to own devices.
* ``backup``: server-side key backup of inbound states (§13).
* ``device``: the send pipeline (``queue`` and ``prepare`` a ``PendingSend``) and the handling
  of one incoming to-device envelope.
* ``keys_api``: the key directory's HTTP requests as data (method, path, body, reply type).

These are functions over ``E2EState``, not an object. One async driver,
``parley.client.e2e_driver.E2EDriver``, calls them and does the I/O through hooks every shell
(CPython client, browser) provides.
"""
