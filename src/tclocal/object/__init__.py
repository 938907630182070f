"""The object service: uploads reserved by an uploadId, finished with hashes, then downloaded."""
