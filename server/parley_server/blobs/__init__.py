"""Attachment blob storage: where the encrypted attachment bytes live (never plaintext).

``base.BlobStore`` is the interface; ``local.LocalBlobStore`` keeps blobs as files in the data
dir and is served by the server itself (``api/blobs.py``); ``s3.S3BlobStore`` keeps them in an
S3-compatible bucket (MinIO, Ceph RGW, AWS) that clients upload to and download from directly.
``open_blob_store`` picks one from the ``--blobs`` setting.
"""
