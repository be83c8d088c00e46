"""Ask for 64 GB at once: refused by the address-space limit."""
try:
    x = bytearray(64 << 30)
    print("ESCAPED: allocated 64 GB")
except MemoryError:
    print("refused")
