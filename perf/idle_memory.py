#!/usr/bin/env python3
"""User-space bytes per idle connection on `ringwire serve`: WebSocket connections on its
HTTP/WebSocket listener (`--proto ws`, the default) or raw connections on its TCP echo
listener (`--proto tcp`).

Starts the server (one thread), reads its RSS, opens N connections that each echo one message
(WebSocket: the handshake, then one masked one-byte text message echoed back; TCP: one byte),
so the server has accepted them, finished any handshake and armed their receive, reads the RSS
again, and reports (RSS delta) / N. The kernel's own socket memory (/proc/net/sockstat "mem", in pages) is
reported apart. Connections come from 127.0.0.1..127.0.0.8 to go past one address's ports.

    python3 perf/idle_memory.py --bin target/release/ringwire --driver uring --conns 10000 50000 100000
    python3 perf/idle_memory.py --proto tcp --conns 10000
"""
import argparse, json, os, resource, selectors, socket, subprocess, sys, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def slab_kib():
    tot = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(("SReclaimable:", "SUnreclaim:")):
                tot += int(line.split()[1])
    return tot


def sockstat_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# The client half of a WebSocket handshake (RFC 6455 section 1.3's sample key), followed at
# once by a masked one-byte text message "x" (mask 01 02 03 04).
WS_HELLO = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + bytes([0x81, 0x81, 1, 2, 3, 4, ord("x") ^ 1]))
WS_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def echoed(proto, got):
    """Whether `got` holds the whole answer: the echoed byte, or the 101 and the echoed frame."""
    if proto == "tcp":
        return len(got) >= 1
    head, sep, rest = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    if not head.startswith(b"HTTP/1.1 101") or WS_ACCEPT not in head:
        raise RuntimeError(f"handshake refused: {head[:200]!r}")
    if len(rest) >= 3:
        if rest[:3] != b"\x81\x01x":
            raise RuntimeError(f"bad echo frame: {rest[:16]!r}")
        return True
    return False


def open_conns(port, n, proto):
    conns = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.0.{1 + i % 8}", 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        conns.append(s)
    # One message each, echoed back: the server has accepted and serviced every connection.
    sel = selectors.DefaultSelector()
    got = {}
    for s in conns:
        s.send(b"x" if proto == "tcp" else WS_HELLO)
        sel.register(s, selectors.EVENT_READ)
        got[s] = b""
    pending = len(conns)
    deadline = time.time() + 120
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                raise RuntimeError("server closed a connection")
            got[s] += data
            if echoed(proto, got[s]):
                sel.unregister(s)
                pending -= 1
    if pending:
        raise RuntimeError(f"{pending} connections never echoed")
    return conns


def measure(binary, driver, n, proto):
    port, http = free_port(), free_port()
    srv = subprocess.Popen(
        [binary, "serve", "--threads", "1", "--driver", driver,
         "--tcp-echo", f"127.0.0.1:{port}", "--bind", f"127.0.0.1:{http}",
         "--max-connections", str(n + 10)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for _ in range(2):
            line = srv.stdout.readline()
            if "listening on" not in line:
                raise RuntimeError(f"server did not start: {line!r}")
        time.sleep(0.2)
        # Warm up allocator paths and the receive buffer pool (the ring cycles through all of
        # its buffers), then measure from there.
        target = port if proto == "tcp" else http
        warm = open_conns(target, 1000, proto)
        for s in warm:
            s.close()
        time.sleep(0.5)
        rss0, mem0, slab0 = rss_kib(srv.pid), sockstat_pages(), slab_kib()
        conns = open_conns(target, n, proto)
        # Idle means idle: let the runtime's sweep (every 250 ms, 16k connections a time)
        # return the out-queue storage of connections that have nothing queued.
        time.sleep(0.5 + 0.25 * (n // 16384 + 1))
        rss1, mem1, slab1 = rss_kib(srv.pid), sockstat_pages(), slab_kib()
        res = {
            "driver": driver, "proto": proto, "conns": n,
            "rss_before_kib": rss0, "rss_after_kib": rss1,
            "user_bytes_per_conn": round((rss1 - rss0) * 1024 / n, 1),
            "kernel_tcp_mem_bytes_per_conn": round((mem1 - mem0) * 4096 / n, 1),
            "kernel_slab_bytes_per_conn_both_ends": round((slab1 - slab0) * 1024 / n, 1),
        }
        for s in conns:
            s.close()
        return res
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/ringwire")
    ap.add_argument("--driver", action="append", default=[])
    ap.add_argument("--conns", type=int, nargs="+", default=[10000])
    ap.add_argument("--proto", choices=["ws", "tcp"], default="ws",
                    help="WebSocket connections (default) or raw TCP echo connections")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    need = max(a.conns) + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
    except (ValueError, OSError):
        if hard < need:
            sys.exit(f"need {need} file descriptors, the hard limit is {hard} (raise it: ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    out = []
    for d in a.driver or ["uring", "epoll"]:
        for n in a.conns:
            r = measure(a.bin, d, n, a.proto)
            out.append(r)
            if not a.json:
                print(f"driver={d:5} proto={a.proto} conns={n:6}  user-space {r['user_bytes_per_conn']:7.1f} B/conn  "
                      f"(RSS {r['rss_before_kib']} -> {r['rss_after_kib']} KiB)  "
                      f"kernel: TCP buffers {r['kernel_tcp_mem_bytes_per_conn']:.0f} B/conn, "
                      f"slab {r['kernel_slab_bytes_per_conn_both_ends']:.0f} B/conn (both ends, whole machine)",
                      flush=True)
    if a.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
