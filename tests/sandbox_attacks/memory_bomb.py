"""Memory bomb in one process: touch memory in 64 MB steps until something stops it."""
chunks = []
while True:
    chunks.append(bytearray(64 << 20))  # zero-filled, so every page is touched
