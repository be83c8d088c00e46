"""One file past the 16 MB file-size limit: the write fails with EFBIG
(Python ignores SIGXFSZ, which would otherwise end the process)."""
with open("/tmp/big", "wb") as f:
    for _ in range(64):
        f.write(b"x" * (1 << 20))
print("ESCAPED: wrote a 64 MB file")
