-- 0003_image_fingerprints: perceptual hashes (dHash) of the library's images, and which hash version is active.
--
-- image_fingerprints: one row per library file and algorithm version (e.g. dhash8-exact-lanczos-pil13),
-- with the file identity it was computed from (size, mtime_ns, sha256) so an unchanged file is never
-- hashed again. A row holds either a hash (the unsigned 64-bit value stored as a signed BIGINT) or
-- the reason the file could not be read as an image (error), never both.
-- fingerprint_active: the one version searches use; `previous` is what `rehash --rollback` returns to.

-- migrate:up
CREATE TABLE image_fingerprints (
    path TEXT NOT NULL,                                        -- relative to the library, '/'-separated
    algorithm TEXT NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    mtime_ns BIGINT NOT NULL,
    sha256 CHAR(64),
    hash BIGINT,
    variants TEXT,                                             -- 8 flip/rotation hashes, hex, comma-separated
    error TEXT,
    seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    computed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (path, algorithm),
    CHECK ((hash IS NULL) <> (error IS NULL))
);

CREATE INDEX idx_image_fingerprints_algorithm ON image_fingerprints (algorithm, hash);

CREATE TABLE fingerprint_active (
    name TEXT PRIMARY KEY CHECK (name = 'dhash'),
    algorithm TEXT NOT NULL,
    previous TEXT,
    switched_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- migrate:down
DROP TABLE fingerprint_active;
DROP INDEX idx_image_fingerprints_algorithm;
DROP TABLE image_fingerprints;

-- migrate:verify
SELECT COUNT(*) FROM image_fingerprints WHERE (hash IS NULL) = (error IS NULL);
SELECT COUNT(*) FROM fingerprint_active WHERE name <> 'dhash';
