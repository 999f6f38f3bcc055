-- Schema version 5: the certificate pinned for a server that uses its own (self-signed)
-- certificate. With `accept_invalid_certs` on, exactly this certificate is trusted: the SHA-256
-- of its DER bytes, written as 32 upper-case hex pairs joined by colons. NULL until the user
-- accepts the certificate the server presents (trust on first use); instances saved by an older
-- version have none, so their first connection asks. Forward-only; never edit after release,
-- add a new file.

ALTER TABLE instances ADD COLUMN certificate_sha256 TEXT
    CHECK (certificate_sha256 IS NULL OR length(certificate_sha256) = 95);
