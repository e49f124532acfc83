"""allotd out of file descriptors: it pauses accepting instead of spinning on accept().

A connection that accept() cannot take (EMFILE) stays in the listen backlog, so the
listener stays readable; without a pause libevent would call accept() again at once,
in a loop that takes a whole core while the connections already open wait.
"""

import os
import socket
import subprocess
import unittest

from harness import AllotTestCase


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class OutOfDescriptors(AllotTestCase):
    standard = False

    def test_pauses_accepting_and_recovers(self):
        d = self.daemon
        pid = d.proc.pid
        self.expect_log_error(r"accept: .*not accepting new connections")
        # Room for four more descriptors than allotd holds now.
        limit = open_fds(pid) + 4
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
        mark = len(d.lines())
        socks = []
        try:
            for _ in range(12):
                socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
            d.wait_log(r"not accepting new connections for 1 s", since=mark, timeout=10)
            self.assertLessEqual(open_fds(pid), limit)
            # While paused, allotd does not spin: over half a second of its
            # pause it uses a small part of a core (a busy accept loop uses it all).
            c0 = cpu_seconds(pid)
            socks[0].settimeout(0.5)
            with self.assertRaises(socket.timeout):
                socks[0].recv(1)  # nothing comes: a TLS server waits for the hello
            used = cpu_seconds(pid) - c0
            self.assertLess(used, 0.2, f"allotd used {used:.2f} s of CPU in 0.5 s while "
                            "out of descriptors")
        finally:
            for s in socks:
                s.close()
        # The idle sockets are gone: allotd accepts again and answers.
        st, _ = d.healthz()
        self.assertEqual(st, 200)


if __name__ == "__main__":
    unittest.main()
