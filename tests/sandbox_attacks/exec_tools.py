"""Run the host's tools from inside: su, sudo, mount, a shell reaching the network."""
import subprocess

for argv in (["/usr/bin/sudo", "id"], ["/bin/su", "-c", "id"], ["/usr/bin/mount", "-t", "tmpfs", "x", "/tmp"],
             ["/usr/bin/nsenter", "-t", "1", "-m", "id"], ["/usr/bin/unshare", "-r", "id"]):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=5)
        if r.returncode == 0 and b"uid=0" in r.stdout:
            print("ESCAPED:", argv, r.stdout[:80])
    except (OSError, subprocess.TimeoutExpired):
        pass
