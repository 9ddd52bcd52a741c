"""Safety primitives every capability uses: atomic writes, hashing, checksum files, space, locks."""
